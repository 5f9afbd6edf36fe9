"""Maximum-likelihood training of normalizing and continuous flows on the one fit skeleton.

Objective (the *maximum likelihood* rows of the design table):
:func:`numpyro_hgf.objectives.negative_log_likelihood`, the empirical
``-(1/n) sum_i log p_theta(x_i)`` by the change of variables of a
:class:`~numpyro_hgf.flows.NormalizingFlow`, or by the instantaneous change of variables of a
:class:`~numpyro_hgf.distributions.ContinuousFlow` (FFJORD).
"""

from __future__ import annotations

from typing import Unpack

import jax

from numpyro_hgf._checks import check_data_matrix, check_event_shape, check_key
from numpyro_hgf.distributions.continuous_flow import ContinuousFlow
from numpyro_hgf.flows.flow import NormalizingFlow, build_flow
from numpyro_hgf.objectives.likelihood import negative_log_likelihood
from numpyro_hgf.train.fit import fit_objective
from numpyro_hgf.train.options import Recipe, TrainKeywords, TrainOptions, resolve_options
from numpyro_hgf.train.programs import ModelLoss

__all__ = ["fit_flow", "flow_nll", "RECIPE"]

#: The optimisation ``fit_flow`` recommends.
RECIPE = Recipe(steps=2_000, batch_size=256, learning_rate=1e-3, clip_norm=10.0, ema_decay=None)

#: The loss under its name of earlier releases.
flow_nll = negative_log_likelihood


def fit_flow(
    flow,
    data,
    *,
    num_layers: int = 4,
    hidden=(64, 64),
    flow_options: dict | None = None,
    key=None,
    options: TrainOptions | None = None,
    return_result: bool = False,
    **train_options: Unpack[TrainKeywords],
):
    """Fit a normalizing flow to ``data`` by maximum likelihood.

    Args:
        flow: a :class:`~numpyro_hgf.flows.NormalizingFlow` or a
            :class:`~numpyro_hgf.distributions.ContinuousFlow` (FFJORD-style maximum
            likelihood through the ODE) to start from, or a flow kind (``"planar"``,
            ``"radial"``, ``"realnvp"``, ``"maf"``, ``"spline"``) built with
            :func:`numpyro_hgf.flows.build_flow` from ``num_layers``, ``hidden`` and
            ``flow_options`` (``log_scale_bound``, ``num_bins``, ``bound``).
        data: ``(n, d)`` training data.
        key: ``jax.random`` key for the initialisation and the minibatches (required).
        options, **train_options: how to train (:class:`~numpyro_hgf.train.TrainOptions`).
            Recommended: 2,000 Adam steps of 256 rows, learning rate 1e-3 with cosine decay,
            clipping at norm 10, no EMA.  With ``validation`` rows the flow gets the params
            of the lowest held-out NLL.
        return_result: also return the :class:`~numpyro_hgf.train.TrainResult`
            (loss history, validation curve, final state).

    Returns:
        The trained flow (saveable with :func:`numpyro_hgf.save`), or
        ``(flow, result)`` when ``return_result``.
    """
    key = check_key("key", key)
    options = resolve_options(options, train_options, RECIPE)
    data = check_data_matrix("data", data)
    init_key, train_key = jax.random.split(key)
    if isinstance(flow, str):
        flow = build_flow(
            flow,
            data.shape[-1],
            num_layers=num_layers,
            hidden=hidden,
            key=init_key,
            **(flow_options or {}),
        )
    elif not isinstance(flow, NormalizingFlow | ContinuousFlow):
        raise TypeError(
            "flow: expected a NormalizingFlow, a ContinuousFlow or a flow kind, got "
            f"{type(flow).__name__}"
        )
    check_event_shape("data", data, flow.event_shape)

    result = fit_objective(
        ModelLoss(negative_log_likelihood, flow),
        flow.params,
        data,
        options,
        key=train_key,
        description=f"fit_flow ({type(flow).__name__})",
    )
    trained = flow.with_params(result.params)
    return (trained, result) if return_result else trained
