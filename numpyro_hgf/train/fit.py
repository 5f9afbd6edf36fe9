"""The one fit skeleton under every ``fit_*``: a loss, initial params and data in, a result out.

Each ``fit_*`` function is thin: it checks its data and its model-specific arguments, builds
the network and its initial params, closes an objective of :mod:`numpyro_hgf.objectives`
over them, and calls :func:`fit_objective`, which

1. builds the optimizer from the resolved :class:`~numpyro_hgf.train.options.TrainOptions`
   (unless the objective brings its own, as the two-player HSM game does),
2. builds the :class:`~numpyro_hgf.train.Trainer` with every option (clipping, EMA,
   precision, devices, dispatch size, checkpoints, progress, callbacks),
3. turns ``validation`` rows into the held-out loss of early stopping
   (:mod:`numpyro_hgf.train.validation`; the objective itself on fixed draws, or the
   objective's own ``validation_loss``),
4. runs :meth:`~numpyro_hgf.train.Trainer.fit` (resuming from ``checkpoint_dir``),

so every ``fit_*`` gets the same options, the same validation and early stopping, and the
same failure behaviour (:class:`~numpyro_hgf.train.NonFiniteLossError` naming the step,
the last good state checkpointed).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from numpyro_hgf.train.options import TrainOptions, build_optimizer
from numpyro_hgf.train.trainer import Trainer, TrainResult
from numpyro_hgf.train.validation import early_stopping

__all__ = ["fit_objective", "init_field_params", "num_rows"]


def num_rows(data) -> int:
    """The number of examples of ``data`` (an array or a pytree of arrays sharing axis 0)."""
    return int(jax.tree_util.tree_leaves(data)[0].shape[0])


def fit_objective(
    loss_fn: Callable,
    params,
    data,
    options: TrainOptions,
    *,
    key,
    description: str,
    optimizer: optax.GradientTransformation | None = None,
    has_aux: bool = False,
    aux=None,
    validation_loss: Callable | None = None,
    validation_fn: Callable | None = None,
    checkpoint_description: dict | None = None,
) -> TrainResult:
    """Train ``params`` on ``loss_fn(params, batch, key) -> scalar`` with resolved ``options``.

    Args:
        loss_fn: the objective on a minibatch (``has_aux``: ``(params, batch, key, aux) ->
            (loss, aux)``).
        params: initial params (a pytree).
        data: training data, a pytree of arrays with a shared leading example axis.
        options: resolved options (:func:`~numpyro_hgf.train.options.resolve_options`).
        key: ``jax.random`` key of the minibatches and the objective's draws.
        description: the progress bar's label.
        optimizer: an optimizer built by the caller (it replaces ``options.optimizer``).
        validation_loss: ``(params, rows, key) -> scalar`` for held-out rows when the
            training loss does not serve (e.g. a loss that carries persistent chains);
            default ``loss_fn``.
        validation_fn: ``params -> float`` (lower is better) computed every
            ``validate_every`` steps instead of a held-out loss (a model's own criterion,
            e.g. a many-draw held-out ELBO); the best validated params are returned.
        checkpoint_description: JSON-able description of the model stored with the
            checkpoints (resuming with another one is refused).

    Returns:
        The :class:`~numpyro_hgf.train.TrainResult` (best validated params when
        ``options.validation`` is given).
    """
    trainer = Trainer(
        loss_fn,
        build_optimizer(options) if optimizer is None else optimizer,
        batch_size=num_rows(data)
        if options.batch_size is None
        else min(options.batch_size, num_rows(data)),
        steps_per_dispatch=min(options.steps_per_dispatch, options.steps),
        ema_decay=options.ema_decay,
        clip_norm=options.clip_norm,
        progress=options.progress,
        description=description,
        has_aux=has_aux,
        devices=options.devices,
        precision=options.precision,
        checkpoint_dir=options.checkpoint_dir,
        checkpoint_every=options.checkpoint_every,
        keep_checkpoints=options.keep_checkpoints,
        checkpoint_description=checkpoint_description,
        callback=options.callback,
        callback_every=options.callback_every,
    )
    if options.patience is not None and options.validation is None and validation_fn is None:
        raise ValueError("patience: early stopping needs validation rows, got validation=None")
    held_out = validation_loss if validation_loss is not None else loss_fn
    if has_aux and validation_loss is None and options.validation is not None:
        raise ValueError(
            "validation: this objective carries state from step to step and has no held-out "
            "loss; train without validation rows"
        )
    if validation_fn is not None:
        patience = options.steps + 1 if options.patience is None else options.patience
        stopping = dict(
            validation_fn=validation_fn, validate_every=options.validate_every, patience=patience
        )
    else:
        stopping = early_stopping(
            held_out,
            options.validation,
            key,
            like=data,
            steps=options.steps,
            validate_every=options.validate_every,
            patience=options.patience,
        )
    params = promote_to_data_dtype(params, data)
    return trainer.fit(params, data, options.steps, key, aux=aux, resume=options.resume, **stopping)


def promote_to_data_dtype(params, data):
    """Floating ``params`` promoted to the floating dtype of ``data``: under
    ``jax_enable_x64`` float64 data trains float64 params (flax initialises float32 ones
    whatever the input), float32 data leaves them as they are."""
    floating = [
        jnp.result_type(leaf)
        for leaf in jax.tree_util.tree_leaves(data)
        if jnp.issubdtype(jnp.result_type(leaf), jnp.floating)
    ]
    if not floating:
        return params
    target = jnp.result_type(*floating)

    def promote(leaf):
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            return leaf
        return jnp.asarray(leaf, jnp.promote_types(dtype, target))

    return jax.tree.map(promote, params)


def init_field_params(name: str, module, params, key, x, *cond):
    """``params`` if given, else ``module.init`` on ``x`` (a plain callable needs params)."""
    if params is not None:
        return params
    if not hasattr(module, "init"):
        raise TypeError(
            f"params: a plain callable {name} needs initial params, got None "
            f"(or pass a flax.linen module as {name})"
        )
    return module.init(key, x, *cond)["params"]
