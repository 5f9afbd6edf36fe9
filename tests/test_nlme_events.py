"""NONMEM event records (:mod:`numpyro_hgf.models.nlme.events`) and the multiple-dose closed
forms of :mod:`numpyro_hgf.models.pk`.

Oracles: the single-dose closed form (Gibaldi & Perrier eq. 1.62) and its FOCE-I fit of
theophylline (log-likelihood -179.7016), sums of shifted single-dose curves, the IV bolus as
the limit of short infusions, and a simulation with known parameters refitted by FOCE-I.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from numpyro_hgf.models import nlme, pk

THETA = {"log_ka": math.log(1.5), "log_cl": math.log(2.8), "log_v": math.log(32.0)}
ORAL_ETA = ("ka", "cl", "v")


# ---------------------------------------------------------------------------------------
# (d) superposition against closed forms
# ---------------------------------------------------------------------------------------


def test_one_dose_superposition_equals_the_single_dose_closed_form():
    t = jnp.linspace(0.0, 24.0, 49)
    eta = jnp.array([0.2, -0.1, 0.05])
    single = pk.one_compartment_oral(THETA, eta, {"dose": 320.0}, t)
    multi = pk.one_compartment_oral_doses(
        THETA, eta, {"dose_time": jnp.array([0.0]), "dose_amt": jnp.array([320.0])}, t
    )
    np.testing.assert_allclose(multi, single, rtol=1e-6, atol=1e-9)
    assert float(single.max()) > 5.0  # a real curve (peak ~ 8 mg/L)


def test_two_doses_equal_the_sum_of_shifted_single_doses():
    t = jnp.linspace(0.0, 36.0, 73)
    eta = jnp.zeros(3)
    cov = {"dose_time": jnp.array([0.0, 8.0]), "dose_amt": jnp.array([300.0, 150.0])}
    two = pk.one_compartment_oral_doses(THETA, eta, cov, t)
    first = pk.one_compartment_oral(THETA, eta, {"dose": 300.0}, t)
    second = jnp.where(t >= 8.0, pk.one_compartment_oral(THETA, eta, {"dose": 150.0}, t - 8.0), 0)
    np.testing.assert_allclose(two, first + second, rtol=1e-6, atol=1e-9)
    # the second dose adds nothing before 8 h and something after
    assert np.allclose(two[t < 8.0], first[t < 8.0])
    assert float(two[t == 12.0][0] - first[t == 12.0][0]) > 1.0
    # a padded (masked) dose and one after a reset count for nothing where they should not
    pad = cov | {"dose_mask": jnp.array([1.0, 0.0])}
    np.testing.assert_allclose(pk.one_compartment_oral_doses(THETA, eta, pad, t), first, 1e-6)
    cut = cov | {"dose_end": jnp.array([8.0, jnp.inf])}
    np.testing.assert_allclose(
        pk.one_compartment_oral_doses(THETA, eta, cut, t), jnp.where(t < 8.0, first, second), 1e-6
    )


def depot_input_ode(ka, ke, v, doses, t):
    """SciPy's ODE solve of depot -> central with zero-order inputs ``(time, amt, rate)``."""
    from scipy.integrate import solve_ivp

    def rhs(s, y):
        inflow = sum(r for (t0, a, r) in doses if t0 <= s < t0 + a / r)
        return [inflow - ka * y[0], ka * y[0] - ke * y[1]]

    stops = sorted({0.0, *(t0 for t0, _, _ in doses), *(t0 + a / r for t0, a, r in doses)})
    ys, y = [], [0.0, 0.0]
    grid = np.asarray(t, np.float64)
    for a, b in zip(stops, [*stops[1:], grid.max() + 1e-9], strict=True):
        sol = solve_ivp(rhs, (a, b), y, rtol=1e-11, atol=1e-12, dense_output=True)
        inside = (grid >= a) & (grid < b)
        ys.append((grid[inside], sol.sol(grid[inside])[1] / v))
        y = sol.y[:, -1]
    out = np.zeros_like(grid)
    for g, c in ys:
        out[np.searchsorted(grid, g)] = c
    return out


