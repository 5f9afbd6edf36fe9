"""``fit_score``: explicit, implicit, sliced or denoising score matching on the one fit skeleton.

A field -- an energy ``E(x)`` (score ``-grad E``) or a score network ``s(x)`` / ``s(x, sigma)``
-- is closed over an objective of :mod:`numpyro_hgf.objectives.score_matching` and trained by
:func:`numpyro_hgf.train.fit.fit_objective`.  Hamiltonian score matching, a two-player game,
is :func:`numpyro_hgf.train.hsm.fit_hsm` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Unpack

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks import (
    check_choice,
    check_data_matrix,
    check_fits,
    check_key,
    check_noise_levels,
    check_positive_float,
    check_positive_int,
)
from numpyro_hgf.distributions.score import ScoreModel, energy_model
from numpyro_hgf.nn.mlp import EnergyMLP, TimeMLP
from numpyro_hgf.objectives.score_matching import (
    as_apply,
    denoising_score_matching,
    explicit_score_matching,
    implicit_score_matching,
    score_from_energy,
    score_from_network,
    sliced_score_matching,
)
from numpyro_hgf.train.fit import fit_objective, init_field_params
from numpyro_hgf.train.hsm import fit_hsm, hsm_optimizer
from numpyro_hgf.train.options import Recipe, TrainKeywords, TrainOptions, resolve_options

__all__ = ["fit_score", "fit_hsm", "hsm_optimizer", "SCORE_OBJECTIVES", "RECIPE"]

#: The optimisation ``fit_score`` recommends.
RECIPE = Recipe(steps=2_000, batch_size=256, learning_rate=1e-3, clip_norm=1.0, ema_decay=None)

SCORE_OBJECTIVES: dict[str, Callable] = {
    "explicit": explicit_score_matching,
    "implicit": implicit_score_matching,
    "sliced": sliced_score_matching,
    "denoising": denoising_score_matching,
}


def _objective_options(name, data, sigma, num_projections, projection, variance_reduction,
                       bandwidth, kde_reference) -> dict:  # fmt: skip
    """The static options of the named objective, checked."""
    options: dict = {}
    if name == "denoising":
        check_noise_levels("sigma", sigma)
        multi = np.ndim(sigma) == 1
        options["sigma"] = tuple(float(s) for s in sigma) if multi else float(sigma)
    elif name == "sliced":
        options.update(
            num_projections=check_positive_int("num_projections", num_projections),
            projection=check_choice("projection", projection, ("rademacher", "gaussian")),
            variance_reduction=bool(variance_reduction),
        )
    elif name == "explicit":
        check_choice("kde_reference", kde_reference, ("data", "batch"))
        if bandwidth is not None:
            options["bandwidth"] = check_positive_float("bandwidth", bandwidth)
        if kde_reference == "data":
            options["reference"] = data
    return options


def fit_score(
    objective: str | Callable,
    data,
    *,
    energy=None,
    network=None,
    params=None,
    sigma=0.1,
    num_projections: int = 1,
    projection: str = "rademacher",
    variance_reduction: bool = False,
    bandwidth: float | None = None,
    kde_reference: str = "data",
    hidden=(128, 128),
    key=None,
    options: TrainOptions | None = None,
    return_result: bool = False,
    **train_options: Unpack[TrainKeywords],
):
    """Fit a score model to ``data`` by score matching.

    Args:
        objective: ``"explicit"`` (KDE target), ``"implicit"`` (Hyvarinen, exact trace),
            ``"sliced"`` (Hutchinson projections), ``"denoising"``; or any callable
            ``objective(score_fn, params, x, key) -> scalar``.
        data: ``(n, d)`` training data.
        energy: a ``flax.linen`` energy ``x -> (batch,)`` (score ``-grad E``), e.g.
            :class:`~numpyro_hgf.nn.EnergyMLP`; or a callable ``(params, x)`` with ``params``.
        network: a ``flax.linen`` score network ``x -> (batch, d)``, or
            ``(x, sigma) -> (batch, d)`` for several noise levels.  Give ``energy`` or
            ``network``; with neither, an ``EnergyMLP(hidden)`` (or, for several noise
            levels, a ``TimeMLP(hidden)`` taking ``t = sigma``).
        params: initial params (default: the module's ``init`` on the data).
        sigma: denoising noise level ``> 0``, or a 1-D sequence of levels (NCSN, weighting
            ``sigma^2``); only for ``"denoising"``.
        num_projections, projection, variance_reduction: sliced score matching options.
        bandwidth: KDE width for ``"explicit"`` (``None``: Scott's rule).
        kde_reference: ``"data"`` (KDE over the whole training set) or ``"batch"``.
        key: ``jax.random`` key (required).
        options, **train_options: how to train (:class:`~numpyro_hgf.train.TrainOptions`).
            Recommended: 2,000 Adam steps of 256 rows, learning rate 1e-3 with cosine decay,
            clipping at norm 1, no EMA.  With ``validation`` rows the model gets the params of
            the lowest held-out objective (fixed projections and noise).
        return_result: also return the :class:`~numpyro_hgf.train.TrainResult`.

    Returns:
        For a flax energy: an ``EnergyBasedModel``; for a plain callable energy a
        :class:`~numpyro_hgf.distributions.ScoreModel` with ``kind="energy"``; for a score
        network: a ``ScoreModel``.  With ``return_result``: ``(model, result)``.
    """
    key = check_key("key", key)
    options = resolve_options(options, train_options, RECIPE)
    if callable(objective) and not isinstance(objective, str):
        objective_fn, name = objective, getattr(objective, "__name__", "custom")
    else:
        name = check_choice("objective", objective, tuple(SCORE_OBJECTIVES))
        objective_fn = SCORE_OBJECTIVES[name]
    data = check_data_matrix("data", data, min_rows=2)
    if energy is not None and network is not None:
        raise ValueError("network: expected either energy or network, got both")
    static = _objective_options(
        name, data, sigma, num_projections, projection, variance_reduction, bandwidth,
        kde_reference,
    )  # fmt: skip
    multi_sigma = isinstance(static.get("sigma"), tuple)
    if energy is None and network is None:
        if multi_sigma:
            scale = 1000.0 / max(static["sigma"])
            network = TimeMLP(hidden=hidden, out_dim=data.shape[1], time_scale=scale)
        else:
            energy = EnergyMLP(hidden=hidden)
    field = energy if energy is not None else network
    field_name = "energy" if energy is not None else "network"
    score_fn = score_from_energy(energy) if energy is not None else score_from_network(network)
    as_apply(field_name, field)  # type check with the argument's name

    init_key, train_key = jax.random.split(key)
    level = lambda n: (jnp.full((n,), static["sigma"][0], data.dtype),) if multi_sigma else ()
    params = init_field_params(field_name, field, params, init_key, data[:1], *level(1))
    check_fits(field_name, score_fn, params, data, *level(2))

    result = fit_objective(
        lambda p, batch, k: objective_fn(score_fn, p, batch, k, **static),
        params,
        data,
        options,
        key=train_key,
        description=f"fit_score ({name})",
    )
    event_shape = data.shape[1:]
    if energy is not None and not multi_sigma:
        model = energy_model(energy, result.params, event_shape)
    else:
        kind = "energy" if energy is not None else "score"
        sigmas = static["sigma"] if multi_sigma else None
        model = ScoreModel(field, result.params, event_shape, kind=kind, sigmas=sigmas)
    return (model, result) if return_result else model
