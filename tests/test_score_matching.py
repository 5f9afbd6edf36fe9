"""Score-matching objectives and fit_score: closed forms, a Gaussian oracle, bad input."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numpyro_hgf as nh
from numpyro_hgf.nn import EnergyMLP, TimeMLP
from numpyro_hgf.objectives import (
    denoising_score_matching,
    explicit_score_matching,
    implicit_score_matching,
    kde_score,
    score_from_energy,
    score_from_network,
    sliced_score_matching,
)
from numpyro_hgf.train.score import ScoreModel, fit_score

MU = np.array([1.0, -2.0])
SIGMA = np.array([[1.0, 0.5], [0.5, 0.8]])
PRECISION = np.linalg.inv(SIGMA)


class QuadraticEnergy(nn.Module):
    """``E(x) = 1/2 (x - mean)^T L L^T (x - mean)``, ``L`` lower triangular, positive diagonal."""

    dim: int

    @nn.compact
    def __call__(self, x):
        mean = self.param("mean", nn.initializers.zeros, (self.dim,))
        raw = self.param("chol", nn.initializers.zeros, (self.dim, self.dim))
        return 0.5 * jnp.sum(((x - mean) @ _cholesky(raw)) ** 2, axis=-1)


def _cholesky(raw):
    return jnp.tril(raw, -1) + jnp.diag(jnp.exp(jnp.diag(raw)))


def _precision(params):
    chol = _cholesky(params["chol"])
    return np.asarray(chol @ chol.T)


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


@pytest.fixture(scope="module")
def gaussian_data():
    x = jax.random.multivariate_normal(
        jax.random.key(0), jnp.asarray(MU), jnp.asarray(SIGMA), (10_000,)
    )
    xs = np.asarray(x, dtype=np.float64)
    sample_precision = np.linalg.inv(np.cov(xs.T, bias=True))
    return x, xs.mean(0), sample_precision


@pytest.fixture(scope="module")
def quadratic_params():
    """A non-optimal quadratic model: mean (0.5, -1), precision with off-diagonal."""
    raw = jnp.array([[0.2, 0.0], [0.3, -0.1]])
    return {"mean": jnp.array([0.5, -1.0]), "chol": raw}


# -------------------------------------------------------------------------------------------
# closed forms, no training
# -------------------------------------------------------------------------------------------


def test_score_from_energy_is_minus_grad_and_network_passthrough(quadratic_params):
    x = jax.random.normal(jax.random.key(1), (5, 2))
    energy = QuadraticEnergy(2)
    a = _precision(quadratic_params)
    expected = -(np.asarray(x) - np.asarray(quadratic_params["mean"])) @ a
    got = score_from_energy(energy)(quadratic_params, x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    plain = score_from_energy(lambda p, y: energy.apply({"params": p}, y))(quadratic_params, x)
    np.testing.assert_allclose(plain, expected, rtol=1e-5, atol=1e-5)
    net = nn.Dense(2)
    p = net.init(jax.random.key(0), x)["params"]
    np.testing.assert_allclose(score_from_network(net)(p, x), net.apply({"params": p}, x))


def test_implicit_score_matching_closed_form(gaussian_data, quadratic_params):
    """For s = -A (x - m): J = E[1/2 ||A (x - m)||^2] - tr A (exact trace)."""
    x = gaussian_data[0][:500]
    a = _precision(quadratic_params)
    r = (np.asarray(x) - np.asarray(quadratic_params["mean"])) @ a
    expected = 0.5 * np.mean(np.sum(r**2, -1)) - np.trace(a)
    got = implicit_score_matching(score_from_energy(QuadraticEnergy(2)), quadratic_params, x)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("projection, vr", [("gaussian", False), ("rademacher", True)])
def test_sliced_equals_implicit_in_expectation(gaussian_data, quadratic_params, projection, vr):
    x = gaussian_data[0][:200]
    score_fn = score_from_energy(QuadraticEnergy(2))
    ism = float(implicit_score_matching(score_fn, quadratic_params, x))
    ssm = float(
        sliced_score_matching(
            score_fn,
            quadratic_params,
            x,
            jax.random.key(2),
            num_projections=400,
            projection=projection,
            variance_reduction=vr,
        )
    )
    assert abs(ssm - ism) < 0.05 * abs(ism) + 0.05


def test_kde_score_is_grad_log_kde():
    ref = jax.random.normal(jax.random.key(3), (50, 2))
    x = jax.random.normal(jax.random.key(4), (7, 2))
    h = 0.4

    def log_q(y):
        return jax.scipy.special.logsumexp(-jnp.sum((y - ref) ** 2, -1) / (2 * h**2))

    expected = jax.jit(jax.vmap(jax.grad(log_q)))(x)
    np.testing.assert_allclose(kde_score(x, ref, h), expected, rtol=1e-4, atol=1e-4)


def test_denoising_loss_minimised_by_smoothed_score():
    """The exact score of N(mu, Sigma + sigma^2 I) has a lower DSM loss than the data score."""
    x = jax.random.multivariate_normal(
        jax.random.key(5), jnp.asarray(MU), jnp.asarray(SIGMA), (4000,)
    )
    sigma = 0.5
    smoothed = np.linalg.inv(SIGMA + sigma**2 * np.eye(2))

    def quad(a):
        return lambda _p, y: -(y - MU) @ a

    key = jax.random.key(6)
    good = denoising_score_matching(quad(smoothed), None, x, key, sigma=sigma)
    bad = denoising_score_matching(quad(PRECISION), None, x, key, sigma=sigma)
    assert float(good) < float(bad) - 0.01


# -------------------------------------------------------------------------------------------
# the Gaussian oracle: each objective recovers mu and Sigma^{-1}
# -------------------------------------------------------------------------------------------

ORACLE = {
    "implicit": ({}, 0.0),
    "sliced": ({"num_projections": 1}, 0.0),
    "sliced-vr": ({"variance_reduction": True, "projection": "gaussian"}, 0.0),
    # DSM recovers N(mu, Sigma + sigma^2 I): the fitted covariance is corrected by sigma^2
    "denoising": ({"sigma": 0.1}, 0.1**2),
}
SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "name", [n if n != "sliced-vr" else pytest.param(n, marks=SLOW) for n in ORACLE]
)
def test_gaussian_oracle(gaussian_data, name):
    x, sample_mean, sample_precision = gaussian_data
    options, smoothing = ORACLE[name]
    objective = name.split("-")[0]
    model, result = fit_score(
        objective,
        x,
        energy=QuadraticEnergy(2),
        key=jax.random.key(7),
        steps=800,
        batch_size=512,
        learning_rate=0.05,
        progress=False,
        return_result=True,
        **options,
    )
    assert isinstance(model, nh.distributions.energy.EnergyBasedModel)
    precision = _precision(model.params)
    precision = np.linalg.inv(np.linalg.inv(precision) - smoothing * np.eye(2))
    mean = np.asarray(model.params["mean"])
    # acceptance: within 5 % of the population values ...
    assert _rel(mean, MU) < 0.05
    assert _rel(precision, PRECISION) < 0.05
    # ... and near the sample optimum (for a Gaussian, score matching = moment matching)
    assert _rel(mean, sample_mean) < 0.02
    assert _rel(precision, sample_precision) < 0.03
    assert np.all(np.isfinite(result.history))


@pytest.mark.slow
def test_explicit_kde_recovers_smoothed_gaussian(gaussian_data):
    """ESM's optimum is the KDE score: N(mu, Sigma + h^2 I) for a large reference set."""
    x, sample_mean, _ = gaussian_data
    h = 0.2
    model = fit_score(
        "explicit",
        x[:4000],
        energy=QuadraticEnergy(2),
        key=jax.random.key(8),
        bandwidth=h,
        steps=600,
        batch_size=256,
        learning_rate=0.05,
        progress=False,
    )
    cov = np.linalg.inv(_precision(model.params)) - h**2 * np.eye(2)
    assert _rel(model.params["mean"], MU) < 0.05
    assert _rel(np.linalg.inv(cov), PRECISION) < 0.06


