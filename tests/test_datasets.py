"""Shipped data: toy 2-D densities against their FFJORD / scikit-learn definitions, the digits
split, dequantization, and the two clinical tables against known values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.special import digamma

from numpyro_hgf import datasets as D

QUANTILES = np.array([0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95])


def kl_entropy(x, k=1):
    """Kozachenko-Leonenko kNN estimate of differential entropy (nats), 2-D."""
    x = np.asarray(x, np.float64)
    n, d = x.shape
    assert d == 2
    r = cKDTree(x).query(x, k=k + 1)[0][:, k]
    return digamma(n) - digamma(k) + math.log(math.pi) + d * np.mean(np.log(r))


# ------------------------------------------------------------------------------- toy2d

# One sample size for every toy2d check, so each density compiles once (N % 4 and N % 5 != 0
# exercise the uneven splits of rings and pinwheel).
N = 20_002


@pytest.fixture(scope="module")
def toy_samples():
    return {name: np.asarray(D.toy2d(name, N, jax.random.key(0))) for name in D.TOY2D_NAMES}


@pytest.mark.parametrize("name", D.TOY2D_NAMES)
def test_toy2d_shape_dtype_and_key_determinism(name, toy_samples):
    a = D.toy2d(name, N, jax.random.key(0))
    c = D.toy2d(name, N, jax.random.key(1))
    assert a.shape == (N, 2) and a.dtype == jnp.float32
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, toy_samples[name])
    assert not np.allclose(a, c)


@pytest.mark.parametrize("name", D.TOY2D_NAMES)
def test_toy2d_moments_match_population_constants(name, toy_samples):
    # MC SD of a standardized mean is 1/sqrt(N) = 0.007; tolerance 5 SD.
    mean, std = (np.asarray(v) for v in D.toy2d_stats(name))
    z = (toy_samples[name] - mean) / std
    np.testing.assert_allclose(z.mean(0), 0.0, atol=0.035)
    np.testing.assert_allclose(z.std(0), 1.0, atol=0.035)


def test_toy2d_standardize_flag_aliases_and_jit(toy_samples):
    key = jax.random.key(0)
    mean, std = D.toy2d_stats("moons")
    np.testing.assert_allclose(
        D.toy2d("moons", N, key, standardize=True),
        (toy_samples["two_moons"] - np.asarray(mean)) / np.asarray(std),
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_array_equal(D.toy2d("8gaussians", N, key), toy_samples["eight_gaussians"])
    jitted = jax.jit(D.toy2d, static_argnames=("name", "n", "standardize"))
    np.testing.assert_allclose(jitted("pinwheel", N, key), toy_samples["pinwheel"], atol=1e-6)


def _ffjord_pinwheel(rng, batch_size):
    # verbatim logic of lib/toy_data.py (FFJORD), NumPy randomness
    radial_std, tangential_std, num_classes, rate = 0.3, 0.1, 5, 0.25
    num_per_class = batch_size // 5
    rads = np.linspace(0, 2 * np.pi, num_classes, endpoint=False)
    features = rng.randn(num_classes * num_per_class, 2) * np.array([radial_std, tangential_std])
    features[:, 0] += 1.0
    labels = np.repeat(np.arange(num_classes), num_per_class)
    angles = rads[labels] + rate * np.exp(features[:, 0])
    rotations = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)])
    rotations = np.reshape(rotations.T, (-1, 2, 2))
    return 2 * rng.permutation(np.einsum("ti,tij->tj", features, rotations))


def test_toy2d_matches_sklearn_and_ffjord_reference_generators(toy_samples):
    from sklearn.datasets import make_moons, make_swiss_roll

    refs = {
        "two_moons": make_moons(N, noise=0.1, random_state=0)[0] * 2 + np.array([-1, -0.2]),
        "swissroll": make_swiss_roll(N, noise=1.0, random_state=0)[0][:, [0, 2]] / 5,
        "pinwheel": _ffjord_pinwheel(np.random.RandomState(0), N),
    }
    # two-sample quantile SD ~ sqrt(2 q (1 - q) / N) / f(x_q): ~0.015 for moons and pinwheel,
    # ~0.03 for the wide swiss roll; tolerances are ~4 SD.
    tolerance = {"two_moons": 0.06, "swissroll": 0.12, "pinwheel": 0.06}
    for name, ref in refs.items():
        q_ours = np.quantile(toy_samples[name], QUANTILES, axis=0)
        q_ref = np.quantile(ref, QUANTILES, axis=0)
        np.testing.assert_allclose(q_ours, q_ref, atol=tolerance[name], err_msg=name)
    # negative control: a different density is far away in the same statistic
    other = toy_samples["pinwheel"]
    gap = np.abs(np.quantile(other, QUANTILES, 0) - np.quantile(refs["two_moons"], QUANTILES, 0))
    assert gap.max() > 0.5


def test_toy2d_geometry_of_checkerboard_rings_and_gaussians(toy_samples):
    cb = toy_samples["checkerboard"]
    assert np.all(np.abs(cb) <= 4.0)
    cells = np.floor(cb[:, 0] / 2) + np.floor(cb[:, 1] / 2)
    assert np.all(cells % 2 == 0)  # only the "black" squares

    rings = toy_samples["rings"]
    r = np.linalg.norm(rings, axis=1)
    nearest = np.argmin(np.abs(r[:, None] - np.array([3.0, 2.25, 1.5, 0.75])), axis=1)
    assert np.max(np.abs(r - np.array([3.0, 2.25, 1.5, 0.75])[nearest])) < 0.4  # 5 sd of 0.08
    np.testing.assert_array_equal(np.bincount(nearest), [5000, 5000, 5000, 5002])

    g = toy_samples["eight_gaussians"] * 1.414
    phi = np.arange(8) * np.pi / 4
    centers = 4.0 * np.stack([np.cos(phi), np.sin(phi)], 1)
    dist = np.linalg.norm(g[:, None, :] - centers[None], axis=2)
    assert np.max(dist.min(1)) < 2.5  # 5 sd of 0.5
    np.testing.assert_allclose(np.bincount(dist.argmin(1)) / N, 1 / 8, atol=0.015)


def test_two_moons_entropy_floor_by_knn(toy_samples):
    raw = toy_samples["two_moons"]
    mean, std = (np.asarray(v) for v in D.toy2d_stats("two_moons"))
    h = kl_entropy((raw - mean) / std)
    assert abs(h - D.TWO_MOONS_ENTROPY) < 0.05, h
    # the estimator is calibrated: standard normal, H = log(2 pi e) = 2.8379
    z = np.random.default_rng(0).standard_normal((N, 2))
    assert abs(kl_entropy(z) - math.log(2 * math.pi * math.e)) < 0.05
    # negative control: the raw (unstandardized) data differs by log(std_x std_y) = 0.564
    shift = kl_entropy(raw) - h
    assert abs(shift - float(np.sum(np.log(std)))) < 0.02
    assert shift > 0.4


def test_standardize_helper():
    x = jnp.stack([3.0 + 2.0 * jnp.arange(10.0), -(jnp.arange(10.0) ** 2)], axis=1)
    z = D.standardize(x)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="^x:"):
        D.standardize(jnp.float32(1.0))


def test_toy2d_argument_errors():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"^name:.*'two_moons'.*'swissroll'.*'spiral'"):
        D.toy2d("spiral", 10, key)
    for bad in (0, -5):
        with pytest.raises(ValueError, match="^n:"):
            D.toy2d("rings", bad, key)
    with pytest.raises(TypeError, match="^n:"):
        D.toy2d("rings", 10.0, key)
    with pytest.raises(ValueError, match="^name:"):
        D.toy2d_stats("nope")


# ------------------------------------------------------------------------------- digits


def test_digits_split_shapes_and_forms():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw_tr = D.digits("train", "raw")
    raw_te = D.digits("test", "raw")
    both = D.digits("both", "raw")
    assert raw_tr.images.shape == (1437, 8, 8) and raw_tr.labels.shape == (1437,)
    assert raw_te.images.shape == (360, 8, 8) and raw_te.labels.shape == (360,)
    assert both.images.shape == (1797, 8, 8)
    assert raw_tr.images.dtype == jnp.float32 and raw_tr.labels.dtype == jnp.int32
    # the fixed split is scikit-learn's train_test_split(test_size=0.2, random_state=0)
    bunch = load_digits()
    _, x_te, _, y_te = train_test_split(bunch.images, bunch.target, test_size=0.2, random_state=0)
    np.testing.assert_array_equal(raw_te.images, x_te)
    np.testing.assert_array_equal(raw_te.labels, y_te)
    # train + test is the whole set
    assert sorted(np.asarray(raw_tr.labels).tolist() + np.asarray(raw_te.labels).tolist()) == (
        sorted(np.asarray(both.labels).tolist())
    )
    levels = np.unique(np.asarray(both.images))
    np.testing.assert_array_equal(levels, np.arange(17))
    scaled = D.digits("train", "scaled").images
    np.testing.assert_allclose(scaled, raw_tr.images / 8.0 - 1.0, atol=1e-6)
    assert float(scaled.min()) == -1.0 and float(scaled.max()) == 1.0
    binary = D.digits("train", "binary").images
    np.testing.assert_array_equal(binary, (raw_tr.images > 8).astype(np.float32))
    assert set(np.unique(np.asarray(raw_tr.labels)).tolist()) == set(range(10))


def test_digits_argument_errors():
    with pytest.raises(ValueError, match="^split:.*'valid'"):
        D.digits("valid")
    with pytest.raises(ValueError, match="^form:"):
        D.digits("train", "float")


def test_dequantize_cells_and_intervals():
    raw = D.digits("test", "raw").images
    key = jax.random.key(8)
    x = D.dequantize(key, raw)
    assert x.shape == raw.shape and x.dtype == jnp.float32
    assert float(x.min()) >= 0.0 and float(x.max()) < 1.0
    np.testing.assert_array_equal(np.floor(np.asarray(x) * 17), raw)  # each level keeps its cell
    y = D.dequantize(key, raw, interval=(-1.0, 1.0))
    np.testing.assert_allclose(y, 2.0 * x - 1.0, atol=1e-6)  # same u for the same key
    np.testing.assert_array_equal(D.dequantize(key, raw), x)
    assert not np.allclose(D.dequantize(jax.random.key(9), raw), x)
    # the noise is U[0, 1): mean 1/2, variance 1/12
    u = np.asarray(x) * 17 - np.asarray(raw)
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005


def test_dequantize_argument_errors():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="^raw_levels:.*0..16"):
        D.dequantize(key, jnp.array([0.0, 17.0]))
    with pytest.raises(ValueError, match="^raw_levels:.*non-integer"):
        D.dequantize(key, jnp.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="^num_levels:"):
        D.dequantize(key, jnp.array([0.0]), num_levels=0)
    with pytest.raises(ValueError, match="^interval:"):
        D.dequantize(key, jnp.array([0.0]), interval=(1.0, -1.0))


# ------------------------------------------------------------------------------- clinical tables


def test_theophylline_table():
    t = D.theophylline()
    assert len(t.time_h) == 132 and t.num_subjects == 12
    assert all(len(col) == 132 for col in t)
    np.testing.assert_array_equal(np.bincount(t.subject_index), np.full(12, 11))
    np.testing.assert_array_equal(np.unique(t.subject), np.arange(1, 13))
    # first row of subject 1 (R's Theoph): Wt 79.6 kg, Dose 4.02 mg/kg, t 0, conc 0.74
    assert (t.subject[0], t.weight_kg[0], t.dose_mg_per_kg[0]) == (1, 79.6, 4.02)
    assert (t.time_h[0], t.conc_mg_per_l[0]) == (0.0, 0.74)
    np.testing.assert_allclose(t.dose_mg, t.dose_mg_per_kg * t.weight_kg)
    np.testing.assert_allclose(t.dose_mg[0], 319.992)
    # the highest concentration of the study: subject 5, 11.4 mg/L at 1 h
    i = int(np.argmax(t.conc_mg_per_l))
    assert (t.subject[i], t.time_h[i], t.conc_mg_per_l[i]) == (5, 1.0, 11.4)


def test_sleepstudy_table():
    s = D.sleepstudy()
    assert len(s.days) == 180 and s.num_subjects == 18
    np.testing.assert_array_equal(np.bincount(s.subject_index), np.full(18, 10))
    for i in range(18):
        np.testing.assert_array_equal(np.sort(s.days[s.subject_index == i]), np.arange(10))
    assert (s.subject[0], s.days[0], s.reaction_ms[0]) == (308, 0, 249.56)
    assert (s.subject[-1], s.days[-1], s.reaction_ms[-1]) == (372, 9, 364.1236)
    # balanced design: pooled OLS = lme4's fixed effects, 251.405 ms + 10.467 ms/day
    slope, intercept = np.polyfit(s.days, s.reaction_ms, 1)
    np.testing.assert_allclose([intercept, slope], [251.405, 10.467], atol=1e-3)


def test_flowjax_moons_moments_and_entropy_floor(toy_samples):
    ours = toy_samples["flowjax_moons"]
    mean, std = (np.asarray(v) for v in D.toy2d_stats("flowjax_moons"))
    np.testing.assert_allclose(ours.mean(0), mean, atol=0.04)
    np.testing.assert_allclose(ours.std(0), std, rtol=0.02)
    # Cov(x, y) = 2 E[sign * sin a] = -4 / pi: the lower moon is shifted right
    np.testing.assert_allclose(np.cov(ours.T)[0, 1], -4 / np.pi, atol=0.05)
    h = kl_entropy((ours - mean) / std)
    assert abs(h - D.FLOWJAX_MOONS_ENTROPY) < 0.05, h
    # negative control: FFJORD's two_moons is a different density (floor 1.830)
    assert abs(D.FLOWJAX_MOONS_ENTROPY - D.TWO_MOONS_ENTROPY) > 0.3
