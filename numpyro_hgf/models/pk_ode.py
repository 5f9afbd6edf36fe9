"""Compartmental pharmacokinetics as ODEs (diffrax): boluses as jumps, infusions as inputs.

The structural models here solve linear and nonlinear compartment systems numerically, so
they cover kinetics without a closed form (Michaelis-Menten elimination) and check the
closed forms of :mod:`numpyro_hgf.models.pk`.  Amounts ``A`` in ``n`` compartments obey::

    dA/dt = g(t, A; params) + u(t)

with ``g`` the kinetics of the model and ``u`` the zero-order inputs of the running infusions
(Gibaldi & Perrier, *Pharmacokinetics*, 2nd ed., ch. 1-2 and 7).  Dose records (NONMEM
convention, :func:`~numpyro_hgf.models.nlme.read_events`) enter by :func:`solve_compartments`:

* a dose with ``dose_rate`` 0 is a bolus: ``dose_amt`` is added to compartment ``dose_cmt``
  (1-based: 1 the depot, 2 the central compartment for the oral models; so ``dose_cmt`` 2 is
  an IV bolus) at ``dose_time``;
* a dose with ``dose_rate`` ``R > 0`` is an infusion into ``dose_cmt`` at rate ``R`` over
  ``dose_amt / R`` hours;
* an EVID 4 reset (the dose at which earlier doses' ``dose_end`` falls) empties every
  compartment and stops the running infusions, then doses.

Time is cut at every dose start and infusion end; on each piece ``u`` is constant and diffrax
(Kidger 2021; Tsit5 with a PID step-size controller) integrates ``g + u``.  The solves use
``DirectAdjoint``, so forward and reverse mode both work (FOCE-I uses both), and every model
is differentiable in ``theta`` and ``eta``: Laplace / FOCE-I, SVI and NUTS take them unchanged.

Individual parameters are log-normal, ``p = exp(log_p + eta_i)`` in each model's order;
``eta`` may be shorter than the list (the remaining parameters have no random effect).
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp

from numpyro_hgf._checks import check_positive_float, check_positive_int, is_concrete
from numpyro_hgf.models.pk import dose_records, log_normal_parameters

__all__ = [
    "solve_compartments",
    "one_compartment_oral_ode",
    "two_compartment_oral_ode",
    "michaelis_menten_oral_ode",
]


def _segment(kinetics, x0, t0, t1, times, args, rtol, atol, max_steps):
    """Integrate from ``(t0, x0)`` to ``t1``: ``(state at t1, (T, n) states at the times
    clipped to [t0, t1])``."""

    def field(t, x, args):
        params, inputs = args
        return kinetics(t, x, params) + inputs

    ts = jnp.clip(times, t0, t1)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Tsit5(),
        t0,
        t1,
        None,
        x0,
        args,
        saveat=diffrax.SaveAt(ts=jnp.concatenate([ts, t1[None]])),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        adjoint=diffrax.DirectAdjoint(),  # forward and reverse mode (FOCE-I uses both)
        max_steps=max_steps,
    )
    return sol.ys[-1], sol.ys[:-1]


def _resets(doses):
    """``(D,)`` whether dose ``k`` starts with a reset: an earlier dose's ``end`` falls in
    ``(t_{k-1}, t_k]``."""
    t_dose, n = doses["time"], doses["time"].shape[0]
    earlier = jnp.arange(n)[None, :] < jnp.arange(n)[:, None]
    previous = jnp.concatenate([jnp.full((1,), -jnp.inf, t_dose.dtype), t_dose[:-1]])
    end = doses["end"][None, :]
    due = (end > previous[:, None]) & (end <= t_dose[:, None]) & (doses["mask"] > 0)[None, :]
    return jnp.any(earlier & due, axis=1)


def solve_compartments(
    kinetics,
    params,
    num_compartments: int,
    covariates,
    times,
    *,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_steps: int = 4096,
):
    """Amounts of a compartment model under the dose records: ``(T, num_compartments)``.

    Args:
        kinetics: ``g(t, A, params) -> (n,)``, ``dA/dt`` without the dose inputs.
        params: a pytree passed to ``kinetics``.
        num_compartments: ``n``.
        covariates: dict with ``(D,)`` ``dose_time`` (h, non-decreasing, as
            :func:`~numpyro_hgf.models.nlme.read_events` gives them) and ``dose_amt``;
            optionally ``dose_rate`` (0 bolus, else an infusion at that rate),
            ``dose_cmt`` (1-based compartment, default 1), ``dose_end``, ``dose_mask``.
        times: ``(T,)`` hours, non-decreasing.
        rtol, atol, max_steps: the adaptive solver's tolerances and step budget.

    Returns:
        ``(T, n)`` amounts; 0 before the first dose.  An observation at a dose time sees the
        state after the dose.
    """
    if not callable(kinetics):
        raise TypeError(f"kinetics: expected a callable g(t, A, params), got {kinetics!r}")
    n = check_positive_int("num_compartments", num_compartments)
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if is_concrete(tol):  # static settings; a traced tolerance passes unchecked
            check_positive_float(name, tol)
    max_steps = check_positive_int("max_steps", max_steps)
    doses = dose_records(covariates)
    t_dose, num_doses = doses["time"], doses["time"].shape[0]
    cmt = jnp.broadcast_to(jnp.asarray(covariates.get("dose_cmt", 1.0)), t_dose.shape)
    onehot = jax.nn.one_hot(jnp.clip(jnp.round(cmt).astype(jnp.int32) - 1, 0, n - 1), n)
    counts = (doses["mask"] > 0) & (t_dose < doses["end"])
    rate = doses["rate"]
    infusion = counts & (rate > 0)
    bolus = jnp.where(counts & ~infusion, doses["amt"], 0.0)
    safe_rate = jnp.where(infusion, rate, 1.0)
    infusion_end = t_dose + jnp.where(infusion, doses["amt"] / safe_rate, 0.0)
    reset = _resets(doses)

    # events: every dose start (in record order), then every infusion end, sorted stably
    event_time = jnp.concatenate([t_dose, infusion_end])
    order = jnp.argsort(event_time, stable=True)
    starts = event_time[order]
    last = jnp.maximum(jnp.max(times), starts[-1])
    ends = jnp.concatenate([starts[1:], last[None]])
    dose_of = jnp.concatenate([jnp.arange(num_doses), jnp.full((num_doses,), -1)])[order]

    def step(x, k):
        j = jnp.maximum(dose_of[k], 0)
        is_start = dose_of[k] >= 0
        x = jnp.where(is_start & reset[j], jnp.zeros_like(x), x)
        x = x + jnp.where(is_start, bolus[j], 0.0) * onehot[j].astype(x.dtype)
        # the infusions running on [starts[k], ends[k]): constant there, since every start,
        # end and reset of an infusion is an event time
        running = infusion & (t_dose <= starts[k]) & (starts[k] < infusion_end)
        running = running & (starts[k] < doses["end"])
        inputs = jnp.sum(jnp.where(running, rate, 0.0)[:, None] * onehot, axis=0)
        args = (params, inputs.astype(x.dtype))
        x1, xs = _segment(kinetics, x, starts[k], ends[k], times, args, rtol, atol, max_steps)
        is_last = k == 2 * num_doses - 1
        inside = (times >= starts[k]) & ((times < ends[k]) | (is_last & (times <= ends[k])))
        return x1, jnp.where(inside[:, None], xs, 0.0)

    dtype = jnp.result_type(times, *jax.tree_util.tree_leaves(params), float)
    x0 = jnp.zeros((n,), dtype)
    _, pieces = jax.lax.scan(step, x0, jnp.arange(2 * num_doses))
    return jnp.sum(pieces, axis=0)


def _oral_one_compartment(t, x, params):
    ka, ke = params
    return jnp.stack([-ka * x[0], ka * x[0] - ke * x[1]])


def one_compartment_oral_ode(theta, eta, covariates, times, *, rtol=1e-10, atol=1e-12):
    """One compartment, first-order absorption: ``(T,)`` concentrations (mg/L).

    Depot ``A_d`` and central ``A_c`` (compartments 1 and 2)::

        dA_d/dt = -ka A_d,        dA_c/dt = ka A_d - (CL / V) A_c,        C = A_c / V

    (Gibaldi & Perrier, eq. 1.62 as an ODE); the same model as
    :func:`~numpyro_hgf.models.pk.one_compartment_oral_doses` (CMT 1) and
    :func:`~numpyro_hgf.models.pk.one_compartment_iv` (CMT 2), solved numerically.

    Args:
        theta: dict with scalars ``log_ka`` (1/h), ``log_cl`` (L/h), ``log_v`` (L).
        eta: ``(k,)`` random effects, ``k <= 3``, in the order ka, CL, V.
        covariates: the dose records of :func:`solve_compartments`.
        times: ``(T,)`` hours.
        rtol, atol: tolerances of the adaptive step size.
    """
    ka, cl, v = log_normal_parameters(theta, eta, ("log_ka", "log_cl", "log_v"))
    amounts = solve_compartments(
        _oral_one_compartment, (ka, cl / v), 2, covariates, times, rtol=rtol, atol=atol
    )
    return amounts[:, 1] / v


def _oral_two_compartment(t, x, params):
    ka, k10, k12, k21 = params
    depot, central, peripheral = x[0], x[1], x[2]
    return jnp.stack(
        [
            -ka * depot,
            ka * depot - (k10 + k12) * central + k21 * peripheral,
            k12 * central - k21 * peripheral,
        ]
    )


def two_compartment_oral_ode(theta, eta, covariates, times, *, rtol=1e-10, atol=1e-12):
    """Two compartments, first-order absorption: ``(T,)`` central concentrations (mg/L).

    Depot, central ``A_1`` (volume ``V1``) and peripheral ``A_2`` (``V2``), inter-compartmental
    clearance ``Q`` (compartments 1, 2, 3)::

        dA_d/dt = -ka A_d
        dA_1/dt = ka A_d - (CL + Q) / V1 A_1 + Q / V2 A_2
        dA_2/dt = Q / V1 A_1 - Q / V2 A_2,                     C = A_1 / V1

    (Gibaldi & Perrier, ch. 2; an IV bolus or infusion is ``dose_cmt`` 2, whose bolus curve
    is the bi-exponential ``A e^{-alpha t} + B e^{-beta t}`` of their eq. 2.6).

    Args:
        theta: dict with scalars ``log_ka`` (1/h), ``log_cl`` (L/h), ``log_v1`` (L),
            ``log_q`` (L/h), ``log_v2`` (L).
        eta: ``(k,)`` random effects, ``k <= 5``, in the order ka, CL, V1, Q, V2.
        covariates: the dose records of :func:`solve_compartments`.
        times: ``(T,)`` hours.
        rtol, atol: tolerances of the adaptive step size.
    """
    names = ("log_ka", "log_cl", "log_v1", "log_q", "log_v2")
    ka, cl, v1, q, v2 = log_normal_parameters(theta, eta, names)
    rates = (ka, cl / v1, q / v1, q / v2)
    amounts = solve_compartments(
        _oral_two_compartment, rates, 3, covariates, times, rtol=rtol, atol=atol
    )
    return amounts[:, 1] / v1


def _oral_michaelis_menten(t, x, params):
    ka, vmax, km, v = params
    concentration = x[1] / v
    elimination = vmax * concentration / (km + concentration)
    return jnp.stack([-ka * x[0], ka * x[0] - elimination])


def michaelis_menten_oral_ode(theta, eta, covariates, times, *, rtol=1e-10, atol=1e-12):
    """One compartment, first-order absorption, Michaelis-Menten elimination: ``(T,)`` mg/L.

    ::

        dA_d/dt = -ka A_d,    dA_c/dt = ka A_d - Vmax C / (Km + C),    C = A_c / V

    (Gibaldi & Perrier, ch. 7, eq. 7.3; ``Vmax`` an amount per hour).  For ``C << Km`` it is
    the linear model with ``CL = Vmax / Km``; an IV bolus (``dose_cmt`` 2) of ``C0 V`` decays
    as ``C(t) = Km W((C0 / Km) exp((C0 - Vmax t / V) / Km))``, ``W`` Lambert's function.

    Args:
        theta: dict with scalars ``log_ka`` (1/h), ``log_vmax`` (mg/h), ``log_km`` (mg/L),
            ``log_v`` (L).
        eta: ``(k,)`` random effects, ``k <= 4``, in the order ka, Vmax, Km, V.
        covariates: the dose records of :func:`solve_compartments`.
        times: ``(T,)`` hours.
        rtol, atol: tolerances of the adaptive step size.
    """
    names = ("log_ka", "log_vmax", "log_km", "log_v")
    ka, vmax, km, v = log_normal_parameters(theta, eta, names)
    amounts = solve_compartments(
        _oral_michaelis_menten, (ka, vmax, km, v), 2, covariates, times, rtol=rtol, atol=atol
    )
    return amounts[:, 1] / v
