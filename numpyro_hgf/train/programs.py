"""Compiled training programs reused within a process.

Every :class:`~numpyro_hgf.train.Trainer` jits one dispatch (``steps_per_dispatch`` optimizer
steps in a ``lax.scan``).  A loss written as a closure over the model is a new Python function
on every ``fit_*`` call, so ``jax.jit`` cannot recognise the program and compiles it again,
although nothing but the values changed.  Two pieces make the program recognisable:

* :class:`ModelLoss` -- ``loss(params, batch, key) = objective(model, params, batch[, key])``
  with the model (a distribution pytree: flax modules as static aux data, arrays as data)
  passed to the compiled program as an *argument*.  Its identity is the objective and the
  model's tree structure, never its array values, so a second fit with new initial params, a
  new base or new data of the same shapes runs the same executable.
* :func:`compiled_dispatch` -- one jitted dispatch per ``(loss, optimizer, batch size, steps
  per dispatch, EMA, aux, precision, shardings, donation)``, kept in a small LRU cache;
  :func:`cached_optimizer` returns the same optax object for the same named optimizer, so the
  optimizer is part of that identity too.

Any other loss (a plain closure is a new object on every call, so it could never match; caching
it would only keep its captured arrays alive), or a ``ModelLoss`` whose structure or optimizer
cannot be hashed, gets a fresh ``jax.jit``, exactly as before.  Nothing here changes a
result: the same executable runs on the same values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import optax

from numpyro_hgf.train.dispatch import build_dispatch

__all__ = [
    "ModelLoss",
    "compiled_dispatch",
    "cached_optimizer",
    "shared_optimizer",
    "with_clipping",
]

#: How many distinct training programs a process keeps compiled.
CACHE_SIZE = 32


class ModelLoss:
    """``loss(params, batch, key)`` of an objective of a model, with the model as data.

    Args:
        objective: a module-level function ``objective(model, params, batch)`` (or
            ``objective(model, params, batch, key)`` with ``takes_key=True``), e.g.
            :func:`numpyro_hgf.objectives.negative_log_likelihood`.
        model: a pytree (a NumPyro distribution with ``pytree_data_fields``) whose array
            leaves enter the compiled program as arguments.
        takes_key: whether ``objective`` takes the step's PRNG key.
        **static: hashable keyword options of ``objective`` (part of the program's identity).

    Two ``ModelLoss`` compare equal (and share a compiled program) when their objective,
    keywords and the tree structure of their model (module definitions, shapes' containers,
    aux fields) are equal; the leaves' shapes and dtypes are then checked by ``jax.jit``.
    """

    __slots__ = ("objective", "model", "takes_key", "static", "leaves", "treedef")

    def __init__(self, objective: Callable, model: Any, *, takes_key: bool = False, **static):
        if not callable(objective):
            raise TypeError(f"objective: expected a callable, got {type(objective).__name__}")
        self.objective = objective
        self.model = model
        self.takes_key = bool(takes_key)
        self.static = tuple(sorted(static.items()))
        self.leaves, self.treedef = jax.tree_util.tree_flatten(model)

    def identity(self):
        """The hashable part: ``(objective, treedef, takes_key, static keywords)``."""
        return (self.objective, self.treedef, self.takes_key, self.static)

    def bind(self, leaves) -> Callable:
        """The loss of the model rebuilt from ``leaves`` (traced inside the program)."""
        model = jax.tree_util.tree_unflatten(self.treedef, leaves)
        kwargs = dict(self.static)
        if self.takes_key:
            return lambda params, batch, key, *aux: self.objective(
                model, params, batch, key, *aux, **kwargs
            )
        return lambda params, batch, key, *aux: self.objective(model, params, batch, *aux, **kwargs)

    def __call__(self, params, batch, key, *aux):
        return self.bind(self.leaves)(params, batch, key, *aux)

    def __repr__(self) -> str:
        name = getattr(self.objective, "__name__", repr(self.objective))
        return f"ModelLoss({name}, {type(self.model).__name__})"


@functools.lru_cache(maxsize=CACHE_SIZE)
def cached_optimizer(kind: str, learning_rate: float, steps: int) -> optax.GradientTransformation:
    """The named optimizer of the trainer options (one object per arguments):
    ``"sgd"`` -> ``optax.sgd(lr)``; ``"adam"`` -> Adam with cosine decay over ``steps``."""
    if kind == "sgd":
        return optax.sgd(learning_rate)
    return optax.adam(optax.cosine_decay_schedule(learning_rate, steps))


def shared_optimizer(factory: Callable, *args, **kwargs) -> optax.GradientTransformation:
    """``factory(*args, **kwargs)`` (an optax constructor such as ``optax.sgd``), the same
    object for the same hashable arguments, so the training program that uses it is reused."""
    try:
        return _shared(factory, args, tuple(sorted(kwargs.items())))
    except TypeError:  # unhashable arguments (e.g. a schedule array)
        return factory(*args, **kwargs)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _shared(factory, args, kwargs):
    return factory(*args, **dict(kwargs))


def with_clipping(optimizer: optax.GradientTransformation, clip_norm: float | None):
    """``optimizer`` after global-norm clipping at ``clip_norm`` (``None``: unchanged); the
    same chained object for the same arguments when they can be hashed."""
    if clip_norm is None:
        return optimizer
    try:
        return _chained(optimizer, float(clip_norm))
    except TypeError:  # an optimizer that cannot be hashed
        return optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _chained(optimizer, clip_norm: float):
    return optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)


def compiled_dispatch(loss_fn, optimizer, *, donate: bool, **config) -> Callable:
    """``dispatch(state, data, num_active)`` of :func:`build_dispatch`, jitted; the same
    executable for the same loss identity, optimizer and ``config`` (hashable keywords of
    :func:`build_dispatch`) within the process."""
    if isinstance(loss_fn, ModelLoss):
        try:
            program = _program(loss_fn.identity(), optimizer, donate, tuple(sorted(config.items())))
        except TypeError:  # unhashable aux data, optimizer or option: compile afresh
            program = _jit(loss_fn.bind, optimizer, donate, config)
        leaves = loss_fn.leaves
        return lambda state, data, num_active: program(state, data, num_active, leaves)
    return _plain_jit(loss_fn, optimizer, donate, config)


def _jit(bind, optimizer, donate, config):
    def dispatch(state, data, num_active, leaves):
        run = build_dispatch(bind(leaves), optimizer, **config)
        return run(state, data, num_active)

    return jax.jit(dispatch, donate_argnums=(0,) if donate else ())


@functools.lru_cache(maxsize=CACHE_SIZE)
def _program(identity, optimizer, donate, config):
    objective, treedef, takes_key, static = identity
    template = ModelLoss.__new__(ModelLoss)
    template.objective, template.treedef = objective, treedef
    template.takes_key, template.static = takes_key, static
    return _jit(template.bind, optimizer, donate, dict(config))


def _plain_jit(loss_fn, optimizer, donate, config):
    return jax.jit(
        build_dispatch(loss_fn, optimizer, **config), donate_argnums=(0,) if donate else ()
    )
