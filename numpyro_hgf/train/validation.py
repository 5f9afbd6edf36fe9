"""Held-out loss for early stopping: the training objective on rows the optimizer never sees.

:func:`held_out_loss` turns a trainer loss ``(params, batch, key) -> scalar`` and held-out rows
into the ``validation_fn`` that :meth:`numpyro_hgf.train.Trainer.fit` calls every
``validate_every`` steps.  The key is fixed, so every validation draws the same times and
noise (common random numbers): successive values differ only through the params.
:func:`early_stopping` packs it with ``validate_every`` / ``patience`` for the one fit
skeleton (:func:`numpyro_hgf.train.fit.fit_objective`), so every ``fit_*`` returns the best
validated params.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from numpyro_hgf._checks import check_finite

__all__ = ["held_out_loss", "early_stopping"]


def held_out_loss(loss_fn: Callable, validation, key, *, like) -> Callable[[object], float]:
    """``params -> float``: ``loss_fn(params, validation, key)`` jitted, with ``key`` fixed.

    Args:
        loss_fn: ``(params, batch, key) -> scalar`` (the mean loss over ``batch``).
        validation: held-out rows ``(m, *event_shape)`` (split off the *training* data), or a
            pytree of them shaped like the training data.
        key: ``jax.random`` key of the validation draws.
        like: the training data; ``validation`` must have its structure and event shapes.

    Raises:
        ValueError: ``validation`` has another structure or event shape, or no rows, or is
            not finite.
    """
    validation = jax.tree.map(jnp.asarray, validation)
    got, want = jax.tree_util.tree_structure(validation), jax.tree_util.tree_structure(like)
    if got != want:
        raise ValueError(f"validation: expected rows structured like the data ({want}), got {got}")
    rows = set()
    for v, d in zip(
        jax.tree_util.tree_leaves(validation), jax.tree_util.tree_leaves(like), strict=True
    ):
        if v.ndim != d.ndim or v.shape[1:] != d.shape[1:]:
            raise ValueError(
                f"validation: expected rows of shape {tuple(d.shape[1:])} like the data, "
                f"got shape {tuple(v.shape)}"
            )
        rows.add(v.shape[0])
        check_finite("validation", v)
    if len(rows) != 1 or rows.pop() < 1:
        raise ValueError("validation: expected at least one held-out row, got none")
    compiled = jax.jit(lambda params: loss_fn(params, validation, key))
    return lambda params: float(compiled(params))


def early_stopping(
    loss_fn: Callable,
    validation,
    train_key,
    *,
    like,
    steps: int,
    validate_every: int | None = None,
    patience: int | None = None,
) -> dict:
    """Keyword arguments of :meth:`numpyro_hgf.train.Trainer.fit` for the ``validation`` /
    ``validate_every`` / ``patience`` options of the ``fit_*`` functions.

    With ``validation`` rows, the trainer computes :func:`held_out_loss` (draws from
    ``fold_in(train_key, 1)``) every ``validate_every`` steps and returns the best validated
    params (``patience=None``: it never stops early); without them, ``{}``.

    Raises:
        ValueError: ``patience`` without ``validation``; bad ``validation`` rows.
    """
    if validation is None:
        if patience is not None:
            raise ValueError("patience: early stopping needs validation rows, got validation=None")
        return {}
    return {
        "validation_fn": held_out_loss(
            loss_fn, validation, jax.random.fold_in(train_key, 1), like=like
        ),
        "validate_every": validate_every,
        # the trainer keeps the best params only with a patience: one that cannot run out
        "patience": patience if patience is not None else steps + 1,
    }
