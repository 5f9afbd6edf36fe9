"""MCMC driven by a score ``s(x) = grad log p(x)`` or a log density ``log p(x)``.

Pure functions: explicit ``jax.random`` keys (the same key gives the same draws), loops in
``jax.lax.scan``, ``jit``/``vmap``-able with the callables closed over.  Every function
takes a *batch* of independent chains and applies the user's function to the whole
batch at once:

=========================  ===================================================================
:func:`langevin`           unadjusted Langevin (ULA) with a score ``s(x)``
:func:`mala`               Metropolis-adjusted Langevin with a log density (BlackJAX kernel)
:func:`hmc`                Hamiltonian Monte Carlo with a log density
                           (:func:`numpyro_hgf.paths.dynamics.leapfrog` + Metropolis correction)
:func:`annealed_langevin`  Song & Ermon (2019), Algorithm 1, with a noise-conditional
                           score ``s(x, sigma)``
=========================  ===================================================================

Conventions (``x: (num_chains, *event_shape)``):

* ``score(x) -> (num_chains, *event_shape)`` (annealed: ``score(x, sigma)`` with
  ``sigma: ()``); its output shape must equal the shape of ``x``.
* ``log_density(x) -> (num_chains,)``, unnormalised is fine; chains are independent
  (row ``i`` of the output depends on row ``i`` of ``x`` only).

Bad arguments (a start ``x0`` with NaN or inf, a step size ``<= 0``, noise levels that are
not positive and strictly decreasing, a score or log density whose output does not fit ``x``)
raise a ``ValueError`` naming the argument, with what was expected and what came.  Values that
are traced (inside a user's ``jit``) are not inspected; shapes always are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks import (
    check_chains,
    check_decreasing_levels,
    check_finite,
    check_output_shape,
    check_positive_float,
    check_positive_int,
    check_positive_scalar,
)
from numpyro_hgf.paths.dynamics import leapfrog

__all__ = [
    "MCMCResult",
    "annealed_langevin",
    "geometric_sigmas",
    "hmc",
    "langevin",
    "mala",
]


class MCMCResult(NamedTuple):
    """What :func:`mala` and :func:`hmc` return.

    Attributes:
        samples: ``(num_chains, *event_shape)`` final states of the chains.
        acceptance_rate: ``(num_chains,)`` mean Metropolis acceptance probability of each
            chain over its ``num_steps`` transitions.
        trajectory: ``(num_steps, num_chains, *event_shape)`` states after every
            transition when ``return_trajectory=True``, else ``None``.
    """

    samples: jax.Array
    acceptance_rate: jax.Array
    trajectory: jax.Array | None


def _check_score(score: Callable, x, *extra) -> None:
    """The score's output must have the shape of ``x``."""
    check_output_shape("score", score, (x, *extra), x.shape, "(the shape of x0)")


def _check_log_density(log_density: Callable, x) -> None:
    """``log_density(x)`` must map ``(num_chains, *event_shape)`` to ``(num_chains,)``."""
    what = f"(one value per chain of x0 with shape {tuple(x.shape)})"
    check_output_shape("log_density", log_density, (x,), (x.shape[0],), what)


def geometric_sigmas(sigma_max: float, sigma_min: float, num_levels: int) -> jax.Array:
    """``num_levels`` noise levels decreasing geometrically from ``sigma_max`` to ``sigma_min``.

    Song & Ermon (2019, Sec. 4.2) use ``sigma_1 = 1``, ``sigma_L = 0.01``, ``L = 10``;
    Song & Ermon (2020, Technique 1) choose ``sigma_1`` about the largest pairwise distance
    between training points.
    """
    sigma_max = check_positive_float("sigma_max", sigma_max)
    sigma_min = check_positive_float("sigma_min", sigma_min)
    num_levels = check_positive_int("num_levels", num_levels)
    if num_levels > 1 and not sigma_max > sigma_min:
        raise ValueError(
            f"sigma_max: expected a value larger than sigma_min={sigma_min}, got {sigma_max}"
        )
    return jnp.asarray(np.geomspace(sigma_max, sigma_min, num_levels))


