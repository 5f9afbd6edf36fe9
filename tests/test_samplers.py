"""Langevin-family samplers: ULA, MALA, HMC, annealed Langevin (Song & Ermon 2019).

Oracles:
* ULA on a Gaussian has a known Gaussian stationary law: per direction with variance
  ``s^2`` the chain ``x' = (1 - eps/s^2) x + sqrt(2 eps) z`` has variance
  ``s^2 / (1 - eps / (2 s^2))`` (not ``s^2``: the bias of the unadjusted sampler).
* MALA and HMC are exact: moments of a correlated Gaussian within Monte Carlo standard
  errors estimated from independent chains (z < 3).
* Annealed Langevin with the exact score of a noised 2D Gaussian mixture reproduces the
  mixture (unequal weights included) in MMD; plain noise and plain (non-annealed)
  Langevin, which gets the mode weights wrong, do not.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numpyro_hgf.samplers.block_gibbs
from numpyro_hgf import samplers
from numpyro_hgf.metrics import mmd

# -- targets ---------------------------------------------------------------------------------
COV = np.array([[1.0, 1.2], [1.2, 2.0]])  # correlation 0.85
MEAN = np.array([0.5, -1.0])
PREC = np.linalg.inv(COV)


def gaussian_log_density(x):
    d = x - MEAN
    return -0.5 * jnp.einsum("ni,ij,nj->n", d, PREC, d)


WEIGHTS = jnp.array([0.8, 0.2])
MODES = jnp.array([[-2.5, -1.0], [2.5, 1.0]])
MODE_SD = 0.5


def mixture_score(x, sigma):
    """Exact score of ``sum_k w_k N(mu_k, (s^2 + sigma^2) I)``, the mixture noised by sigma."""
    var = MODE_SD**2 + sigma**2
    diff = MODES[None] - x[:, None]  # (n, K, 2)
    resp = jax.nn.softmax(jnp.log(WEIGHTS) - 0.5 * jnp.sum(diff**2, -1) / var, axis=-1)
    return jnp.sum(resp[..., None] * diff, axis=1) / var


def mixture_samples(seed, n):
    rng = np.random.default_rng(seed)
    comp = rng.choice(2, size=n, p=np.asarray(WEIGHTS))
    return np.asarray(MODES)[comp] + MODE_SD * rng.standard_normal((n, 2)).astype(np.float32)


def chain_z_scores(trajectory, burn_in):
    """z-scores of mean, variances and covariance from independent chains.

    ``trajectory: (T, C, 2)``; each chain gives one estimate per statistic (its time
    average after burn-in); the standard error is the spread across the C chains / sqrt(C),
    which accounts for autocorrelation without an ESS estimate.
    """
    x = np.asarray(trajectory[burn_in:])  # (T', C, 2)
    d = x - MEAN
    stats = {
        "mean0": (x[..., 0].mean(0), MEAN[0]),
        "mean1": (x[..., 1].mean(0), MEAN[1]),
        "var0": ((d[..., 0] ** 2).mean(0), COV[0, 0]),
        "var1": ((d[..., 1] ** 2).mean(0), COV[1, 1]),
        "cov01": ((d[..., 0] * d[..., 1]).mean(0), COV[0, 1]),
    }
    out = {}
    for name, (per_chain, truth) in stats.items():
        se = per_chain.std(ddof=1) / np.sqrt(per_chain.size)
        out[name] = (per_chain.mean() - truth) / se
    return out


# -- ULA ---------------------------------------------------------------------------------------
ULA_SD = np.array([1.0, 2.0])
ULA_EPS = 0.5


@pytest.fixture(scope="module")
def ula_run():
    x0 = jnp.zeros((4096, 2))
    score = lambda x: -x / ULA_SD**2
    return samplers.langevin(jax.random.key(0), score, x0, ULA_EPS, 60, return_trajectory=True)


def test_langevin_stationary_variance_matches_ula_bias(ula_run):
    x, trajectory = ula_run
    assert trajectory.shape == (60, 4096, 2)
    np.testing.assert_array_equal(trajectory[-1], x)
    n = x.shape[0]
    var = np.asarray(jnp.var(x, axis=0))
    ula_var = ULA_SD**2 / (1 - ULA_EPS / (2 * ULA_SD**2))  # (1.333, 4.267)
    se = ula_var * np.sqrt(2 / (n - 1))  # sd of a Gaussian sample variance
    z = (var - ula_var) / se
    assert np.all(np.abs(z) < 3), (var, ula_var, z)
    # the unadjusted chain is measurably biased: the exact variance 1 is far off in dim 0
    assert (var[0] - ULA_SD[0] ** 2) / se[0] > 6, var
    assert np.all(np.abs(np.asarray(x.mean(0))) < 3 * np.sqrt(ula_var / n))


def test_langevin_same_key_same_draws_and_jit_with_traced_step():
    score = lambda x: -x
    x0 = jnp.ones((8, 3))
    run = jax.jit(lambda key, eps: samplers.langevin(key, score, x0, eps, 5))
    a = run(jax.random.key(3), 0.1)
    b = run(jax.random.key(3), 0.1)
    c = run(jax.random.key(4), 0.1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


# -- MALA and HMC --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mala_run():
    x0 = 3.0 * jax.random.normal(jax.random.key(1), (32, 2))
    return samplers.mala(
        jax.random.key(2), gaussian_log_density, x0, 0.15, 500, return_trajectory=True
    )


def test_mala_correlated_gaussian_moments_within_mc_error(mala_run):
    assert mala_run.samples.shape == (32, 2)
    assert mala_run.trajectory.shape == (500, 32, 2)
    assert mala_run.acceptance_rate.shape == (32,)
    rate = float(mala_run.acceptance_rate.mean())
    assert 0.4 < rate < 0.99, rate
    z = chain_z_scores(mala_run.trajectory, burn_in=100)
    assert all(abs(v) < 3 for v in z.values()), z


def test_hmc_correlated_gaussian_moments_within_mc_error():
    x0 = 3.0 * jax.random.normal(jax.random.key(5), (16, 2))
    result = samplers.hmc(
        jax.random.key(6),
        gaussian_log_density,
        x0,
        0.2,
        250,
        num_integration_steps=8,
        return_trajectory=True,
    )
    rate = float(result.acceptance_rate.mean())
    assert 0.6 < rate <= 1.0, rate
    z = chain_z_scores(result.trajectory, burn_in=50)
    assert all(abs(v) < 3 for v in z.values()), z


# -- annealed Langevin ------------------------------------------------------------------------
MMD_THRESHOLD = 0.02  # squared MMD (median-heuristic RBF kernel), n = 800 per side


@pytest.fixture(scope="module")
def mixture_setup():
    n = 800
    truth = jnp.asarray(mixture_samples(10, n), jnp.float32)
    x0 = jnp.asarray(np.random.default_rng(11).uniform(-8.0, 8.0, (n, 2)), jnp.float32)
    return truth, x0


def test_annealed_langevin_recovers_gaussian_mixture(mixture_setup):
    truth, x0 = mixture_setup
    sigmas = samplers.geometric_sigmas(10.0, 0.1, 8)
    x, levels = samplers.annealed_langevin(
        jax.random.key(12), mixture_score, x0, sigmas, 2e-3, 40, return_trajectory=True
    )
    assert x.shape == x0.shape and levels.shape == (8, *x0.shape)
    np.testing.assert_array_equal(levels[-1], x)
    d_annealed = float(mmd(x, truth))
    assert d_annealed < MMD_THRESHOLD, d_annealed
    # the 0.8 / 0.2 mode weights are recovered (binomial sd 0.013)
    share = float(jnp.mean(x[:, 0] < 0))
    assert abs(share - 0.8) < 0.05, share

    # negative controls: the initial noise, and plain Langevin with the (almost) unnoised
    # score, which sends each particle to its nearest mode (weights ~ 1/2, not 0.8 / 0.2)
    d_noise = float(mmd(x0, truth))
    plain = samplers.langevin(jax.random.key(13), lambda y: mixture_score(y, 1e-3), x0, 0.02, 200)
    d_plain = float(mmd(plain, truth))
    assert d_noise > 3 * MMD_THRESHOLD and d_plain > 3 * MMD_THRESHOLD, (d_noise, d_plain)
    assert abs(float(jnp.mean(plain[:, 0] < 0)) - 0.5) < 0.1


def test_annealed_langevin_step_schedule_and_denoise():
    """alpha_i = eps sigma_i^2 / sigma_L^2 and x <- x + alpha/2 s + sqrt(alpha) z, by hand."""
    sigmas = jnp.array([2.0, 1.0])
    score = lambda x, sigma: -x / (1.0 + sigma**2)
    x0 = jnp.ones((3, 2))
    key = jax.random.key(7)
    out = samplers.annealed_langevin(key, score, x0, sigmas, 0.1, 2, denoise=True)
    keys = jax.random.split(key, (2, 2))
    zs = np.asarray(jax.vmap(jax.vmap(lambda k: jax.random.normal(k, x0.shape)))(keys))
    x, sig = np.asarray(x0), np.asarray(sigmas)
    for i in range(2):
        alpha = 0.1 * sig[i] ** 2 / sig[-1] ** 2
        for t in range(2):
            x = x + 0.5 * alpha * (-x / (1.0 + sig[i] ** 2)) + np.sqrt(alpha) * zs[i, t]
    x = x + sig[-1] ** 2 * (-x / (1.0 + sig[-1] ** 2))
    np.testing.assert_allclose(out, x, rtol=1e-5, atol=1e-6)


# -- bad input --------------------------------------------------------------------------------
KEY = jax.random.key(0)
X0 = jnp.zeros((4, 2))
SCORE = lambda x: -x
NOISE_SCORE = lambda x, sigma: -x


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: samplers.langevin(KEY, SCORE, X0, 0.0, 10), "step_size: expected a positive"),
        (lambda: samplers.langevin(KEY, SCORE, X0, -0.1, 10), "step_size: .*got -0.1"),
        (lambda: samplers.langevin(KEY, SCORE, X0, float("nan"), 10), "step_size"),
        (lambda: samplers.langevin(KEY, SCORE, X0, 0.1, 0), "num_steps: expected a positive"),
        (
            lambda: samplers.langevin(KEY, lambda x: x[:, :1], X0, 0.1, 10),
            r"score: expected an output of shape \(4, 2\).*got an output of shape \(4, 1\)",
        ),
        (
            lambda: samplers.annealed_langevin(KEY, NOISE_SCORE, X0, [1.0, 0.0]),
            r"sigmas: expected positive finite noise levels, got \[1.0, 0.0\]",
        ),
        (
            lambda: samplers.annealed_langevin(KEY, NOISE_SCORE, X0, [-1.0]),
            "sigmas: expected positive",
        ),
        (
            lambda: samplers.annealed_langevin(KEY, NOISE_SCORE, X0, [0.5, 1.0]),
            r"sigmas: expected a strictly decreasing sequence.*got \[0.5, 1.0\]",
        ),
        (
            lambda: samplers.annealed_langevin(KEY, NOISE_SCORE, X0, [1.0, 1.0]),
            "sigmas: expected a strictly decreasing",
        ),
        (
            lambda: samplers.annealed_langevin(KEY, NOISE_SCORE, X0, [[1.0]]),
            r"sigmas: expected a 1-d array.*got shape \(1, 1\)",
        ),
        (
            lambda: samplers.annealed_langevin(KEY, NOISE_SCORE, X0, [1.0, 0.1], step_size=-1.0),
            "step_size: expected a positive",
        ),
        (
            lambda: samplers.annealed_langevin(KEY, lambda x, s: x.sum(-1), X0, [1.0, 0.1]),
            r"score: expected an output of shape \(4, 2\).*got an output of shape \(4,\)",
        ),
        (
            lambda: samplers.mala(KEY, lambda x: -0.5 * x**2, X0, 0.1, 10),
            r"log_density: expected an output of shape \(4,\).*got an output of shape \(4, 2\)",
        ),
        (lambda: samplers.mala(KEY, gaussian_log_density, X0, 0.0, 10), "step_size"),
        (lambda: samplers.hmc(KEY, gaussian_log_density, X0, -1.0, 10), "step_size"),
        (
            lambda: samplers.hmc(KEY, gaussian_log_density, X0, 0.1, 10, num_integration_steps=0),
            "num_integration_steps",
        ),
        (lambda: samplers.mala(KEY, lambda x: x.sum(), jnp.zeros(()), 0.1, 5), "x0: expected"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_geometric_sigmas():
    s = samplers.geometric_sigmas(1.0, 0.01, 10)
    np.testing.assert_allclose(np.asarray(s)[[0, -1]], [1.0, 0.01], rtol=1e-6)
    np.testing.assert_allclose(s[1:] / s[:-1], 0.01 ** (1 / 9), rtol=1e-5)
    with pytest.raises(ValueError, match="sigma_max"):
        samplers.geometric_sigmas(0.1, 1.0, 5)


def test_gibbs_is_reexported():
    assert samplers.gibbs is numpyro_hgf.samplers.block_gibbs.gibbs
    assert "gibbs" in samplers.__all__
