"""Shared base class for bijections that hold a network: ``(module, params)`` transforms.

Every flow layer in :mod:`numpyro_hgf.flows` is a
:class:`numpyro.distributions.transforms.Transform` that carries

* ``module``: a ``flax.linen`` module (a hashable dataclass): **static aux data** of the
  pytree, so ``jit`` caches on it;
* ``params``: the module's *inner* params dict (what ``module.init(...)["params"]`` gives,
  exactly what :func:`numpyro.contrib.module.flax_module` registers): **data**, so a
  distribution holding these transforms can be passed through ``jax.jit``, ``jax.vmap``
  and ``jax.lax.map`` and is *not* recompiled when only the params change;
* a few hashable hyper-parameters (``static_fields``: ints, floats, bools, tuples), also
  aux data.

NumPyro's ``Transform`` caches its inverse as a weakref ``_inv`` in ``__dict__``; it is
never part of the pytree (neither data nor aux), so flattening is deterministic.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from numpyro.distributions import constraints
from numpyro.distributions.transforms import Transform
from numpyro.distributions.util import array_equiv

from numpyro_hgf._checks import as_key, check_positive_scalar
from numpyro_hgf.flows._batched_params import leading_batch_shape

__all__ = [
    "NetworkTransform",
    "CoefficientTransform",
    "BuilderConfig",
    "soft_clamp",
    "coupling_split",
    "coupling_merge",
]


def soft_clamp(x, bound: float):
    """Smoothly squash ``x`` into ``(-bound, bound)``: ``bound * tanh(x / bound)``.

    Used for log-scales of affine couplings / MAF (bounded Jacobians, stable training);
    identity to first order around 0.  Shape-preserving.
    """
    check_positive_scalar("bound", bound)
    return bound * jnp.tanh(x / bound)


def coupling_split(x, dim: int, swap: bool):
    """Split ``x: (..., dim)`` into ``(kept, transformed)`` halves.

    The first half is ``x[..., :dim // 2]`` and the second ``x[..., dim // 2:]``;
    ``swap=False`` keeps the first half and transforms the second, ``swap=True`` the
    reverse (alternate it between layers so every coordinate gets transformed).
    """
    n1 = dim // 2
    a, b = x[..., :n1], x[..., n1:]
    return (b, a) if swap else (a, b)


def coupling_merge(kept, transformed, swap: bool):
    """Inverse of :func:`coupling_split`: ``(..., n_kept) + (..., n_t) -> (..., dim)``."""
    parts = (transformed, kept) if swap else (kept, transformed)
    return jnp.concatenate(parts, axis=-1)


def coupling_sizes(dim: int, swap: bool) -> tuple[int, int]:
    """``(n_kept, n_transformed)`` for :func:`coupling_split`."""
    n1 = dim // 2
    return (dim - n1, n1) if swap else (n1, dim - n1)


class NetworkTransform(Transform):
    """Base class: a bijection on ``real_vector`` parametrised by a flax module.

    Subclasses set ``static_fields`` (names of hashable hyper-parameters, stored as aux
    data), optionally ``data_fields`` (extra array fields, e.g. a context), and implement
    ``__call__``, ``_inverse``, ``log_abs_det_jacobian`` and :meth:`init_args`.

    Attributes:
        module: the ``flax.linen`` module (static).
        params: its inner params pytree (data), ``module.init(key, *init_args)["params"]``.
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    static_fields: ClassVar[tuple[str, ...]] = ()
    data_fields: ClassVar[tuple[str, ...]] = ()
    #: the flax module class a subclass needs (``None``: any module with ``apply``)
    module_type: ClassVar[type | None] = None

    module: Any
    params: Any

    def __init__(self, module, params):
        if not hasattr(module, "apply"):
            raise TypeError(f"module: expected a flax.linen module, got {module!r}")
        wanted = type(self).module_type
        if wanted is not None and not isinstance(module, wanted):
            raise TypeError(f"module: expected a {wanted.__name__}, got {type(module).__name__}")
        self.module = module
        self.params = params
        # the ndims of the unbatched params (static): params stacked by ``scan`` / ``vmap``
        # carry extra leading dims, the ``param_batch_shape``
        self._param_ndims = tuple(int(jnp.ndim(x)) for x in jax.tree.leaves(params))

    @property
    def param_batch_shape(self) -> tuple[int, ...]:
        """Leading dims of the params beyond the network's own param shapes (``()`` for
        one network; ``(T,)`` after ``numpyro.contrib.control_flow.scan`` stacks them)."""
        return leading_batch_shape(self.params, self._param_ndims)

    # -- the network -------------------------------------------------------------------
    def init_args(self) -> tuple:
        """Example inputs for ``module.init`` (and :func:`flax_module` registration)."""
        raise NotImplementedError

    def apply(self, *args):
        """``module.apply({"params": params}, *args)``."""
        return self.module.apply({"params": self.params}, *args)

    @classmethod
    def init_params(cls, module, key, *args):
        """Fresh inner params of ``module`` for example inputs ``args``."""
        return module.init(as_key(key), *args)["params"]

    def with_params(self, params) -> NetworkTransform:
        """Same module and hyper-parameters, new ``params`` (no re-initialisation)."""
        children, aux = self.tree_flatten()
        return type(self).tree_unflatten(aux, (params,) + tuple(children[1:]))

    # -- pytree ------------------------------------------------------------------------
    def tree_flatten(self):
        children = (self.params,) + tuple(getattr(self, f) for f in self.data_fields)
        statics = tuple(getattr(self, f) for f in self.static_fields)
        return children, (self.module, statics, self._param_ndims)

    @classmethod
    def tree_unflatten(cls, aux_data, children):
        module, statics, param_ndims = aux_data
        self = cls.__new__(cls)
        self.module = module
        self._param_ndims = param_ndims
        for name, value in zip(cls.static_fields, statics, strict=True):
            setattr(self, name, value)
        self.params = children[0]
        for name, value in zip(cls.data_fields, children[1:], strict=True):
            setattr(self, name, value)
        return self

    def eq(self, other: object, static: bool = False):
        if type(other) is not type(self):
            return False
        _, aux_a = self.tree_flatten()
        _, aux_b = other.tree_flatten()
        if aux_a != aux_b:
            return False
        leaves_a, tree_a = jax.tree.flatten(self.tree_flatten()[0])
        leaves_b, tree_b = jax.tree.flatten(other.tree_flatten()[0])
        if tree_a != tree_b:
            return False
        result = True
        for a, b in zip(leaves_a, leaves_b, strict=True):
            result = result & array_equiv(a, b, static=static)
        return result

    def __repr__(self) -> str:
        statics = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.static_fields)
        return (
            f"{type(self).__name__}({type(self.module).__name__}{', ' if statics else ''}{statics})"
        )


