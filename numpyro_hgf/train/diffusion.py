"""``fit_diffusion``: denoising score matching of a time-conditioned score along an SDE.

The objective is :func:`numpyro_hgf.objectives.diffusion_score_matching` (Song et al. 2021,
eq. 7; with ``output="noise"`` DDPM's "simple" loss in continuous time) on the one fit
skeleton; the result is a :class:`~numpyro_hgf.distributions.DiffusionPrior`.
"""

from __future__ import annotations

from typing import Unpack

import jax
import jax.numpy as jnp

from numpyro_hgf._checks import (
    check_choice,
    check_data_array,
    check_instance,
    check_key,
    check_open_time,
)
from numpyro_hgf.distributions.diffusion import DiffusionPrior
from numpyro_hgf.nn.mlp import TimeMLP
from numpyro_hgf.objectives.diffusion import NETWORK_OUTPUTS, diffusion_score_matching
from numpyro_hgf.paths.sde import SDE
from numpyro_hgf.train.fit import fit_objective
from numpyro_hgf.train.options import Recipe, TrainKeywords, TrainOptions, resolve_options
from numpyro_hgf.train.programs import ModelLoss
from numpyro_hgf.train.velocity import _describe_model

__all__ = ["fit_diffusion", "diffusion_score_matching_loss", "RECIPE"]

#: The optimisation ``fit_diffusion`` recommends.
RECIPE = Recipe(steps=5_000, batch_size=256, learning_rate=1e-3, clip_norm=1.0, ema_decay=0.999)

#: The loss under its name of earlier releases.
diffusion_score_matching_loss = diffusion_score_matching


def fit_diffusion(
    sde,
    data,
    *,
    network=None,
    hidden=(128, 128),
    output: str = "noise",
    eps: float = 1e-5,
    sampler="ode",
    solver="tsit5",
    sample_solver=None,
    trace: str | None = None,
    num_probes: int = 1,
    key=None,
    options: TrainOptions | None = None,
    return_result: bool = False,
    **train_options: Unpack[TrainKeywords],
):
    """Learn the score of ``sde``'s marginals on ``data``; return a ``DiffusionPrior``.

    Args:
        sde: a :mod:`numpyro_hgf.paths` SDE (``VPSDE``, ``VESDE``, ``SubVPSDE``).
        data: ``(n, *event_shape)`` training data.
        network: a ``flax.linen`` module ``(x, t) -> (batch, *event_shape)``; by default a
            :class:`~numpyro_hgf.nn.TimeMLP` with ``hidden`` widths (vectors; pass a ``UNet``
            for images).
        output: ``"noise"`` (e-prediction, the default) or ``"score"``.
        eps: times are drawn uniformly on ``[eps, T]``; also the prior's ``eps``.
        sampler, solver, sample_solver, trace, num_probes: the prior's settings
            (:class:`~numpyro_hgf.distributions.DiffusionPrior`): its default sampler (a
            :class:`~numpyro_hgf.samplers.diffusion.DiffusionSampler` or a name) and the
            PF-ODE of ``log_prob``.
        key: ``jax.random`` key (required).
        options, **train_options: how to train (:class:`~numpyro_hgf.train.TrainOptions`).
            Recommended: 5,000 Adam steps of 256 rows, learning rate 1e-3 with cosine decay,
            clipping at norm 1, EMA 0.999.  With ``validation`` rows the prior gets the params
            of the lowest held-out denoising loss (fixed draws).
        return_result: also return the :class:`~numpyro_hgf.train.TrainResult`.

    Returns:
        The trained :class:`~numpyro_hgf.distributions.DiffusionPrior` (saveable), or
        ``(prior, result)``.
    """
    check_instance("sde", sde, SDE, "a numpyro_hgf.paths SDE (VPSDE, VESDE, SubVPSDE)")
    key = check_key("key", key)
    options = resolve_options(options, train_options, RECIPE)
    check_choice("output", output, NETWORK_OUTPUTS)
    eps = check_open_time("eps", eps, sde.T)
    data = check_data_array("data", data)
    event_shape = tuple(data.shape[1:])
    if network is None:
        if len(event_shape) != 1:
            raise ValueError(
                "network: the default TimeMLP takes vectors (n, d); for data of shape "
                f"{tuple(data.shape)} pass a network (or flatten the data), got None"
            )
        network = TimeMLP(hidden=hidden, out_dim=event_shape[0])
    prior_options = dict(
        event_shape=event_shape,
        output=output,
        eps=eps,
        sampler=sampler,
        solver=solver,
        sample_solver=sample_solver,
        trace=trace,
        num_probes=num_probes,
    )
    DiffusionPrior(network, None, sde, **prior_options)  # settings checked before training
    init_key, train_key = jax.random.split(key)
    params = network.init(init_key, data[:1], jnp.full((1,), sde.T, data.dtype))["params"]

    loss_fn = ModelLoss(
        _diffusion_objective, None, takes_key=True, network=network, sde=sde, eps=eps, output=output
    )
    result = fit_objective(
        loss_fn,
        params,
        data,
        options,
        key=train_key,
        description=f"fit_diffusion ({sde.name})",
        checkpoint_description=_describe_model(network, sde),
    )
    prior = DiffusionPrior(network, result.params, sde, **prior_options)
    return (prior, result) if return_result else prior


def _diffusion_objective(_, params, batch, key, *, network, sde, eps, output):
    """:func:`diffusion_score_matching` as a ``ModelLoss`` objective (network, SDE static)."""
    return diffusion_score_matching(network, params, sde, batch, key, eps=eps, output=output)