@pytest.mark.parametrize("ka", [1.5, 2.8 / 32.0 * (1 + 1e-9)])  # general and ka = ke limit
def test_oral_zero_order_input_equals_an_ode_solve(ka):
    """RATE > 0 on an oral dose: a zero-order input into the depot over AMT / RATE h (was
    silently a bolus).  Two inputs (300 mg over 2 h, 150 mg over 6 h from 8 h) against
    SciPy's solve of the two-compartment ODE; the inputs tend to the bolus as RATE grows."""
    theta = dict(THETA, log_ka=math.log(ka))
    ke, v = 2.8 / 32.0, 32.0
    with jax.enable_x64(True):
        t = jnp.linspace(0.0, 30.0, 61, dtype=jnp.float64)
    cov = {
        "dose_time": jnp.array([0.0, 8.0]),
        "dose_amt": jnp.array([300.0, 150.0]),
        "dose_rate": jnp.array([150.0, 25.0]),
    }
    with jax.enable_x64(True):
        got = pk.one_compartment_oral_doses(theta, jnp.zeros(3), cov, t)
        expected = depot_input_ode(ka, ke, v, [(0.0, 300.0, 150.0), (8.0, 150.0, 25.0)], t)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)
        fast = cov | {"dose_rate": jnp.array([1e7, 1e7])}
        bolus = cov | {"dose_rate": jnp.zeros(2)}
        np.testing.assert_allclose(
            pk.one_compartment_oral_doses(theta, jnp.zeros(3), fast, t),
            pk.one_compartment_oral_doses(theta, jnp.zeros(3), bolus, t),
            rtol=1e-4,  # the input lasts 3e-5 h: a relative shift of about ka * 1.5e-5
            atol=1e-8,
        )
        # differs from the bolus it used to be: lower peak (7.68 vs 7.86), later
        as_bolus = pk.one_compartment_oral_doses(theta, jnp.zeros(3), bolus, t)
        first = t < 8.0
        assert float(jnp.max(got[first])) < 0.99 * float(jnp.max(as_bolus[first]))
        if ka > 1.0:  # the first dose's peak: 3.5 h against 2 h (slow ka: both still rising)
            assert int(jnp.argmax(got[first])) > int(jnp.argmax(as_bolus[first]))
        grad = jax.grad(lambda r: pk.one_compartment_oral_doses(
            theta, jnp.zeros(3), cov | {"dose_rate": r}, t).sum())(cov["dose_rate"])  # fmt: skip
        assert np.all(np.isfinite(np.asarray(grad)))


IV_THETA = {"log_cl": math.log(3.0), "log_v": math.log(20.0)}


def test_iv_bolus_closed_form_and_infusion_tends_to_the_bolus():
    t = jnp.linspace(0.0, 24.0, 97)
    eta = jnp.array([0.1, -0.2])
    cl, v = 3.0 * math.exp(0.1), 20.0 * math.exp(-0.2)
    bolus = pk.one_compartment_iv(
        IV_THETA, eta, {"dose_time": jnp.array([2.0]), "dose_amt": jnp.array([500.0])}, t
    )
    expect = np.where(t >= 2.0, 500.0 / v * np.exp(-cl / v * (t - 2.0)), 0.0)
    np.testing.assert_allclose(bolus, expect, rtol=1e-5, atol=1e-7)
    # infusion of 500 mg over 4 h: the closed form during and after
    inf = pk.one_compartment_iv(
        IV_THETA,
        eta,
        {"dose_time": jnp.array([2.0]), "dose_amt": jnp.array([500.0]), "dose_rate": [125.0]},
        t,
    )
    ke, tau = cl / v, np.asarray(t) - 2.0
    during = 125.0 / cl * (1 - np.exp(-ke * np.clip(tau, 0, 4)))
    expect_inf = np.where(tau >= 0, during * np.exp(-ke * np.clip(tau - 4, 0, None)), 0.0)
    np.testing.assert_allclose(inf, expect_inf, rtol=1e-5, atol=1e-6)
    assert float(jnp.max(inf)) < 0.8 * float(jnp.max(bolus))
    # shorter and shorter infusions approach the bolus (error ~ ke * duration)
    errs = []
    for duration in (1.0, 0.1, 0.01, 0.001):
        cov = {"dose_time": [2.0], "dose_amt": [500.0], "dose_rate": [500.0 / duration]}
        c = pk.one_compartment_iv(IV_THETA, eta, cov, t)
        after = np.asarray(t) >= 2.0 + duration
        errs.append(float(np.max(np.abs(np.asarray(c - bolus))[after])))
    assert errs[-1] < 1e-2 * errs[0] and errs[-1] < 0.05, errs
    assert all(b < a for a, b in zip(errs, errs[1:], strict=False)), errs


