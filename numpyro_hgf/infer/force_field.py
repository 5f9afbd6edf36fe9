"""HMC and Langevin kernels driven by a learned force field ``F(x) ~ grad log p(x)``.

BlackJAX-style pure pieces (``init`` / ``build_kernel`` / ``NamedTuple`` states) and the
top-level builders :func:`force_field_hmc` and :func:`force_field_langevin`, which return a
``blackjax.SamplingAlgorithm`` ``(init, step)`` exactly like ``blackjax.hmc`` /
``blackjax.mala`` do.

The force can be an EBM gradient ``-grad E``, a Hamiltonian-score-matching force, or a
diffusion / HGF score at a small time.  Two regimes:

* **adjusted** (a ``logdensity_fn`` is given, e.g. a flow's or an ODE model's
  ``log_prob``, or an unnormalised EBM energy): the leapfrog trajectory uses ``F`` but the
  Metropolis step uses the exact Hamiltonian ``H(x, p) = -log p(x) + p^T M^{-1} p / 2``.
  Leapfrog with *any* position-only force is a composition of shears, hence volume
  preserving (``det J = 1``), and it is reversible under the momentum flip, so the
  Metropolis-Hastings ratio is just ``exp(H - H')`` and the chain leaves ``p`` invariant
  exactly (Neal 2011, Sec. 5.3.2; the argument never uses ``F = grad log p``).  The
  quality of ``F`` changes the acceptance rate, i.e. only efficiency.
* **unadjusted** (no ``logdensity_fn``): every proposal is taken; the chain is biased by
  the force error and the step size.  ``info.is_adjusted`` is ``False`` and
  ``state.logdensity`` is NaN.

With ``F = grad log p`` and the same keys, :func:`force_field_hmc` reproduces
``blackjax.hmc`` (same momentum draws, same leapfrog, same accept draw).

Positions may be any pytree; the force maps a position to a pytree of the same structure.
The leapfrog is :func:`numpyro_hgf.paths.dynamics.leapfrog`, run on the flattened position in
coordinates where the mass is the identity: with ``M^{-1} = L L^T``, ``x = L y`` and
``p = L^{-T} u`` the Hamiltonian is ``-log p(L y) + |u|^2 / 2`` and the force on ``y`` is
``L^T F(L y)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from numpyro_hgf._checks import (
    check_positive_float,
    check_positive_int,
    check_positive_scalar,
)
from numpyro_hgf._checks.arrays import check_finite_tree, check_inverse_mass_matrix
from numpyro_hgf.paths.dynamics import leapfrog

__all__ = [
    "ForceFieldState",
    "ForceFieldHMCInfo",
    "ForceFieldLangevinInfo",
    "init",
    "build_kernel",
    "build_langevin_kernel",
    "force_field_hmc",
    "force_field_langevin",
    "with_force",
]


class ForceFieldState(NamedTuple):
    """State of a force-field chain (the field names follow ``blackjax.hmc.HMCState``).

    Attributes:
        position: the current position (any pytree).
        logdensity: ``log p(position)`` (unnormalised), NaN when unadjusted.
        logdensity_grad: the learned force ``F(position)``, a pytree like ``position``
            (it plays the role of ``grad log p``, hence BlackJAX's name; adaptation
            routines such as ``blackjax.window_adaptation`` read it).
    """

    position: object
    logdensity: jax.Array
    logdensity_grad: object


class ForceFieldHMCInfo(NamedTuple):
    """Per-transition diagnostics of :func:`force_field_hmc`.

    Attributes:
        momentum: the momentum drawn at the start of the transition.
        acceptance_rate: ``min(1, exp(H - H'))``; ``1`` when unadjusted.
        is_accepted: whether the end point was taken.
        is_divergent: ``H' - H > divergence_threshold`` (adjusted) or a non-finite end
            point (unadjusted).
        energy: ``H'`` at the proposal, NaN when unadjusted.
        num_integration_steps: leapfrog steps = force evaluations of the transition.
        is_adjusted: whether a Metropolis correction was applied.
    """

    momentum: object
    acceptance_rate: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array
    energy: jax.Array
    num_integration_steps: jax.Array
    is_adjusted: jax.Array


class ForceFieldLangevinInfo(NamedTuple):
    """Per-transition diagnostics of :func:`force_field_langevin`.

    Attributes:
        acceptance_rate: Metropolis-Hastings acceptance probability; ``1`` when
            unadjusted.
        is_accepted: whether the proposal was taken.
        is_adjusted: whether a Metropolis correction was applied.
    """

    acceptance_rate: jax.Array
    is_accepted: jax.Array
    is_adjusted: jax.Array


# -- helpers ---------------------------------------------------------------------------------
def _check_force(force) -> None:
    if not callable(force):
        raise TypeError(f"force: expected a callable F(x) -> array like x, got {type(force)}")


def _check_logdensity(logdensity_fn) -> None:
    if logdensity_fn is not None and not callable(logdensity_fn):
        raise TypeError(
            "logdensity_fn: expected a callable log p(x) -> scalar or None, "
            f"got {type(logdensity_fn).__name__}"
        )


def _check_step(step_size) -> None:
    """A positive finite scalar when concrete (a string or ``None`` is a ``TypeError``)."""
    check_positive_scalar("step_size", step_size)


def _evaluate_force(force: Callable, position):
    """``F(position)`` with its output checked against the position's structure."""
    out = force(position)
    pos_leaves, pos_def = jax.tree.flatten(position)
    out_leaves, out_def = jax.tree.flatten(out)
    if out_def != pos_def or any(
        jnp.shape(a) != jnp.shape(b) for a, b in zip(pos_leaves, out_leaves, strict=True)
    ):
        raise ValueError(
            "force: expected an output with the structure and shapes of the position "
            f"{jax.tree.map(jnp.shape, position)}, got {jax.tree.map(jnp.shape, out)}"
        )
    return out


def _nan_like(position):
    dtype = jnp.result_type(*jax.tree.leaves(position), float)
    return jnp.full((), jnp.nan, dtype)


def with_force(logdensity_fn: Callable, force: Callable) -> Callable:
    """``log p`` whose gradient is replaced by the learned force ``F``.

    Returns ``g`` with ``g(x) = logdensity_fn(x)`` and ``grad g(x) = F(x)`` (a
    ``jax.custom_jvp`` with the linear tangent ``<F(x), dx>``), so any BlackJAX kernel that
    calls ``jax.value_and_grad(logdensity_fn)`` runs on the learned force while still
    seeing the exact log density.  ``logdensity_fn`` is never differentiated.
    """
    if not callable(logdensity_fn):
        raise TypeError(
            "logdensity_fn: expected a callable log p(x) -> scalar, "
            f"got {type(logdensity_fn).__name__}"
        )
    _check_force(force)

    @jax.custom_jvp
    def surrogate(x):
        return logdensity_fn(x)

    @surrogate.defjvp
    def _jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        value = logdensity_fn(x)
        f = force(x)
        dots = jax.tree.leaves(jax.tree.map(lambda a, b: jnp.sum(a * b), f, dx))
        return value, jnp.asarray(sum(dots), jnp.result_type(value)).reshape(jnp.shape(value))

    return surrogate


# -- HMC ---------------------------------------------------------------------------------------
def init(position, force: Callable, logdensity_fn: Callable | None = None) -> ForceFieldState:
    """Initial :class:`ForceFieldState` at ``position`` (one chain)."""
    _check_force(force)
    _check_logdensity(logdensity_fn)
    check_finite_tree("position", position)  # a NaN start runs a NaN chain
    logdensity = _nan_like(position) if logdensity_fn is None else logdensity_fn(position)
    return ForceFieldState(position, jnp.asarray(logdensity), _evaluate_force(force, position))


def _mass_factor(inverse_mass_matrix, flat):
    """``(L, is_diagonal, M^{-1})`` with ``M^{-1} = L L^T``; ``L`` is a vector (diagonal)
    or a lower-triangular matrix; a scalar ``M^{-1}`` is broadcast to the diagonal."""
    check_inverse_mass_matrix("inverse_mass_matrix", inverse_mass_matrix)
    imm = jnp.asarray(inverse_mass_matrix, flat.dtype)
    if imm.ndim == 0:
        imm = jnp.full(flat.shape, imm)
    if imm.ndim == 1:
        if imm.shape != flat.shape:
            raise ValueError(
                f"inverse_mass_matrix: expected shape {flat.shape} (one entry per "
                f"coordinate) or {flat.shape * 2}, got {imm.shape}"
            )
        return jnp.sqrt(imm), True, imm
    if imm.shape != flat.shape * 2:
        raise ValueError(
            f"inverse_mass_matrix: expected shape {flat.shape} or {flat.shape * 2}, got {imm.shape}"
        )
    return jnp.linalg.cholesky(imm), False, imm


def build_kernel(divergence_threshold: float = 1000.0):
    """Force-field HMC kernel (BlackJAX ``build_kernel`` convention).

    Returns ``kernel(rng_key, state, force, logdensity_fn, step_size, inverse_mass_matrix,
    num_integration_steps) -> (state, ForceFieldHMCInfo)``.  One transition:

    1. ``key_momentum, key_accept = split(rng_key)``; ``p ~ N(0, M)`` drawn by
       ``blackjax.mcmc.metrics`` (so the draws equal ``blackjax.hmc``'s);
    2. ``num_integration_steps`` leapfrog steps of size ``h`` under ``F``
       (:func:`numpyro_hgf.paths.dynamics.leapfrog`, unit mass in whitened coordinates);
    3. adjusted: accept with probability ``min(1, exp(H(x, p) - H(x', p')))`` (Neal 2011,
       eq. 5.13; NaN energies are rejected); unadjusted: always move.
    """
    import blackjax.mcmc.metrics as metrics
    from blackjax.mcmc.proposal import safe_energy_diff

    divergence_threshold = check_positive_float("divergence_threshold", divergence_threshold)

    def kernel(
        rng_key,
        state: ForceFieldState,
        force: Callable,
        logdensity_fn: Callable | None,
        step_size,
        inverse_mass_matrix,
        num_integration_steps: int,
    ):
        num_integration_steps = check_positive_int("num_integration_steps", num_integration_steps)
        _check_step(step_size)
        key_momentum, key_accept = jax.random.split(rng_key, 2)
        position, logdensity, f0 = state
        x, unravel = ravel_pytree(position)
        lower, diagonal, imm = _mass_factor(inverse_mass_matrix, x)
        metric = metrics.default_metric(imm)
        momentum = metric.sample_momentum(key_momentum, position)
        p, _ = ravel_pytree(momentum)

        def flat_force(y):
            xx = lower * y if diagonal else lower @ y
            fx, _ = ravel_pytree(force(unravel(xx)))
            return lower * fx if diagonal else lower.T @ fx

        if diagonal:
            y, u = x / lower, lower * p
        else:
            y, u = jax.scipy.linalg.solve_triangular(lower, x, lower=True), lower.T @ p
        h = jnp.asarray(step_size, x.dtype)
        y_new, u_new = leapfrog(flat_force, y, u, h, num_integration_steps)
        x_new = lower * y_new if diagonal else lower @ y_new
        new_position = unravel(x_new)
        new_force = force(new_position)
        kinetic = 0.5 * jnp.dot(u, u)
        kinetic_new = 0.5 * jnp.dot(u_new, u_new)
        steps = jnp.asarray(num_integration_steps, jnp.int32)
        if logdensity_fn is None:
            finite = jnp.all(jnp.isfinite(x_new))
            info = ForceFieldHMCInfo(
                momentum,
                jnp.ones((), x.dtype),
                jnp.asarray(True),
                ~finite,
                jnp.full((), jnp.nan, x.dtype),
                steps,
                jnp.asarray(False),
            )
            return ForceFieldState(new_position, logdensity, new_force), info
        new_logdensity = logdensity_fn(new_position)
        energy = -logdensity + kinetic
        new_energy = -new_logdensity + kinetic_new
        delta = safe_energy_diff(energy, new_energy)
        p_accept = jnp.clip(jnp.exp(delta), max=1)
        accept = jax.random.bernoulli(key_accept, p_accept)
        proposal = ForceFieldState(new_position, new_logdensity, new_force)
        new_state = jax.lax.cond(accept, lambda: proposal, lambda: state)
        info = ForceFieldHMCInfo(
            momentum,
            p_accept,
            accept,
            -delta > divergence_threshold,
            new_energy,
            steps,
            jnp.asarray(True),
        )
        return new_state, info

    return kernel


def force_field_hmc(
    force: Callable,
    logdensity_fn: Callable | None = None,
    *,
    step_size: float,
    num_integration_steps: int,
    inverse_mass_matrix=1.0,
    divergence_threshold: float = 1000.0,
):
    """HMC whose leapfrog uses a learned force ``F(x)`` (see the module docstring).

    Args:
        force: ``F(x)``, a pytree like the position (e.g. ``(d,) -> (d,)``), approximating
            ``grad log p``.
        logdensity_fn: ``log p(x) -> ()`` up to a constant; with it the chain is exact
            (Metropolis-adjusted), without it it is unadjusted.
        step_size: leapfrog step ``h > 0``.
        num_integration_steps: leapfrog steps per transition.
        inverse_mass_matrix: scalar, ``(d,)`` diagonal or ``(d, d)`` dense ``M^{-1}``
            (``d`` = size of the flattened position); positive (definite), checked when
            concrete (a zero or negative mass would give a chain that never moves).
        divergence_threshold: energy error above which a transition is divergent.

    Returns:
        ``blackjax.SamplingAlgorithm`` with ``init(position) -> ForceFieldState`` and
        ``step(rng_key, state) -> (ForceFieldState, ForceFieldHMCInfo)``.
    """
    from blackjax.base import SamplingAlgorithm

    _check_force(force)
    _check_logdensity(logdensity_fn)
    _check_step(step_size)
    num_integration_steps = check_positive_int("num_integration_steps", num_integration_steps)
    check_inverse_mass_matrix("inverse_mass_matrix", inverse_mass_matrix)
    kernel = build_kernel(divergence_threshold)

    def init_fn(position, rng_key=None):
        del rng_key
        return init(position, force, logdensity_fn)

    def step_fn(rng_key, state):
        return kernel(
            rng_key,
            state,
            force,
            logdensity_fn,
            step_size,
            inverse_mass_matrix,
            num_integration_steps,
        )

    return SamplingAlgorithm(init_fn, step_fn)


# -- Langevin ----------------------------------------------------------------------------------
def build_langevin_kernel():
    """Force-field Langevin kernel: ``kernel(rng_key, state, force, logdensity_fn,
    step_size) -> (state, ForceFieldLangevinInfo)``.

    Proposal ``x' = x + eps F(x) + sqrt(2 eps) z`` (Roberts & Tweedie 1996, eq. 2.2 with
    the score replaced by ``F``).  Adjusted: BlackJAX's MALA kernel on
    :func:`with_force` (``log p`` exact, gradient ``F``), so the Hastings ratio uses the
    proposal densities ``q(x' | x) = N(x + eps F(x), 2 eps I)`` and the chain is exact for
    any ``F``.  Unadjusted: BlackJAX's overdamped Langevin step (``blackjax.sgld``'s
    diffusion) with the force as the gradient, i.e. ULA.
    """
    import blackjax.mcmc.mala as bj_mala
    from blackjax.sgmcmc.diffusions import overdamped_langevin

    mala_kernel = bj_mala.build_kernel()
    ula_step = overdamped_langevin()

    def kernel(rng_key, state: ForceFieldState, force, logdensity_fn, step_size):
        _check_step(step_size)
        if logdensity_fn is None:
            position = ula_step(rng_key, state.position, state.logdensity_grad, step_size)
            new_state = ForceFieldState(position, state.logdensity, force(position))
            dtype = state.logdensity.dtype
            info = ForceFieldLangevinInfo(
                jnp.ones((), dtype), jnp.asarray(True), jnp.asarray(False)
            )
            return new_state, info
        surrogate = with_force(logdensity_fn, force)
        mala_state = bj_mala.MALAState(*state)
        new_state, mala_info = mala_kernel(rng_key, mala_state, surrogate, step_size)
        info = ForceFieldLangevinInfo(
            mala_info.acceptance_rate, mala_info.is_accepted, jnp.asarray(True)
        )
        return ForceFieldState(*new_state), info

    return kernel


def force_field_langevin(
    force: Callable,
    logdensity_fn: Callable | None = None,
    *,
    step_size: float,
):
    """Langevin dynamics with a learned force (MALA when ``logdensity_fn`` is given, ULA
    otherwise); see :func:`build_langevin_kernel`.

    Returns:
        ``blackjax.SamplingAlgorithm`` with ``init(position)`` and
        ``step(rng_key, state) -> (ForceFieldState, ForceFieldLangevinInfo)``.
    """
    from blackjax.base import SamplingAlgorithm

    _check_force(force)
    _check_logdensity(logdensity_fn)
    _check_step(step_size)
    kernel = build_langevin_kernel()

    def init_fn(position, rng_key=None):
        del rng_key
        return init(position, force, logdensity_fn)

    def step_fn(rng_key, state):
        return kernel(rng_key, state, force, logdensity_fn, step_size)

    return SamplingAlgorithm(init_fn, step_fn)
