"""Orange and Indometh (Pinheiro & Bates 2000) against nlme's published fits.

The likelihoods are checked where nlme's printed numbers pin them down: evaluated at nlme's
estimates they reproduce nlme's printed log-likelihoods.  The fits then maximise the same
likelihood, so they must reach at least nlme's value; where they end elsewhere, an importance-
sampled marginal likelihood (an estimate of the exact one, independent of the Laplace / FOCE-I
approximation) decides which point is higher.  Measured (docs/benchmarks.md): Orange
-131.5719 ours against -131.5846 at nlme's estimates; Indometh 56.115 against 54.596.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numpyro_hgf as nh
from numpyro_hgf.models import growth, nlme


def reference_params(model, ref):
    p = model.init_params(ref["theta"], omega_sd=ref["omega_sd"], sigma_add=ref["sigma"])
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), p)


def importance(model, params, data, seed=0):
    """IS estimate of log p(y | params): Student-t(5) proposals at the Laplace modes."""
    _, per = nlme.laplace_log_likelihood(model, params, data, method="laplace")
    cov = 1.5**2 * jnp.linalg.inv(per.precision)
    key = jax.random.key(seed)
    return float(
        nlme.importance_log_likelihood(
            model, params, data, per.mode, cov, num_samples=20_000, key=key, df=5
        )[0]
    )


@pytest.fixture(scope="module")
def orange():
    model, init = growth.orange_model()
    data = growth.orange_data()
    with jax.enable_x64(True):
        fit = nlme.fit_laplace(model, data, init, progress=False)
        ref = reference_params(model, growth.ORANGE_NLME)
        at_ref = float(nlme.laplace_log_likelihood(model, ref, data.astype(jnp.float64))[0])
        is_ours = importance(model, fit.params, data.astype(jnp.float64))
        is_ref = importance(model, ref, data.astype(jnp.float64))
    return fit, at_ref, is_ours, is_ref


def test_shipped_tables():
    o, i = nh.datasets.orange(), nh.datasets.indometh()
    assert o.circumference_mm.shape == (35,) and o.num_subjects == 5
    assert i.conc_mcg_per_ml.shape == (66,) and i.num_subjects == 6
    # R's datasets: Orange tree 1 at age 1582 is 145 mm; Indometh subject 1 at 0.25 h 1.50
    assert o.circumference_mm[(o.tree == 1) & (o.age_days == 1582)] == 145
    assert i.conc_mcg_per_ml[0] == 1.5 and i.time_h[0] == 0.25


def test_orange_against_nlme(orange):
    """Linear in the random effect: the Laplace likelihood is exact.  At nlme's estimates it
    is nlme's printed -131.58; our maximum is 0.013 higher (also by importance sampling),
    within the issue's 0.05; SDs within 2 %; fixed effects within 1.2 % (nlme's
    Lindstrom-Bates point is not the maximiser: docs/benchmarks.md)."""
    fit, at_ref, is_ours, is_ref = orange
    ref = growth.ORANGE_NLME
    assert at_ref == pytest.approx(ref["log_likelihood"], abs=0.005)
    assert fit.converged
    assert fit.log_likelihood >= at_ref
    assert abs(fit.log_likelihood - ref["log_likelihood"]) < 0.05
    assert is_ours > is_ref and abs(is_ours - fit.log_likelihood) < 0.01
    theta = {k: float(v) for k, v in fit.params["theta"].items()}
    for k, v in ref["theta"].items():
        assert abs(theta[k] / v - 1) < 0.012, (k, theta[k], v)
    assert float(np.exp(fit.params["log_omega_sd"][0])) == pytest.approx(ref["omega_sd"][0], 0.02)
    assert math.exp(float(fit.params["log_sigma_add"])) == pytest.approx(ref["sigma"], rel=0.02)


@pytest.mark.slow  # ~10 s quiet, 18 s on a loaded 2-core machine
def test_indometh_against_nlme():
    """Non-linear in ``lrc1``.  At nlme's estimates FOCE-I gives nlme's printed 54.6 (nlme's
    Lindstrom-Bates approximation and FOCE-I agree there); FOCE-I started there climbs to
    56.11, and importance sampling ranks that point above nlme's by more than a nat."""
    model, init = growth.indometh_model()
    data = growth.indometh_data()
    with jax.enable_x64(True):
        d64 = data.astype(jnp.float64)
        ref = reference_params(model, growth.INDOMETH_NLME)
        at_ref = float(nlme.laplace_log_likelihood(model, ref, d64, method="focei")[0])
        fit = nlme.fit_laplace(model, data, init, method="focei", progress=False)
        is_ours, is_ref = importance(model, fit.params, d64), importance(model, ref, d64)
    assert at_ref == pytest.approx(growth.INDOMETH_NLME["log_likelihood"], abs=0.05)
    assert fit.converged and fit.log_likelihood > at_ref + 1.0
    assert is_ours > is_ref + 1.0, (is_ours, is_ref)
    assert abs(is_ours - fit.log_likelihood) < 0.05
