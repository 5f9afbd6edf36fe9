"""The one ODE module: sampling and log-likelihood of every ODE model (CNF, HGF, PF-ODE).

A field ``f(x, t)`` maps a batch ``x: (batch, *event_shape)`` and a scalar time ``t`` to
``dx/dt`` of the same shape.  The model convention is the continuous-normalizing-flow one
(Chen et al. 2018): the base ``p_{t0}`` lives at ``t0`` and the data at ``t1``; sampling
integrates ``dx/dt = f(x, t)`` from ``t0`` to ``t1`` (``t1 < t0`` is fine: HGFs and
diffusion run from ``T`` back to ``0``).

Log-likelihood by the instantaneous change of variables (Chen et al. 2018, Thm. 1;
Grathwohl et al. 2019, eq. 4): ``d log p(x_t)/dt = -tr(df/dx)``, so integrating the
augmented state ``(x, l)`` with ``dl/dt = tr(df/dx)`` from ``y`` at ``t1`` back to ``t0``
gives ``z = x(t0)`` and

    log p(y) = log p_{t0}(z) + l(t0),     l(t0) = -int_{t0}^{t1} tr(df/dx)(x_t, t) dt.

The trace is exact (``d`` forward-mode JVPs; the default for ``d <= 16``) or Hutchinson's
estimator ``E[eps^T (df/dx) eps]`` with ``k`` Rademacher or Gaussian probes held fixed
along the solve (Grathwohl et al. 2019, eq. 7).  Solves go through diffrax and are
differentiable (``RecursiveCheckpointAdjoint``), so ``log_prob`` works under ``grad``,
NUTS and SVI.

Solvers: fixed-step ``"euler"`` (1 evaluation a step), ``"heun"`` (2), ``"rk4"`` (4) at a
chosen number of function evaluations, or adaptive ``"tsit5"`` / ``"dopri5"`` with
tolerances.  Every solve reports its NFE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks import check_choice, check_positive_float, check_positive_int

__all__ = [
    "ODESolver",
    "ODEResult",
    "SOLVERS",
    "SPACINGS",
    "TRACE_ESTIMATORS",
    "solve_ode",
    "ode_log_prob",
    "divergence_exact",
    "divergence_hutchinson",
]


class RK4(diffrax.AbstractERK):
    """The classical 4-stage, 4th-order Runge--Kutta method (fixed steps only)."""

    tableau: ClassVar[diffrax.ButcherTableau] = diffrax.ButcherTableau(
        c=np.array([0.5, 0.5, 1.0]),
        b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=np.zeros(4),
        a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
    )
    interpolation_cls: ClassVar[Callable] = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms):
        del terms
        return 4


# name -> (solver class, function evaluations per step, adaptive)
SOLVERS = {
    "euler": (diffrax.Euler, 1, False),
    "heun": (diffrax.Heun, 2, False),
    "rk4": (RK4, 4, False),
    "tsit5": (diffrax.Tsit5, 6, True),
    "dopri5": (diffrax.Dopri5, 6, True),
}
TRACE_ESTIMATORS = ("exact", "hutchinson")
SPACINGS = ("uniform", "log")


@dataclass(frozen=True)
class ODESolver:
    """How to integrate: a hashable, JSON-friendly description.

    Args:
        name: ``"euler"``, ``"heun"``, ``"rk4"`` (fixed step) or ``"tsit5"``, ``"dopri5"``
            (adaptive).
        nfe: for fixed-step solvers, the number of function evaluations; the number of
            steps is ``nfe // evaluations_per_step`` (at least 1).
        rtol, atol: tolerances of the adaptive solvers.
        max_steps: cap on the adaptive steps.
        spacing: where the steps go in time: ``"uniform"`` in ``t`` or ``"log"``, uniform in
            ``log t`` (``t0`` and ``t1`` of one sign, neither 0), i.e. geometrically denser
            towards the endpoint nearer 0.  ``"log"`` suits the probability-flow ODE of a
            diffusion, whose field stiffens as ``t -> eps`` (the noise scale ``sigma(t) ~
            sqrt(t)`` there: steps uniform in ``log sigma``, as Karras et al. 2022 space
            theirs); it applies to adaptive solvers too (their initial step).
    """

    name: str = "tsit5"
    nfe: int = 100
    rtol: float = 1e-5
    atol: float = 1e-5
    max_steps: int = 4096
    spacing: str = "uniform"

    def __post_init__(self):
        check_choice("solver", self.name, SOLVERS)
        check_choice("spacing", self.spacing, SPACINGS)
        check_positive_int("nfe", self.nfe)
        check_positive_float("rtol", self.rtol)
        check_positive_float("atol", self.atol)
        check_positive_int("max_steps", self.max_steps)

    @property
    def adaptive(self) -> bool:
        return SOLVERS[self.name][2]

    @property
    def num_steps(self) -> int:
        """Fixed steps used by a fixed-step solver."""
        return max(1, self.nfe // SOLVERS[self.name][1])

    @classmethod
    def of(cls, solver) -> ODESolver:
        """Accept an ``ODESolver``, a solver name, or a dict of fields."""
        if isinstance(solver, ODESolver):
            return solver
        if isinstance(solver, str):
            return cls(name=solver)
        if isinstance(solver, dict):
            return cls(**solver)
        raise TypeError(f"solver: expected an ODESolver, a solver name or a dict, got {solver!r}")

    def _nfe(self, stats) -> jax.Array:
        per_step = SOLVERS[self.name][1]
        steps = stats["num_steps"]
        return steps * per_step + (1 if self.adaptive else 0)


class ODEResult(NamedTuple):
    """``value``: the solution (or log-density); ``nfe``: function evaluations used."""

    value: jax.Array
    nfe: jax.Array


def _check_log_spacing(t0, t1) -> None:
    """``spacing="log"`` needs both ends of one sign and non-zero (checked when concrete)."""
    try:
        a, b = float(t0), float(t1)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return
    if a == 0.0 or b == 0.0 or (a > 0) != (b > 0):
        raise ValueError(
            f"spacing: 'log' needs t0 and t1 of one sign and neither 0, got t0={a}, t1={b} "
            "(use spacing='uniform')"
        )


def _diffeqsolve(vector_field, y0, t0, t1, solver: ODESolver):
    if solver.spacing == "log":
        _check_log_spacing(t0, t1)
    t0 = jnp.asarray(t0, jnp.result_type(float))
    t1 = jnp.asarray(t1, jnp.result_type(float))
    cls = SOLVERS[solver.name][0]
    if solver.adaptive:
        controller = diffrax.PIDController(rtol=solver.rtol, atol=solver.atol)
        dt0, max_steps = None, solver.max_steps
    else:
        controller = diffrax.ConstantStepSize()
        dt0, max_steps = 1.0 / solver.num_steps, solver.num_steps
    # The solve runs in the unit time s in [0, 1], t = t0 + s (t1 - t0), dy/ds = (t1 - t0) f:
    # the same steps and evaluation times, but diffrax's interval checks see constants, so the
    # program has no host callback (equinox's error_if) and JAX's persistent cache keeps it.
    # spacing="log": t = t0 (t1 / t0)^s, so dt/ds = t log(t1 / t0) (uniform steps in log t).
    if solver.spacing == "log":
        log_ratio = jnp.log(t1 / t0)

        def time_of(s):
            t = t0 * jnp.exp(s * log_ratio)
            return t, t * log_ratio

    else:
        span = t1 - t0

        def time_of(s):
            return t0 + s * span, span

    def unit_time_field(s, y, args):
        t, dt_ds = time_of(s)
        return jax.tree.map(lambda v: dt_ds * v, vector_field(y, t))

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(unit_time_field),
        cls(),
        0.0,
        1.0,
        dt0,
        y0,
        stepsize_controller=controller,
        max_steps=max_steps,
        adjoint=diffrax.RecursiveCheckpointAdjoint(),
        throw=False,
    )
    # A failed solve (the adaptive solver ran out of steps, say) is NaN, never an error
    # raised from inside a jitted potential: NUTS then counts a divergence.
    ok = sol.result == diffrax.RESULTS.successful
    final = jax.tree.map(lambda leaf: jnp.where(ok, leaf[-1], jnp.nan), sol.ys)
    return final, solver._nfe(sol.stats)


def solve_ode(field: Callable, x, t0, t1, solver="tsit5") -> ODEResult:
    """Integrate ``dx/dt = field(x, t)`` from ``x`` at ``t0`` to ``t1``.

    Args:
        field: ``(x: (batch, *event_shape), t: ()) -> (batch, *event_shape)``.
        x: initial state ``(batch, *event_shape)``.
        solver: an :class:`ODESolver` (or a solver name).

    Returns:
        ``ODEResult(x(t1), nfe)``; ``x(t1)`` is NaN when the solve fails (an adaptive
        solver out of ``max_steps``).
    """
    solver = ODESolver.of(solver)
    final, nfe = _diffeqsolve(field, x, t0, t1, solver)
    return ODEResult(final, nfe)


def divergence_exact(field: Callable, x, t):
    """Exact ``tr(df/dx)`` per batch element: ``x: (batch, *event) -> (batch,)``.

    ``d`` forward-mode JVPs (one per coordinate, vectorised), each on the whole batch.
    The field must act independently on batch elements (as any per-sample network does).
    """
    batch, event = x.shape[0], x.shape[1:]
    dim = int(np.prod(event))
    flat = lambda xf: field(xf.reshape(batch, *event), t).reshape(batch, dim)
    xf = x.reshape(batch, dim)
    basis = jnp.eye(dim, dtype=x.dtype)

    def diag_entry(e):
        _, jvp = jax.jvp(flat, (xf,), (jnp.broadcast_to(e, xf.shape),))
        return jvp @ e  # (batch,)

    return jnp.sum(jax.vmap(diag_entry)(basis), axis=0)


def divergence_hutchinson(field: Callable, x, t, probes):
    """Hutchinson's estimate ``mean_k eps_k^T (df/dx) eps_k``.

    ``x: (batch, *event)``, ``probes: (k, batch, *event)`` or ``(k, *event)`` (the same
    probes for every batch element) -> ``(batch,)``.
    """
    if probes.ndim == x.ndim:  # one set of probes for the whole batch
        probes = probes[:, None]
    probes = jnp.broadcast_to(probes, (probes.shape[0], *x.shape)).astype(x.dtype)
    batch = x.shape[0]

    def one(eps):
        _, jvp = jax.jvp(lambda y: field(y, t), (x,), (eps,))
        return jnp.sum((jvp * eps).reshape(batch, -1), axis=-1)

    return jnp.mean(jax.vmap(one)(probes), axis=0)


def draw_probes(key, shape, num_probes: int, kind: str = "rademacher", dtype=jnp.float32):
    """``(num_probes, *shape)`` probes with ``E[eps eps^T] = I``."""
    check_choice("probe", kind, ("rademacher", "gaussian"))
    full = (num_probes, *shape)
    if kind == "gaussian":
        return jax.random.normal(key, full, dtype)
    return jax.random.rademacher(key, full, dtype)


def ode_log_prob(
    field: Callable,
    y,
    t0,
    t1,
    base_log_prob: Callable,
    solver="tsit5",
    *,
    trace: str = "exact",
    key=None,
    num_probes: int = 1,
    probe: str = "rademacher",
) -> ODEResult:
    """``log p(y)`` of the ODE model with base ``p_{t0}`` at ``t0`` and data at ``t1``.

    Args:
        field: ``(x: (batch, *event), t: ()) -> (batch, *event)``.
        y: data ``(batch, *event)``.
        t0, t1: base time and data time.
        base_log_prob: ``(batch, *event) -> (batch,)``.
        solver: :class:`ODESolver` or name.
        trace: ``"exact"`` or ``"hutchinson"`` (needs ``key``; ``num_probes`` probes of
            kind ``probe``).  The probes are drawn for one event and shared by every batch
            element, so a point's estimate does not depend on the batch it is evaluated in
            (alone, or at any position of any batch, it is the same number).

    Returns:
        ``ODEResult(log_prob: (batch,), nfe)``; NaN when the solve fails.
    """
    solver = ODESolver.of(solver)
    check_choice("trace", trace, TRACE_ESTIMATORS)
    if trace == "hutchinson":
        if key is None:
            raise TypeError("key: the Hutchinson trace estimator needs a jax.random key, got None")
        probes = draw_probes(
            key, y.shape[1:], check_positive_int("num_probes", num_probes), probe, y.dtype
        )
        divergence = lambda x, t: divergence_hutchinson(field, x, t, probes)
    else:
        divergence = lambda x, t: divergence_exact(field, x, t)

    def augmented(state, t):
        x, _ = state
        return field(x, t), divergence(x, t)

    init = (y, jnp.zeros(y.shape[0], y.dtype))
    (z, integral), nfe = _diffeqsolve(augmented, init, t1, t0, solver)
    return ODEResult(base_log_prob(z) + integral, nfe)