# -- unadjusted Langevin ---------------------------------------------------------------------
def langevin(
    key,
    score: Callable,
    x0,
    step_size,
    num_steps: int,
    *,
    return_trajectory: bool = False,
):
    """Unadjusted Langevin algorithm (ULA): Euler-Maruyama for ``dx = grad log p dt + sqrt(2) dW``.

    One step (Roberts & Tweedie 1996; Welling & Teh 2011 without minibatches)::

        x_{t+1} = x_t + eps * s(x_t) + sqrt(2 eps) z_t,     z_t ~ N(0, I),

    with ``s(x) = grad_x log p(x)`` (for an energy, ``s = -grad E``).  There is no
    Metropolis correction, so the chain's stationary law is ``p`` only as ``eps -> 0``;
    for ``p = N(mu, Sigma)`` the stationary law is Gaussian with covariance
    ``Sigma (I - eps/2 Sigma^{-1})^{-1}`` (per eigen-direction ``s^2 / (1 - eps / (2 s^2))``,
    stable for ``eps < 2 s_min^2``).  Use :func:`mala` or :func:`hmc` when a log
    density is available and exactness matters.

    Args:
        key: ``jax.random`` key.
        score: ``s(x)``, ``x: (num_chains, *event_shape) -> same shape``.
        x0: initial states, ``(num_chains, *event_shape)`` (any shape the score accepts).
        step_size: ``eps > 0``.
        num_steps: number of updates ``T`` (static).
        return_trajectory: also return the states after every step.

    Returns:
        ``x_T`` with the shape of ``x0``, or ``(x_T, trajectory)`` with ``trajectory:
        (num_steps, *x0.shape)`` (``trajectory[-1] == x_T``).
    """
    x0 = check_chains("x0", x0)
    check_finite("x0", x0)  # a NaN start runs NaN chains
    num_steps = check_positive_int("num_steps", num_steps)
    check_positive_scalar("step_size", step_size)
    _check_score(score, x0)
    eps = jnp.asarray(step_size, x0.dtype)
    noise_scale = jnp.sqrt(2.0 * eps)

    def step(x, k):
        x = x + eps * score(x) + noise_scale * jax.random.normal(k, x.shape, x.dtype)
        return x, (x if return_trajectory else None)

    x, trajectory = jax.lax.scan(step, x0, jax.random.split(key, num_steps))
    return (x, trajectory) if return_trajectory else x


# -- Metropolis-adjusted Langevin (BlackJAX kernel, vmapped over chains) ---------------------
def _per_chain(log_density: Callable) -> Callable:
    """A single-position log density from a batched one (``(*event) -> ()``)."""
    return lambda x: log_density(x[None])[0]