def test_gradients_are_finite_at_dose_times():
    cov = {
        "dose_time": jnp.array([0.0, 12.0]),
        "dose_amt": jnp.array([300.0, 300.0]),
        "dose_rate": jnp.array([0.0, 100.0]),
    }
    t = jnp.array([0.0, 6.0, 12.0, 15.0, 24.0])
    for f, theta, d in (
        (pk.one_compartment_oral_doses, THETA, 3),
        (pk.one_compartment_iv, IV_THETA, 2),
    ):
        g_theta, g_eta = jax.grad(lambda th, e, f=f: jnp.sum(f(th, e, cov, t)), (0, 1))(
            theta, jnp.zeros(d)
        )
        flat = np.concatenate([np.ravel(v) for v in jax.tree.leaves(g_theta)] + [g_eta])
        assert np.all(np.isfinite(flat)) and np.any(flat != 0), (f.__name__, flat)
    # ka == ke: the limit branch is finite too
    th = {"log_ka": 0.0, "log_cl": math.log(30.0), "log_v": math.log(30.0)}
    g = jax.grad(lambda e: jnp.sum(pk.one_compartment_oral_doses(th, e, cov, t)))(jnp.zeros(3))
    assert np.all(np.isfinite(g))


# ---------------------------------------------------------------------------------------
# (a) theophylline through the event path
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_theophylline_events_reproduce_the_closed_form_focei_fit():
    table = nlme.theophylline_events()
    assert len(table) == 144 and int((table.EVID == 1).sum()) == 12
    events = nlme.read_events(table)
    data = nlme.theophylline_data()
    np.testing.assert_array_equal(events.times, data.times)
    np.testing.assert_array_equal(events.obs, data.obs)
    np.testing.assert_array_equal(events.mask, data.mask)
    np.testing.assert_allclose(events.covariates["dose_amt"][:, 0], data.covariates["dose"])
    model, init = nlme.theophylline_model()
    ref = nlme.fit_laplace(model, data, init, method="focei", progress=False)
    event_model = nlme.NLMEModel(pk.one_compartment_oral_doses, ORAL_ETA)
    fit = nlme.fit_laplace(event_model, events, init, method="focei", progress=False)
    assert abs(ref.log_likelihood - (-179.7016)) < 1e-3
    assert abs(fit.log_likelihood - ref.log_likelihood) < 1e-3
    est, want = (jax.tree.leaves(jax.tree.map(np.exp, f.params)) for f in (fit, ref))
    for a, b in zip(est, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3)


def test_theophylline_events_from_csv(tmp_path):
    path = tmp_path / "theo.csv"
    nlme.theophylline_events().to_csv(path, index=False, na_rep=".")
    events = nlme.read_events(path)
    np.testing.assert_array_equal(events.obs, nlme.theophylline_data().obs)
    np.testing.assert_allclose(events.covariates["WT"][0], 79.6)


# ---------------------------------------------------------------------------------------
# the reader: ADDL, MDV, resets
# ---------------------------------------------------------------------------------------


def _row(ID, TIME, EVID, AMT=0.0, DV=np.nan, **kw):
    return {"ID": ID, "TIME": TIME, "DV": DV, "AMT": AMT, "EVID": EVID} | kw


