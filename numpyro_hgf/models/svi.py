"""Stochastic variational inference on the one fit skeleton.

``fit_svi`` maximises NumPyro's ELBO (Jordan et al. 1999; Hoffman et al. 2013)

    ELBO(psi, theta) = sum_i E_q(z_i; phi(y_i; psi)) [log p(y_i, z_i | theta) - log q(z_i)]

over the params of a model and a guide, exactly as ``numpyro.infer.SVI`` does (the loss is
``elbo.loss`` evaluated on the constrained params), but the optimisation loop is the package's
jitted trainer (:func:`numpyro_hgf.train.fit.fit_objective`): many steps per ``lax.scan``
dispatch, a silenceable progress bar, a loss history, validation and early stopping,
checkpoints, and :class:`~numpyro_hgf.train.NonFiniteLossError` naming the step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Unpack

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro.infer import SVI, Trace_ELBO

from numpyro_hgf._checks import check_callable, check_key
from numpyro_hgf._checks.arrays import check_real_array
from numpyro_hgf.train.fit import fit_objective
from numpyro_hgf.train.options import Recipe, TrainKeywords, TrainOptions, resolve_options
from numpyro_hgf.train.trainer import TrainResult

__all__ = ["SVIFit", "fit_svi", "RECIPE", "adam_cosine"]


def adam_cosine(floor: float = 0.0) -> Callable:
    """``(learning_rate, steps) -> Adam`` with a cosine decay to ``floor * learning_rate``."""
    return lambda lr, steps: optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=floor))


#: The optimisation ``fit_svi`` recommends: full-batch Adam at 1e-2, cosine decay.
RECIPE = Recipe(steps=2_000, batch_size=None, learning_rate=1e-2, clip_norm=None)


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


def _check_data(data) -> tuple:
    if not isinstance(data, tuple) or not data:
        raise TypeError(f"data: expected a non-empty tuple of arrays, got {type(data).__name__}")
    data = tuple(
        a if hasattr(a, "dtype") and np.issubdtype(np.dtype(a.dtype), np.integer)
        else check_real_array(f"data[{i}]", a)
        for i, a in enumerate(data)
    )  # fmt: skip
    sizes = {a.shape[0] if a.ndim else -1 for a in data}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(f"data: expected arrays sharing a leading axis, got {sorted(sizes)}")
    return data


def fit_svi(
    model,
    guide,
    data: tuple,
    *,
    elbo=None,
    model_kwargs: dict[str, Any] | None = None,
    init_params: dict | None = None,
    description: str = "svi",
    validation_fn: Callable | None = None,
    key=None,
    options: TrainOptions | None = None,
    recipe: Recipe = RECIPE,
    **train_options: Unpack[TrainKeywords],
) -> SVIFit:
    """Maximise the ELBO of ``model``/``guide`` on ``data`` with the trainer core.

    Args:
        model, guide: NumPyro model and guide, called as ``model(*batch, **model_kwargs)``.
        data: tuple of arrays that share a leading (example) axis, the model's positional
            arguments.
        elbo: a NumPyro ELBO (default ``Trace_ELBO()``).
        model_kwargs: keyword arguments for the model and guide (static: closed over).
        init_params: constrained initial values for some param sites (``numpyro.param``
            names), overriding the model's and guide's own initial values.
        description: the progress bar's label.
        validation_fn: ``constrained_params -> float`` (lower is better), computed every
            ``validate_every`` steps; the best validated params are returned (and with
            ``patience`` the fit stops early).  Without it, ``validation`` rows (a tuple
            like ``data``) are scored by the ELBO loss with fixed draws.
        key: ``jax.random`` key (init, minibatches, ELBO particles; required).
        options, **train_options: how to train (:class:`~numpyro_hgf.train.TrainOptions`).
            Recommended (``recipe``): 2,000 full-batch Adam steps at learning rate 1e-2
            with cosine decay, no clipping.  With a ``batch_size`` minibatches are drawn
            with replacement and the model must scale its likelihood to the full data
            (``numpyro.plate(name, num_total, subsample_size=batch_size)``).
        recipe: the recommended optimisation of the caller (the SVI models pass theirs).

    Returns:
        :class:`SVIFit`.
    """
    check_callable("model", model)
    check_callable("guide", guide)
    if validation_fn is not None:
        check_callable("validation_fn", validation_fn)
    if elbo is not None and not callable(getattr(elbo, "loss", None)):
        raise TypeError(f"elbo: expected a NumPyro ELBO (e.g. Trace_ELBO()), got {elbo!r}")
    for name, value in (("model_kwargs", model_kwargs), ("init_params", init_params)):
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"{name}: expected a dict (or None), got {type(value).__name__}")
    if not isinstance(description, str):
        raise TypeError(f"description: expected a string, got {description!r}")
    key = check_key("key", key)
    options = resolve_options(options, train_options, recipe)
    data = _check_data(data)
    num = data[0].shape[0]
    full_batch = options.batch_size is None or options.batch_size >= num
    model_kwargs = dict(model_kwargs or {})
    elbo = Trace_ELBO() if elbo is None else elbo
    if options.validation is not None and not isinstance(options.validation, tuple):
        options = options.replace(validation=(options.validation,))  # rows of a 1-tuple of data
    if options.validation is not None and full_batch:
        raise ValueError(
            "validation: held-out rows need minibatches (a batch_size and a model that "
            "scales its likelihood by numpyro.plate's subsample_size), got full-batch SVI"
        )

    init_key, train_key = jax.random.split(key)
    svi = SVI(model, guide, optax.identity(), elbo)
    first = data if full_batch else tuple(a[: options.batch_size] for a in data)
    state = svi.init(init_key, *first, init_params=init_params, **model_kwargs)
    params0 = svi.optim.get_params(state.optim_state)
    constrain = svi.constrain_fn

    if full_batch:

        def loss_fn(params, batch, rng_key):
            del batch
            return elbo.loss(rng_key, constrain(params), model, guide, *data, **model_kwargs)

        train_data, options = jnp.zeros((num, 1)), options.replace(batch_size=1)
    else:

        def loss_fn(params, batch, rng_key):
            return elbo.loss(rng_key, constrain(params), model, guide, *batch, **model_kwargs)

        train_data = data
    result = fit_objective(
        loss_fn,
        params0,
        train_data,
        options,
        key=train_key,
        description=description,
        validation_fn=None if validation_fn is None else (lambda p: validation_fn(constrain(p))),
    )
    return SVIFit(constrain(result.params), result.history, result)
