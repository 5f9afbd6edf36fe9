"""NLME on theophylline against the published FOCE-I fit, and the NLME layer's contracts.

Published (nlmixr2 FOCE-I, dose in mg; ../shared/data/README.md): ka 1.594 /h, CL 2.751 L/h,
V 31.81 L, between-subject CV 70.0 / 26.8 / 13.9 %, additive SD 0.695 mg/L, log-likelihood
-179.70, SE(log ka) 0.19.
"""

import math
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from numpyro_hgf.models import nlme

PUB = nlme.THEOPHYLLINE_FOCEI
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    return nlme.theophylline_data()


@pytest.fixture(scope="module")
def laplace_fit(data):
    model, init = nlme.theophylline_model()
    fit = nlme.fit_laplace(model, data, init, method="laplace", progress=False)
    return model, fit, {r["name"]: r for r in nlme.parameter_table(model, fit)}


def published_params(model):
    cv = np.array([PUB["cv%[ka]"], PUB["cv%[cl]"], PUB["cv%[v]"]]) / 100
    theta = {
        "log_ka": math.log(PUB["ka"]),
        "log_cl": math.log(PUB["cl"]),
        "log_v": math.log(PUB["v"]),
    }
    return model.init_params(theta, omega_sd=np.sqrt(np.log1p(cv**2)), sigma_add=PUB["sigma_add"])


def within_one_se(table, fit):
    """name -> (|estimate - published| / SE) for every published quantity."""
    out = {}
    for name in ("ka", "cl", "v"):
        # compare on the log scale: the published SE of log ka, the fit's own otherwise
        se = PUB["se_log_ka"] if name == "ka" else float(fit.se["theta"][f"log_{name}"])
        est = float(fit.params["theta"][f"log_{name}"])
        out[name] = abs(est - math.log(PUB[name])) / se
    for name in ("cv%[ka]", "cv%[cl]", "cv%[v]", "sigma_add"):
        out[name] = abs(table[name]["estimate"] - PUB[name]) / table[name]["se"]
    return out


def test_theophylline_data_dose_in_mg(data):
    assert data.obs.shape == (12, 11) and data.num_obs == 132
    th = __import__("numpyro_hgf").datasets.theophylline()
    np.testing.assert_allclose(
        np.asarray(data.covariates["dose"]), (th.dose_mg_per_kg * th.weight_kg)[::11]
    )
    assert 250 < float(data.covariates["dose"].min()) < float(data.covariates["dose"].max()) < 500


def check_laplace_fit_matches_published_focei(laplace_fit, data):
    model, fit, table = laplace_fit
    assert fit.converged
    z = within_one_se(table, fit)
    assert all(v < 1.0 for v in z.values()), z
    assert abs(fit.log_likelihood - PUB["log_likelihood"]) < 1.0
    # the Hessian-based SE of log ka agrees with the published 0.19
    assert abs(float(fit.se["theta"]["log_ka"]) - PUB["se_log_ka"]) < 0.03
    # negative control: the same comparison fails for the naive pooled estimates (eta = 0)
    # of the population prediction with the dose in mg/kg (the CSV's unit): far lower
    # conditional log-likelihood
    params = jax.tree.map(jnp.asarray, fit.params)
    assert population_ll(model, params, data_mg_per_kg()) < population_ll(model, params, data) - 200


def population_ll(model, params, d):
    eta = jnp.zeros(3)
    ll = jax.vmap(lambda c, t, y, m: nlme.subject_log_likelihood(model, params, eta, c, t, y, m))(
        d.covariates, d.times, d.obs, d.mask
    )
    return float(jnp.sum(ll))


def data_mg_per_kg():
    from numpyro_hgf.datasets import theophylline

    th = theophylline()
    table = {"s": th.subject, "t": th.time_h, "c": th.conc_mg_per_l, "dose": th.dose_mg_per_kg}
    return nlme.prepare_data(table, subject="s", time="t", observation="c", covariates=("dose",))