def test_addl_expansion_mdv_and_reset_clock():
    rows = [
        _row(1, 0.0, 1, 100.0, ADDL=2, II=12.0),
        _row(1, 1.0, 0, DV=2.0),
        _row(1, 30.0, 0, DV=3.0, MDV=1),
        _row(1, 0.0, 4, 50.0, RATE=25.0),  # reset: the clock restarts
        _row(1, 2.0, 0, DV=1.5),
        _row(2, 0.0, 1, 80.0),
        _row(2, 0.0, 2),
        _row(2, 4.0, 0, DV=0.5),
    ]
    d = nlme.read_events(pd.DataFrame(rows))
    c = {k: np.asarray(v) for k, v in d.covariates.items()}
    # reset placed 1 h after the latest earlier time (30 h): at 31 h
    np.testing.assert_allclose(c["dose_time"][0], [0.0, 12.0, 24.0, 31.0])
    np.testing.assert_allclose(c["dose_end"][0], [31.0, 31.0, 31.0, np.inf])
    np.testing.assert_allclose(c["dose_rate"][0], [0, 0, 0, 25.0])
    np.testing.assert_allclose(c["dose_mask"], [[1, 1, 1, 1], [1, 0, 0, 0]])
    np.testing.assert_allclose(d.times, [[1.0, 30.0, 33.0], [4.0, 4.0, 4.0]])
    np.testing.assert_array_equal(d.mask, [[True, False, True], [True, False, False]])
    assert d.num_obs == 3
    # the IV model on these records: after the reset only the infusion counts
    pred = pk.one_compartment_iv(
        IV_THETA, jnp.zeros(2), {k: v[0] for k, v in c.items()}, jnp.array([33.0])
    )
    alone = pk.one_compartment_iv(
        IV_THETA,
        jnp.zeros(2),
        {"dose_time": [0.0], "dose_amt": [50.0], "dose_rate": [25.0]},
        jnp.array([2.0]),
    )
    np.testing.assert_allclose(pred, alone, rtol=1e-6)


# ---------------------------------------------------------------------------------------
# (c) bad data: one error per fault, naming the row and the column
# ---------------------------------------------------------------------------------------

GOOD = [_row(1, 0.0, 1, 100.0), _row(1, 1.0, 0, DV=2.0), _row(1, 2.0, 0, DV=1.0)]


@pytest.mark.parametrize(
    ("row", "change", "column", "words"),
    [
        (0, {"AMT": 0.0}, "AMT", "positive amount"),
        (0, {"EVID": 4, "AMT": np.nan}, "AMT", "positive amount"),
        (2, {"TIME": 0.5}, "TIME", "time decreases"),
        (1, {"EVID": 3}, "EVID", "expected one of"),
        (2, {"DV": np.nan, "MDV": 0}, "DV", "finite DV"),
        (0, {"ADDL": 2, "II": 0.0}, "II", "II > 0"),
        (0, {"RATE": -2.0}, "RATE", "rate >= 0"),
    ],
)
def test_bad_event_data_names_row_and_column(row, change, column, words):
    rows = [dict(r) for r in GOOD]
    rows[row].update(change)
    with pytest.raises(nlme.EventDataError, match=rf"row {row}\b.*column {column}") as err:
        nlme.read_events(pd.DataFrame(rows))
    assert words in str(err.value) and err.value.row == row and err.value.column == column
    assert isinstance(err.value, ValueError)
    nlme.read_events(pd.DataFrame(GOOD))  # the unchanged table reads


def test_missing_required_column_and_csv_line(tmp_path):
    table = pd.DataFrame(GOOD).drop(columns="EVID")
    with pytest.raises(nlme.EventDataError, match="expected column EVID") as err:
        nlme.read_events(table)
    assert err.value.column == "EVID"
    # a decrease after an EVID 4 reset is fine; from a CSV the line is named too
    rows = [dict(r) for r in GOOD] + [_row(1, 0.0, 4, 50.0), _row(1, 1.0, 0, DV=np.nan)]
    nlme.read_events(pd.DataFrame(rows[:4] + [_row(1, 1.0, 0, DV=1.0)]))
    path = tmp_path / "bad.csv"
    pd.DataFrame(rows).to_csv(path, index=False, na_rep=".")
    with pytest.raises(nlme.EventDataError, match=r"row 4 \(line 6 of .*bad.csv\), column DV"):
        nlme.read_events(path)
    with pytest.raises(TypeError, match="source"):
        nlme.read_events(42)


# ---------------------------------------------------------------------------------------
# (b) multiple doses: simulate with known parameters, refit by FOCE-I
# ---------------------------------------------------------------------------------------

SIM_THETA = {"log_ka": math.log(1.2), "log_cl": math.log(2.5), "log_v": math.log(25.0)}
SIM_OMEGA_SD = np.array([0.3, 0.25, 0.2])
SIM_SIGMA = 0.2
SIM_TIMES = np.array([0.25, 0.5, 1, 2, 3, 4, 6, 8, 11.5, 12.5, 13, 14, 16, 23.5, 24.5, 25, 26])
SIM_TIMES = np.concatenate([SIM_TIMES, [28.0, 32.0, 36.0, 48.0]])
SIM_NAMES = ("log_ka", "log_cl", "log_v", "log_omega_sd[ka]", "log_omega_sd[cl]")
SIM_NAMES += ("log_omega_sd[v]", "log_sigma_add")