class CoefficientTransform(NetworkTransform):
    """A layer whose network takes no input and gives coefficients ``c`` (planar, radial):
    the mathematics are two pure functions, ``forward_fn(x, *c) -> (y, log|det J|)`` and
    ``inverse_fn(y, *c) -> x``, set by the subclass (with :meth:`_coefficients` when the
    raw params need a transformation first)."""

    forward_fn: ClassVar[Any]
    inverse_fn: ClassVar[Any]

    def init_args(self) -> tuple:
        return ()

    def _coefficients(self) -> tuple:
        return self.apply()

    def __call__(self, x):
        return self.call_with_intermediates(x)[0]

    def call_with_intermediates(self, x):
        return type(self).forward_fn(x, *self._coefficients())

    def _inverse(self, y):
        return type(self).inverse_fn(y, *self._coefficients())

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        if intermediates is not None:
            return intermediates
        return type(self).forward_fn(x, *self._coefficients())[1]


class BuilderConfig:
    """Mixin of the flows a builder makes: the builder's arguments ride along as canonical
    JSON (a hashable string: safe static aux data), so the flow can be saved and rebuilt.

    A subclass sets ``CONFIG_KEYS`` (the builder's arguments) and ``BUILDER`` (its name for
    the error of a hand-built flow), stores ``self._config = self._encode_config(config)`` and
    lists ``"_config"`` in its ``pytree_aux_fields``; its ``from_config`` starts with
    ``cls._checked_config(config)``.
    """

    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ()
    BUILDER: ClassVar[str] = "its builder"

    @staticmethod
    def _encode_config(config: dict | None) -> str | None:
        return None if config is None else json.dumps(config, sort_keys=True)

    @property
    def config(self) -> dict | None:
        """The builder's arguments (a fresh dict), or ``None`` for a hand-built model."""
        return None if self._config is None else json.loads(self._config)

    def save_config(self) -> dict:
        if self._config is None:
            raise TypeError(
                f"model: expected a {type(self).__name__} built by {self.BUILDER} (it records the "
                "config needed to save it), got a hand-built one"
            )
        return self.config

    @classmethod
    def _checked_config(cls, config: dict) -> dict:
        missing = [k for k in cls.CONFIG_KEYS if k not in config]
        if missing:
            raise ValueError(
                f"config: expected keys {list(cls.CONFIG_KEYS)}, got {sorted(config)} "
                f"(missing {missing})"
            )
        return config
