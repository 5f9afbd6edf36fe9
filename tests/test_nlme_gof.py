"""``nlme.gof_table`` / ``plot_gof``: PRED, IPRED, IWRES and CWRES (Hooker, Staatz & Karlsson
2007) against closed forms of the linear mixed model, a chi-square calibration at the true
parameters with a negative control that must fail, and the PNG."""

import math

import numpy as np
import pytest
from scipy import stats

from numpyro_hgf.models import lmm, nlme


def simulated_sleepstudy(params, num_subjects=60, seed=0):
    """sleepstudy's design (days 0..9) with ``num_subjects`` subjects drawn from the linear
    mixed model at ``params``: ``y_i = X (beta + b_i) + e_i``."""
    model, _ = lmm.sleepstudy_model()
    rng = np.random.default_rng(seed)
    omega = np.asarray(lmm.covariance(model, params), np.float64)
    sigma = math.exp(float(params["log_sigma_add"]))
    beta = np.array([float(params["theta"]["intercept"]), float(params["theta"]["slope"])])
    days = np.arange(10.0)
    b = rng.multivariate_normal(np.zeros(2), omega, size=num_subjects)
    y = (
        (beta + b)[:, :1]
        + (beta + b)[:, 1:] * days
        + sigma * rng.standard_normal((num_subjects, 10))
    )
    table = {
        "subject": np.repeat(np.arange(num_subjects), 10),
        "days": np.tile(days, num_subjects),
        "reaction": y.ravel(),
    }
    return nlme.prepare_data(table, subject="subject", time="days", observation="reaction")


@pytest.fixture(scope="module")
def truth():
    model, _ = lmm.sleepstudy_model()
    params = model.init_params(
        {"intercept": 251.4, "slope": 10.47}, omega_sd=(24.7, 5.9), sigma_add=25.6
    )
    params["omega_corr"] = params["omega_corr"] + 0.066  # lme4's correlation, roughly
    return model, params


def test_cwres_are_whitened_marginal_residuals_of_a_linear_model(truth):
    """Linear in eta: the FOCE linearisation is exact, so CWRES_i = L_i^{-1} (y_i - X_i beta)
    with ``L_i L_i^T = Z_i Omega Z_i^T + sigma^2 I`` whatever the modes are; IWRES = (DV -
    IPRED) / sigma, IPRED = X (beta + eta_i) at the conditional mode (the BLUP), PRED = X beta.
    Every column against NumPy on the shipped sleepstudy data."""
    model, params = truth
    data = lmm.sleepstudy_data()
    table = nlme.gof_table(model, params, data)
    assert tuple(table) == nlme.GOF_COLUMNS
    assert all(v.shape == (data.num_obs,) for v in table.values())
    X, Z, y, mask = lmm.sleepstudy_design(data)
    omega = np.asarray(lmm.covariance(model, params), np.float64)
    sigma = math.exp(float(params["log_sigma_add"]))
    beta = np.array([float(params["theta"]["intercept"]), float(params["theta"]["slope"])])
    cwres, pred, ipred = [], [], []
    for i in range(data.num_subjects):
        Xi, Zi, yi = X[i][mask[i]], Z[i][mask[i]], y[i][mask[i]]
        V = Zi @ omega @ Zi.T + sigma**2 * np.eye(len(yi))
        r = yi - Xi @ beta
        cwres.append(np.linalg.solve(np.linalg.cholesky(V), r))
        blup = omega @ Zi.T @ np.linalg.solve(V, r)
        pred.append(Xi @ beta)
        ipred.append(Xi @ beta + Zi @ blup)
    np.testing.assert_allclose(table["CWRES"], np.concatenate(cwres), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(table["PRED"], np.concatenate(pred), rtol=1e-10)
    np.testing.assert_allclose(table["IPRED"], np.concatenate(ipred), rtol=1e-6)
    np.testing.assert_allclose(table["IWRES"], (table["DV"] - table["IPRED"]) / sigma, 1e-10)
    np.testing.assert_array_equal(table["DV"], y[mask])
    np.testing.assert_array_equal(table["TIME"], X[..., 1][mask])


def test_cwres_calibrated_at_the_truth_and_fail_at_a_wrong_omega(truth):
    """At the parameters that simulated the data, sum CWRES^2 ~ chi2(n) (600 draws, two-sided
    p > 0.001, ``scipy.stats.chi2``). Negative control: the same data judged with Omega's
    SDs divided by 3 must fail the same test."""
    model, params = truth
    data = simulated_sleepstudy(params, num_subjects=60, seed=1)

    def two_sided_p(p):
        cw = nlme.gof_table(model, p, data)["CWRES"]
        q = float(np.sum(cw**2))
        return 2 * min(stats.chi2.sf(q, cw.size), stats.chi2.cdf(q, cw.size)), cw

    p_true, cw = two_sided_p(params)
    assert p_true > 1e-3, p_true
    assert abs(cw.mean()) < 4 / math.sqrt(cw.size)
    wrong = dict(params, log_omega_sd=params["log_omega_sd"] - math.log(3.0))
    p_wrong, _ = two_sided_p(wrong)
    assert p_wrong < 1e-6, p_wrong


def test_fit_modes_and_plot(truth, tmp_path):
    """A ``LaplaceFit`` uses its own modes: the same table as the params-dict path at the
    fitted parameters; ``plot_gof`` writes a PNG of four panels."""
    model, params = truth
    data = lmm.sleepstudy_data()
    fit = nlme.fit_laplace(model, data, params, progress=False)
    from_fit = nlme.gof_table(model, fit, data)
    from_params = nlme.gof_table(model, fit.params, data)
    for k in ("PRED", "IPRED", "CWRES"):
        np.testing.assert_allclose(from_fit[k], from_params[k], rtol=1e-5, atol=1e-6)
    # at the ML fit the CWRES are centred with unit spread (the fit's own residuals)
    assert abs(from_fit["CWRES"].mean()) < 0.15 and 0.8 < from_fit["CWRES"].std() < 1.2
    path = nlme.plot_gof(tmp_path / "gof.png", model, fit, data)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments(truth):
    model, params = truth
    data = lmm.sleepstudy_data()
    with pytest.raises(TypeError, match="fit: expected a LaplaceFit"):
        nlme.gof_table(model, [1.0], data)
    with pytest.raises(TypeError, match="model: expected an NLMEModel"):
        nlme.gof_table("model", params, data)
    with pytest.raises(TypeError, match="data: expected an NLMEData"):
        nlme.gof_table(model, params, {"obs": 1})
    bad = nlme.LaplaceFit(params, 0.0, None, None, np.zeros((3, 2)), None, 0, True, 0.0, "focei")
    with pytest.raises(ValueError, match=r"fit.eta: expected .* \(18, 2\).* got \(3, 2\)"):
        nlme.gof_table(model, bad, data)
    with pytest.raises(TypeError, match="path: expected a str or os.PathLike"):
        nlme.plot_gof(3, model, params, data)