# -------------------------------------------------------------------------------------------
# networks and models
# -------------------------------------------------------------------------------------------


def test_fit_score_network_returns_saveable_score_model(tmp_path, gaussian_data):
    x = gaussian_data[0][:1000]
    from numpyro_hgf.nn import MLP

    model = fit_score(
        "denoising",
        x,
        network=MLP(hidden=(16,), out_dim=2),
        key=jax.random.key(9),
        steps=5,
        progress=False,
    )
    assert isinstance(model, ScoreModel) and model.kind == "score"
    module, params = model  # the (module, params) convention
    assert model.score(x[:3]).shape == (3, 2)
    loaded = nh.load(nh.save(tmp_path / "score", model))
    np.testing.assert_allclose(loaded.score(x[:3]), model.score(x[:3]), rtol=1e-6)


@pytest.mark.slow
def test_fit_score_default_energy_mlp_gives_energy_based_model(gaussian_data):
    x = gaussian_data[0][:500]
    model = fit_score("denoising", x, key=jax.random.key(10), steps=5, hidden=(8,), progress=False)
    assert isinstance(model, nh.distributions.energy.EnergyBasedModel)
    assert isinstance(model.energy, EnergyMLP)
    assert model.score(x[:4]).shape == (4, 2)


@pytest.mark.slow
def test_multi_sigma_denoising_learns_smoothed_scores(gaussian_data):
    """NCSN (several sigmas, weighting sigma^2) with a TimeMLP taking t = sigma."""
    x = gaussian_data[0]
    sigmas = (0.2, 0.5, 1.0)
    model = fit_score(
        "denoising",
        x,
        sigma=sigmas,
        network=TimeMLP(hidden=(64, 64), time_scale=100.0),
        key=jax.random.key(11),
        steps=3000,
        learning_rate=3e-3,
        progress=False,
    )
    assert model.sigmas == sigmas
    pts = x[:2000]
    for s in sigmas:
        exact = -(np.asarray(pts) - MU) @ np.linalg.inv(SIGMA + s**2 * np.eye(2))
        err = np.mean(np.sum((np.asarray(model.score(pts, s)) - exact) ** 2, -1))
        assert err < 0.05 * np.mean(np.sum(exact**2, -1))


