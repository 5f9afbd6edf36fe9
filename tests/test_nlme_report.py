"""``nlme.parameter_table`` / ``format_table``: SDs and correlations for additive random
effects (sleepstudy, against statsmodels ``MixedLM(reml=False)`` run here), CV% only for
log-normal ones (theophylline), RSE% and eta shrinkage."""

import math

import numpy as np
import pytest

from numpyro_hgf.models import lmm, nlme

statsmodels = pytest.importorskip("statsmodels.formula.api")


@pytest.fixture(scope="module")
def sleepstudy():
    import pandas as pd

    from numpyro_hgf.datasets import sleepstudy

    s = sleepstudy()
    df = pd.DataFrame({"Reaction": s.reaction_ms, "Days": s.days, "Subject": s.subject})
    ref = statsmodels.mixedlm("Reaction ~ Days", df, groups="Subject", re_formula="~Days").fit(
        reml=False, method=["lbfgs"], maxiter=2000
    )
    model, init = lmm.sleepstudy_model()
    fit = nlme.fit_laplace(model, lmm.sleepstudy_data(), init, progress=False)
    return model, fit, {r["name"]: r for r in nlme.parameter_table(model, fit)}, ref


def test_sleepstudy_table_reports_sds_and_correlation_not_cv(sleepstudy):
    """Additive random effects: SDs, the correlation of the full Omega, no CV% (the old table
    printed ``cv%[intercept] 6.3e+124``).  Every number against statsmodels' ML fit."""
    model, fit, table, ref = sleepstudy
    assert model.eta_scale == ("additive", "additive")
    assert list(table) == [
        "intercept",
        "slope",
        "omega_sd[intercept]",
        "omega_sd[slope]",
        "corr[intercept,slope]",
        "sigma_add",
    ]
    assert not any(name.startswith("cv%") for name in table)
    c = ref.cov_re.values
    sd = np.sqrt(np.diag(c))
    est = [table[n]["estimate"] for n in table]
    peer = [*ref.fe_params.values, *sd, c[0, 1] / (sd[0] * sd[1]), math.sqrt(ref.scale)]
    np.testing.assert_allclose(est, peer, rtol=1e-4)
    # fixed-effect SEs (Hessian of the Laplace objective) and RSE% = 100 SE / |estimate|
    se = [table["intercept"]["se"], table["slope"]["se"]]
    np.testing.assert_allclose(se, ref.bse_fe.values, rtol=1e-3)
    rse = 100 * ref.bse_fe.values / np.abs(ref.fe_params.values)  # 2.64 %, 14.4 %
    np.testing.assert_allclose([table["intercept"]["rse%"], table["slope"]["rse%"]], rse, 1e-3)
    # eta shrinkage from the conditional modes, against statsmodels' random effects
    blups = np.array([v.values for v in ref.random_effects.values()])
    shrink = 100 * (1 - blups.std(0, ddof=1) / sd)  # 10.8 %, 5.57 %
    got = [table["omega_sd[intercept]"]["shrinkage%"], table["omega_sd[slope]"]["shrinkage%"]]
    np.testing.assert_allclose(got, shrink, rtol=1e-3)
    assert table["intercept"]["shrinkage%"] is None
    text = nlme.format_table(list(table.values()))
    assert "| parameter | estimate | SE | RSE % | shrinkage % |" in text
    assert "| corr[intercept,slope] | 0.08132 |" in text and "cv%" not in text


def theophylline_dummy_fit(model, omega_sd=(0.6, 0.3, 0.2), var=0.01):
    """A LaplaceFit with known params, covariance ``var I`` and modes of known SD."""
    theta = {"log_ka": math.log(1.5), "log_cl": math.log(3.0), "log_v": math.log(30.0)}
    params = model.init_params(theta, omega_sd=np.asarray(omega_sd), sigma_add=0.7)
    z = np.linspace(-1.0, 1.0, 12)
    z = (z - z.mean()) / z.std(ddof=1)
    eta = np.stack([0.45 * z, 0.3 * z[::-1], 0.1 * np.roll(z, 3)], axis=1)  # SDs .45 .3 .1
    p = sum(np.size(v) for v in (params["log_omega_sd"], params["log_sigma_add"])) + 3
    return nlme.LaplaceFit(params, 0.0, None, var * np.eye(p), eta, None, 0, True, 0.0, "laplace")


def test_theophylline_table_keeps_log_normal_cv():
    """Log-normal random effects (the default ``eta_scale="log"``): CV% =
    ``100 sqrt(exp(omega^2) - 1)`` with its delta-method SE, no correlation rows."""
    model, _ = nlme.theophylline_model()
    assert model.eta_scale == ("log", "log", "log")
    fit = theophylline_dummy_fit(model)
    table = {r["name"]: r for r in nlme.parameter_table(model, fit)}
    assert {"cv%[ka]", "cv%[cl]", "cv%[v]"} <= set(table)
    assert not any(name.startswith("corr[") for name in table)
    w = 0.6
    cv = 100 * math.sqrt(math.exp(w**2) - 1)  # 65.57 %
    assert table["cv%[ka]"]["estimate"] == pytest.approx(cv, rel=1e-6)  # params in float32
    # d cv / d log(omega) = 100 exp(omega^2) omega^2 / sqrt(exp(omega^2) - 1); SD(log omega) 0.1
    se = 0.1 * 100 * math.exp(w**2) * w**2 / math.sqrt(math.exp(w**2) - 1)
    assert table["cv%[ka]"]["se"] == pytest.approx(se, rel=1e-6)
    assert table["cv%[ka]"]["rse%"] == pytest.approx(100 * se / cv, rel=1e-6)
    assert table["ka"]["se"] == pytest.approx(0.1 * 1.5, rel=1e-6)  # exp(log ka), delta
    assert table["omega_sd[ka]"]["shrinkage%"] == pytest.approx(25.0, rel=1e-6)  # 1 - .45/.6
    assert table["omega_sd[cl]"]["shrinkage%"] == pytest.approx(0.0, abs=1e-4)  # float32 omega
    assert table["omega_sd[v]"]["shrinkage%"] == pytest.approx(50.0, rel=1e-6)


def test_mixed_scales_and_full_omega_correlations():
    """Per-effect scales: only the log-normal effect gets a CV; a full 3x3 Omega reports its
    three correlations (zero at the initial ``omega_corr = 0``)."""
    model = nlme.NLMEModel(
        nlme.one_compartment_oral,
        ("ka", "cl", "v"),
        omega="full",
        eta_scale=("log", "additive", "additive"),
    )
    fit = theophylline_dummy_fit(model)._replace(covariance=0.01 * np.eye(3 + 3 + 1 + 3))
    names = [r["name"] for r in nlme.parameter_table(model, fit)]
    assert [n for n in names if n.startswith("cv%")] == ["cv%[ka]"]
    assert [n for n in names if n.startswith("corr")] == ["corr[ka,cl]", "corr[ka,v]", "corr[cl,v]"]


def test_eta_scale_argument_messages():
    with pytest.raises(ValueError, match="eta_scale: expected one of 'log', 'additive'"):
        nlme.NLMEModel(nlme.one_compartment_oral, ("ka",), eta_scale="normal")
    with pytest.raises(ValueError, match=r"eta_scale: expected one string or 3 .* got 2"):
        nlme.NLMEModel(nlme.one_compartment_oral, ("ka", "cl", "v"), eta_scale=("log", "log"))
