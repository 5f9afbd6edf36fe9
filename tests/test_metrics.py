"""Metrics against closed forms and independent references, each with a negative control."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import energy_distance as scipy_energy_distance
from scipy.stats import norm, wasserstein_distance

from numpyro_hgf import datasets as D
from numpyro_hgf import metrics as M

MU = jnp.array([0.6, 0.8])  # |mu| = 1


# ------------------------------------------------------------------------------- MMD


def _numpy_mmd(x, y, h, unbiased):
    def k(a, b):
        return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * h * h))

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    if unbiased:
        return (
            (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
            + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean()
        )
    return kxx.mean() + kyy.mean() - 2 * kxy.mean()


def test_mmd_matches_reference_formula_and_median_heuristic():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(5, 3)) + 0.5
    z = np.concatenate([x, y])
    dist = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1))[np.triu_indices(12, 1)]
    h_median = np.median(dist)
    for unbiased in (True, False):
        for h, bw in ((0.7, 0.7), (h_median, None)):
            got = M.mmd(x.astype(np.float32), y.astype(np.float32), bw, unbiased=unbiased)
            np.testing.assert_allclose(got, _numpy_mmd(x, y, h, unbiased), rtol=1e-4, atol=1e-6)


def test_mmd_null_vs_mean_shift():
    # Null spread from a permutation test on the pooled sample; the median-heuristic bandwidth
    # is a function of the pooled set, so it is the same under every permutation.
    n = 300
    kx, ky, kp = jax.random.split(jax.random.key(0), 3)
    x, y = jax.random.normal(kx, (n, 2)), jax.random.normal(ky, (n, 2))
    z = jnp.concatenate([x, y])
    zn = np.asarray(z, np.float64)
    h = float(
        np.median(np.sqrt(((zn[:, None] - zn[None]) ** 2).sum(-1))[np.triu_indices(2 * n, 1)])
    )
    mmd_same = M.mmd(x, y)
    np.testing.assert_allclose(mmd_same, M.mmd(x, y, h), rtol=1e-4, atol=1e-7)
    perms = jax.vmap(lambda k: jax.random.permutation(k, 2 * n))(jax.random.split(kp, 32))
    null = jax.vmap(lambda p: M.mmd(z[p[:n]], z[p[n:]], h))(perms)
    sd = float(jnp.std(null))
    assert 0 < sd < 0.02
    assert abs(float(mmd_same)) < 4 * sd
    assert float(M.mmd(x, y + MU)) > 10 * sd  # negative control: shift of 1


def test_mmd_closed_form_for_gaussian_shift():
    # X ~ N(0, I_d), Y ~ N(mu, I_d), h fixed:
    # MMD^2 = 2 (h^2 / (h^2 + 2))^(d/2) (1 - exp(-|mu|^2 / (2 (h^2 + 2)))) = 0.1023 (d=2, h=1)
    n, h = 600, 1.0
    kx, ky = jax.random.split(jax.random.key(1))
    x, y = jax.random.normal(kx, (n, 2)), jax.random.normal(ky, (n, 2))
    exact = 2 * (h * h / (h * h + 2)) * (1 - math.exp(-1.0 / (2 * (h * h + 2))))
    # SD of the estimate at n = 600 is ~0.014 (measured over seeds): tolerance ~3.5 SD
    assert abs(float(M.mmd(x, y + MU, h)) - exact) < 0.05
    assert abs(float(M.mmd(x, y, h))) < 0.01
    biased = float(M.mmd(x, y, h, unbiased=False))
    assert biased > 0  # V-statistic is a squared norm


def test_mmd_flattens_event_shape_and_has_finite_gradient():
    x = jax.random.normal(jax.random.key(2), (20, 2, 2))
    y = x[::-1] + 0.3
    np.testing.assert_allclose(M.mmd(x, y), M.mmd(x.reshape(20, 4), y.reshape(20, 4)), rtol=1e-6)
    g = jax.grad(lambda a: M.mmd(a, y, 1.0))(x)
    assert np.all(np.isfinite(g)) and np.any(g != 0)
    # usable inside the caller's own jit / vmap
    jitted = jax.jit(M.mmd)(x, y)
    np.testing.assert_allclose(jitted, M.mmd(x, y), rtol=1e-5)


# ------------------------------------------------------------------------------- sliced W


def test_sliced_wasserstein_pure_shift_closed_form():
    # Same points shifted: each projected W_2^2 is exactly (theta . mu)^2, so
    # SW_2^2 = E_theta[(theta . mu)^2] = |mu|^2 / d = 0.5; only the direction average is
    # Monte Carlo: SD = sqrt(Var cos^2 / L) = sqrt(1/8 / 2000) = 0.008; tolerance ~4 SD.
    x = jax.random.normal(jax.random.key(3), (300, 2))
    key = jax.random.key(4)
    sw = float(M.sliced_wasserstein(x, x + MU, key, num_projections=2000))
    assert abs(sw**2 - 0.5) < 0.035
    # p = 1: SW_1 = E|cos| = 2 / pi, SD = sqrt((1/2 - 4/pi^2) / L) = 0.007
    sw1 = float(M.sliced_wasserstein(x, x + MU, key, num_projections=2000, p=1))
    assert abs(sw1 - 2 / math.pi) < 0.03
    assert float(M.sliced_wasserstein(x, x, key, num_projections=2000)) < 1e-3  # negative control


def test_sliced_wasserstein_independent_samples():
    # Independent N(0, I) and N(mu, I): SW_2^2 -> 0.5; SD ~ sqrt(2 |mu|^2 / n + 1 / (8 L)) ~ 0.027
    n = 4000
    kx, ky, kd = jax.random.split(jax.random.key(5), 3)
    x, y = jax.random.normal(kx, (n, 2)), jax.random.normal(ky, (n, 2))
    sw2 = float(M.sliced_wasserstein(x, y + MU, kd, num_projections=512)) ** 2
    assert abs(sw2 - 0.5) < 0.11
    assert (
        float(M.sliced_wasserstein(x, y, kd, num_projections=512)) ** 2 < 0.01
    )  # negative control


def test_sliced_wasserstein_unequal_sizes_is_exact():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=6), rng.normal(size=4) + 0.4
    key = jax.random.key(0)
    # in 1-D every direction is +-1: SW_p = W_p of the samples themselves
    sw1 = M.sliced_wasserstein(a[:, None], b[:, None], key, num_projections=3, p=1)
    np.testing.assert_allclose(sw1, wasserstein_distance(a, b), rtol=1e-5)
    # p = 2: repeating each atom gives the same empirical law with equal sizes (12 = 6*2 = 4*3)
    sw2 = M.sliced_wasserstein(a[:, None], b[:, None], key, num_projections=3, p=2)
    w2 = np.sqrt(np.mean((np.sort(np.repeat(a, 2)) - np.sort(np.repeat(b, 3))) ** 2))
    np.testing.assert_allclose(sw2, w2, rtol=1e-5)
    # same key, same directions
    x = rng.normal(size=(30, 3)).astype(np.float32)
    y = x[:20] + 1.0
    np.testing.assert_array_equal(
        M.sliced_wasserstein(x, y, key, 16), M.sliced_wasserstein(x, y, key, 16)
    )


# ------------------------------------------------------------------------------- energy


def _abs_normal_mean(mu, s):
    """E|Z| for Z ~ N(mu, s^2)."""
    return s * math.sqrt(2 / math.pi) * math.exp(-(mu**2) / (2 * s * s)) + mu * (
        1 - 2 * norm.cdf(-mu / s)
    )


def test_energy_distance_gaussian_closed_form():
    # N(0,1) vs N(1,1): 2 E|X - Y| - 2 E|X - X'| with X - Y ~ N(-1, 2), X - X' ~ N(0, 2): 0.5418
    exact = 2 * _abs_normal_mean(1.0, math.sqrt(2)) - 2 * _abs_normal_mean(0.0, math.sqrt(2))
    assert abs(exact - 0.5418) < 1e-4
    n = 3000
    kx, ky = jax.random.split(jax.random.key(6))
    x, y = jax.random.normal(kx, (n, 1)), jax.random.normal(ky, (n, 1))
    # SD of the estimate at n = 3000 is ~0.025 (measured over seeds): tolerance 4 SD
    assert abs(float(M.energy_distance(x, y + 1.0)) - exact) < 0.1
    assert abs(float(M.energy_distance(x, y))) < 0.005  # negative control, null SD ~0.001


def test_energy_distance_v_statistic_matches_scipy():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=9), rng.normal(size=5) + 0.3
    got = M.energy_distance(a[:, None], b[:, None], unbiased=False)
    np.testing.assert_allclose(got, scipy_energy_distance(a, b) ** 2, rtol=1e-4)
    unbiased = M.energy_distance(a[:, None], b[:, None])
    assert float(unbiased) < float(got)  # U removes the zero diagonal: smaller within terms
    g = jax.grad(lambda x: M.energy_distance(x, jnp.asarray(b[:, None])))(jnp.asarray(a[:, None]))
    assert np.all(np.isfinite(g))


# ------------------------------------------------------------------------------- bits/dim


def test_bits_per_dim_uniform_is_log2_levels():
    d = 64
    # uniform density on [-1, 1]^64: log p = -64 log 2  ->  log2(17) = 4.087 ("uniform 4.09")
    bpd = M.bits_per_dim(-d * math.log(2.0), d, num_levels=17, interval=(-1.0, 1.0))
    np.testing.assert_allclose(bpd, math.log2(17), rtol=1e-6)
    assert round(float(bpd), 2) == 4.09
    # same on [0, 1): log p = 0
    np.testing.assert_allclose(M.bits_per_dim(0.0, d, num_levels=17), math.log2(17), rtol=1e-6)
    # a discrete log-mass needs no correction: uniform categorical over 17 levels
    np.testing.assert_allclose(M.bits_per_dim(-d * math.log(17.0), d), math.log2(17), rtol=1e-6)
    # negative control: forgetting the dequantization Jacobian gives a very different number
    assert abs(float(M.bits_per_dim(-d * math.log(2.0), d)) - math.log2(17)) > 2.0
    # batched, and on real dequantized digits every point is inside the box
    x = D.dequantize(jax.random.key(0), D.digits("test", "raw").images, interval=(-1.0, 1.0))
    assert float(x.min()) >= -1.0 and float(x.max()) < 1.0
    log_p = jnp.full((x.shape[0],), -d * math.log(2.0))
    np.testing.assert_allclose(
        M.bits_per_dim(log_p, d, 17, interval=(-1.0, 1.0)), np.full(360, math.log2(17)), rtol=1e-6
    )


def test_bits_per_dim_is_tight_for_a_histogram_density():
    # p(x) = P(k) / scale on cell k: the dequantization bound is exact, bpd = -log2 P(k)
    probs = np.random.default_rng(3).dirichlet(np.ones(17))
    low, high = -1.0, 1.0
    scale = (high - low) / 17
    raw = jnp.arange(17.0)
    x = D.dequantize(jax.random.key(1), raw, interval=(low, high))
    k = np.floor((np.asarray(x) - low) / scale).astype(int)
    log_p = jnp.log(probs[k] / scale)
    np.testing.assert_allclose(
        M.bits_per_dim(log_p, 1, 17, interval=(low, high)), -np.log2(probs), rtol=1e-5
    )


# ------------------------------------------------------------------------------- validation


def test_metric_argument_errors():
    key = jax.random.key(0)
    x = jnp.zeros((10, 2))
    with pytest.raises(ValueError, match=r"^x: expected samples of shape \(n, d\)"):
        M.mmd(jnp.zeros(10), x)
    with pytest.raises(ValueError, match=r"^y: .*same event shape as x, \(2,\)"):
        M.mmd(x, jnp.zeros((10, 3)))
    with pytest.raises(ValueError, match=r"^y: .*same event shape"):
        M.energy_distance(x, jnp.zeros((10, 2, 1)))
    with pytest.raises(ValueError, match="^x: expected at least 2 samples"):
        M.mmd(jnp.zeros((1, 2)), x)
    with pytest.raises(ValueError, match="^x: expected finite"):
        M.energy_distance(x.at[0, 0].set(jnp.nan), x)
    with pytest.raises(ValueError, match="^bandwidth:"):
        M.mmd(x, x, -1.0)
    with pytest.raises(ValueError, match="^y: expected samples"):
        M.sliced_wasserstein(x, jnp.zeros(()), key)
    with pytest.raises(ValueError, match="^num_projections:"):
        M.sliced_wasserstein(x, x, key, num_projections=0)
    with pytest.raises(ValueError, match="^p:"):
        M.sliced_wasserstein(x, x, key, p=0.5)
    with pytest.raises(ValueError, match="^num_dims:"):
        M.bits_per_dim(0.0, 0)
    with pytest.raises(ValueError, match="^interval: only meaningful"):
        M.bits_per_dim(0.0, 2, interval=(-1, 1))
    with pytest.raises(ValueError, match="^interval: expected finite low < high"):
        M.bits_per_dim(0.0, 2, 17, interval=(1, -1))
    with pytest.raises(TypeError, match="^log_prob:"):
        M.bits_per_dim("a", 2)


def test_wasserstein2_exact_assignment_closed_forms():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2))
    mu = np.array([0.7, -1.2])
    # a translation: every permutation pays |mu|^2 plus a non-negative term, so W2 = |mu|
    assert M.wasserstein2(x, x + mu) == pytest.approx(np.linalg.norm(mu), rel=1e-6)
    # a relabelling of the same points costs nothing
    assert M.wasserstein2(x, x[rng.permutation(300)]) == pytest.approx(0.0, abs=1e-7)
    # 1-D: the optimal plan matches order statistics
    a, b = rng.normal(size=200), rng.gamma(2.0, size=200)
    sorted_w2 = np.sqrt(np.mean((np.sort(a) - np.sort(b)) ** 2))
    assert M.wasserstein2(a[:, None], b[:, None]) == pytest.approx(sorted_w2, rel=1e-6)
    # a plan that is not optimal (the identity here) costs strictly more
    assert M.wasserstein2(a[:, None], b[:, None]) < np.sqrt(np.mean((a - b) ** 2))
    with pytest.raises(ValueError, match=r"^y: expected as many samples as x \(300\)"):
        M.wasserstein2(x, x[:10])
