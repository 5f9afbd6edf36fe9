"""Planar flow (Rezende & Mohamed 2015, "Variational Inference with Normalizing Flows").

Forward map (their eq. 10) on ``z: (..., d)``::

    f(z) = z + u_hat * tanh(w . z + b)

with the invertibility reparametrisation of their Appendix A.1::

    u_hat = u + (m(w . u) - w . u) * w / ||w||^2,   m(a) = -1 + softplus(a)

so that ``w . u_hat = m(w . u) > -1``, which makes ``f`` a bijection.  The log-Jacobian
(their eq. 11-12) is ``log |1 + (1 - tanh^2(w . z + b)) w . u_hat|``.

There is no closed-form inverse.  Writing ``a = w . z``, the scalar equation
``w . y = a + (w . u_hat) tanh(a + b)`` is strictly increasing in ``a`` and its root lies in
``[w.y - |w.u_hat|, w.y + |w.u_hat|]``; :func:`planar_inverse` solves it by safeguarded
Newton (bisection fallback) inside that bracket, then ``z = y - u_hat tanh(a + b)``.
Gradients of the inverse use the implicit function theorem (one Newton step on the
stopped-gradient root), not differentiation through the iterations.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from numpyro_hgf._checks import check_nonnegative_float, check_positive_int
from numpyro_hgf.flows.base import CoefficientTransform

__all__ = ["PlanarParams", "PlanarTransform", "planar_u_hat", "planar_forward", "planar_inverse"]

_NEWTON_STEPS = 60


class PlanarParams(nn.Module):
    """Declares the planar parameters ``w: (dim,)``, ``u: (dim,)``, ``b: ()``.

    ``__call__()`` takes no input and returns ``(w, u, b)`` so the layer is a uniform
    ``(module, params)`` pair that :func:`numpyro.contrib.module.flax_module` can register.
    """

    dim: int
    init_scale: float = 0.1

    def __post_init__(self):
        check_positive_int("dim", self.dim)
        check_nonnegative_float("init_scale", self.init_scale)
        super().__post_init__()

    @nn.compact
    def __call__(self):
        init = nn.initializers.normal(self.init_scale)
        w = self.param("w", init, (self.dim,))
        u = self.param("u", init, (self.dim,))
        b = self.param("b", nn.initializers.zeros, ())
        return w, u, b


def planar_u_hat(w, u):
    """Rezende & Mohamed (2015) App. A.1: ``u_hat`` with ``w . u_hat = -1 + softplus(w . u)``.

    ``w, u: (d,)`` -> ``(d,)``.
    """
    wu = jnp.dot(w, u)
    m = -1.0 + jax.nn.softplus(wu)
    return u + (m - wu) * w / (jnp.dot(w, w) + 1e-12)


def planar_forward(z, w, u_hat, b):
    """``f(z) = z + u_hat tanh(w.z + b)`` and ``log|det df/dz|``.

    Args:
        z: ``(..., d)``; ``w, u_hat: (d,)``; ``b: ()``.

    Returns:
        ``(y, logdet)`` with shapes ``(..., d)`` and ``(...)``.
    """
    h = jnp.tanh(z @ w + b)
    y = z + u_hat * h[..., None]
    logdet = jnp.log1p((1.0 - h**2) * jnp.dot(w, u_hat))
    return y, logdet


def _solve_planar_scalar(t, c, b):
    """Root ``a`` of ``g(a) = a + c tanh(a + b) - t`` (``c > -1``), elementwise in ``t``."""

    def g_and_dg(a):
        h = jnp.tanh(a + b)
        return a + c * h - t, 1.0 + c * (1.0 - h**2)

    lo0, hi0 = t - jnp.abs(c), t + jnp.abs(c)

    def body(_, state):
        a, lo, hi = state
        g, dg = g_and_dg(a)
        lo = jnp.where(g < 0, a, lo)
        hi = jnp.where(g > 0, a, hi)
        step = a - g / dg
        bad = (step < lo) | (step > hi) | ~jnp.isfinite(step)
        return jnp.where(bad, 0.5 * (lo + hi), step), lo, hi

    a, _, _ = lax.fori_loop(0, _NEWTON_STEPS, body, (t, lo0, hi0))
    # implicit-function gradient: a* - g(a*)/g'(a*) has value a* and d/dtheta = -g_theta/g_a
    a = lax.stop_gradient(a)
    g, dg = g_and_dg(a)
    return a - g / dg


def planar_inverse(y, w, u_hat, b):
    """Numerical inverse of :func:`planar_forward`: ``y: (..., d) -> z: (..., d)``.

    Solves ``w.y = a + (w.u_hat) tanh(a + b)`` for ``a = w.z`` (monotone, bracketed),
    accurate to the working precision; jit-able, vmappable and differentiable.
    """
    a = _solve_planar_scalar(y @ w, jnp.dot(w, u_hat), b)
    return y - u_hat * jnp.tanh(a + b)[..., None]


class PlanarTransform(CoefficientTransform):
    """Planar flow layer ``f(z) = z + u_hat tanh(w.z + b)`` on ``(..., dim)``.

    ``module`` is :class:`PlanarParams`; ``params = {"w": (dim,), "u": (dim,), "b": ()}``.
    The inverse is numerical (see :func:`planar_inverse`).
    """

    module_type = PlanarParams
    forward_fn = staticmethod(planar_forward)
    inverse_fn = staticmethod(planar_inverse)

    @classmethod
    def create(cls, key, dim: int, init_scale: float = 0.1) -> PlanarTransform:
        """A layer on ``dim`` dimensions with freshly initialised params."""
        module = PlanarParams(dim, init_scale)
        return cls(module, cls.init_params(module, key))

    def _coefficients(self):
        w, u, b = self.apply()
        return w, planar_u_hat(w, u), b
