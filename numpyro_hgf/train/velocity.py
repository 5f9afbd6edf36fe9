"""``fit_velocity``: the one velocity trainer of every Hamiltonian path.

Flow matching, diffusion-as-HGF, oscillation and reflection HGFs -- and any new
:class:`~numpyro_hgf.paths.HamiltonianPath` -- are fitted by velocity regression
(:func:`numpyro_hgf.objectives.velocity_matching`; Holderrieth et al. 2024, Sec. 5) on the one
fit skeleton, and come back as an :class:`~numpyro_hgf.distributions.HGFPrior`.
"""

from __future__ import annotations

from typing import Unpack

import jax
import jax.numpy as jnp

from numpyro_hgf._checks import check_data_array, check_instance, check_key
from numpyro_hgf.distributions.continuous_flow import HGFPrior
from numpyro_hgf.nn.config import module_config
from numpyro_hgf.nn.mlp import TimeMLP
from numpyro_hgf.objectives.velocity import velocity_matching
from numpyro_hgf.paths.hamiltonian import HamiltonianPath
from numpyro_hgf.train.fit import fit_objective
from numpyro_hgf.train.options import Recipe, TrainKeywords, TrainOptions, resolve_options
from numpyro_hgf.train.programs import ModelLoss

__all__ = ["fit_velocity", "velocity_matching_loss", "RECIPE"]

#: The optimisation ``fit_velocity`` recommends (fills the ``RECOMMENDED`` trainer options).
RECIPE = Recipe(steps=5_000, batch_size=256, learning_rate=1e-3, clip_norm=1.0, ema_decay=0.999)

#: The loss under its name of earlier releases (:func:`numpyro_hgf.objectives.velocity_matching`).
velocity_matching_loss = velocity_matching


def fit_velocity(
    path,
    data,
    *,
    velocity=None,
    hidden=(128, 128),
    solver="tsit5",
    sample_solver=None,
    trace: str | None = None,
    num_probes: int = 1,
    key=None,
    options: TrainOptions | None = None,
    return_result: bool = False,
    **train_options: Unpack[TrainKeywords],
):
    """Learn the optimal velocity predictor of ``path`` on ``data``; return an ``HGFPrior``.

    Args:
        path: a :class:`~numpyro_hgf.paths.HamiltonianPath` (flow matching, diffusion,
            oscillation, reflection, or a new one).
        data: ``(n, *event_shape)`` training data (inside the box for reflection).
        velocity: a ``flax.linen`` module ``(x, t) -> v``; by default a
            :class:`~numpyro_hgf.nn.TimeMLP` with ``hidden`` widths whose time embedding
            is scaled to the path's horizon (vectors; pass a ``UNet`` for images).
        solver, sample_solver, trace, num_probes: the prior's ODE settings
            (:class:`~numpyro_hgf.distributions.ContinuousFlow`): an
            :class:`~numpyro_hgf.samplers.ode.ODESolver` (or a name / dict) for ``log_prob``
            and for ``sample``, and the divergence estimator.
        key: ``jax.random`` key (required).
        options, **train_options: how to train (:class:`~numpyro_hgf.train.TrainOptions`,
            whole or field by field).  Recommended: 5,000 Adam steps of 256 rows, learning
            rate 1e-3 with cosine decay, clipping at norm 1, EMA 0.999 (the prior uses the
            EMA params).  With ``validation`` rows the prior gets the params of the lowest
            held-out velocity loss (fixed draws).
        return_result: also return the :class:`~numpyro_hgf.train.TrainResult`.

    Returns:
        The trained :class:`~numpyro_hgf.distributions.HGFPrior` (saveable), or
        ``(prior, result)``.
    """
    check_instance("path", path, HamiltonianPath, "a HamiltonianPath")
    key = check_key("key", key)
    options = resolve_options(options, train_options, RECIPE)
    data = check_data_array("data", data)
    path.check_data(data, name="data")
    if options.validation is not None:
        path.check_data(jnp.asarray(options.validation), name="validation")
    prior_options = dict(solver=solver, sample_solver=sample_solver, trace=trace)
    prior_options["num_probes"] = num_probes
    event_shape = tuple(data.shape[1:])
    if velocity is None:
        if len(event_shape) != 1:
            raise ValueError(
                "velocity: the default TimeMLP takes vectors (n, d); for data of shape "
                f"{data.shape} pass a network (e.g. nh.nn.UNet), got None"
            )
        velocity = TimeMLP(hidden=hidden, out_dim=event_shape[0], time_scale=1000.0 / path.horizon)
    # the prior's settings are checked before anything is traced
    HGFPrior(velocity, None, path, event_shape=event_shape, **prior_options)
    init_key, train_key = jax.random.split(key)
    params = velocity.init(init_key, data[:1], jnp.zeros((), data.dtype))["params"]

    result = fit_objective(
        ModelLoss(_velocity_objective, None, takes_key=True, velocity=velocity, path=path),
        params,
        data,
        options,
        key=train_key,
        description=f"fit_velocity ({path.name})",
        checkpoint_description=_describe_model(velocity, path),
    )
    prior = HGFPrior(velocity, result.params, path, event_shape=event_shape, **prior_options)
    return (prior, result) if return_result else prior


def _velocity_objective(_, params, batch, key, *, velocity, path):
    """:func:`velocity_matching` as a :class:`ModelLoss` objective (network and path static)."""
    return velocity_matching(velocity, params, path, batch, key)


def _describe_model(network, path) -> dict | None:
    """What checkpoints record about the model (a network that cannot be described: none)."""
    try:
        return {"network": module_config(network), "path": path.config()}
    except TypeError:
        return None
