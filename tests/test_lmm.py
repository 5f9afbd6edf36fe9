"""sleepstudy ``Reaction ~ Days + (Days | Subject)``: the NLME Laplace fit (exact for a
linear Gaussian model) against statsmodels ``MixedLM(reml=False)``, run side by side."""

import jax.numpy as jnp
import numpy as np
import pytest

from numpyro_hgf.models import lmm, nlme

statsmodels = pytest.importorskip("statsmodels.formula.api")


@pytest.fixture(scope="module")
def fits():
    import pandas as pd

    from numpyro_hgf.datasets import sleepstudy

    s = sleepstudy()
    df = pd.DataFrame({"Reaction": s.reaction_ms, "Days": s.days, "Subject": s.subject})
    ref = statsmodels.mixedlm("Reaction ~ Days", df, groups="Subject", re_formula="~Days").fit(
        reml=False, method=["lbfgs"], maxiter=2000
    )
    model, init = lmm.sleepstudy_model()
    ours = nlme.fit_laplace(model, lmm.sleepstudy_data(), init, progress=False)
    return model, ours, ref


def test_ml_estimates_equal_statsmodels(fits):
    model, ours, ref = fits
    p = ours.params
    np.testing.assert_allclose(
        [p["theta"]["intercept"], p["theta"]["slope"]], ref.fe_params.values, rtol=0.01
    )
    omega = np.asarray(
        lmm.covariance(model, {k: jnp.asarray(v) for k, v in p.items() if k != "theta"})
    )
    np.testing.assert_allclose(omega, ref.cov_re.values, rtol=0.01)
    np.testing.assert_allclose(np.exp(2 * p["log_sigma_add"]), ref.scale, rtol=0.01)
    np.testing.assert_allclose(ours.log_likelihood, ref.llf, rtol=0.01)
    # tighter than the 1 % of the issue: both are the exact ML fit
    assert abs(ours.log_likelihood - ref.llf) < 0.01


def test_reference_values_and_negative_control(fits):
    """lme4's published ML fit (Bates et al. 2015, lmer REML=FALSE): fixed effects 251.4 and
    10.47, log-likelihood -875.97; a diagonal Omega (no correlation) is a worse fit."""
    model, ours, _ = fits
    assert abs(float(ours.params["theta"]["intercept"]) - 251.4) < 0.1
    assert abs(float(ours.params["theta"]["slope"]) - 10.47) < 0.01
    assert abs(ours.log_likelihood - (-875.97)) < 0.01
    diag = nlme.NLMEModel(model.structural, model.eta_names, omega="diagonal")
    init = diag.init_params(
        {"intercept": 250.0, "slope": 10.0}, omega_sd=(25.0, 5.0), sigma_add=25.0
    )
    worse = nlme.fit_laplace(diag, lmm.sleepstudy_data(), init, progress=False)
    assert worse.log_likelihood < ours.log_likelihood - 0.01