# -------------------------------------------------------------------------------------------
# bad input
# -------------------------------------------------------------------------------------------


def test_bad_sigma_and_options(gaussian_data):
    x = gaussian_data[0][:64]
    score_fn = score_from_energy(QuadraticEnergy(2))
    params = QuadraticEnergy(2).init(jax.random.key(0), x)["params"]
    key = jax.random.key(0)
    for bad in (0.0, -0.1, (0.1, -1.0)):
        with pytest.raises(ValueError, match="sigma"):
            denoising_score_matching(score_fn, params, x, key, sigma=bad)
        with pytest.raises(ValueError, match="sigma"):
            fit_score("denoising", x, energy=QuadraticEnergy(2), sigma=bad, key=key, steps=1)
    with pytest.raises(ValueError, match="bandwidth"):
        explicit_score_matching(score_fn, params, x, key, bandwidth=-1.0)
    with pytest.raises(ValueError, match="num_projections"):
        sliced_score_matching(score_fn, params, x, key, num_projections=0)
    with pytest.raises(ValueError, match="projection"):
        sliced_score_matching(score_fn, params, x, key, projection="uniform")
    with pytest.raises(ValueError, match="objective"):
        fit_score("maximum_likelihood", x, key=key)
    with pytest.raises(TypeError, match="key"):
        fit_score("implicit", x)
    with pytest.raises(ValueError, match="network"):
        fit_score("implicit", x, energy=EnergyMLP(), network=TimeMLP(), key=key)


def test_shape_mismatch_names_the_argument(gaussian_data):
    x2 = gaussian_data[0][:64]
    energy = EnergyMLP(hidden=(8,))
    params3 = energy.init(jax.random.key(0), jnp.zeros((1, 3)))["params"]
    score_fn = score_from_energy(energy)
    with pytest.raises(ValueError, match=r"^data: .*\(64, 2\)"):
        fit_score("implicit", x2, energy=energy, params=params3, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"^x: "):
        implicit_score_matching(score_fn, params3, x2)
    with pytest.raises(ValueError, match=r"^data: expected an array of shape \(n, d\)"):
        fit_score("implicit", x2[:, 0], key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"^x: expected a batch of points"):
        sliced_score_matching(score_fn, params3, x2[0], jax.random.key(0))
    # a network whose output is not a vector field of x's shape
    bad_net = nn.Dense(3)
    bad_params = bad_net.init(jax.random.key(0), x2)["params"]
    with pytest.raises(ValueError, match="network: expected an output of the shape of x"):
        fit_score("implicit", x2, network=bad_net, params=bad_params, key=jax.random.key(0))
    with pytest.raises(ValueError, match="data: expected finite"):
        fit_score("implicit", x2.at[0, 0].set(jnp.nan), key=jax.random.key(0))
