"""Maximum-likelihood training of normalizing flows on the :class:`Trainer` core.

Objective (the *mle* row of the architecture table): minimise the empirical negative
log-likelihood ``-(1/n) sum_i log p_theta(x_i)`` where ``log p_theta`` is the change of
variables ``log p_base(T^{-1}(x)) + log|det d T^{-1}/dx|`` computed by
:class:`~numpyro_hgf.distributions.NormalizingFlow`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from numpyro_hgf._checks import check_event_shape, check_finite, check_positive_int
from numpyro_hgf.train.trainer import Trainer, TrainResult

__all__ = ["fit_flow", "flow_nll"]


def flow_nll(flow, params, x):
    """Mean negative log-likelihood of ``x: (n, *event_shape)`` under the flow with ``params``."""
    return -jnp.mean(flow.with_params(params).log_prob(x))


def fit_flow(
    flow,
    data,
    *,
    steps: int = 2_000,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    key=None,
    validation_data=None,
    validate_every: int = 200,
    patience: int | None = None,
    ema_decay: float | None = None,
    clip_norm: float | None = 10.0,
    num_layers: int = 4,
    hidden=(64, 64),
    progress: bool | None = None,
    return_result: bool = False,
    **flow_options,
):
    """Fit a normalizing flow to ``data`` by maximum likelihood.

    Args:
        flow: a :class:`~numpyro_hgf.distributions.NormalizingFlow` or a
            :class:`~numpyro_hgf.distributions.ContinuousFlow` (FFJORD-style maximum
            likelihood through the ODE) to start from, or a flow kind (``"planar"``,
            ``"radial"``, ``"realnvp"``, ``"maf"``, ``"spline"``) built with
            :func:`numpyro_hgf.flows.build_flow` from ``num_layers``, ``hidden`` and
            ``flow_options``.
        data: ``(n, d)`` training data.
        steps, batch_size: optimizer steps and minibatch size.
        learning_rate: peak Adam learning rate, with cosine decay to zero over ``steps``.
        key: ``jax.random`` key for the initialisation and the minibatches (required).
        validation_data: optional ``(m, d)`` data; its NLL is evaluated every
            ``validate_every`` steps, and with ``patience`` training stops early and
            the best params are returned.
        ema_decay, clip_norm, progress: passed to :class:`~numpyro_hgf.train.Trainer`.
        return_result: also return the :class:`~numpyro_hgf.train.TrainResult`
            (loss history, validation curve, final state).

    Returns:
        The trained flow (saveable with :func:`numpyro_hgf.save`), or
        ``(flow, result)`` when ``return_result``.
    """
    from numpyro_hgf.distributions import ContinuousFlow, NormalizingFlow
    from numpyro_hgf.flows import build_flow

    if key is None:
        raise TypeError("key: expected a jax.random key, got None")
    data = jnp.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"data: expected an array of shape (n, d), got shape {data.shape}")
    check_finite("data", data)
    steps = check_positive_int("steps", steps)
    init_key, train_key = jax.random.split(key)
    if isinstance(flow, str):
        flow = build_flow(
            flow,
            data.shape[-1],
            num_layers=num_layers,
            hidden=hidden,
            key=init_key,
            **flow_options,
        )
    elif not isinstance(flow, NormalizingFlow | ContinuousFlow):
        raise TypeError(
            "flow: expected a NormalizingFlow, a ContinuousFlow or a flow kind, got "
            f"{type(flow).__name__}"
        )
    check_event_shape("data", data, flow.event_shape)

    loss_fn = lambda params, batch, _key: flow_nll(flow, params, batch)
    schedule = optax.cosine_decay_schedule(learning_rate, steps)
    trainer = Trainer(
        loss_fn,
        optax.adam(schedule),
        batch_size=min(batch_size, data.shape[0]),
        ema_decay=ema_decay,
        clip_norm=clip_norm,
        progress=progress,
        description=f"fit_flow ({type(flow).__name__})",
    )
    validation_fn = None
    if validation_data is not None:
        validation_data = jnp.asarray(validation_data)
        check_event_shape("validation_data", validation_data, flow.event_shape)
        check_finite("validation_data", validation_data)
        nll = jax.jit(lambda params: flow_nll(flow, params, validation_data))
        validation_fn = lambda params: float(np.asarray(nll(params)))
    result: TrainResult = trainer.fit(
        flow.params,
        data,
        steps,
        train_key,
        validation_fn=validation_fn,
        validate_every=validate_every if validation_fn else None,
        patience=patience,
    )
    trained = flow.with_params(result.params)
    return (trained, result) if return_result else trained