def mala(
    key,
    log_density: Callable,
    x0,
    step_size,
    num_steps: int,
    *,
    return_trajectory: bool = False,
) -> MCMCResult:
    """Metropolis-adjusted Langevin algorithm (Roberts & Tweedie 1996).

    Proposal ``x' = x + eps grad log p(x) + sqrt(2 eps) z`` (one ULA step), accepted with
    probability ``min(1, p(x') q(x | x') / (p(x) q(x' | x)))`` where
    ``q(x' | x) = N(x'; x + eps grad log p(x), 2 eps I)``.  The chains leave ``p``
    invariant exactly; only the unnormalised ``log p`` is needed.

    Each chain runs BlackJAX's MALA kernel (:mod:`blackjax.mcmc.mala`), vmapped over the
    chains, so acceptance is decided per chain.

    Args:
        key: ``jax.random`` key.
        log_density: ``log p(x)`` up to a constant, ``(num_chains, *event_shape) ->
            (num_chains,)``; differentiable in ``x``.
        x0: ``(num_chains, *event_shape)`` initial states.
        step_size: ``eps > 0``; aim for an acceptance rate around 0.5-0.8.
        num_steps: transitions per chain (static).
        return_trajectory: also return every state (see :class:`MCMCResult`).

    Returns:
        :class:`MCMCResult` ``(samples, acceptance_rate, trajectory)``.
    """
    import blackjax.mcmc.mala as bj_mala

    x0 = check_chains("x0", x0)
    check_finite("x0", x0)  # a NaN start runs NaN chains
    num_steps = check_positive_int("num_steps", num_steps)
    check_positive_scalar("step_size", step_size)
    _check_log_density(log_density, x0)
    logp = _per_chain(log_density)
    kernel = bj_mala.build_kernel()
    eps = jnp.asarray(step_size, x0.dtype)

    def one_chain(k, state):
        return kernel(k, state, logp, eps)

    state = jax.vmap(lambda x: bj_mala.init(x, logp))(x0)
    num_chains = x0.shape[0]

    def step(state, k):
        keys = jax.random.split(k, num_chains)
        state, info = jax.vmap(one_chain)(keys, state)
        out = state.position if return_trajectory else None
        return state, (info.acceptance_rate, out)

    state, (accept, trajectory) = jax.lax.scan(step, state, jax.random.split(key, num_steps))
    return MCMCResult(state.position, jnp.mean(accept, axis=0), trajectory)


# -- Hamiltonian Monte Carlo (package leapfrog + Metropolis) --------------------------------
def hmc(
    key,
    log_density: Callable,
    x0,
    step_size,
    num_steps: int,
    *,
    num_integration_steps: int = 10,
    return_trajectory: bool = False,
) -> MCMCResult:
    """Hamiltonian Monte Carlo with unit mass (Duane et al. 1987; Neal 2011, Sec. 5.3.2).

    Each transition draws ``v ~ N(0, I)``, integrates ``dx/dt = v, dv/dt = grad log p(x)``
    with :func:`numpyro_hgf.paths.dynamics.leapfrog` (``num_integration_steps`` steps of size
    ``step_size``) and accepts the end point with probability ``min(1, exp(H(x, v) -
    H(x', v')))``, ``H(x, v) = -log p(x) + |v|^2 / 2``.  Non-finite energies are rejected.

    Args:
        key: ``jax.random`` key.
        log_density: ``(num_chains, *event_shape) -> (num_chains,)``, unnormalised.
        x0: ``(num_chains, *event_shape)`` initial states.
        step_size: leapfrog step ``h > 0``.
        num_steps: transitions per chain (static).
        num_integration_steps: leapfrog steps per transition (static).
        return_trajectory: also return the state after every transition.

    Returns:
        :class:`MCMCResult` ``(samples, acceptance_rate, trajectory)``.
    """
    x0 = check_chains("x0", x0)
    check_finite("x0", x0)  # a NaN start runs NaN chains
    num_steps = check_positive_int("num_steps", num_steps)
    num_integration_steps = check_positive_int("num_integration_steps", num_integration_steps)
    check_positive_scalar("step_size", step_size)
    _check_log_density(log_density, x0)
    event_axes = tuple(range(1, x0.ndim))
    force = jax.grad(lambda x: jnp.sum(log_density(x)))
    h = jnp.asarray(step_size, x0.dtype)

    def step(carry, k):
        x, logp = carry
        v = jax.random.normal(jax.random.fold_in(k, 0), x.shape, x.dtype)
        x_new, v_new = leapfrog(force, x, v, h, num_integration_steps)
        logp_new = log_density(x_new)
        kinetic = 0.5 * jnp.sum(v**2, axis=event_axes)
        kinetic_new = 0.5 * jnp.sum(v_new**2, axis=event_axes)
        log_ratio = (logp_new - kinetic_new) - (logp - kinetic)
        log_ratio = jnp.where(jnp.isfinite(log_ratio), log_ratio, -jnp.inf)
        p_accept = jnp.exp(jnp.minimum(log_ratio, 0.0))
        u = jax.random.uniform(jax.random.fold_in(k, 1), p_accept.shape, p_accept.dtype)
        accept = u < p_accept
        mask = accept.reshape(accept.shape + (1,) * len(event_axes))
        x = jnp.where(mask, x_new, x)
        logp = jnp.where(accept, logp_new, logp)
        return (x, logp), (p_accept, x if return_trajectory else None)

    init = (x0, log_density(x0))
    (x, _), (accept, trajectory) = jax.lax.scan(step, init, jax.random.split(key, num_steps))
    return MCMCResult(x, jnp.mean(accept, axis=0), trajectory)


