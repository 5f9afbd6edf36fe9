"""Generic annealed importance sampling driver (numpyro_hgf.ais)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from numpyro_hgf.ais import (
    AISResult,
    annealed_importance_sampling,
    linear_betas,
    log_mean_exp,
    piecewise_linear_betas,
)
from numpyro_hgf.distributions.rbm import BernoulliRBM

MU, SIGMA = 1.5, 0.5
LOG_Z_TARGET = math.log(SIGMA * math.sqrt(2 * math.pi))


def log_base(x):  # normalised N(0, 1), x: (n, 1)
    return -0.5 * jnp.sum(x**2, -1) - 0.5 * math.log(2 * math.pi)


def log_target(x):  # unnormalised N(MU, SIGMA^2): Z = SIGMA sqrt(2 pi)
    return -0.5 * jnp.sum((x - MU) ** 2, -1) / SIGMA**2


def exact_transition(key, x, beta):
    """Draw exactly from p_beta ∝ N(0,1)^(1-beta) N(MU,SIGMA^2)^beta (a Gaussian)."""
    prec = (1.0 - beta) + beta / SIGMA**2
    mean = beta * MU / SIGMA**2 / prec
    return mean + jax.random.normal(key, x.shape) / jnp.sqrt(prec)


def mala_transition(key, x, beta, step=0.1, num_steps=3):
    def log_p(x):
        return (1.0 - beta) * log_base(x) + beta * log_target(x)

    grad = jax.grad(lambda x: jnp.sum(log_p(x)))

    def one(x, k):
        kn, ku = jax.random.split(k)
        g = grad(x)
        prop = x + step * g + jnp.sqrt(2 * step) * jax.random.normal(kn, x.shape)
        gp = grad(prop)
        fwd = -jnp.sum((prop - x - step * g) ** 2, -1) / (4 * step)
        bwd = -jnp.sum((x - prop - step * gp) ** 2, -1) / (4 * step)
        log_a = log_p(prop) - log_p(x) + bwd - fwd
        accept = jnp.log(jax.random.uniform(ku, log_a.shape)) < log_a
        return jnp.where(accept[:, None], prop, x), None

    x, _ = jax.lax.scan(one, x, jax.random.split(key, num_steps))
    return x


@pytest.fixture(scope="module")
def gaussian_ais():
    def run(key, betas, exact):
        k0, k1 = jax.random.split(key)
        x0 = jax.random.normal(k0, (500, 1))
        kernel = exact_transition if exact else mala_transition
        geo = annealed_importance_sampling(k1, x0, log_base, log_target, kernel, betas)
        if not exact:
            return geo, None
        # the same run through the explicit-path interface must give the same weights
        path = annealed_importance_sampling(
            k1,
            x0,
            log_base,
            log_target,
            kernel,
            betas,
            log_density=lambda x, b: (1 - b) * log_base(x) + b * log_target(x),
        )
        return geo, path

    return jax.jit(run, static_argnums=2)


@pytest.mark.parametrize("exact", [True, False], ids=["exact-sampling", "mala"])
def test_gaussian_toy_recovers_log_normalizer(gaussian_ais, exact):
    res, path = gaussian_ais(jax.random.key(0), linear_betas(200), exact)
    assert isinstance(res, AISResult)
    assert res.log_weights.shape == (500,) and res.samples.shape == (500, 1)
    err = abs(float(res.log_normalizer_ratio) - LOG_Z_TARGET)
    assert err < max(3 * float(res.stderr), 0.05), (float(res.log_normalizer_ratio), err)
    # the chains end near the target
    assert abs(float(jnp.mean(res.samples)) - MU) < 0.15
    assert abs(float(jnp.std(res.samples)) - SIGMA) < 0.1
    if path is not None:  # log_density=geometric path reproduces the default
        np.testing.assert_allclose(res.log_weights, path.log_weights, rtol=1e-4, atol=1e-4)


def test_stderr_is_delta_method_and_trivial_path_gives_zero():
    log_w = jnp.array([0.0, 1.0, -1.0, 0.5])
    w = np.exp(np.asarray(log_w, np.float64))
    expected = np.std(w, ddof=1) / (np.sqrt(len(w)) * np.mean(w))

    @jax.jit
    def run(log_w):
        trivial = annealed_importance_sampling(
            jax.random.key(0),
            log_w[:, None],
            lambda x: jnp.zeros(x.shape[0]),
            lambda x: x[:, 0],  # log ratio = x, constant along the (trivial) chain
            lambda k, x, b: x,
            jnp.array([0.0, 1.0]),
        )
        # identical base and target: every weight is 1, the estimate 0 with zero stderr
        same = annealed_importance_sampling(
            jax.random.key(3), log_w[:, None], log_base, log_base, lambda k, x, b: x, [0.0, 1.0]
        )
        return trivial, same

    res, same = run(log_w)
    np.testing.assert_allclose(res.log_weights, log_w, atol=1e-6)
    np.testing.assert_allclose(float(res.stderr), expected, rtol=1e-4)
    np.testing.assert_allclose(
        float(res.log_normalizer_ratio), np.log(np.mean(w)), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(float(log_mean_exp(log_w)), np.log(np.mean(w)), rtol=1e-5)
    assert abs(float(same.log_normalizer_ratio)) < 1e-6 and float(same.stderr) < 1e-6


@pytest.mark.parametrize(
    "betas",
    [jnp.array([0.1, 1.0]), jnp.array([0.0, 0.9]), jnp.array([0.0, 0.6, 0.4, 1.0]), jnp.ones(1)],
)
def test_bad_betas(betas):
    with pytest.raises(ValueError, match="betas: expected"):
        annealed_importance_sampling(
            jax.random.key(0), jnp.zeros((2, 1)), log_base, log_target, exact_transition, betas
        )


def test_piecewise_betas_schedule():
    b = np.asarray(piecewise_linear_betas(14500))
    assert b.shape == (14500,) and b[0] == 0.0 and b[-1] == 1.0
    assert np.all(np.diff(b) > 0)
    assert np.sum(b < 0.5) == 500 and np.sum((b >= 0.5) & (b < 0.9)) == 4000


def test_rbm_ais_matches_exact_on_tiny_rbm():
    k = jax.random.key(4)
    kw, kb, kc = jax.random.split(k, 3)
    rbm = BernoulliRBM(
        1.5 * jax.random.normal(kw, (6, 5)),
        jax.random.normal(kb, (6,)),
        jax.random.normal(kc, (5,)),
    )
    exact = float(rbm.log_normalizer("exact"))
    res = rbm.log_normalizer(
        "ais", key=jax.random.key(5), num_chains=100, num_betas=1000, return_result=True
    )
    est, se = float(res.log_normalizer_ratio), float(res.stderr)
    assert abs(est - exact) < max(3 * se, 0.05), (est, exact, se)
