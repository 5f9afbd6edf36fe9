"""Stochastic variational inference on the :class:`~numpyro_hgf.train.Trainer` core.

``fit_svi`` maximises NumPyro's ELBO (seed 004, "Evidence Lower Bound")

    ELBO(psi, theta) = sum_i E_q(z_i; phi(y_i; psi)) [log p(y_i, z_i | theta) - log q(z_i)]

over the params of a model and a guide, exactly as ``numpyro.infer.SVI`` does (the loss is
``elbo.loss`` evaluated on the constrained params), but the optimisation loop is the package's
jitted trainer: many steps per ``lax.scan`` dispatch, a silenceable progress bar, a loss
history and :class:`~numpyro_hgf.train.NonFiniteLossError` naming the step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro.infer import SVI, Trace_ELBO

from numpyro_hgf._checks import check_positive_int
from numpyro_hgf.train.trainer import Trainer, TrainResult

__all__ = ["SVIFit", "fit_svi"]


class SVIFit(NamedTuple):
    """What :func:`fit_svi` returns.

    Attributes:
        params: the optimised params in the constrained space (what
            ``SVI.get_params`` returns; pass them to ``guide.sample_posterior`` or
            ``numpyro.infer.Predictive``).
        losses: ``(steps,)`` negative ELBO per step (minibatch estimate when subsampling).
        result: the trainer's :class:`~numpyro_hgf.train.TrainResult` (unconstrained params).
    """

    params: dict
    losses: np.ndarray
    result: TrainResult


def fit_svi(
    model,
    guide,
    data: tuple,
    *,
    steps: int,
    key,
    optimizer: optax.GradientTransformation | float = 1e-2,
    elbo=None,
    batch_size: int | None = None,
    model_kwargs: dict[str, Any] | None = None,
    init_params: dict | None = None,
    progress: bool | None = None,
    description: str = "svi",
    steps_per_dispatch: int = 200,
    clip_norm: float | None = None,
    validation_fn=None,
    validate_every: int | None = None,
    patience: int | None = None,
) -> SVIFit:
    """Maximise the ELBO of ``model``/``guide`` on ``data`` with the trainer core.

    Args:
        model, guide: NumPyro model and guide, called as ``model(*batch, **model_kwargs)``.
        data: tuple of arrays that share a leading (example) axis, the model's positional
            arguments.
        steps: optimizer steps.
        key: ``jax.random`` key (init, minibatches, ELBO particles).
        optimizer: an optax transformation or an Adam learning rate.
        elbo: a NumPyro ELBO (default ``Trace_ELBO()``).
        batch_size: ``None`` uses the whole data every step; otherwise minibatches of this
            size are drawn with replacement and the model must scale its likelihood to the
            full data (``numpyro.plate(name, num_total, subsample_size=batch_size)``).
        model_kwargs: keyword arguments for the model and guide (static: closed over).
        init_params: constrained initial values for some param sites (``numpyro.param``
            names), overriding the model's and guide's own initial values.
        progress, description, steps_per_dispatch, clip_norm: passed to the trainer.
        validation_fn: ``constrained_params -> float`` (lower is better), called every
            ``validate_every`` steps; with ``patience`` the fit stops after that many
            validations without improvement and returns the best validated params
            (:meth:`numpyro_hgf.train.Trainer.fit`).

    Returns:
        :class:`SVIFit`.
    """
    steps = check_positive_int("steps", steps)
    if key is None:
        raise TypeError("key: expected a jax.random key, got None")
    if not isinstance(data, tuple) or not data:
        raise TypeError(f"data: expected a non-empty tuple of arrays, got {type(data).__name__}")
    data = tuple(jnp.asarray(a) for a in data)
    sizes = {a.shape[0] if a.ndim else -1 for a in data}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(f"data: expected arrays sharing a leading axis, got {sorted(sizes)}")
    num = sizes.pop()
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
    model_kwargs = dict(model_kwargs or {})
    elbo = Trace_ELBO() if elbo is None else elbo
    if isinstance(optimizer, int | float):
        optimizer = optax.adam(float(optimizer))

    init_key, train_key = jax.random.split(key)
    svi = SVI(model, guide, optax.identity(), elbo)
    first = data if batch_size is None else tuple(a[:batch_size] for a in data)
    state = svi.init(init_key, *first, init_params=init_params, **model_kwargs)
    params0 = svi.optim.get_params(state.optim_state)
    constrain = svi.constrain_fn

    if batch_size is None:

        def loss_fn(params, batch, rng_key):
            del batch
            return elbo.loss(rng_key, constrain(params), model, guide, *data, **model_kwargs)

        train_data, trainer_batch = jnp.zeros((num, 1)), 1
    else:

        def loss_fn(params, batch, rng_key):
            return elbo.loss(rng_key, constrain(params), model, guide, *batch, **model_kwargs)

        train_data, trainer_batch = data, batch_size

    trainer = Trainer(
        loss_fn,
        optimizer,
        batch_size=trainer_batch,
        steps_per_dispatch=min(steps_per_dispatch, steps),
        clip_norm=clip_norm,
        progress=progress,
        description=description,
    )
    val = None if validation_fn is None else (lambda p: validation_fn(constrain(p)))
    result = trainer.fit(
        params0,
        train_data,
        steps,
        train_key,
        validation_fn=val,
        validate_every=validate_every,
        patience=patience,
    )
    return SVIFit(constrain(result.params), result.history, result)