def check_monte_carlo_marginal_likelihood(laplace_fit, data):
    """Importance sampling with the Laplace proposal: about -180.3 at the published values,
    and the Laplace value is within 0.5 nat of it at the Laplace estimates."""
    model, fit, _ = laplace_fit
    with jax.enable_x64(True):
        d64 = data.astype(jnp.float64)
        pub = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), published_params(model))
        est = jax.tree.map(jnp.asarray, fit.params)
        # the Laplace modes / curvatures of the fit are the (Student-t) proposal for both
        loc, cov = fit.eta, np.linalg.inv(fit.eta_precision)
        mc_pub, _ = nlme.importance_log_likelihood(
            model, pub, d64, loc, cov, num_samples=4000, key=jax.random.key(0), df=5.0
        )
        mc_fit, _ = nlme.importance_log_likelihood(
            model, est, d64, loc, cov, num_samples=4000, key=jax.random.key(1), df=5.0
        )
    assert abs(float(mc_pub) - (-180.35)) < 0.15, float(mc_pub)
    assert abs(float(mc_fit) - fit.log_likelihood) < 0.5
    assert float(mc_fit) >= float(mc_pub) - 0.05  # the fit is at least as likely


def check_individual_predictions_and_vpc(laplace_fit, data, tmp_path):
    model, fit, _ = laplace_fit
    params = jax.tree.map(jnp.asarray, fit.params)
    ipred = nlme.predict(model, params, data, fit.eta)
    pred = nlme.predict(model, params, data)
    assert ipred.shape == pred.shape == (12, 11)
    mask = np.asarray(data.mask)
    ires = (np.asarray(data.obs) - np.asarray(ipred))[mask]
    pres = (np.asarray(data.obs) - np.asarray(pred))[mask]
    sigma = float(np.exp(fit.params["log_sigma_add"]))
    # individual residuals have about the residual SD; population residuals are larger
    assert 0.6 * sigma < ires.std() < 1.2 * sigma
    assert pres.std() > 1.5 * ires.std()
    path, summary = nlme.plot_vpc(
        tmp_path / "vpc.png", model, params, data, key=jax.random.key(2), num_sims=100
    )
    assert path.exists() and path.stat().st_size > 10_000
    # about 10 % of observations fall outside the simulated 90 % interval
    assert 0.02 < summary["outside_90"] < 0.25


def check_parameter_table_and_markdown(laplace_fit):
    model, fit, table = laplace_fit
    names = [r for r in table]
    assert names[:3] == ["ka", "cl", "v"] or set(names[:3]) == {"ka", "cl", "v"}
    text = nlme.format_table(nlme.parameter_table(model, fit), PUB)
    assert "| ka |" in text and "| sigma_add |" in text and "1.594" in text


def test_theophylline_laplace_fit(laplace_fit, data, tmp_path):
    """One test for everything that uses the Laplace fit: under ``pytest -n 2`` a
    module-scoped fixture is built once per worker, so splitting these would fit twice."""
    check_laplace_fit_matches_published_focei(laplace_fit, data)
    check_monte_carlo_marginal_likelihood(laplace_fit, data)
    check_individual_predictions_and_vpc(laplace_fit, data, tmp_path)
    check_parameter_table_and_markdown(laplace_fit)


@pytest.mark.slow
def test_focei_reproduces_published_within_one_percent(data):
    model, init = nlme.theophylline_model()
    fit = nlme.fit_laplace(model, data, init, method="focei", progress=False)
    table = {r["name"]: r["estimate"] for r in nlme.parameter_table(model, fit)}
    assert abs(fit.log_likelihood - PUB["log_likelihood"]) < 0.01
    for name in ("ka", "cl", "v", "cv%[ka]", "cv%[cl]", "cv%[v]", "sigma_add"):
        assert abs(table[name] / PUB[name] - 1) < 0.01, (name, table[name])
    assert abs(float(fit.se["theta"]["log_ka"]) - PUB["se_log_ka"]) < 0.01


