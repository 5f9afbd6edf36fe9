"""Hamiltonian score matching (Holderrieth, Xu & Jaakkola, NeurIPS 2024).

Data ``x0 ~ pi``, velocities ``v0 ~ N(0, I)`` (the Boltzmann-Gibbs distribution
``pi_BG = pi x N(0, I)``) are moved by the *parameterised Hamiltonian* ODE

    dx/dt = v,    dv/dt = F_theta(x)

for a time ``t ~ U(0, T]`` (:func:`numpyro_hgf.paths.dynamics.leapfrog`, differentiable in
``theta``), giving ``(x_t, v_t)``.  A velocity predictor ``V_phi(x, t)`` is scored by

    L_hsm(phi | theta) = E [ ||V_phi(x_t, t)||^2 - 2 V_phi(x_t, t)^T v_t ]          (HSM loss)
                       = E ||V_phi(x_t, t) - v_t||^2 - E ||v_t||^2,

minimised by ``V*(x, t) = E[v_t | x_t = x]``.  The **Hamiltonian score discrepancy** is

    D(theta) = - min_phi L_hsm(phi | theta) = E || E[v_t | x_t] ||^2  >= 0,

and Theorem 1 of Holderrieth et al. says ``D(theta) = 0`` iff ``F_theta = grad log pi`` (pi-a.e.).

Signs -- the game
-----------------
Hamiltonian score matching is ``min_theta max_phi [ -L_hsm(phi | theta) ]``:

* ``phi`` (velocity) **minimises** ``L_hsm`` -- it becomes the best velocity predictor, and
  ``-L_hsm(phi | theta)`` is then a (lower-bound) estimate of ``D(theta)``;
* ``theta`` (force) **minimises** ``D(theta) = -L_hsm(phi*, theta)``, i.e. it **ascends**
  ``L_hsm``.  By Danskin's theorem ``grad_theta D = -grad_theta L_hsm(phi, theta)`` at
  ``phi = phi*``, the gradient through the simulated ``(x_t, v_t)`` with ``phi`` held fixed.

:func:`hamiltonian_score_matching` returns ``L_hsm(phi | theta)`` -- one scalar whose
gradient in ``phi`` is descended and whose gradient in ``theta`` is ascended (negated).
:func:`numpyro_hgf.train.fit_hsm` does exactly that on the trainer core.

At ``F = grad log pi`` the optimal predictor is ``V* = 0`` and ``L_hsm = 0`` for every
``theta``; small times give ``E[v_t | x_t] = t (F - grad log pi) + O(t^2)``, so
``D(theta | t) = t^2 E_pi ||F - grad log pi||^2 + O(t^3)`` (see :mod:`numpyro_hgf.metrics.hsd`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from numpyro_hgf._checks import (
    call_field,
    check_choice,
    check_flag,
    check_key,
    check_points,
    check_positive_int,
    check_positive_scalar,
)
from numpyro_hgf.objectives.score_matching import check_score_fn
from numpyro_hgf.paths.dynamics import leapfrog

__all__ = [
    "simulate_phase_space",
    "hsm_velocity_loss",
    "hamiltonian_score_matching",
]

TIME_SAMPLING = ("uniform", "grid")
FORCE_GRADIENTS = ("full", "velocity", "taylor")


def simulate_phase_space(
    force_fn: Callable,
    params,
    x0,
    key,
    *,
    step_size: float = 0.1,
    num_steps: int = 10,
    time_sampling: str = "uniform",
    antithetic: bool = False,
):
    """Draw ``(x_t, v_t, t)``: ``v0 ~ N(0, I)``, ``t ~ U(0, T]``, leapfrog under ``F_theta``.

    ``T = num_steps * step_size``.  Two ways to reach a random time, both
    ``num_steps`` force evaluations and differentiable in ``params``:

    * ``"uniform"``: each row gets its own ``t ~ U(0, T]`` and is integrated with
      ``num_steps`` leapfrog steps of size ``t / num_steps`` (continuous times, and the
      step is never larger than ``step_size``);
    * ``"grid"``: one trajectory with step ``step_size``
      (``leapfrog(..., return_trajectory=True)``), and each row is read at a random grid
      time ``t = k * step_size``, ``k ~ U{1..num_steps}``.

    With ``antithetic=True`` every row is simulated twice, from ``v0`` and ``-v0`` at the
    same time (``2 batch`` rows, twice the cost): the pair cancels the part of the HSM
    loss's noise that is odd in ``v0``.

    Args:
        force_fn: ``(params, x) -> (batch, d)``, the force ``F_theta``.
        params: force params ``theta``.
        x0: ``(batch, d)`` data.
        key: ``jax.random`` key.

    Returns:
        ``(x_t, v_t, t)`` with shapes ``(n, d), (n, d), (n,)``, ``n = batch`` (``2 batch``
        when antithetic).
    """
    check_score_fn("force_fn", force_fn)
    x0 = check_points("x", x0)
    check_positive_scalar("step_size", step_size)
    num_steps = check_positive_int("num_steps", num_steps)
    check_choice("time_sampling", time_sampling, TIME_SAMPLING)
    antithetic = check_flag("antithetic", antithetic)
    check_key("key", key)
    v_key, t_key = jax.random.split(key)
    v0 = jax.random.normal(v_key, x0.shape, x0.dtype)
    force = lambda y: call_field("force", force_fn, params, y)
    batch = x0.shape[0]
    horizon = num_steps * step_size
    if time_sampling == "uniform":
        # 1 - U[0, 1) lies in (0, 1]: t = 0 (no motion, no signal) is never drawn
        t = horizon * (1.0 - jax.random.uniform(t_key, (batch,), x0.dtype))
    else:
        k = jax.random.randint(t_key, (batch,), 0, num_steps)
        t = (k + 1).astype(x0.dtype) * step_size
    if antithetic:
        x0, v0, t = jnp.concatenate([x0, x0]), jnp.concatenate([v0, -v0]), jnp.concatenate([t, t])
        batch = 2 * batch
    if time_sampling == "uniform":
        x_t, v_t = leapfrog(force, x0, v0, (t / num_steps)[:, None], num_steps)
        return x_t, v_t, t
    _, (xs, vs) = leapfrog(force, x0, v0, step_size, num_steps, return_trajectory=True)
    k = jnp.round(t / step_size).astype(jnp.int32) - 1
    rows = jnp.arange(batch)
    return xs[k, rows], vs[k, rows], t


def hsm_velocity_loss(
    velocity_fn: Callable, velocity_params, x_t, v_t, t, baseline=None
) -> jax.Array:
    """``E [ ||V_phi(x_t, t)||^2 - 2 V_phi(x_t, t)^T v_t ]`` on simulated pairs (HSM loss).

    ``velocity_fn(params, x, t) -> (batch, d)``; ``x_t, v_t: (batch, d)``; ``t: (batch,)``;
    ``baseline``: ``None`` or ``(batch, d)`` added to the prediction (the predictor is then
    ``V = baseline + velocity_fn``).
    """
    check_score_fn("velocity_fn", velocity_fn)
    pred = call_field("velocity", velocity_fn, velocity_params, x_t, t)
    if baseline is not None:
        pred = pred + baseline
    return jnp.mean(jnp.sum(pred**2 - 2.0 * pred * v_t, axis=-1))


def hamiltonian_score_matching(
    force_fn: Callable,
    params,
    x,
    key,
    *,
    velocity_fn: Callable,
    velocity_params,
    step_size: float = 0.1,
    num_steps: int = 10,
    time_sampling: str = "uniform",
    antithetic: bool = False,
    force_baseline: bool = False,
    force_gradient: str = "full",
) -> jax.Array:
    """The HSM loss ``L_hsm(phi | theta)`` (Holderrieth et al. 2024, Sec. 4).

    ``L_hsm(phi | theta) = E_{z ~ pi_BG, t ~ U(0,T]} [ ||V(x_t, t)||^2
    - 2 V(x_t, t)^T v_t ]`` with ``(x_t, v_t)`` from :func:`simulate_phase_space`.

    **Signs**: minimise this over the velocity params ``phi``; its negative at the optimal
    ``phi`` is the Hamiltonian score discrepancy ``D(theta) >= 0``, which the force params
    ``theta`` minimise -- i.e. ``theta`` *ascends* this value (``min_theta max_phi -L``).
    A loss for one optimiser over both players is this value with the ``theta`` gradient
    negated (:func:`numpyro_hgf.train.hsm_optimizer`).

    **The velocity predictor** is ``V = V_phi(x, t)`` or, with ``force_baseline=True``,

        V(x, t) = t F_theta(x) + V_phi(x, t)        (theta held fixed inside V)

    -- the known part of the small-time form ``E[v_t | x_t] = t (F - grad log p_t) + O(t^2)``
    (Tweedie: ``x_t ~ x0 + t v0`` is ``x0`` blurred at scale ``t``), so ``V_phi / t`` learns
    ``-grad log p_t``, a target that does not move with ``theta``, instead of the residual
    ``F_theta - grad log pi``, which does.  ``theta`` enters ``V`` through
    ``stop_gradient``: the class of predictors is re-indexed, the game is unchanged.

    **The force's gradient** (``force_gradient``; the value is ``L_hsm`` in every case):

    * ``"full"``: the exact partial gradient through the simulated ``(x_t, v_t)`` with
      ``phi`` fixed -- Danskin's gradient of ``D(theta)`` at ``phi = phi*``;
    * ``"velocity"``: only through ``v_t`` (``x_t`` is held fixed in ``V``'s input).  The
      dropped term ``2 E[(V - v_t)^T dV/dx dx_t/dtheta]`` vanishes with ``V* = 0`` at the
      true score, so the fixed point is the same, and it carries most of the noise;
    * ``"taylor"``: the gradient of the small-time form ``D(theta | t) = t^2 E||F -
      grad log pi||^2 + O(t^3)`` (Proposition 2) with ``t (F - grad log pi)`` replaced by
      the predictor ``V``:

          dD/dtheta ~ 2 E[ t V(x_t, t)^T dF_theta(x_t)/dtheta ]                    (Eq. T)

      -- ``F`` is pulled pointwise towards ``F - V / t`` at the simulated points, without
      differentiating through the leapfrog (cheaper).  It vanishes iff ``V = 0`` wherever
      the data go, so its fixed point is again ``F = grad log pi`` (Theorem 1).

    Args:
        force_fn: ``(params, x) -> (batch, d)``, the force (= score model) ``F_theta``;
            for an energy model use :func:`~numpyro_hgf.objectives.score_from_energy`.
        params: force params ``theta``.
        x: ``(batch, d)`` data (the ``x0``).
        key: ``jax.random`` key (velocities ``v0`` and times ``t``).
        velocity_fn: ``(params, x, t) -> (batch, d)``, the predictor ``V_phi``.
        velocity_params: ``phi``.
        step_size, num_steps: leapfrog step ``> 0`` and count; ``T = num_steps * step_size``.
        time_sampling: ``"uniform"`` or ``"grid"`` (see :func:`simulate_phase_space`).
        antithetic: simulate ``+-v0`` pairs (see :func:`simulate_phase_space`).
        force_baseline: add ``t F_theta(x_t)`` (fixed) to the predictor.
        force_gradient: ``"full"``, ``"velocity"`` or ``"taylor"`` (above).

    Returns:
        The scalar ``L_hsm``.
    """
    check_choice("force_gradient", force_gradient, FORCE_GRADIENTS)
    check_score_fn("velocity_fn", velocity_fn)
    force_baseline = check_flag("force_baseline", force_baseline)
    x_t, v_t, t = simulate_phase_space(
        force_fn,
        params,
        x,
        key,
        step_size=step_size,
        num_steps=num_steps,
        time_sampling=time_sampling,
        antithetic=antithetic,
    )
    if force_gradient != "full":
        x_t = jax.lax.stop_gradient(x_t)
    if force_gradient == "taylor":
        v_t = jax.lax.stop_gradient(v_t)
    baseline = None
    if force_baseline:  # theta fixed inside V; V still depends on its input x_t
        baseline = t[:, None] * call_field("force", force_fn, jax.lax.stop_gradient(params), x_t)
    loss = hsm_velocity_loss(velocity_fn, velocity_params, x_t, v_t, t, baseline)
    if force_gradient == "taylor":
        force = call_field("force", force_fn, params, x_t)
        fixed = jax.lax.stop_gradient(force)
        pred = call_field("velocity", velocity_fn, velocity_params, x_t, t)
        pred = jax.lax.stop_gradient(pred if baseline is None else pred + baseline)
        # value 0; theta-gradient -2 E[t V^T dF(x_t)/dtheta] (Eq. T; theta ascends L)
        loss = loss - 2.0 * jnp.mean(jnp.sum(t[:, None] * pred * (force - fixed), axis=-1))
    return loss