def simulate_three_doses(seed, n=24, amt=300.0, ii=12.0):
    """``(table, realized)``: event records of ``n`` subjects dosed at 0, 12, 24 h (one
    record with ADDL 2, II 12) and the realized population values of the draw: the truth
    shifted by the sample mean of the etas, the log RMS of the etas and of the residuals."""
    rng = np.random.default_rng(seed)
    eta = rng.normal(size=(n, 3)) * SIM_OMEGA_SD
    eps = SIM_SIGMA * rng.normal(size=(n, len(SIM_TIMES)))
    # the oracle: three explicit doses (the reader has to expand ADDL to the same)
    cov = {"dose_time": jnp.array([0.0, ii, 2 * ii]), "dose_amt": jnp.full(3, amt)}
    f = jax.vmap(lambda e: pk.one_compartment_oral_doses(SIM_THETA, e, cov, SIM_TIMES))(eta)
    rows = []
    for i in range(n):
        rows.append(_row(i + 1, 0.0, 1, amt, ADDL=2, II=ii))
        rows += [
            _row(i + 1, t, 0, DV=y)
            for t, y in zip(SIM_TIMES, np.asarray(f[i]) + eps[i], strict=True)
        ]
    theta = np.array([SIM_THETA[k] for k in ("log_ka", "log_cl", "log_v")])
    realized = np.concatenate(
        [theta + eta.mean(0), np.log(np.sqrt((eta**2).mean(0))), [np.log(np.std(eps))]]
    )
    return pd.DataFrame(rows), realized


def refit(table):
    """``(estimates, se)`` in the order of ``SIM_NAMES`` of the FOCE-I fit."""
    model = nlme.NLMEModel(pk.one_compartment_oral_doses, ORAL_ETA)
    init = model.init_params({k: v + 0.3 for k, v in SIM_THETA.items()}, 0.5, 1.0)
    fit = nlme.fit_laplace(model, nlme.read_events(table), init, method="focei", progress=False)
    assert fit.converged

    def flat(p):
        th = [float(p["theta"][k]) for k in ("log_ka", "log_cl", "log_v")]
        return np.concatenate([th, np.asarray(p["log_omega_sd"]), [float(p["log_sigma_add"])]])

    return flat(fit.params), flat(fit.se)


SIM_TRUTH = np.concatenate(
    [
        [SIM_THETA[k] for k in ("log_ka", "log_cl", "log_v")],
        np.log(SIM_OMEGA_SD),
        [math.log(SIM_SIGMA)],
    ]
)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_three_dose_simulation_is_recovered_by_focei(seed):
    """Each estimate lies within 1 SE of the realized population value of its draw (the
    truth moved by the sample mean / RMS of the simulated etas and residuals; measured:
    at most 0.58 SE) and within 4 SE of the truth.  (Against the truth at 2 SE, seed 1
    misses on omega[v] at -3.4 SE: that draw's eta_v have RMS 0.121 instead of 0.2, -3.5 SE,
    and the fit follows the draw.)"""
    table, realized = simulate_three_doses(seed)
    assert int((table.EVID == 1).sum()) == 24  # one dose record each, expanded by ADDL
    est, se = refit(table)
    assert np.all(np.isfinite(se)) and np.all(se > 0) and np.all(se < 0.2), se
    z_draw, z_truth = (est - realized) / se, (est - SIM_TRUTH) / se
    assert np.all(np.abs(z_draw) < 1.0), dict(zip(SIM_NAMES, z_draw.round(2), strict=True))
    assert np.all(np.abs(z_truth) < 4.0), dict(zip(SIM_NAMES, z_truth.round(2), strict=True))


@pytest.mark.slow
def test_three_dose_standard_errors_cover_the_truth():
    """Over 20 draws, 95 % intervals (2 SE) cover the truth for >= 88 % of the 140
    parameter estimates (calibrated SEs: 95.4 %, and fewer than 88 % has probability < 1e-3;
    measured 90.7 %) and no parameter is off by 1 SE on average (measured: -0.11 to -0.70, the
    log omega SDs lowest: maximum-likelihood variances are biased low, by about 1/N)."""
    z = np.stack(
        [(lambda e, s: (e - SIM_TRUTH) / s)(*refit(simulate_three_doses(s)[0])) for s in range(20)]
    )
    coverage = float(np.mean(np.abs(z) < 2.0))
    assert coverage >= 0.88, (coverage, z.round(2))
    assert np.all(np.abs(z.mean(0)) < 1.0), dict(zip(SIM_NAMES, z.mean(0).round(2), strict=True))


