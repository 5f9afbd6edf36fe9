"""``pk.neural_covariates``: a DeepPumas-style MLP of covariates inside the structural model,
fitted by SVI, compared with the classical power model by the importance-sampled marginal
likelihood of held-out subjects.

Simulated one-compartment oral data (40 training and 40 held-out subjects, WT ~ U(40, 120) kg).
Measured with 3,000 SVI steps (held-out log p(y), IS with 5,000 draws per subject):

* CL saturating in WT (a logistic step, which no power law follows): no covariate -289.6,
  power -253.0, neural -235.5;
* CL = 2.75 (WT/70)^0.75 (the power model is the truth; the control): power -237.1, neural
  -235.6.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from numpyro_hgf.models import nlme, pk

TIMES = np.array([0.25, 0.5, 1, 2, 3.5, 5, 7, 9, 12, 24.0])
THETA0 = {"log_ka": math.log(1.5), "log_cl": math.log(3.0), "log_v": math.log(30.0)}


def simulate(n, seed, saturating):
    """One 320 mg oral dose; ka 1.5, V 32, CL 2.75 g(WT), IIV SDs 0.3 / 0.15 / 0.1, additive
    SD 0.3 mg/L; g a logistic step in WT (``saturating``) or the power law (WT/70)^0.75."""
    rng = np.random.default_rng(seed)
    wt = rng.uniform(40, 120, n)
    g = 0.4 + 1.2 / (1 + np.exp(-(wt - 75) / 6)) if saturating else (wt / 70) ** 0.75
    eta = rng.normal(0, [0.3, 0.15, 0.1], (n, 3))
    ka, cl, v = 1.5 * np.exp(eta[:, 0]), 2.75 * g * np.exp(eta[:, 1]), 32 * np.exp(eta[:, 2])
    ke = cl / v
    unit = (ka / (v * (ka - ke)))[:, None] * (
        np.exp(-ke[:, None] * TIMES) - np.exp(-ka[:, None] * TIMES)
    )
    y = 320.0 * unit + 0.3 * rng.standard_normal(unit.shape)
    k = len(TIMES)
    table = {
        "id": np.repeat(np.arange(n), k),
        "t": np.tile(TIMES, n),
        "y": y.ravel(),
        "dose": np.full(n * k, 320.0),
        "wt": np.repeat(wt, k),
    }
    return nlme.prepare_data(
        table, subject="id", time="t", observation="y", covariates=("dose", "wt")
    )


def neural_model():
    f, init_net = pk.neural_covariates(
        pk.one_compartment_oral, ("log_cl",), ("wt",), centres=(80.0,), scales=(23.0,)
    )
    return f, dict(THETA0, covariate_net=init_net(jax.random.key(0)))


def held_out_log_likelihood(model, params, data):
    """IS estimate of log p(y_held_out | params): Student-t(5) at the Laplace modes."""
    with jax.enable_x64(True):
        p = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        d = data.astype(jnp.float64)
        _, per = nlme.laplace_log_likelihood(model, p, d, method="laplace")
        cov = 1.5**2 * jnp.linalg.inv(per.precision)
        key = jax.random.key(7)
        return float(
            nlme.importance_log_likelihood(
                model, p, d, per.mode, cov, num_samples=5_000, key=key, df=5
            )[0]
        )


def test_zero_initialised_network_is_the_base_model():
    f, theta = neural_model()
    data = simulate(3, 0, saturating=True)
    eta = jnp.array([0.1, -0.2, 0.05])
    cov = {k: v[1] for k, v in data.covariates.items()}
    np.testing.assert_array_equal(
        f(theta, eta, cov, data.times[1]),
        pk.one_compartment_oral(THETA0, eta, cov, data.times[1]),
    )
    # the network's output shifts log CL: a bias of log 2 doubles CL
    net = jax.tree.map(jnp.asarray, theta["covariate_net"])
    last = sorted(net)[-1]
    net[last] = dict(net[last], bias=net[last]["bias"] + math.log(2.0))
    doubled = dict(THETA0, log_cl=THETA0["log_cl"] + math.log(2.0))
    np.testing.assert_allclose(
        f(dict(theta, covariate_net=net), eta, cov, data.times[1]),
        pk.one_compartment_oral(doubled, eta, cov, data.times[1]),
        rtol=1e-6,
    )


def test_bad_arguments():
    base = pk.one_compartment_oral
    with pytest.raises(TypeError, match="structural: expected a callable"):
        pk.neural_covariates(3, ("log_cl",), ("wt",), centres=(70,), scales=(20,))
    with pytest.raises(ValueError, match="targets: expected a non-empty sequence"):
        pk.neural_covariates(base, (), ("wt",), centres=(70,), scales=(20,))
    with pytest.raises(ValueError, match=r"centres, scales: expected one per covariate \(1\)"):
        pk.neural_covariates(base, ("log_cl",), ("wt",), centres=(70, 1), scales=(20,))
    with pytest.raises(ValueError, match="scales: expected positive finite"):
        pk.neural_covariates(base, ("log_cl",), ("wt",), centres=(70,), scales=(0.0,))


@pytest.mark.slow  # ~2 min on 2 cores: six SVI fits
@pytest.mark.parametrize("saturating", [True, False])
def test_neural_covariate_model_against_the_power_model(saturating):
    """Held-out marginal likelihood: the network finds a saturating CL-WT relation the power
    law cannot follow (> 8 nats better over 40 held-out subjects), and matches the power
    model within 4 nats when the power law is the truth (the control)."""
    train, test = simulate(40, 0, saturating), simulate(40, 1, saturating)
    power = pk.power_covariates(pk.one_compartment_oral, {"log_cl": ("wt", 70.0, "beta_cl")})
    neural, neural_theta = neural_model()
    candidates = {
        "none": (pk.one_compartment_oral, dict(THETA0)),
        "power": (power, dict(THETA0, beta_cl=0.0)),
        "neural": (neural, neural_theta),
    }
    ll = {}
    for name, (f, theta) in candidates.items():
        model = nlme.NLMEModel(f, ("ka", "cl", "v"))
        init = model.init_params(theta, omega_sd=0.3, sigma_add=0.5)
        fit = nlme.fit_svi(model, train, init, key=jax.random.key(1), steps=3_000, progress=False)
        ll[name] = held_out_log_likelihood(model, fit.params, test)
    assert ll["power"] > ll["none"] + 15.0, ll
    if saturating:
        assert ll["neural"] > ll["power"] + 8.0, ll
    else:
        assert abs(ll["neural"] - ll["power"]) < 4.0, ll