@pytest.mark.slow
def test_svi_fit_matches_published_and_bounds_the_marginal(laplace_fit, data):
    model, lfit, _ = laplace_fit
    _, init = nlme.theophylline_model()
    res = nlme.fit_svi(
        model, data, init, guide="mvn", steps=3000, key=jax.random.key(0), progress=False
    )
    p = res.params
    # estimates within one SE of the published values (SEs: published for log ka, else Laplace)
    for name in ("ka", "cl", "v"):
        se = PUB["se_log_ka"] if name == "ka" else float(lfit.se["theta"][f"log_{name}"])
        assert abs(float(p["theta"][f"log_{name}"]) - math.log(PUB[name])) < se, name
    cv = 100 * np.sqrt(np.expm1(np.exp(2 * np.asarray(p["log_omega_sd"]))))
    table = {r["name"]: r for r in nlme.parameter_table(model, lfit)}
    for j, name in enumerate(("cv%[ka]", "cv%[cl]", "cv%[v]")):
        assert abs(cv[j] - PUB[name]) < table[name]["se"], (name, cv[j])
    assert abs(float(np.exp(p["log_sigma_add"])) - PUB["sigma_add"]) < table["sigma_add"]["se"]
    # ELBO <= Monte Carlo marginal log-likelihood at the SVI estimates ~ IW bound
    with jax.enable_x64(True):
        d64 = data.astype(jnp.float64)
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), p)
        _, lap = nlme.laplace_log_likelihood(model, p64, d64)
        mc, _ = nlme.importance_log_likelihood(
            model,
            p64,
            d64,
            lap.mode,
            jnp.linalg.inv(lap.precision),
            num_samples=4000,
            key=jax.random.key(3),
            df=5.0,
        )
        loc, cov = nlme.guide_moments(res, data)
        iw, _ = nlme.importance_log_likelihood(
            model,
            p64,
            d64,
            jnp.asarray(loc, jnp.float64),
            jnp.asarray(cov, jnp.float64),
            num_samples=1000,
            key=jax.random.key(4),
        )
    assert res.elbo < float(mc)
    assert res.elbo < float(iw) + 0.05
    assert abs(float(iw) - float(mc)) < 0.2
    assert float(mc) - res.elbo < 3.0


# -- bad input -------------------------------------------------------------------------


def table():
    return {
        "id": np.array([1, 1, 1, 2, 2, 2]),
        "time": np.array([0.5, 1.0, 2.0, 0.5, 1.0, 2.0]),
        "conc": np.array([1.0, 2.0, 1.5, 0.8, 1.9, 1.2]),
        "dose": np.array([100.0, 100.0, 100.0, 120.0, 120.0, 120.0]),
    }


def prep(t, **kw):
    kw.setdefault("covariates", ("dose",))
    kw.setdefault("nonnegative", ("dose",))
    return nlme.prepare_data(t, subject="id", time="time", observation="conc", **kw)


def test_bad_input_messages():
    t = table()
    del t["dose"]
    with pytest.raises(ValueError, match=r"table: expected columns \['dose'\]"):
        prep(t)
    t = table()
    t["time"][1] = -1.0
    with pytest.raises(ValueError, match="time: expected non-negative times, got 1 negative"):
        prep(t)
    t = table()
    t["dose"][4] = -5.0
    with pytest.raises(ValueError, match="dose: expected finite non-negative values"):
        prep(t)
    t = table()
    t["conc"][2] = np.nan
    with pytest.raises(ValueError, match="conc: expected finite observations, got 1 NaN"):
        prep(t)
    with pytest.raises(ValueError, match="missing: expected one of"):
        prep(table(), missing="impute")


def test_nan_observations_dropped_are_masked_out():
    t = table()
    t["conc"][2] = np.nan
    d = prep(t, missing="drop")
    assert d.num_obs == 5 and not bool(d.mask[0, 2]) and float(d.obs[0, 2]) == 0.0
    # a masked entry does not change the likelihood, whatever value sits in it
    model, init = nlme.theophylline_model()
    eta = jnp.zeros(3)
    args = (init, eta, {"dose": d.covariates["dose"][0]}, d.times[0])
    ll = nlme.subject_log_likelihood(model, *args, d.obs[0], d.mask[0])
    ll2 = nlme.subject_log_likelihood(model, *args, d.obs[0].at[2].set(1e6), d.mask[0])
    assert float(ll) == float(ll2)