# -- annealed Langevin (noise-conditional score) -------------------------------------------
def annealed_langevin(
    key,
    score: Callable,
    x0,
    sigmas,
    step_size: float = 2e-5,
    num_steps: int = 100,
    *,
    denoise: bool = False,
    return_trajectory: bool = False,
):
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).

    For noise levels ``sigma_1 > sigma_2 > ... > sigma_L > 0`` and each level ``i``, run
    ``T = num_steps`` Langevin steps on the noised density ``p_{sigma_i} = p * N(0,
    sigma_i^2 I)`` with the step ``alpha_i = eps * sigma_i^2 / sigma_L^2``::

        x <- x + (alpha_i / 2) s(x, sigma_i) + sqrt(alpha_i) z,     z ~ N(0, I),

    starting each level where the previous one ended.  Note the ``alpha / 2`` convention
    of the paper (:func:`langevin` uses ``x + eps s + sqrt(2 eps) z``; ``alpha = 2 eps``).
    Large ``sigma`` levels move mass between modes (fixing the mode weights that plain
    Langevin gets wrong); the last levels refine.

    Args:
        key: ``jax.random`` key.
        score: ``s(x, sigma) ~ grad_x log p_sigma(x)``, ``x: (num_chains, *event_shape)``,
            ``sigma: ()`` -> shape of ``x``.
        x0: initial states (the paper: uniform noise), ``(num_chains, *event_shape)``.
        sigmas: ``(L,)`` strictly decreasing positive noise levels (see
            :func:`geometric_sigmas`).
        step_size: ``eps > 0`` (the step at the last level; the paper uses ``2e-5`` with
            ``sigma_L = 0.01``).
        num_steps: ``T``, Langevin steps per level (static).
        denoise: finish with one Tweedie denoising step ``x + sigma_L^2 s(x, sigma_L)``
            (Jolicoeur-Martineau et al. 2021), which removes the residual ``sigma_L`` noise.
        return_trajectory: also return the state at the end of every level.

    Returns:
        ``x`` with the shape of ``x0``, or ``(x, levels)`` with ``levels: (L, *x0.shape)``
        (the states after the last step of each level, before any denoising).
    """
    x0 = check_chains("x0", x0)
    check_finite("x0", x0)  # a NaN start runs NaN chains
    sigmas = check_decreasing_levels("sigmas", sigmas).astype(x0.dtype)
    num_steps = check_positive_int("num_steps", num_steps)
    check_positive_scalar("step_size", step_size)
    _check_score(score, x0, sigmas[0])
    eps = jnp.asarray(step_size, x0.dtype)
    alphas = eps * sigmas**2 / sigmas[-1] ** 2
    num_levels = sigmas.shape[0]
    keys = jax.random.split(key, (num_levels, num_steps))

    def level(x, inputs):
        sigma, alpha, level_keys = inputs
        noise_scale = jnp.sqrt(alpha)

        def step(x, k):
            z = jax.random.normal(k, x.shape, x.dtype)
            return x + 0.5 * alpha * score(x, sigma) + noise_scale * z, None

        x, _ = jax.lax.scan(step, x, level_keys)
        return x, (x if return_trajectory else None)

    x, levels = jax.lax.scan(level, x0, (sigmas, alphas, keys))
    if denoise:
        x = x + sigmas[-1] ** 2 * score(x, sigmas[-1])
    return (x, levels) if return_trajectory else x
