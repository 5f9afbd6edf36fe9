"""Structural models for :mod:`numpyro_hgf.models.nlme`: pharmacokinetics and linear growth.

A structural model is a pure JAX function ``f(theta, eta, covariates, times) -> (T,)`` of the
population parameters ``theta`` (a dict pytree), one subject's random effects ``eta: (d,)``,
its covariates (a dict of scalars) and its observation times ``(T,)``.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["one_compartment_oral", "linear_random_slope"]


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
    ka = jnp.exp(theta["log_ka"] + eta[0])
    cl = jnp.exp(theta["log_cl"] + eta[1])
    v = jnp.exp(theta["log_v"] + eta[2])
    ke = cl / v
    dose = covariates["dose"]
    diff = ka - ke
    close = jnp.abs(diff) < 1e-7 * ke
    safe = jnp.where(close, 1.0, diff)
    general = dose * ka / (v * safe) * (jnp.exp(-ke * times) - jnp.exp(-ka * times))
    limit = dose * ke * times * jnp.exp(-ke * times) / v
    return jnp.where(close, limit, general)


def linear_random_slope(theta, eta, covariates, times):
    """``y = (b0 + eta_0) + (b1 + eta_1) t``: the linear mixed model ``y ~ t + (t | subject)``.

    ``theta``: dict with ``intercept`` and ``slope``; ``eta: (2,)``.  With additive error the
    Laplace approximation of this model is exact (a Gaussian integral).
    """
    del covariates
    return (theta["intercept"] + eta[0]) + (theta["slope"] + eta[1]) * times