# ---------------------------------------------------------------------------------------
# covariates: CL = exp(log_cl) (WT / 70)^beta exp(eta)
# ---------------------------------------------------------------------------------------


def test_power_covariate_matches_the_formula_and_checks_its_arguments():
    f = pk.power_covariates(pk.one_compartment_oral_doses, {"log_cl": ("WT", 70.0, 0.75)})
    cov = {"dose_time": jnp.array([0.0]), "dose_amt": jnp.array([300.0]), "WT": 35.0}
    t = jnp.array([1.0, 4.0, 12.0])
    by_hand = THETA | {"log_cl": THETA["log_cl"] + 0.75 * math.log(0.5)}
    np.testing.assert_allclose(
        f(THETA, jnp.zeros(3), cov, t),
        pk.one_compartment_oral_doses(by_hand, jnp.zeros(3), cov, t),
        rtol=1e-6,
    )
    assert not np.allclose(
        f(THETA, jnp.zeros(3), cov, t), f(THETA, jnp.zeros(3), cov | {"WT": 70.0}, t)
    )
    with pytest.raises(ValueError, match=r"effects\['log_cl'\].*reference > 0"):
        pk.power_covariates(pk.one_compartment_oral_doses, {"log_cl": ("WT", 0.0, 0.75)})
    with pytest.raises(ValueError, match=r"effects\['log_cl'\].*\(covariate, reference"):
        pk.power_covariates(pk.one_compartment_oral_doses, {"log_cl": ("WT", 70.0)})
    with pytest.raises(TypeError, match="structural"):
        pk.power_covariates(None, {})


WT_MODEL = pk.power_covariates(
    pk.one_compartment_oral_doses, {"log_cl": ("WT", 70.0, "beta_cl_wt")}
)


def simulate_weight_study(seed, n=40, amt=320.0):
    """``(table, realized exponent)``: single doses, WT uniform on 40-120 kg, CL ~ (WT/70)^0.75;
    the realized exponent is 0.75 plus the least-squares slope of the drawn eta_CL on
    log(WT/70) (what the draw tells about the exponent)."""
    rng = np.random.default_rng(seed)
    wt = rng.uniform(40.0, 120.0, n)
    eta = rng.normal(size=(n, 3)) * np.array([0.3, 0.2, 0.15])
    times = np.array([0.25, 0.5, 1, 2, 3.5, 5, 7, 9, 12, 24.0])
    truth = THETA | {"beta_cl_wt": 0.75}
    rows = []
    for i in range(n):
        cov = {"dose_time": jnp.array([0.0]), "dose_amt": jnp.array([amt]), "WT": wt[i]}
        y = np.asarray(WT_MODEL(truth, jnp.asarray(eta[i]), cov, times))
        y = y + 0.3 * rng.normal(size=y.shape)
        rows.append(_row(i + 1, 0.0, 1, amt, WT=wt[i]))
        rows += [_row(i + 1, t, 0, DV=v, WT=wt[i]) for t, v in zip(times, y, strict=True)]
    realized = 0.75 + np.polyfit(np.log(wt / 70.0), eta[:, 1], 1)[0]
    return pd.DataFrame(rows), realized


@pytest.mark.slow
def test_weight_exponent_on_clearance_is_recovered():
    """FOCE-I recovers the exponent of CL ~ (WT/70)^beta (truth 0.75) within 1 SE of the
    draw's realized value and 3 SE of the truth, tells it from 0 (beta / SE > 3), and the fit
    without the covariate is worse by a likelihood ratio; seeds 3-5.  (Seed 3's draw has a
    realized exponent of 0.483, -2.5 SE: the estimate 0.446 follows it.)"""
    model = nlme.NLMEModel(WT_MODEL, ORAL_ETA)
    init = model.init_params(THETA | {"beta_cl_wt": 0.0}, 0.5, 1.0)
    for seed in (3, 4, 5):
        table, realized = simulate_weight_study(seed)
        data = nlme.read_events(table)
        fit = nlme.fit_laplace(model, data, init, method="focei", progress=False)
        beta = float(fit.params["theta"]["beta_cl_wt"])
        se = float(fit.se["theta"]["beta_cl_wt"])
        assert fit.converged and 0.02 < se < 0.3, se
        assert abs(beta - realized) < se and abs(beta - 0.75) < 3 * se, (seed, beta, se)
        assert beta / se > 3, (seed, beta, se)
    plain = nlme.NLMEModel(pk.one_compartment_oral_doses, ORAL_ETA)
    init = plain.init_params(THETA, 0.5, 1.0)
    without = nlme.fit_laplace(plain, data, init, method="focei", progress=False)
    assert fit.log_likelihood - without.log_likelihood > 3.0, (fit, without.log_likelihood)


