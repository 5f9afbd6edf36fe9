"""The compartmental ODE models of :mod:`numpyro_hgf.models.pk_ode` against closed forms and
SciPy: infusions, the two-compartment bi-exponential, Michaelis-Menten via Lambert's W.

Oracles: the superposition closed forms of :mod:`numpyro_hgf.models.pk` (oral and IV, bolus
and infusion, with a reset), Gibaldi & Perrier's bi-exponential IV bolus (eq. 2.6), SciPy's
``solve_ivp`` (Radau, tolerances 1e-11) on multiple oral doses with an infusion, and the
Lambert-W solution of the Michaelis-Menten IV bolus.  All in float64.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.special import lambertw

from numpyro_hgf.models import nlme, pk, pk_ode

THETA = {"log_ka": math.log(1.5), "log_cl": math.log(2.8), "log_v": math.log(32.0)}
TWO = {
    "log_ka": math.log(1.2),
    "log_cl": math.log(3.0),
    "log_v1": math.log(20.0),
    "log_q": math.log(4.0),
    "log_v2": math.log(50.0),
}
MM = {
    "log_ka": math.log(1.0),
    "log_vmax": math.log(30.0),
    "log_km": math.log(2.0),
    "log_v": math.log(25.0),
}


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def test_infusions_and_a_reset_equal_the_closed_forms(x64):
    """RATE > 0 into the depot (CMT 1) and the central compartment (CMT 2), mixed with
    boluses and an EVID 4 reset that stops a running infusion: within 1e-7 mg/L of the
    superposition closed forms; ignoring RATE (the old behaviour) is far off."""
    t = jnp.linspace(0.0, 48.0, 193)
    eta = jnp.array([0.1, -0.2, 0.05])
    oral = {
        "dose_time": jnp.array([0.0, 6.0, 12.0, 12.0]),
        "dose_amt": jnp.array([300.0, 200.0, 300.0, 0.0]),
        "dose_rate": jnp.array([0.0, 50.0, 100.0, 0.0]),
        "dose_mask": jnp.array([1.0, 1.0, 1.0, 0.0]),
    }
    ode = pk_ode.one_compartment_oral_ode(THETA, eta, oral, t)
    closed = pk.one_compartment_oral_doses(THETA, eta, oral, t)
    assert float(jnp.max(closed)) > 10.0
    np.testing.assert_allclose(ode, closed, atol=1e-7, rtol=0)
    bolus = oral | {"dose_rate": jnp.zeros(4)}
    ignored = pk_ode.one_compartment_oral_ode(THETA, eta, bolus, t)
    assert float(jnp.max(jnp.abs(ignored - closed))) > 0.5  # negative control

    iv_theta = {k: THETA[k] for k in ("log_cl", "log_v")}
    # an infusion of 400 mg over 8 h from t = 2, cut by a reset at t = 6 (EVID 4, 100 mg bolus)
    iv = {
        "dose_time": jnp.array([2.0, 6.0, 20.0]),
        "dose_amt": jnp.array([400.0, 100.0, 300.0]),
        "dose_rate": jnp.array([50.0, 0.0, 150.0]),
        "dose_end": jnp.array([6.0, jnp.inf, jnp.inf]),
        "dose_cmt": jnp.full(3, 2.0),
    }
    ode_iv = pk_ode.one_compartment_oral_ode(THETA, eta, iv, t)
    closed_iv = pk.one_compartment_iv(iv_theta, eta[1:], iv, t)
    np.testing.assert_allclose(ode_iv, closed_iv, atol=1e-7, rtol=0)
    assert float(ode_iv[jnp.searchsorted(t, 5.75)]) > float(ode_iv[jnp.searchsorted(t, 6.0)])


@pytest.mark.slow
def test_gradients_with_infusions_match_the_closed_form(x64):
    t = jnp.linspace(0.0, 30.0, 31)
    cov = {
        "dose_time": jnp.array([0.0, 8.0]),
        "dose_amt": jnp.array([300.0, 150.0]),
        "dose_rate": jnp.array([150.0, 0.0]),
    }
    eta = jnp.array([0.2, -0.1, 0.1])

    def total(f):
        return jax.grad(lambda e: jnp.sum(f(THETA, e, cov, t)))(eta)

    np.testing.assert_allclose(
        total(pk_ode.one_compartment_oral_ode), total(pk.one_compartment_oral_doses), rtol=1e-6
    )


def _biexponential(t, dose, v1, k10, k12, k21):
    """Gibaldi & Perrier eq. 2.6: IV bolus into the central compartment."""
    s = k10 + k12 + k21
    root = math.sqrt(s * s - 4 * k10 * k21)
    alpha, beta = (s + root) / 2, (s - root) / 2
    a = (alpha - k21) / (alpha - beta)
    b = (k21 - beta) / (alpha - beta)
    return dose / v1 * (a * np.exp(-alpha * t) + b * np.exp(-beta * t))


def test_two_compartment_iv_bolus_is_biexponential(x64):
    t = jnp.linspace(0.0, 72.0, 145)
    cov = {"dose_time": jnp.array([0.0]), "dose_amt": jnp.array([500.0]), "dose_cmt": 2.0}
    got = pk_ode.two_compartment_oral_ode(TWO, jnp.zeros(5), cov, t)
    expected = _biexponential(np.asarray(t), 500.0, 20.0, 3.0 / 20.0, 4.0 / 20.0, 4.0 / 50.0)
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)
    # negative control: the one-compartment model with the same CL and V1 decays faster
    one = pk.one_compartment_iv({"log_cl": TWO["log_cl"], "log_v": TWO["log_v1"]},
                                jnp.zeros(2), cov, t)  # fmt: skip
    assert float(jnp.max(jnp.abs(one - expected))) > 1.0


def _two_compartment_scipy(params, doses, t_eval):
    """SciPy Radau on the depot / central / peripheral ODE, segment by segment."""
    ka, cl, v1, q, v2 = params
    edges = sorted({0.0, float(t_eval[-1])} | {d[0] for d in doses} |
                   {d[0] + d[1] / d[2] for d in doses if d[2] > 0})  # fmt: skip
    x = np.zeros(3)
    out = np.zeros(len(t_eval))
    for t0, t1 in zip(edges[:-1], edges[1:], strict=True):
        for time, amt, rate in doses:
            if time == t0 and rate == 0:
                x[0] += amt
        inputs = sum(
            rate for time, amt, rate in doses if rate > 0 and time <= t0 < time + amt / rate
        )

        def field(_, y, inputs=inputs):
            return [
                -ka * y[0] + inputs,
                ka * y[0] - (cl + q) / v1 * y[1] + q / v2 * y[2],
                q / v1 * y[1] - q / v2 * y[2],
            ]

        inside = (t_eval >= t0) & ((t_eval < t1) | (t1 == edges[-1]))
        sol = solve_ivp(field, (t0, t1), x, method="Radau", rtol=1e-11, atol=1e-13,
                        t_eval=t_eval[inside], dense_output=False)  # fmt: skip
        out[inside] = sol.y[1] / v1
        x = solve_ivp(field, (t0, t1), x, method="Radau", rtol=1e-11, atol=1e-13).y[:, -1]
    return out


@pytest.mark.slow
def test_two_compartment_oral_doses_match_scipy(x64):
    """Three oral doses, one of them a 4 h zero-order input, random effects on all five
    parameters: within 1e-7 mg/L of SciPy's Radau."""
    t = np.linspace(0.0, 36.0, 73)
    eta = jnp.array([0.1, -0.1, 0.2, 0.05, -0.3])
    params = [math.exp(TWO[k] + float(e)) for k, e in zip(TWO, eta, strict=True)]
    doses = [(0.0, 300.0, 0.0), (8.0, 200.0, 50.0), (16.0, 300.0, 0.0)]
    cov = {
        "dose_time": jnp.array([d[0] for d in doses]),
        "dose_amt": jnp.array([d[1] for d in doses]),
        "dose_rate": jnp.array([d[2] for d in doses]),
    }
    got = pk_ode.two_compartment_oral_ode(TWO, eta, cov, jnp.asarray(t))
    expected = _two_compartment_scipy(params, doses, t)
    assert float(np.max(expected)) > 5.0
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7)
    # fewer random effects: the rest are fixed at theta
    short = pk_ode.two_compartment_oral_ode(TWO, eta[:3], cov, jnp.asarray(t))
    full = pk_ode.two_compartment_oral_ode(TWO, jnp.concatenate([eta[:3], jnp.zeros(2)]), cov,
                                           jnp.asarray(t))  # fmt: skip
    np.testing.assert_allclose(short, full, rtol=1e-12)
    with pytest.raises(ValueError, match="eta: expected a vector of at most 5"):
        pk_ode.two_compartment_oral_ode(TWO, jnp.zeros(6), cov, jnp.asarray(t))


