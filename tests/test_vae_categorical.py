"""The categorical (dequantized) VAE likelihood against hand-computed values and closed forms.

``DequantizedCategorical(logits)`` is the density ``p(x) = L softmax(logits)[floor(L x)]`` on
``[0, 1)``; a VAE with it has ``log p(x) = D log L + log P(raw)``, so its bits/dim from
``bits_per_dim(.., num_levels=L)`` is the discrete bits/dim.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import stats

import numpyro_hgf as nh
from numpyro_hgf.distributions import DequantizedCategorical
from numpyro_hgf.models import vae


def test_log_prob_hand_computed_and_batching():
    # L = 3, probs (1/6, 2/6, 3/6): p(x) = 3 p_k on [k/3, (k+1)/3)
    d = DequantizedCategorical(jnp.log(jnp.array([1.0, 2.0, 3.0])))
    x = jnp.array([0.0, 0.2, 1 / 3 + 1e-6, 0.5, 0.9, 0.99999])
    expected = np.log([0.5, 0.5, 1.0, 1.0, 1.5, 1.5])
    np.testing.assert_allclose(d.log_prob(x), expected, atol=1e-6)
    assert d.num_levels == 3 and d.batch_shape == () and d.event_shape == ()
    # batch broadcasting as in numpyro's Categorical: logits (2, 3), value (4, 1) -> (4, 2)
    logits = jnp.array([[0.0, 1.0, 2.0], [2.0, 0.0, -1.0]])
    db = DequantizedCategorical(logits)
    v = jnp.array([[0.1], [0.4], [0.7], [0.95]])
    lp = db.log_prob(v)
    assert lp.shape == (4, 2)
    logp = np.asarray(jax.nn.log_softmax(logits))
    hand = np.log(3) + logp[np.arange(2)[None, :], np.floor(3 * np.asarray(v)).astype(int)]
    np.testing.assert_allclose(lp, hand, atol=1e-6)
    # jit, vmap and the gradient in the logits: one-hot(level) - softmax
    g = jax.jit(jax.grad(lambda lg: DequantizedCategorical(lg).log_prob(0.5)))(logits[0])
    np.testing.assert_allclose(g, np.eye(3)[1] - np.asarray(jax.nn.softmax(logits[0])), atol=1e-6)
    vm = jax.vmap(lambda lg, xx: DequantizedCategorical(lg).log_prob(xx))(
        logits, jnp.array([0.1, 0.7])
    )
    np.testing.assert_allclose(vm, [hand[0, 0], hand[2, 1]], atol=1e-6)


def test_density_integrates_to_one_and_moments():
    L = 17
    logits = 2.0 * jax.random.normal(jax.random.key(0), (L,))
    d = DequantizedCategorical(logits)
    # midpoint rule on a grid aligned with the cells: exact for a piecewise-constant density
    n = L * 40
    grid = (jnp.arange(n) + 0.5) / n
    dens = np.exp(np.asarray(d.log_prob(grid), np.float64))
    assert abs(dens.sum() / n - 1.0) < 1e-5
    # without the factor L it would integrate to 1/L (negative control of the check)
    assert abs(dens.sum() / n / L - 1.0) > 0.9
    mean = float(np.sum(np.asarray(grid, np.float64) * dens) / n)
    second = float(np.sum(np.asarray(grid, np.float64) ** 2 * dens) / n)
    np.testing.assert_allclose(float(d.mean), mean, atol=1e-5)
    # the midpoint rule misses 1/(12 n^2) of the within-cell second moment
    np.testing.assert_allclose(float(d.variance), second - mean**2 + 1 / (12 * n**2), atol=1e-5)


def test_samples_chi2_goodness_of_fit():
    """Samples in half-cells: level probabilities and within-cell uniformity (chi^2)."""
    L = 5
    logits = jnp.array([0.3, -1.0, 1.2, 0.0, -0.4])
    d = DequantizedCategorical(logits)
    x = np.asarray(d.sample(jax.random.key(1), (20_000,)))
    assert x.min() >= 0.0 and x.max() < 1.0
    counts = np.bincount(np.floor(2 * L * x).astype(int), minlength=2 * L)
    p = np.repeat(np.asarray(jax.nn.softmax(logits), np.float64) / 2, 2)

    def pvalue(probs):
        e = probs * counts.sum()
        return stats.chi2.sf(np.sum((counts - e) ** 2 / e), 2 * L - 1)

    assert pvalue(p) > 1e-3
    # negative control: the same test against the reversed level probabilities must fail
    assert pvalue(np.repeat(np.asarray(jax.nn.softmax(logits[::-1]), np.float64) / 2, 2)) < 1e-6


def test_discrete_and_dequantized_bits_per_dim_agree():
    L, D = 17, 64
    raw = jax.random.randint(jax.random.key(2), (30, D), 0, L)
    x = nh.datasets.dequantize(jax.random.key(3), raw, L)
    logits = jax.random.normal(jax.random.key(4), (D, L))
    lp_cont = DequantizedCategorical(logits).to_event(1).log_prob(x)
    lp_disc = dist.Categorical(logits=logits).to_event(1).log_prob(raw)
    np.testing.assert_allclose(lp_cont, lp_disc + D * math.log(L), rtol=1e-6)
    np.testing.assert_allclose(
        nh.metrics.bits_per_dim(lp_cont, D, num_levels=L),
        nh.metrics.bits_per_dim(lp_disc, D),
        atol=1e-5,
    )


def _linear_categorical_vae(K, D, L, dec_kernel, dec_bias, enc_kernel, enc_bias):
    params = {
        "decoder$params": {"Dense_0": {"kernel": dec_kernel, "bias": dec_bias}},
        "amortized_encoder$params": {"Dense_0": {"kernel": enc_kernel, "bias": enc_bias}},
    }
    return vae.VAE(K, D, "categorical", (), params, L)


def test_iwae_of_a_z_independent_decoder_is_the_discrete_log_likelihood():
    """Decoder ignores z and the encoder returns the prior: every importance weight is 1 and
    the IWAE bound equals D log L + log P(raw) exactly; in bits/dim the discrete value."""
    K, D, L = 2, 6, 5
    bias = jax.random.normal(jax.random.key(5), (D * L,))
    m = _linear_categorical_vae(
        K,
        D,
        L,
        jnp.zeros((K, D * L)),
        bias,
        jnp.zeros((D, 2 * K)),
        jnp.zeros(2 * K),  # loc 0, raw scale 0 -> scale = init_scale = 1: q = prior
    )
    raw = jax.random.randint(jax.random.key(6), (20, D), 0, L)
    x = nh.datasets.dequantize(jax.random.key(7), raw, L)
    iw = vae.iwae_log_likelihood(m, x, k=64, key=jax.random.key(8))
    logp = np.asarray(jax.nn.log_softmax(bias.reshape(D, L)))
    exact = np.asarray(raw)
    exact = np.array([logp[np.arange(D), r].sum() for r in exact])
    np.testing.assert_allclose(iw, exact + D * math.log(L), atol=1e-4)
    # the validation ELBO of vae.fit (10 draws averaged) is the same exact value here
    elbo = vae._elbo(m._replace(params=None), m.params, x, 10, jax.random.key(9))
    np.testing.assert_allclose(elbo, exact + D * math.log(L), atol=1e-4)
    np.testing.assert_allclose(
        nh.metrics.bits_per_dim(iw, D, num_levels=L), nh.metrics.bits_per_dim(exact, D), atol=1e-5
    )


def test_iwae_approaches_the_quadrature_marginal():
    """1-D latent, z-dependent decoder: the exact marginal by Gauss-Hermite quadrature; the ELBO
    is visibly below it and IWAE-2000 closes the gap."""
    K, D, L = 1, 4, 5
    W = 1.5 * jax.random.normal(jax.random.key(9), (K, D * L))
    b = jax.random.normal(jax.random.key(10), (D * L,))
    # a guide that ignores the data: N(0.2, 0.8^2)
    enc_bias = jnp.array([0.2, float(np.log(np.expm1(0.8)) - np.log(np.expm1(1.0)))])
    m = _linear_categorical_vae(K, D, L, W, b, jnp.zeros((D, 2)), enc_bias)
    raw = jax.random.randint(jax.random.key(11), (12, D), 0, L)
    x = nh.datasets.dequantize(jax.random.key(12), raw, L)
    nodes, weights = np.polynomial.hermite_e.hermegauss(120)
    weights = weights / np.sqrt(2 * np.pi)
    logp = np.asarray(
        jax.nn.log_softmax((nodes[:, None] * np.asarray(W)[0] + np.asarray(b)).reshape(-1, D, L))
    )  # (nodes, D, L)
    cond = np.stack([logp[:, np.arange(D), r].sum(-1) for r in np.asarray(raw)])  # (n, nodes)
    exact = np.log(np.exp(cond) @ weights) + D * math.log(L)
    elbo = np.asarray(vae.iwae_log_likelihood(m, x, k=1, key=jax.random.key(13)))
    iw = np.asarray(vae.iwae_log_likelihood(m, x, k=2000, key=jax.random.key(14)))
    assert elbo.mean() < exact.mean() - 0.1  # the gap is visible
    # per datum IWAE is a bound in expectation only: Monte Carlo error of a few 0.01 nats
    np.testing.assert_allclose(iw, exact, atol=0.05)
    assert -0.01 < exact.mean() - iw.mean() < 0.02


def test_fit_with_validation_returns_the_best_validated_params(monkeypatch):
    """The validation bound is scripted (values 10, 5, 20 at steps 40, 80, 120): the fit must
    return the params it validated at step 80, not the last ones; the IWAE-2 objective
    (``particles=2``) must still train."""
    raw = nh.datasets.digits("train", form="raw").images.reshape(-1, 64)[:160]
    x = nh.datasets.dequantize(jax.random.key(0), raw)
    seen, script = [], iter([-10.0, -5.0, -20.0])

    def scripted_bound(static, params, rows, k, chunk, key):
        assert rows.shape == (32, 64) and k == 2
        seen.append(jax.tree.map(np.asarray, params))
        return jnp.full(rows.shape[0], next(script))

    monkeypatch.setattr(vae, "_iwae", scripted_bound)
    m, res = vae.fit(
        x[:128],
        latent_dim=2,
        likelihood="categorical",
        num_levels=17,
        hidden=(16,),
        steps=120,
        batch_size=64,
        learning_rate=1e-2,
        particles=2,
        validation=x[128:],
        validate_every=40,
        key=jax.random.key(1),
        progress=False,
    )
    assert m.num_levels == 17 and m.likelihood == "categorical"
    assert res.result.validation == [(40, 10.0), (80, 5.0), (120, 20.0)]
    same = jax.tree.map(np.array_equal, jax.tree.map(np.asarray, m.params), seen[1])
    assert all(jax.tree.leaves(same))
    last = jax.tree.map(np.array_equal, seen[2], seen[1])
    assert not all(jax.tree.leaves(last))  # the training moved on after step 80
    assert res.losses[-20:].mean() < res.losses[:20].mean() - 500  # the objective improved


def test_bad_input():
    key = jax.random.key(0)
    x = jnp.full((4, 3), 0.5)
    with pytest.raises(ValueError, match=r"x: a categorical likelihood expects dequantized data"):
        vae.fit(x.at[0, 0].set(1.0), likelihood="categorical", num_levels=17, key=key)
    with pytest.raises(ValueError, match=r"x: a categorical likelihood expects dequantized data"):
        vae.fit(x.at[0, 0].set(-0.1), likelihood="categorical", num_levels=17, key=key)
    with pytest.raises(ValueError, match=r"num_levels: expected an integer >= 2, got 1"):
        vae.fit(x, likelihood="categorical", num_levels=1, key=key)
    with pytest.raises(ValueError, match=r"num_levels: the categorical likelihood needs"):
        vae.fit(x, likelihood="categorical", key=key)
    with pytest.raises(TypeError, match=r"num_levels: expected an integer >= 2"):
        vae.fit(x, likelihood="categorical", num_levels=2.5, key=key)
    with pytest.raises(ValueError, match=r"particles: expected a positive integer, got 0"):
        vae.fit(x, likelihood="categorical", num_levels=4, particles=0, key=key)
    with pytest.raises(ValueError, match=r"validation: expected rows of length 3"):
        vae.fit(x, likelihood="categorical", num_levels=4, validation=jnp.zeros((2, 5)), key=key)
    with pytest.raises(ValueError, match=r"num_levels: expected at least 2 levels"):
        DequantizedCategorical(jnp.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"logits: expected an array of shape \(..., num_levels\)"):
        DequantizedCategorical(jnp.zeros(()))
    # out-of-support values under validate_args: NumPyro's warning, as for its own distributions
    with pytest.warns(UserWarning, match="Out-of-support"):
        DequantizedCategorical(jnp.zeros(3), validate_args=True).log_prob(1.0)
