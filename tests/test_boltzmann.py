"""Fully visible BoltzmannMachine: exact log Z, Gibbs sampling, exact maximum likelihood."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

import numpyro_hgf as nh
from numpyro_hgf.distributions.boltzmann import BoltzmannMachine
from numpyro_hgf.train.rbm import fit_boltzmann_exact


def spin_states(d):
    return 2.0 * ((np.arange(2**d)[:, None] >> np.arange(d)) & 1).astype(np.float32) - 1.0


def spin_index(y):
    return (((np.asarray(y) + 1) // 2).astype(np.int64) << np.arange(y.shape[-1])).sum(-1)


def random_couplings(seed, d, scale):
    rng = np.random.default_rng(seed)
    a = np.triu(scale * rng.standard_normal((d, d)), 1)
    return (a + a.T).astype(np.float32), (0.5 * rng.standard_normal(d)).astype(np.float32)


def np_log_probs(W, b):
    y = spin_states(W.shape[0]).astype(np.float64)
    u = 0.5 * np.einsum("si,ij,sj->s", y, W, y) + y @ b
    return u - scipy.special.logsumexp(u)


def chi2_pvalue(counts, probs, min_expected=5.0):
    counts = np.asarray(counts, np.float64)
    expected = np.asarray(probs, np.float64) * counts.sum()
    small = expected < min_expected
    if small.any():
        counts = np.append(counts[~small], counts[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
    stat = np.sum((counts - expected) ** 2 / expected)
    return scipy.stats.chi2.sf(stat, df=len(counts) - 1)


D = 4


@pytest.fixture(scope="module")
def bm():
    W, b = random_couplings(0, D, 0.5)
    return BoltzmannMachine(W, b, num_gibbs_steps=30)


def test_log_prob_is_exact_and_normalised(bm):
    lp = np.asarray(bm.log_prob(spin_states(D)), np.float64)
    assert abs(np.exp(lp).sum() - 1.0) < 1e-5
    np.testing.assert_allclose(lp, np_log_probs(np.asarray(bm.W), np.asarray(bm.b)), atol=2e-5)
    np.testing.assert_allclose(
        np.asarray(bm.unnormalized_log_prob(spin_states(D))) - lp,
        float(bm.log_normalizer()),
        atol=2e-5,
    )


def test_gibbs_samples_match_enumeration(bm):
    y = np.asarray(bm.sample(jax.random.key(0), (4000,)))
    assert y.shape == (4000, D) and set(np.unique(y)) <= {-1.0, 1.0}
    counts = np.bincount(spin_index(y), minlength=2**D)
    assert chi2_pvalue(counts, np.exp(np_log_probs(np.asarray(bm.W), np.asarray(bm.b)))) > 0.01
    # negative control: a different machine's probabilities
    W2, b2 = random_couplings(5, D, 0.8)
    assert chi2_pvalue(counts, np.exp(np_log_probs(W2, -b2))) < 1e-6


@pytest.mark.slow
def test_ais_matches_exact():
    W, b = random_couplings(2, 8, 0.4)
    bm8 = BoltzmannMachine(W, b)
    res = bm8.log_normalizer(
        "ais", key=jax.random.key(1), num_chains=200, num_betas=300, return_result=True
    )
    exact = float(bm8.log_normalizer())
    assert abs(float(res.log_normalizer_ratio) - exact) < max(3 * float(res.stderr), 0.05)


def test_exact_mle_recovers_parameters():
    d = 5
    W, b = random_couplings(3, d, 0.5)
    probs = np.exp(np_log_probs(W, b))
    rng = np.random.default_rng(4)
    data = spin_states(d)[rng.choice(2**d, size=20_000, p=probs)]
    fitted, result = fit_boltzmann_exact(
        data, steps=600, learning_rate=0.1, progress=False, return_result=True
    )
    assert isinstance(fitted, BoltzmannMachine)
    Wf = np.asarray(fitted.W)
    np.testing.assert_allclose(Wf, Wf.T)
    np.testing.assert_allclose(np.diag(Wf), 0.0)
    assert np.max(np.abs(Wf - W)) < 0.08, np.round(Wf - W, 3)
    assert np.max(np.abs(np.asarray(fitted.b) - b)) < 0.08
    # at the optimum the model moments equal the data moments (exact gradient is ~0)
    y = spin_states(d)
    p = np.exp(np.asarray(fitted.log_prob(y), np.float64))
    np.testing.assert_allclose(p @ y, data.mean(0), atol=2e-3)
    assert result.history[-1] < result.history[0]


def test_save_load_roundtrip(tmp_path, bm):
    loaded = nh.load(nh.save(tmp_path / "bm", bm))
    assert isinstance(loaded, BoltzmannMachine)
    np.testing.assert_array_equal(loaded.W, bm.W)
    np.testing.assert_array_equal(loaded.b, bm.b)


def test_bad_input_is_a_clear_error(bm):
    W = np.array([[0.0, 1.0], [0.5, 0.0]])
    with pytest.raises(ValueError, match="W: expected a symmetric matrix with zero diagonal, got"):
        BoltzmannMachine(W)
    with pytest.raises(ValueError, match="W: expected a symmetric matrix with zero diagonal, got"):
        BoltzmannMachine(np.eye(3))
    with pytest.raises(ValueError, match="W: expected a square"):
        BoltzmannMachine(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"value: expected spins in \{-1, \+1\}, got"):
        bm.log_prob(jnp.array([0.0, 1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match=r"data: expected spins in \{-1, \+1\}, got"):
        fit_boltzmann_exact(np.zeros((3, 2)), steps=1)
    with pytest.raises(ValueError, match="learning_rate: expected a positive"):
        fit_boltzmann_exact(np.ones((3, 2)), steps=1, learning_rate=-1.0)
    with pytest.raises(ValueError, match="d <= 20"):
        fit_boltzmann_exact(np.ones((3, 21)), steps=1)
    big = BoltzmannMachine(np.zeros((21, 21)))
    with pytest.raises(ValueError, match="log_normalizer\\(method='ais'"):
        big.log_prob(jnp.ones(21))
    # W = 0: Z = 2^d; attach it and log_prob works
    np.testing.assert_allclose(
        big.with_log_normalizer(21 * np.log(2.0)).log_prob(jnp.ones(21)),
        -21 * np.log(2.0),
        rtol=1e-6,
    )