def test_michaelis_menten_iv_bolus_follows_lambert_w(x64):
    """``C(t) = Km W((C0/Km) exp((C0 - Vmax t / V) / Km))`` for an IV bolus; at C << Km the
    model is linear with CL = Vmax / Km."""
    t = jnp.linspace(0.0, 24.0, 49)
    c0, vmax, km, v = 12.0, 30.0, 2.0, 25.0
    cov = {"dose_time": jnp.array([0.0]), "dose_amt": jnp.array([c0 * v]), "dose_cmt": 2.0}
    got = pk_ode.michaelis_menten_oral_ode(MM, jnp.zeros(4), cov, t)
    arg = c0 / km * np.exp((c0 - vmax * np.asarray(t) / v) / km)
    expected = km * np.real(lambertw(arg))
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-10)
    linear = pk.one_compartment_iv({"log_cl": math.log(vmax / km), "log_v": math.log(v)},
                                   jnp.zeros(2), cov, t)  # fmt: skip
    assert float(jnp.max(jnp.abs(got - linear))) > 1.0  # saturated: far from linear
    tiny = cov | {"dose_amt": jnp.array([1e-4 * km * v])}
    low = pk_ode.michaelis_menten_oral_ode(MM, jnp.zeros(4), tiny, t)
    lin_low = pk.one_compartment_iv({"log_cl": math.log(vmax / km), "log_v": math.log(v)},
                                    jnp.zeros(2), tiny, t)  # fmt: skip
    np.testing.assert_allclose(low, lin_low, rtol=2e-4, atol=1e-14)


