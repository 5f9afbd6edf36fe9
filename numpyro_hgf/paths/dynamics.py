"""Hamiltonian dynamics ``dx/dt = v, dv/dt = F(x)``: a symplectic integrator and two
closed-form motions used by the Hamiltonian generative flows.

All functions are pure, ``jit``/``vmap``/``grad``-able and return ``(x_t, v_t)`` with the
shapes of ``(x0, v0)``; positions and velocities may carry any leading batch dims.

* :func:`leapfrog` -- velocity Verlet for any position-only force (a learned force field,
  ``grad log pi``, ...).  Symplectic, hence volume preserving (``log|det J| = 0``), and
  time reversible: ``leapfrog(F, *flip(leapfrog(F, x, v, h, n)), h, n) == flip(x, v)``
  with ``flip(x, v) = (x, -v)``.
* :func:`harmonic` -- exact motion under ``F(x) = -omega^2 x`` (oscillation HGF).
* :func:`reflect` -- free motion in a box with elastic walls, exact by folding (reflection
  HGF).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks import (
    check_callable,
    check_positive_int,
    check_positive_values,
    is_concrete,
)

__all__ = ["leapfrog", "harmonic", "reflect", "fold_into_box"]


def leapfrog(force: Callable, x, v, dt, num_steps: int, *, return_trajectory: bool = False):
    """Velocity-Verlet (leapfrog) integration of ``dx/dt = v, dv/dt = F(x)``.

    One step of size ``h`` (Hairer, Lubich & Wanner 2006, eq. I.1.17)::

        v_half = v + h/2 F(x);   x' = x + h v_half;   v' = v_half + h/2 F(x')

    The map ``(x, v) -> (x', v')`` is a composition of shears, so ``det J = 1`` exactly,
    whatever ``F`` (a learned force included).

    Args:
        force: ``F(x) -> (same shape as x)``.
        x, v: positions and velocities, same shape ``(..., d)``.
        dt: step size ``h > 0`` (run backwards in time by flipping ``v``).
        num_steps: number of steps (static).
        return_trajectory: also return the positions and velocities after every step,
            stacked on a new leading axis of length ``num_steps``.

    Returns:
        ``(x_T, v_T)`` at ``T = num_steps * dt``, or ``((x_T, v_T), (xs, vs))``.
    """
    check_callable("force", force, "a callable F(x) -> (shape of x)")
    num_steps = check_positive_int("num_steps", num_steps)
    check_positive_values("dt", dt)
    if jnp.shape(x) != jnp.shape(v):
        raise ValueError(
            f"v: expected the shape of x {jnp.shape(x)}, got an array of shape {jnp.shape(v)}"
        )
    half = 0.5 * dt

    def step(carry, _):
        x, v, f = carry
        v_half = v + half * f
        x = x + dt * v_half
        f = force(x)
        v = v_half + half * f
        return (x, v, f), ((x, v) if return_trajectory else None)

    (x, v, _), trajectory = jax.lax.scan(step, (x, v, force(x)), None, length=num_steps)
    return ((x, v), trajectory) if return_trajectory else (x, v)


def harmonic(x0, v0, t, omega):
    """Exact motion under the harmonic force ``F(x) = -omega^2 x``.

    ``x_t = x0 cos(omega t) + (v0 / omega) sin(omega t)``,
    ``v_t = -omega x0 sin(omega t) + v0 cos(omega t)``.

    Args:
        x0, v0: ``(..., d)``.
        t: times broadcastable against ``x0[..., 0]`` (e.g. ``()`` or ``(batch,)``).
        omega: angular frequency ``> 0``.
    """
    check_positive_values("omega", omega)
    t = jnp.asarray(t)[..., None]
    c, s = jnp.cos(omega * t), jnp.sin(omega * t)
    return x0 * c + (v0 / omega) * s, -omega * x0 * s + v0 * c


def fold_into_box(y, low, high):
    """Fold unconstrained positions ``y`` into ``[low, high]`` (mirror images at the walls).

    Returns ``(x, sign)`` with ``x`` in the box and ``sign = +-1`` the parity of the number
    of wall crossings (the factor that multiplies the velocity).  Period ``2 (high - low)``.
    """
    width = high - low
    u = jnp.mod(y - low, 2 * width)
    forward = u <= width
    x = low + jnp.where(forward, u, 2 * width - u)
    return x, jnp.where(forward, 1.0, -1.0).astype(jnp.result_type(y))


def reflect(x0, v0, t, low, high):
    """Free motion in the box ``[low, high]^d`` with elastic walls, exact by folding.

    Unfolded, a particle moves on a straight line ``y = x0 + v0 t``; its position in the
    box is the mirror image :func:`fold_into_box` of ``y`` and its velocity is ``v0`` with
    the sign flipped once per wall hit.  Each coordinate keeps ``|v|``.

    Args:
        x0: ``(..., d)`` inside ``[low, high]``.
        v0: ``(..., d)``.
        t: broadcastable against ``x0[..., 0]``.
        low, high: scalars or ``(d,)`` arrays with ``low < high``.
    """
    box_known = is_concrete(low) and is_concrete(high)
    for name, bound in (("low", low), ("high", high)):
        dtype = np.asarray(bound).dtype if is_concrete(bound) else np.dtype(float)
        if np.issubdtype(dtype, np.bool_) or not np.issubdtype(dtype, np.number):
            raise TypeError(f"{name}: expected a number or a (d,) array, got {bound!r}")
    if box_known and not bool(np.all(np.asarray(high) > np.asarray(low))):
        raise ValueError(f"high: expected values greater than low={low}, got {high}")
    if box_known and is_concrete(x0):
        x0_np, low_np, high_np = np.asarray(x0), np.asarray(low), np.asarray(high)
        if not bool(np.all((x0_np >= low_np) & (x0_np <= high_np))):
            raise ValueError(
                f"x0: expected positions inside the box [{low}, {high}], got some outside"
            )
    low, high = jnp.asarray(low), jnp.asarray(high)
    t = jnp.asarray(t)[..., None]
    x, sign = fold_into_box(x0 + v0 * t, low, high)
    return x, v0 * sign
