"""Structural models for :mod:`numpyro_hgf.models.nlme`: pharmacokinetics and linear growth.

A structural model is a pure JAX function ``f(theta, eta, covariates, times) -> (T,)`` of the
population parameters ``theta`` (a dict pytree), one subject's random effects ``eta: (d,)``,
its covariates (a dict of scalars, or of ``(D,)`` dose records) and its observation times
``(T,)``.

Multiple doses (:func:`one_compartment_oral_doses`, :func:`one_compartment_iv`) read the
per-subject dose records that :func:`numpyro_hgf.models.nlme.read_events` puts in the
covariates: ``dose_time``, ``dose_amt`` (required), ``dose_rate``, ``dose_end`` and
``dose_mask`` (optional; defaults 0, +inf and 1), each ``(D,)``.  The concentration is the
sum of the single-dose curves shifted to each dose time (superposition, valid for linear
kinetics; Gibaldi & Perrier, *Pharmacokinetics*, 2nd ed., ch. 3): a dose counts at times
``dose_time <= t < dose_end`` (``dose_end``: the next EVID 4 reset) where ``dose_mask > 0``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from numpyro_hgf._checks import check_hidden_sizes, check_numbers, is_real_scalar
from numpyro_hgf.nn import MLP

__all__ = [
    "one_compartment_oral",
    "one_compartment_oral_doses",
    "one_compartment_iv",
    "dose_records",
    "log_normal_parameters",
    "power_covariates",
    "neural_covariates",
    "linear_random_slope",
]


def _require(name: str, mapping, keys, what: str) -> None:
    """A static check (keys only, nothing traced): ``mapping`` holds every one of ``keys``."""
    missing = [k for k in keys if not isinstance(mapping, Mapping) or k not in mapping]
    if missing:
        got = sorted(mapping) if isinstance(mapping, Mapping) else type(mapping).__name__
        raise ValueError(f"{name}: expected the entries {list(keys)} ({what}), got {got}")


def log_normal_parameters(theta, eta, names) -> tuple:
    """Log-normal individual parameters ``exp(theta[name_i] + eta_i)``, one per name.

    ``eta: (k,)`` with ``k <= len(names)``; the names past ``k`` get no random effect.
    """
    _require("theta", theta, names, "the log parameters of the structural model")
    eta = jnp.atleast_1d(jnp.asarray(eta))
    if eta.ndim != 1 or eta.shape[0] > len(names):
        raise ValueError(
            f"eta: expected a vector of at most {len(names)} random effects (on {names}), "
            f"got shape {eta.shape}"
        )
    return tuple(
        jnp.exp(theta[name] + eta[i]) if i < eta.shape[0] else jnp.exp(theta[name])
        for i, name in enumerate(names)
    )


def one_compartment_oral(theta, eta, covariates, times):
    """One compartment, first-order absorption, single oral dose at ``t = 0``.

    Individual parameters are log-normal (``eta`` in the order ka, CL, V)::

        ka = exp(log_ka + eta_0),  CL = exp(log_cl + eta_1),  V = exp(log_v + eta_2)
        C(t) = D ka / (V (ka - ke)) (exp(-ke t) - exp(-ka t)),    ke = CL / V

    (bioavailability 1; Gibaldi & Perrier, *Pharmacokinetics*, eq. 1.62).  The ``ka = ke``
    singularity is removed by the limit ``D ke t exp(-ke t) / V``.

    Args:
        theta: dict with scalars ``log_ka`` (1/h), ``log_cl`` (L/h), ``log_v`` (L).
        eta: ``(3,)`` random effects.
        covariates: dict with ``dose`` (mg).
        times: ``(T,)`` hours after the dose.

    Returns:
        ``(T,)`` concentrations (mg/L).
    """
    ka, cl, v = log_normal_parameters(theta, eta, ("log_ka", "log_cl", "log_v"))
    _require("covariates", covariates, ("dose",), "the subject's dose")
    return covariates["dose"] * _oral_unit(ka, cl / v, v, times)


def _oral_unit(ka, ke, v, tau):
    """Single oral dose of 1 at ``tau = 0`` (``tau >= 0``; shape of ``tau``)."""
    diff = ka - ke
    close = jnp.abs(diff) < 1e-7 * ke
    safe = jnp.where(close, 1.0, diff)
    general = ka / (v * safe) * (jnp.exp(-ke * tau) - jnp.exp(-ka * tau))
    limit = ke * tau * jnp.exp(-ke * tau) / v
    return jnp.where(close, limit, general)


def _oral_infusion_unit(ka, ke, v, tau, t_inf):
    """Zero-order input of rate 1 into the depot over ``[0, t_inf]`` (``tau >= 0``)::

        int_0^u u_1(tau - s) ds,   u = min(tau, t_inf),   u_1 the unit curve of _oral_unit
          = ka / (V (ka - ke)) [g(ke) - g(ka)],   g(k) = exp(-k (tau - u)) (1 - exp(-k u)) / k

    (each factor <= 1, so no overflow); the ``ka = ke`` limit is
    ``[(tau - u + 1/ke) exp(-ke (tau - u)) - (tau + 1/ke) exp(-ke tau)] / V``.
    """
    u = jnp.minimum(tau, t_inf)
    rest = tau - u

    def g(k):
        return jnp.exp(-k * rest) * (-jnp.expm1(-k * u)) / k

    diff = ka - ke
    close = jnp.abs(diff) < 1e-7 * ke
    safe = jnp.where(close, 1.0, diff)
    general = ka / (v * safe) * (g(ke) - g(ka))
    inv = 1.0 / ke
    limit = ((rest + inv) * jnp.exp(-ke * rest) - (tau + inv) * jnp.exp(-ke * tau)) / v
    return jnp.where(close, limit, general)


def dose_records(covariates) -> dict:
    """The ``(D,)`` dose records of one subject with defaults filled in.

    Returns a dict with ``time``, ``amt``, ``rate`` (default 0: bolus), ``end`` (default
    ``+inf``: no reset) and ``mask`` (default 1), each ``(D,)``.
    """
    _require("covariates", covariates, ("dose_time", "dose_amt"), "dose records, read_events")
    t = jnp.atleast_1d(jnp.asarray(covariates["dose_time"]))
    amt = jnp.broadcast_to(jnp.asarray(covariates["dose_amt"], t.dtype), t.shape)

    def get(name, default):
        value = covariates.get(name, default)
        return jnp.broadcast_to(jnp.asarray(value, t.dtype), t.shape)

    return {
        "time": t,
        "amt": amt,
        "rate": get("dose_rate", 0.0),
        "end": get("dose_end", jnp.inf),
        "mask": get("dose_mask", 1.0),
    }


def _shifted(doses, times):
    """``(tau, active)``, both ``(T, D)``: time since each dose (0 where inactive, so that
    gradients stay finite) and whether the dose counts at that time."""
    tau = times[:, None] - doses["time"][None, :]
    active = (tau >= 0) & (times[:, None] < doses["end"][None, :]) & (doses["mask"] > 0)
    return jnp.where(active, tau, 0.0), active


def one_compartment_oral_doses(theta, eta, covariates, times):
    """One compartment, first-order absorption, any number of oral doses (superposition).

    ``C(t) = sum_k A_k u(t - t_k)`` over the doses with ``t_k <= t`` (before the next reset),
    ``u`` the single-dose curve of :func:`one_compartment_oral` per unit dose::

        u(tau) = ka / (V (ka - ke)) (exp(-ke tau) - exp(-ka tau))

    (Gibaldi & Perrier, *Pharmacokinetics*, 2nd ed., eq. 1.62 and ch. 3, superposition).
    Every dose goes to the depot: a bolus when its ``dose_rate`` is 0, else a zero-order
    input of rate ``R`` over ``A / R`` hours (e.g. a controlled-release formulation), whose
    curve is the integral of ``R u(tau - s)`` over the input (it tends to the bolus as
    ``R -> inf``).

    Args:
        theta: dict with scalars ``log_ka`` (1/h), ``log_cl`` (L/h), ``log_v`` (L).
        eta: ``(3,)`` random effects (ka, CL, V; log-normal).
        covariates: dict with ``(D,)`` ``dose_time`` (h), ``dose_amt`` (mg) and optionally
            ``dose_end``, ``dose_mask`` (:func:`dose_records`).
        times: ``(T,)`` hours, on the clock of ``dose_time``.

    Returns:
        ``(T,)`` concentrations (mg/L).
    """
    ka, cl, v = log_normal_parameters(theta, eta, ("log_ka", "log_cl", "log_v"))
    doses = dose_records(covariates)
    tau, active = _shifted(doses, times)
    rate = doses["rate"]
    zero_order = rate > 0
    t_inf = jnp.where(zero_order, doses["amt"] / jnp.where(zero_order, rate, 1.0), 0.0)
    bolus = doses["amt"][None, :] * _oral_unit(ka, cl / v, v, tau)
    spread = rate[None, :] * _oral_infusion_unit(ka, cl / v, v, tau, t_inf[None, :])
    conc = jnp.where(zero_order[None, :], spread, bolus)
    return jnp.sum(jnp.where(active, conc, 0.0), axis=1)


def one_compartment_iv(theta, eta, covariates, times):
    """One compartment, intravenous bolus and zero-order infusion doses (superposition).

    A dose ``A`` at ``t_k`` with rate ``R = 0`` is a bolus, ``R > 0`` an infusion lasting
    ``T_inf = A / R``; with ``ke = CL / V`` and ``tau = t - t_k >= 0``::

        bolus:     C(tau) = A / V exp(-ke tau)
        infusion:  C(tau) = R / CL (1 - exp(-ke min(tau, T_inf))) exp(-ke max(tau - T_inf, 0))

    (Gibaldi & Perrier, *Pharmacokinetics*, 2nd ed., ch. 1, intravenous bolus, and ch. 2,
    constant-rate infusion; ch. 3, superposition).  As ``T_inf -> 0`` the infusion tends
    to the bolus.

    Args:
        theta: dict with scalars ``log_cl`` (L/h) and ``log_v`` (L).
        eta: ``(2,)`` random effects (CL, V; log-normal).
        covariates: dict with ``(D,)`` ``dose_time`` (h), ``dose_amt`` (mg) and optionally
            ``dose_rate`` (mg/h; 0 = bolus), ``dose_end``, ``dose_mask``.
        times: ``(T,)`` hours.

    Returns:
        ``(T,)`` concentrations (mg/L).
    """
    cl, v = log_normal_parameters(theta, eta, ("log_cl", "log_v"))
    ke = cl / v
    doses = dose_records(covariates)
    tau, active = _shifted(doses, times)
    amt, rate = doses["amt"][None, :], doses["rate"][None, :]
    infusion = rate > 0
    safe_rate = jnp.where(infusion, rate, 1.0)
    duration = jnp.where(infusion, amt / safe_rate, 0.0)
    bolus = amt / v * jnp.exp(-ke * tau)
    during = jnp.minimum(tau, duration)
    after = jnp.maximum(tau - duration, 0.0)
    infused = safe_rate / cl * (-jnp.expm1(-ke * during)) * jnp.exp(-ke * after)
    conc = jnp.where(infusion, infused, bolus)
    return jnp.sum(jnp.where(active, conc, 0.0), axis=1)


def linear_random_slope(theta, eta, covariates, times):
    """``y = (b0 + eta_0) + (b1 + eta_1) t``: the linear mixed model ``y ~ t + (t | subject)``.

    ``theta``: dict with ``intercept`` and ``slope``; ``eta: (2,)``.  With additive error the
    Laplace approximation of this model is exact (a Gaussian integral).
    """
    del covariates
    return (theta["intercept"] + eta[0]) + (theta["slope"] + eta[1]) * times


def power_covariates(structural, effects):
    """A structural model with power covariate effects on log-normal parameters.

    For each entry ``effects[key] = (covariate, reference, exponent)`` the population
    parameter ``theta[key]`` (a log parameter, e.g. ``"log_cl"``) is shifted per subject::

        log_cl_i = log_cl + beta log(WT_i / reference),  i.e.
        CL_i = exp(log_cl) (WT_i / reference)^beta exp(eta_CL)

    (allometric scaling, e.g. ``beta = 0.75`` for clearance by weight; Anderson & Holford,
    *Annu. Rev. Pharmacol. Toxicol.* 48:303, 2008).  ``exponent`` is a number (fixed) or the
    name of a scalar entry of ``theta`` (estimated with the other population parameters).

    Args:
        structural: ``f(theta, eta, covariates, times) -> (T,)``.
        effects: dict ``theta key -> (covariate name, reference value, exponent)``.

    Returns:
        ``f(theta, eta, covariates, times) -> (T,)``, the same signature.
    """
    if not callable(structural):
        raise TypeError(f"structural: expected a callable, got {type(structural).__name__}")
    if not isinstance(effects, Mapping):
        raise TypeError(
            "effects: expected a dict theta key -> (covariate, reference, exponent), "
            f"got {effects!r}"
        )
    effects = dict(effects)
    for key, effect in effects.items():
        if not (isinstance(effect, tuple | list) and len(effect) == 3):
            raise ValueError(
                f"effects[{key!r}]: expected (covariate, reference, exponent), got {effect!r}"
            )
        name, reference, exponent = effect
        if not isinstance(name, str):
            raise TypeError(f"effects[{key!r}]: expected a covariate name first, got {name!r}")
        if not is_real_scalar(reference):
            raise TypeError(f"effects[{key!r}]: expected a reference number, got {reference!r}")
        if not (float(reference) > 0 and math.isfinite(float(reference))):
            raise ValueError(
                f"effects[{key!r}]: expected a reference > 0 (finite), got {reference!r}"
            )
        if not (isinstance(exponent, str) or is_real_scalar(exponent)):
            raise TypeError(
                f"effects[{key!r}]: expected an exponent (a number or a theta key), "
                f"got {exponent!r}"
            )

    def with_covariates(theta, eta, covariates, times):
        shifted = dict(theta)
        for key, (name, reference, exponent) in effects.items():
            beta = theta[exponent] if isinstance(exponent, str) else exponent
            shifted[key] = theta[key] + beta * jnp.log(covariates[name] / reference)
        return structural(shifted, eta, covariates, times)

    with_covariates.__name__ = f"{getattr(structural, '__name__', 'structural')}_with_covariates"
    return with_covariates


def neural_covariates(structural, targets, covariates, *, centres, scales, hidden=(8,)):
    """A structural model whose log parameters are shifted by a neural network of covariates.

    DeepPumas-style covariate modelling: a :class:`~numpyro_hgf.nn.MLP` ``g`` of the
    subject's standardised covariates ``z_c = (x_c - centre_c) / scale_c`` shifts each target
    (a log parameter of ``theta``, e.g. ``"log_cl"``)::

        log_cl_i = log_cl + g(z_i)_0,   i.e.  CL_i = exp(log_cl) exp(g(z_i)_0) exp(eta_CL)

    replacing a fixed functional form such as :func:`power_covariates`.  The network's params
    are the entry ``theta["covariate_net"]`` (a flax params pytree): they are population
    parameters like any other, fitted by :func:`~numpyro_hgf.models.nlme.fit_svi` or
    :func:`~numpyro_hgf.models.nlme.fit_laplace`.  The output layer starts at zero, so at
    the returned initial params the model equals ``structural``.

    Args:
        structural: ``f(theta, eta, covariates, times) -> (T,)``.
        targets: names of the log parameters of ``theta`` to shift (one output each).
        covariates: names of the per-subject scalar covariates the network reads.
        centres, scales: one number per covariate (e.g. the training mean and SD).
        hidden: the network's hidden widths.

    Returns:
        ``(f, init_net)``: ``f(theta, eta, covariates, times) -> (T,)`` with the same
        signature, and ``init_net(key) -> params`` of the network (put them in
        ``theta["covariate_net"]``).
    """
    if not callable(structural):
        raise TypeError(f"structural: expected a callable, got {type(structural).__name__}")
    for name, names in (("targets", targets), ("covariates", covariates)):
        if isinstance(names, str):
            raise TypeError(f"{name}: expected a sequence of names, got the string {names!r}")
    targets, covariates = tuple(targets), tuple(covariates)
    for name, names in (("targets", targets), ("covariates", covariates)):
        if not names or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{name}: expected a non-empty sequence of names, got {names!r}")
    centres, scales = check_numbers("centres", centres), check_numbers("scales", scales)
    if not all(math.isfinite(c) for c in centres):
        raise ValueError(f"centres: expected finite numbers, got {centres!r}")
    hidden = check_hidden_sizes("hidden", hidden)
    if len(centres) != len(covariates) or len(scales) != len(covariates):
        raise ValueError(
            f"centres, scales: expected one per covariate ({len(covariates)}), got "
            f"{len(centres)} and {len(scales)}"
        )
    if not all(s > 0 and math.isfinite(s) for s in scales):
        raise ValueError(f"scales: expected positive finite numbers, got {scales!r}")
    net = MLP(hidden, len(targets), activation=jax.nn.tanh, zero_init_output=True)

    def with_network(theta, eta, covariates_i, times):
        z = jnp.stack(
            [(covariates_i[c] - m) / s for c, m, s in zip(covariates, centres, scales, strict=True)]
        )
        shift = net.apply({"params": theta["covariate_net"]}, z)
        shifted = dict(theta)
        for j, key in enumerate(targets):
            shifted[key] = theta[key] + shift[j]
        return structural(shifted, eta, covariates_i, times)

    def init_net(key):
        return net.init(key, jnp.zeros((len(covariates),)))["params"]

    with_network.__name__ = f"{getattr(structural, '__name__', 'structural')}_with_network"
    return with_network, init_net