def test_structural_model_wrong_shape():
    d = prep(table())
    bad = nlme.NLMEModel(lambda th, eta, cov, t: jnp.zeros(t.shape[0] + 1), ("a",))
    init = bad.init_params({"k": 0.0})
    with pytest.raises(ValueError, match=r"structural: expected predictions of shape \(3,\)"):
        bad.check(init, d)
    with pytest.raises(ValueError, match="omega: expected one of"):
        nlme.NLMEModel(nlme.one_compartment_oral, ("ka",), omega="block")
    with pytest.raises(ValueError, match="error: expected one of"):
        nlme.NLMEModel(nlme.one_compartment_oral, ("ka",), error="exponential")


def test_error_models_residual_sd():
    f = jnp.array([0.0, 1.0, 4.0])
    np.testing.assert_allclose(nlme.residual_sd("additive", f, 0.5, 0.0), [0.5] * 3)
    np.testing.assert_allclose(
        nlme.residual_sd("proportional", f, 0.0, 0.1), [0, 0.1, 0.4], atol=1e-9
    )
    np.testing.assert_allclose(
        nlme.residual_sd("combined", f, 0.5, 0.1), np.sqrt(0.25 + (0.1 * np.array([0, 1, 4])) ** 2)
    )


def test_one_compartment_matches_closed_form_auc():
    """AUC_0^inf = dose / CL, and the ka = ke limit is continuous (float64)."""
    with jax.enable_x64(True):
        theta = {"log_ka": jnp.log(1.5), "log_cl": jnp.log(2.0), "log_v": jnp.log(20.0)}
        t = jnp.linspace(0.0, 200.0, 200_001)
        c = nlme.one_compartment_oral(theta, jnp.zeros(3), {"dose": 300.0}, t)
        auc = float(jnp.trapezoid(c, t))
        assert abs(auc - 300.0 / 2.0) / 150.0 < 1e-4
        ke = 0.1
        near = {"log_ka": jnp.log(ke * (1 + 1e-6)), "log_cl": jnp.log(2.0), "log_v": jnp.log(20.0)}
        at = {"log_ka": jnp.log(ke), "log_cl": jnp.log(2.0), "log_v": jnp.log(20.0)}
        tt = jnp.array([1.0, 5.0])
        a = nlme.one_compartment_oral(near, jnp.zeros(3), {"dose": 300.0}, tt)
        b = nlme.one_compartment_oral(at, jnp.zeros(3), {"dose": 300.0}, tt)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4)


# ~20 s wall on 2 quiet cores; default suite so that CI smoke-runs every example
def test_example_smoke(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "theophylline_nlme.py"),
            "--smoke",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={"NUMPYRO_HGF_PROGRESS": "0", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "theophylline_vpc.png").exists()
    assert (tmp_path / "theophylline_gof.png").read_bytes()[:4] == b"\x89PNG"
    text = (tmp_path / "theophylline_parameters.md").read_text()
    assert "| ka |" in text


def test_neural_network_inside_the_structural_model():
    """theta may hold flax params: a zero-initialised multiplicative MLP correction leaves the
    likelihood unchanged and receives a non-zero gradient."""
    from numpyro_hgf.nn import MLP

    net = MLP((8,), 1, zero_init_output=True)

    def structural(theta, eta, cov, t):
        base = nlme.one_compartment_oral(theta["pk"], eta, cov, t)
        return base * (1.0 + net.apply({"params": theta["net"]}, t[:, None] / 24.0)[:, 0])

    d = prep(table())
    pk_theta = {"log_ka": jnp.log(1.5), "log_cl": jnp.log(3.0), "log_v": jnp.log(30.0)}
    net_params = net.init(jax.random.key(0), jnp.zeros((1, 1)))["params"]
    neural = nlme.NLMEModel(structural, ("ka", "cl", "v"))
    base = nlme.NLMEModel(nlme.one_compartment_oral, ("ka", "cl", "v"))
    p_neural = neural.init_params({"pk": pk_theta, "net": net_params})
    p_base = base.init_params(pk_theta)
    neural.check(p_neural, d)
    args = ({"dose": d.covariates["dose"][0]}, d.times[0], d.obs[0], d.mask[0])
    eta = jnp.array([0.1, -0.2, 0.05])

    def f(p):
        return nlme.subject_log_likelihood(neural, p, eta, *args)

    ll_neural, grad = jax.jit(jax.value_and_grad(f))(p_neural)
    ll_base = nlme.subject_log_likelihood(base, p_base, eta, *args)
    np.testing.assert_allclose(float(ll_neural), float(ll_base), rtol=1e-5)
    g_out = grad["theta"]["net"]["Dense_1"]["kernel"]
    assert float(jnp.max(jnp.abs(g_out))) > 1e-3


