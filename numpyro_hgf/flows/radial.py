"""Radial flow (Rezende & Mohamed 2015, eq. 14 and App. A.2).

Forward map on ``z: (..., d)``::

    f(z) = z + beta h(alpha, r) (z - z0),   r = ||z - z0||,   h = 1 / (alpha + r)

with ``alpha = softplus(alpha')`` and ``beta = -alpha + softplus(beta')`` (so
``beta > -alpha``, which makes ``f`` a bijection).  The log-Jacobian (their eq. 14) is::

    (d - 1) log(1 + beta h) + log(1 + beta h + beta h'(r) r),   h' = -1 / (alpha + r)^2

Inverse: ``y - z0 = (1 + beta h(r)) (z - z0)``, so ``s = ||y - z0|| = r (1 + beta / (alpha + r))``,
which is strictly increasing in ``r >= 0``.  Multiplying out gives the quadratic
``r^2 + (alpha + beta - s) r - alpha s = 0`` with exactly one non-negative root, taken in
the cancellation-free form by :func:`radial_inverse` (exact, no iterations), then
``z = z0 + (y - z0) / (1 + beta h(r))``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from numpyro_hgf._checks import check_nonnegative_float, check_positive_int
from numpyro_hgf.flows.base import CoefficientTransform

__all__ = ["RadialParams", "RadialTransform", "radial_forward", "radial_inverse"]


class RadialParams(nn.Module):
    """Declares ``z0: (dim,)``, ``alpha_raw: ()``, ``beta_raw: ()``.

    ``__call__()`` returns the constrained ``(z0, alpha, beta)``: ``alpha = softplus(alpha_raw)``,
    ``beta = -alpha + softplus(beta_raw)``.
    """

    dim: int
    init_scale: float = 1.0

    def __post_init__(self):
        check_positive_int("dim", self.dim)
        check_nonnegative_float("init_scale", self.init_scale)
        super().__post_init__()

    @nn.compact
    def __call__(self):
        z0 = self.param("z0", nn.initializers.normal(self.init_scale), (self.dim,))
        alpha_raw = self.param("alpha_raw", nn.initializers.zeros, ())
        beta_raw = self.param("beta_raw", nn.initializers.zeros, ())
        alpha = jax.nn.softplus(alpha_raw)
        return z0, alpha, -alpha + jax.nn.softplus(beta_raw)


def _safe_norm(x):
    """``||x||`` over the last axis with a finite gradient at 0."""
    sq = jnp.sum(x**2, axis=-1)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def radial_forward(z, z0, alpha, beta):
    """``f(z) = z + beta/(alpha + r) (z - z0)`` and ``log|det df/dz|``.

    Args:
        z: ``(..., d)``; ``z0: (d,)``; ``alpha > 0``, ``beta > -alpha``: scalars.

    Returns:
        ``(y, logdet)`` with shapes ``(..., d)`` and ``(...)``.
    """
    d = z.shape[-1]
    diff = z - z0
    r = _safe_norm(diff)
    h = 1.0 / (alpha + r)
    y = z + (beta * h)[..., None] * diff
    logdet = (d - 1) * jnp.log1p(beta * h) + jnp.log1p(beta * h - beta * r * h**2)
    return y, logdet


def radial_inverse(y, z0, alpha, beta):
    """Exact inverse of :func:`radial_forward`: ``y: (..., d) -> z: (..., d)``."""
    diff = y - z0
    s = _safe_norm(diff)
    p = alpha + beta - s
    root = jnp.sqrt(p**2 + 4.0 * alpha * s)
    # positive root of r^2 + p r - alpha s = 0 without cancellation
    r = jnp.where(p >= 0, 2.0 * alpha * s / (p + root), 0.5 * (root - p))
    return z0 + diff / (1.0 + beta / (alpha + r))[..., None]


class RadialTransform(CoefficientTransform):
    """Radial flow layer ``f(z) = z + beta/(alpha + ||z - z0||) (z - z0)`` on ``(..., dim)``.

    ``module`` is :class:`RadialParams`; ``params = {"z0": (dim,), "alpha_raw": (),
    "beta_raw": ()}``.  The inverse is the exact root of a scalar quadratic.
    """

    module_type = RadialParams
    forward_fn = staticmethod(radial_forward)
    inverse_fn = staticmethod(radial_inverse)

    @classmethod
    def create(cls, key, dim: int, init_scale: float = 1.0) -> RadialTransform:
        """A layer on ``dim`` dimensions with freshly initialised params."""
        module = RadialParams(dim, init_scale)
        return cls(module, cls.init_params(module, key))
