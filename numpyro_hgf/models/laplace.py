"""The Laplace approximation of a marginal likelihood over local latent variables.

For one subject with random effects ``eta: (d,)`` and joint log density
``l(eta) = log p(y_i | eta, theta) + log p(eta | theta)`` (Pinheiro & Bates 1995, Sec. 3)

    log p(y_i | theta) = log int exp(l(eta)) d eta
                      ~= l(eta_hat) + (d / 2) log(2 pi) - (1 / 2) log det H(eta_hat),

with ``eta_hat = argmax l`` (the inner mode search) and ``H`` the negative Hessian of ``l`` at
the mode (``curvature="exact"``: the Laplace method) or its Gauss-Newton / Fisher-information
approximation (``curvature`` a callable, e.g. FOCE-I of NONMEM).

The mode search is damped Newton for a fixed number of iterations (no gradient flows
through it); the approximation is differentiated in ``theta`` by the implicit function
theorem: one exact Newton step from the stopped mode has the right value and the right
first derivative ``d eta_hat / d theta``, so the outer gradient is exact.  Each iteration
tries the step lengths ``1, 1/2, 1/4, 1/8`` in parallel and keeps the best (or stays); the
Newton matrix must be positive definite (a Gauss-Newton matrix, or the exact one with
eigenvalues floored), so every step is an ascent direction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from numpyro_hgf._checks import check_nonnegative_int, describe, is_concrete

__all__ = ["LaplaceResult", "laplace_log_marginal", "find_mode"]

_STEPS = (1.0, 0.5, 0.25, 0.125)


class LaplaceResult(NamedTuple):
    """Laplace approximation for one subject.

    Attributes:
        log_marginal: ``()`` the approximate ``log p(y_i | theta)``.
        mode: ``(d,)`` the conditional mode ``eta_hat``.
        precision: ``(d, d)`` the curvature ``H(eta_hat)`` (the Gaussian's precision).
        log_joint: ``()`` ``l(eta_hat)``.
    """

    log_marginal: jax.Array
    mode: jax.Array
    precision: jax.Array
    log_joint: jax.Array


def _psd(h, floor: float = 1e-6):
    h = 0.5 * (h + h.T)
    w, v = jnp.linalg.eigh(h)
    w = jnp.maximum(w, floor * jnp.maximum(jnp.max(jnp.abs(w)), 1.0))
    return (v * w) @ v.T


def _psd_hessian(log_joint):
    return lambda eta: _psd(-jax.hessian(log_joint)(eta))


def _check_search(log_joint, eta0, num_steps, **functions):
    """Static checks of a mode search: callables, a ``(d,)`` start, a step count."""
    for name, fn in {"log_joint": log_joint, **functions}.items():
        if fn is not None and not callable(fn):
            raise TypeError(f"{name}: expected a callable, got {fn!r}")
    if jnp.ndim(eta0) != 1:
        raise ValueError(f"eta0: expected a start of shape (d,), got {describe(jnp.asarray(eta0))}")
    if is_concrete(num_steps):  # a traced count passes (fori_loop takes it)
        check_nonnegative_int("num_steps", num_steps)


def find_mode(log_joint: Callable, eta0, *, curvature: Callable | None = None, num_steps: int = 30):
    """Damped-Newton ascent on ``log_joint: (d,) -> ()`` from ``eta0: (d,)``.

    ``curvature(eta) -> (d, d)``: a positive definite approximation of the negative Hessian
    used as the Newton matrix (default: the exact one with eigenvalues floored).
    Returns ``eta_hat: (d,)``.
    """
    _check_search(log_joint, eta0, num_steps, curvature=curvature)
    curvature = _psd_hessian(log_joint) if curvature is None else curvature
    grad = jax.grad(log_joint)
    steps = jnp.asarray(_STEPS, eta0.dtype)

    def body(_, eta):
        direction = jnp.linalg.solve(curvature(eta), grad(eta))
        candidates = eta + steps[:, None] * direction
        values = jax.vmap(log_joint)(candidates)
        values = jnp.where(jnp.isfinite(values), values, -jnp.inf)
        best = jnp.argmax(values)
        improve = values[best] > log_joint(eta)
        return jnp.where(improve, candidates[best], eta)

    return jax.lax.fori_loop(0, num_steps, body, eta0)


def laplace_log_marginal(
    log_joint: Callable,
    params,
    eta0,
    *,
    curvature: str | Callable = "exact",
    search_curvature: Callable | None = None,
    num_steps: int = 30,
) -> LaplaceResult:
    """Laplace approximation of ``log int exp(log_joint(eta, params)) d eta``.

    Args:
        log_joint: ``(eta (d,), params) -> ()``, the joint log density of the data and the
            random effects; ``params`` is any pytree (what the outer fit differentiates).
        params: the parameters.
        eta0: ``(d,)`` start of the mode search (zeros: the prior mean).
        curvature: ``"exact"`` (the negative Hessian: the Laplace method) or a callable
            ``(eta, params) -> (d, d)`` approximating it (FOCE-I's Gauss-Newton information);
            it enters ``log det H``.
        search_curvature: ``(eta, params) -> (d, d)``, the Newton matrix of the mode search
            (default: ``curvature``, the exact one with eigenvalues floored); a positive
            definite Gauss-Newton matrix is the robust choice.
        num_steps: Newton iterations of the mode search.
    """
    if isinstance(curvature, str) and curvature != "exact":
        raise ValueError(f"curvature: expected 'exact' or a callable, got {curvature!r}")
    if not (isinstance(curvature, str) or callable(curvature)):
        raise TypeError(f"curvature: expected 'exact' or a callable, got {curvature!r}")
    _check_search(log_joint, eta0, num_steps, search_curvature=search_curvature)
    eta0 = jnp.asarray(eta0)

    def exact(eta, p):
        return -jax.hessian(log_joint)(eta, p)

    curv = exact if isinstance(curvature, str) else curvature
    if search_curvature is not None:
        search = search_curvature
    elif isinstance(curvature, str):
        search = lambda e, p: _psd(exact(e, p))  # noqa: E731
    else:
        search = curv
    # the mode search sees no tangents: params are stopped
    fixed = jax.lax.stop_gradient(params)
    mode = find_mode(
        lambda e: log_joint(e, fixed),
        eta0,
        curvature=lambda e: search(e, fixed),
        num_steps=num_steps,
    )
    # implicit differentiation: one exact Newton step from the mode leaves the value unchanged
    # (the gradient is 0 there) and gives d mode / d theta = -H^{-1} d^2 l / d eta d theta
    mode = mode + jnp.linalg.solve(exact(mode, params), jax.grad(log_joint)(mode, params))
    H = curv(mode, params)
    H = 0.5 * (H + H.T)
    value = log_joint(mode, params)
    d = eta0.shape[-1]
    _, logdet = jnp.linalg.slogdet(H)
    log_marginal = value + 0.5 * d * math.log(2 * math.pi) - 0.5 * logdet
    return LaplaceResult(log_marginal, mode, H, value)