# -- NUTS ------------------------------------------------------------------------------


def nuts_priors(d=3):
    import numpyro.distributions as dist

    return {
        "theta_log_ka": dist.Normal(0.0, 5.0),
        "theta_log_cl": dist.Normal(0.0, 5.0),
        "theta_log_v": dist.Normal(0.0, 5.0),
        "omega_sd": dist.HalfNormal(1.0).expand([d]),
        "sigma_add": dist.HalfNormal(2.0),
    }


def nuts_z_scores(idata, lfit):
    """name -> (|posterior mean - Laplace estimate| / posterior SD, posterior SD) on log scale."""
    out = {}
    for name in ("ka", "cl", "v"):
        draws = np.asarray(idata.posterior[f"theta_log_{name}"]).ravel()
        est = float(lfit.params["theta"][f"log_{name}"])
        out[name] = (abs(draws.mean() - est) / draws.std(), draws.std())
    return out


@pytest.mark.slow
def test_nuts_posterior_agrees_with_laplace_fit(laplace_fit, data):
    """Weak priors: the NUTS posterior means of log ka, CL, V are within 2 posterior SDs of the
    Laplace estimates and the posterior SDs within a factor 2 of the Hessian SEs; with the dose
    doubled (a wrong unit) V and CL move by log 2, many posterior SDs (negative control)."""
    import arviz as az

    model, lfit, _ = laplace_fit
    _, init = nlme.theophylline_model()
    kw = {"num_warmup": 300, "num_samples": 300, "progress": False}
    idata = nlme.fit_nuts(model, data, init, nuts_priors(), key=jax.random.key(0), **kw)
    assert isinstance(idata, az.InferenceData)
    post = idata.posterior
    expected = {"theta_log_ka", "theta_log_cl", "theta_log_v", "omega_sd", "sigma_add", "eta"}
    assert set(post.data_vars) == expected
    assert post["eta"].shape == (1, 300, 12, 3) and post["omega_sd"].shape == (1, 300, 3)
    assert idata.log_likelihood["obs"].shape[:2] == (1, 300)
    assert int(idata.sample_stats["diverging"].sum()) <= 3
    z = nuts_z_scores(idata, lfit)
    for name, (score, sd) in z.items():
        se = float(lfit.se["theta"][f"log_{name}"])
        assert score < 2.0, (name, score)
        assert 0.5 < sd / se < 2.0, (name, sd, se)
    # residual SD: posterior mean within 3 posterior SDs of the Laplace estimate
    sig = np.asarray(post["sigma_add"]).ravel()
    assert abs(sig.mean() - math.exp(float(lfit.params["log_sigma_add"]))) < 3 * sig.std()

    # negative control: the same comparison on data with the dose doubled must fail
    doubled = data._replace(covariates={"dose": 2.0 * data.covariates["dose"]})
    bad = nuts_z_scores(
        nlme.fit_nuts(model, doubled, init, nuts_priors(), key=jax.random.key(1), **kw), lfit
    )
    assert bad["v"][0] > 4.0 and bad["cl"][0] > 4.0, bad


def test_nuts_priors_must_match_the_parameter_shapes(data):
    """A scalar prior on the (3,) omega_sd would tie the three IIV SDs together silently."""
    import numpyro.distributions as dist
    from numpyro import handlers

    model, init = nlme.theophylline_model()
    priors = nuts_priors()
    priors["omega_sd"] = dist.HalfNormal(1.0)
    with pytest.raises(ValueError, match=r"priors: expected a prior of shape \(3,\).*omega_sd"):
        handlers.seed(nlme.numpyro_model, 0)(model, data, init, priors)
    # the right shapes trace (positive control)
    tr = handlers.trace(handlers.seed(nlme.numpyro_model, 0)).get_trace(
        model, data, init, nuts_priors()
    )
    assert tr["omega_sd"]["value"].shape == (3,)