# ---------------------------------------------------------------------------------------
# the ODE model (diffrax, doses as state jumps) against the closed forms
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ode_model_equals_the_closed_forms():
    """Within 1e-6 mg/L (float64): oral doses with a padded record, central (CMT 2) boluses
    against the IV closed form, and a reset with an ADDL dose past it; gradients agree."""
    from numpyro_hgf.models import pk_ode

    t = jnp.linspace(0.0, 48.0, 97)
    with jax.enable_x64(True):
        eta = jnp.array([0.1, -0.2, 0.05])
        cov = {
            "dose_time": jnp.array([0.0, 12.0, 24.0, 24.0]),
            "dose_amt": jnp.array([300.0, 300.0, 150.0, 0.0]),
            "dose_mask": jnp.array([1.0, 1.0, 1.0, 0.0]),
        }
        ode = pk_ode.one_compartment_oral_ode(THETA, eta, cov, t)
        closed = pk.one_compartment_oral_doses(THETA, eta, cov, t)
        assert float(jnp.max(closed)) > 10.0
        np.testing.assert_allclose(ode, closed, atol=1e-6, rtol=0)
        central = cov | {"dose_cmt": jnp.full(4, 2.0)}
        iv = pk.one_compartment_iv({k: THETA[k] for k in ("log_cl", "log_v")}, eta[1:], cov, t)
        np.testing.assert_allclose(
            pk_ode.one_compartment_oral_ode(THETA, eta, central, t), iv, atol=1e-6, rtol=0
        )
        reset = {
            "dose_time": jnp.array([0.0, 12.0, 20.0, 24.0, 36.0]),
            "dose_amt": jnp.array([300.0, 300.0, 100.0, 300.0, 300.0]),
            "dose_end": jnp.array([20.0, 20.0, jnp.inf, 20.0, 20.0]),
        }
        np.testing.assert_allclose(
            pk_ode.one_compartment_oral_ode(THETA, eta, reset, t),
            pk.one_compartment_oral_doses(THETA, eta, reset, t),
            atol=1e-6,
            rtol=0,
        )
        g_ode = jax.grad(lambda e: jnp.sum(pk_ode.one_compartment_oral_ode(THETA, e, cov, t)))
        g_cf = jax.grad(lambda e: jnp.sum(pk.one_compartment_oral_doses(THETA, e, cov, t)))
        np.testing.assert_allclose(g_ode(eta), g_cf(eta), rtol=1e-6)
        jac = jax.jacfwd(lambda e: pk_ode.one_compartment_oral_ode(THETA, e, cov, t))(eta)
        np.testing.assert_allclose(jac.sum(0), g_cf(eta), rtol=1e-6)


@pytest.mark.slow
def test_ode_model_reproduces_the_theophylline_focei_fit():
    """FOCE-I through the ODE model (about 2 min, mostly compilation): log-likelihood
    -179.7016 as the closed form (measured -179.701592831 against -179.701592830)."""
    from numpyro_hgf.models import pk_ode

    _, init = nlme.theophylline_model()
    model = nlme.NLMEModel(pk_ode.one_compartment_oral_ode, ORAL_ETA)
    events = nlme.read_events(nlme.theophylline_events())
    fit = nlme.fit_laplace(model, events, init, method="focei", progress=False)
    assert abs(fit.log_likelihood - (-179.7016)) < 1e-3
    np.testing.assert_allclose(np.exp(fit.params["theta"]["log_ka"]), 1.590, rtol=2e-3)
    np.testing.assert_allclose(np.exp(fit.params["theta"]["log_v"]), 31.81, rtol=2e-3)
