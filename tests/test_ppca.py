"""PPCA: closed-form MLE (Tipping & Bishop 1999) against scikit-learn's PPCA likelihood, exact
posterior against Gaussian conditioning, and the SVI fit against the closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from numpyro_hgf.models import ppca

N, D, K = 500, 6, 2


@pytest.fixture(scope="module")
def y():
    W = jax.random.normal(jax.random.key(1), (D, K)) * jnp.array([2.0, 1.0])
    z = jax.random.normal(jax.random.key(2), (N, K))
    return z @ W.T + 0.5 * jax.random.normal(jax.random.key(3), (N, D)) + 1.0


@pytest.fixture(scope="module")
def svi_fit(y):
    return ppca.fit_svi(y, K, steps=1000, learning_rate=0.03, key=jax.random.key(0), progress=False)


def test_closed_form_mle_equals_sklearn_ppca_likelihood(y):
    from sklearn.decomposition import PCA

    p = ppca.mle(y, K)
    pca = PCA(n_components=K).fit(np.asarray(y, np.float64))
    # sklearn's PCA.score is the mean PPCA log-likelihood (Tipping & Bishop 1999)
    np.testing.assert_allclose(
        float(ppca.log_likelihood(p, y)) / N, pca.score(np.asarray(y)), rtol=1e-4
    )
    # sklearn's eigenvalues are of the unbiased covariance (divisor n - 1)
    np.testing.assert_allclose(float(p.sigma2) * N / (N - 1), pca.noise_variance_, rtol=1e-4)


def test_closed_form_mle_is_a_stationary_point(y):
    with jax.enable_x64(True):
        y64 = jnp.asarray(y, jnp.float64)
        p = ppca.mle(y64, K)
        g = jax.jit(jax.grad(lambda q: ppca.log_likelihood(q, y64)))(p)
    for leaf in jax.tree.leaves(g):
        assert float(jnp.max(jnp.abs(leaf))) < 1e-6 * N


def test_posterior_equals_gaussian_conditioning(y):
    p = ppca.mle(y, K)
    mean, cov = ppca.posterior(p, y[:5])
    W, mu, s2 = (np.asarray(a, np.float64) for a in p)
    # joint of (z, y): cov_zy = W^T, cov_yy = W W^T + s2 I
    Cyy = W @ W.T + s2 * np.eye(D)
    gain = W.T @ np.linalg.inv(Cyy)
    np.testing.assert_allclose(np.asarray(mean), (np.asarray(y[:5]) - mu) @ gain.T, atol=1e-4)
    np.testing.assert_allclose(np.asarray(cov), np.eye(K) - gain @ W, atol=1e-4)


def check_svi_log_likelihood_within_half_percent_of_closed_form(y, svi_fit):
    params, fit = svi_fit
    assert np.all(np.isfinite(fit.losses))
    exact = float(ppca.log_likelihood(ppca.mle(y, K), y))
    got = float(ppca.log_likelihood(params, y))
    assert got <= exact + 1e-3 * abs(exact)  # the MLE is the maximum
    assert abs(got - exact) / abs(exact) < 0.005
    # negative control: a model with one latent dimension fewer is outside the tolerance
    worse = float(ppca.log_likelihood(ppca.mle(y, K - 1), y))
    assert abs(worse - exact) / abs(exact) > 0.005


def check_svi_encoder_learns_the_exact_posterior(y, svi_fit):
    from numpyro_hgf.guides import AmortizedNormalGuide
    from numpyro_hgf.nn import MLP

    params, fit = svi_fit
    guide = AmortizedNormalGuide(ppca.model, MLP((), 2 * K), "z")
    loc, scale = guide.encode(fit.params, y)
    mean, cov = ppca.posterior(params, y)
    assert float(jnp.max(jnp.abs(loc - mean))) < 0.1
    np.testing.assert_allclose(np.asarray(scale).mean(0), np.sqrt(np.diag(cov)), rtol=0.2)


def test_svi_fit(y, svi_fit):
    """Both checks of the SVI fit in one test (one fit per xdist worker)."""
    check_svi_log_likelihood_within_half_percent_of_closed_form(y, svi_fit)
    check_svi_encoder_learns_the_exact_posterior(y, svi_fit)


def test_bad_input():
    with pytest.raises(ValueError, match="latent_dim: expected fewer latent"):
        ppca.mle(jnp.ones((10, 3)), 3)
    with pytest.raises(ValueError, match=r"y: expected an array of shape \(n, d\)"):
        ppca.mle(jnp.ones(10), 1)
    with pytest.raises(ValueError, match="y: expected finite values"):
        ppca.mle(jnp.ones((10, 3)).at[0, 0].set(jnp.nan), 1)