@pytest.mark.slow
def test_michaelis_menten_gradient_matches_finite_differences(x64):
    t = jnp.linspace(0.0, 24.0, 49)
    eta = jnp.array([0.1, 0.2, -0.1, 0.05])
    oral = {"dose_time": jnp.array([0.0, 12.0]), "dose_amt": jnp.array([400.0, 400.0])}

    @jax.jit
    def total(e):
        return jnp.sum(pk_ode.michaelis_menten_oral_ode(MM, e, oral, t))

    grad = jax.grad(total)(eta)
    h = 1e-6
    fd = [(total(eta.at[i].add(h)) - total(eta.at[i].add(-h))) / (2 * h) for i in range(4)]
    np.testing.assert_allclose(grad, np.array(fd), rtol=1e-5)


@pytest.mark.slow
def test_two_compartment_model_runs_in_nlme(x64):
    """The ODE model as an NLME structural model (random effects on ka, CL, V1): the FOCE-I
    log-likelihood is finite, and at the simulating parameters higher than at perturbed
    ones."""
    key = jax.random.PRNGKey(0)
    times = jnp.array([0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0])
    n = 6
    cov = {"dose_time": jnp.zeros((n, 1)), "dose_amt": jnp.full((n, 1), 300.0)}
    eta = 0.2 * jax.random.normal(key, (n, 3))
    mean = jax.vmap(
        lambda e, dt, da: pk_ode.two_compartment_oral_ode(
            TWO, e, {"dose_time": dt, "dose_amt": da}, times
        )
    )(eta, cov["dose_time"], cov["dose_amt"])
    y = mean + 0.2 * jax.random.normal(jax.random.PRNGKey(1), mean.shape)
    data = nlme.NLMEData(
        times=jnp.tile(times, (n, 1)), obs=y, mask=jnp.ones((n, 7), bool),
        covariates=cov, subjects=np.arange(n),
    )  # fmt: skip
    model = nlme.NLMEModel(pk_ode.two_compartment_oral_ode, ("ka", "cl", "v1"))
    params = model.init_params(TWO, omega_sd=0.2, sigma_add=0.2)
    focei = jax.jit(lambda p: nlme.laplace_log_likelihood(model, p, data, method="focei")[0])
    good = focei(params)
    bad = focei(params | {"theta": params["theta"] | {"log_cl": jnp.asarray(math.log(4.5))}})
    assert np.isfinite(float(good)) and float(good) > float(bad) + 5.0
