"""One-compartment pharmacokinetics as an ODE (diffrax), doses as jumps of the state.

The same model as :func:`~numpyro_hgf.models.pk.one_compartment_oral_doses`, solved
numerically, so that it extends to kinetics without a closed form (nonlinear elimination,
time-varying parameters).  Depot ``A_d`` and central ``A_c`` amounts::

    dA_d/dt = -ka A_d,        dA_c/dt = ka A_d - (CL / V) A_c,        C = A_c / V

(Gibaldi & Perrier, *Pharmacokinetics*, 2nd ed., ch. 1).  Between consecutive dose times the
ODE is integrated by diffrax (Kidger 2021; Tsit5, adaptive steps); at each dose time the dose
amount is added to its compartment (``dose_cmt`` 1: depot, 2: central, i.e. an IV bolus), and
at an EVID 4 reset (a dose whose earlier doses' ``dose_end`` has come) the state is emptied
first.  ``dose_rate`` is ignored (boluses only).
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp

from numpyro_hgf.models.pk import dose_records

__all__ = ["one_compartment_oral_ode"]


def _vector_field(t, x, args):
    ka, ke = args
    return jnp.stack([-ka * x[0], ka * x[0] - ke * x[1]])


def _segment(x0, t0, t1, times, args, rtol, atol):
    """Integrate from ``(t0, x0)`` to ``t1``: ``(state at t1, (T, 2) states at the times
    clipped to [t0, t1])``."""
    ts = jnp.clip(times, t0, t1)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_vector_field),
        diffrax.Tsit5(),
        t0,
        t1,
        None,
        x0,
        args,
        saveat=diffrax.SaveAt(ts=jnp.concatenate([ts, t1[None]])),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        adjoint=diffrax.DirectAdjoint(),  # forward and reverse mode (FOCE-I uses both)
        max_steps=4096,
    )
    return sol.ys[-1], sol.ys[:-1]


def one_compartment_oral_ode(theta, eta, covariates, times, *, rtol=1e-10, atol=1e-12):
    """One compartment, first-order absorption, doses as jumps: ``(T,)`` concentrations.

    Segment ``k`` runs from dose time ``t_k`` to ``t_{k+1}`` (the last one to the latest
    observation time); an observation at ``t`` takes the segment with ``t_k <= t < t_{k+1}``,
    and is 0 before the first dose.

    Args:
        theta: dict with scalars ``log_ka`` (1/h), ``log_cl`` (L/h), ``log_v`` (L).
        eta: ``(3,)`` random effects (ka, CL, V; log-normal).
        covariates: dict with ``(D,)`` ``dose_time`` (h, non-decreasing, as
            :func:`~numpyro_hgf.models.nlme.read_events` gives them), ``dose_amt`` (mg),
            optionally ``dose_cmt`` (1 depot, default; 2 central), ``dose_end``,
            ``dose_mask``.
        times: ``(T,)`` hours.
        rtol, atol: tolerances of the adaptive step size.

    Returns:
        ``(T,)`` concentrations (mg/L).
    """
    ka = jnp.exp(theta["log_ka"] + eta[0])
    cl = jnp.exp(theta["log_cl"] + eta[1])
    v = jnp.exp(theta["log_v"] + eta[2])
    doses = dose_records(covariates)
    cmt = jnp.broadcast_to(jnp.asarray(covariates.get("dose_cmt", 1.0)), doses["time"].shape)
    t_dose, n = doses["time"], doses["time"].shape[0]
    last = jnp.maximum(jnp.max(times), t_dose[-1])
    starts, ends = t_dose, jnp.concatenate([t_dose[1:], last[None]])
    # a reset empties the state: the end of an earlier dose falls in (t_{k-1}, t_k]; a dose
    # at or after its own end (an ADDL dose past a reset) adds nothing
    earlier = jnp.arange(n)[None, :] < jnp.arange(n)[:, None]
    previous = jnp.concatenate([jnp.full((1,), -jnp.inf, t_dose.dtype), t_dose[:-1]])
    end = doses["end"][None, :]
    due = (end > previous[:, None]) & (end <= t_dose[:, None]) & (doses["mask"] > 0)[None, :]
    reset = jnp.any(earlier & due, axis=1)
    counts = (doses["mask"] > 0) & (t_dose < doses["end"])
    amount = jnp.where(counts, doses["amt"], 0.0)
    args = (ka, cl / v)

    def step(x, k):
        x = jnp.where(reset[k], jnp.zeros_like(x), x)
        jump = jnp.where(cmt[k] >= 2, jnp.array([0.0, 1.0]), jnp.array([1.0, 0.0]))
        x = x + amount[k] * jump.astype(x.dtype)
        x1, xs = _segment(x, starts[k], ends[k], times, args, rtol, atol)
        is_last = k == n - 1
        inside = (times >= starts[k]) & ((times < ends[k]) | (is_last & (times <= ends[k])))
        return x1, jnp.where(inside, xs[:, 1], 0.0)

    x0 = jnp.zeros((2,), jnp.result_type(times, ka))
    _, central = jax.lax.scan(step, x0, jnp.arange(n))
    return jnp.sum(central, axis=0) / v
