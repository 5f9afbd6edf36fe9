"""VAE: ELBO / IWAE against the closed-form marginal of a linear-Gaussian VAE (= PPCA)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from numpyro_hgf.models import ppca, vae

N, D, K = 40, 5, 2


def softplus_inv(y):
    return np.log(np.expm1(y))


@pytest.fixture(scope="module")
def linear_vae():
    """A VAE whose decoder is the PPCA MLE (linear mean, constant scale) and whose encoder is
    the exact posterior: the marginal likelihood is the PPCA closed form."""
    key = jax.random.key(0)
    W = jax.random.normal(key, (D, K))
    z = jax.random.normal(jax.random.key(1), (N, K))
    y = z @ W.T + 0.3 * jax.random.normal(jax.random.key(2), (N, D))
    p = ppca.mle(y, K)
    M = np.asarray(p.W.T @ p.W) + float(p.sigma2) * np.eye(K)
    Minv = np.linalg.inv(M)
    # decoder Dense(k -> 2D): mean = W z + mu, log-scale = log sigma
    dec_kernel = np.concatenate([np.asarray(p.W).T, np.zeros((K, D))], axis=1)
    dec_bias = np.concatenate([np.asarray(p.mu), np.full(D, 0.5 * np.log(float(p.sigma2)))])
    # encoder Dense(D -> 2k): loc = M^{-1} W^T (x - mu); raw scale -> sqrt(sigma2 diag M^{-1})
    A = Minv @ np.asarray(p.W).T
    post_sd = np.sqrt(float(p.sigma2) * np.diag(Minv))
    enc_kernel = np.concatenate([A.T, np.zeros((D, K))], axis=1)
    enc_bias = np.concatenate([-A @ np.asarray(p.mu), softplus_inv(post_sd) - softplus_inv(1.0)])
    params = {
        "decoder$params": {
            "Dense_0": {"kernel": jnp.asarray(dec_kernel), "bias": jnp.asarray(dec_bias)}
        },
        "amortized_encoder$params": {
            "Dense_0": {"kernel": jnp.asarray(enc_kernel), "bias": jnp.asarray(enc_bias)}
        },
    }
    model = vae.VAE(K, D, "gaussian", (), params)
    exact = np.asarray(jax.vmap(lambda r: ppca.log_likelihood(p, r[None]))(y))
    return model, y, exact


def test_elbo_equals_marginal_with_exact_posterior(linear_vae):
    model, y, exact = linear_vae
    elbo = np.asarray(vae.iwae_log_likelihood(model, y, k=1, key=jax.random.key(3)))
    # with q = p(z | x) the ELBO is the log marginal for every draw (zero-variance weights)
    np.testing.assert_allclose(elbo, exact, atol=2e-3)


def test_iwae_tightens_a_wrong_guide_towards_the_marginal(linear_vae):
    model, y, exact = linear_vae
    p = dict(model.params)
    enc = p["amortized_encoder$params"]["Dense_0"]
    # a guide that is too wide and slightly shrunk towards 0
    widen = jnp.concatenate([jnp.zeros(K), jnp.full(K, 1.0)])
    p["amortized_encoder$params"] = {
        "Dense_0": {"kernel": enc["kernel"] * 0.95, "bias": enc["bias"] + widen}
    }
    bad = model._replace(params=p)
    elbo = np.asarray(vae.iwae_log_likelihood(bad, y, k=1, key=jax.random.key(4)))
    iw = np.asarray(vae.iwae_log_likelihood(bad, y, k=2000, key=jax.random.key(5), chunk=500))
    assert elbo.mean() < exact.mean() - 0.1  # negative control: the gap is visible
    assert elbo.mean() < iw.mean() <= exact.mean() + 0.01
    assert exact.mean() - iw.mean() < 0.05


def test_bad_input():
    with pytest.raises(ValueError, match="likelihood: expected one of"):
        vae.fit(jnp.zeros((4, 3)), likelihood="poisson", key=jax.random.key(0))
    with pytest.raises(ValueError, match="x: a Bernoulli likelihood expects binary data"):
        vae.fit(jnp.full((4, 3), 0.5), likelihood="bernoulli", key=jax.random.key(0))


@pytest.mark.slow
def test_train_on_digits_smoke(tmp_path):
    from numpyro_hgf.datasets import digits

    d = digits("train", form="binary")
    x = d.images.reshape(-1, 64)
    model, fit = vae.fit(
        x,
        latent_dim=2,
        likelihood="bernoulli",
        hidden=(64,),
        steps=600,
        key=jax.random.key(0),
        progress=False,
    )
    assert fit.losses[-50:].mean() < fit.losses[:50].mean() - 5
    assert vae.plot_latents(tmp_path / "latent.png", model, x[:300], d.labels[:300]).exists()
    assert vae.plot_reconstructions(tmp_path / "recon.png", model, x).exists()
