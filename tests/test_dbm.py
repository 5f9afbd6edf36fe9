"""Deep Boltzmann machines and deep belief nets (Salakhutdinov & Hinton 2009; Hinton et al. 2006).

Everything is checked on a 4-3-2 machine small enough to enumerate by brute force in numpy
float64 (the 2^9 joint states): exact log Z and log p(v), AIS, the mean-field bound (against
the exact KL identity), block Gibbs and the DBN's sampler (chi-square against the exact
probabilities, with controls that must fail), and fit_dbm on a tiny data set.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
import scipy.special
import scipy.stats

import numpyro_hgf as nh
from numpyro_hgf.distributions import DeepBeliefNet, DeepBoltzmannMachine
from numpyro_hgf.nn.deep_boltzmann import dbm_mean_field, dbm_mean_field_bound_unnormalized

SIZES = (4, 3, 2)


def all_states(k):
    return ((np.arange(2**k)[:, None] >> np.arange(k)) & 1).astype(np.float64)


def state_index(x):
    x = np.asarray(x)
    return (x.astype(np.int64) << np.arange(x.shape[-1])).sum(-1)


def make_params(seed, sizes=SIZES, scale=1.5, dtype=np.float32):
    rng = np.random.default_rng(seed)
    weights = [
        scale * rng.standard_normal((a, b)) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    biases = [rng.standard_normal(n) for n in sizes]
    return [w.astype(dtype) for w in weights], [b.astype(dtype) for b in biases]


def brute_force_joint(weights, biases):
    """``-E(v, h1, h2)`` on the grid of all states, float64: ``(2^V, 2^H1, 2^H2)``."""
    W1, W2 = (np.asarray(w, np.float64) for w in weights)
    b0, b1, b2 = (np.asarray(b, np.float64) for b in biases)
    v, h1, h2 = (all_states(len(b)) for b in (b0, b1, b2))
    return (
        (v @ b0)[:, None, None]
        + (h1 @ b1)[None, :, None]
        + (h2 @ b2)[None, None, :]
        + (v @ W1 @ h1.T)[:, :, None]
        + (h1 @ W2 @ h2.T)[None, :, :]
    )


def chi2_pvalue(counts, probs, min_expected=5.0):
    """Pearson chi-square goodness of fit; bins with small expected counts are pooled."""
    counts = np.asarray(counts, np.float64)
    expected = np.asarray(probs, np.float64) * counts.sum()
    small = expected < min_expected
    if small.any():
        counts = np.append(counts[~small], counts[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
    stat = np.sum((counts - expected) ** 2 / expected)
    return scipy.stats.chi2.sf(stat, df=len(counts) - 1)


@pytest.fixture(scope="module")
def tiny():
    return DeepBoltzmannMachine(*make_params(0), num_gibbs_steps=50, validate_args=True)


@pytest.fixture(scope="module")
def exact(tiny):
    joint = brute_force_joint(tiny.weights, tiny.biases)
    log_z = scipy.special.logsumexp(joint)
    log_p = scipy.special.logsumexp(joint.reshape(joint.shape[0], -1), axis=1) - log_z
    return joint, log_z, log_p


# -- exact log Z and log p(v) by enumeration ----------------------------------------------------
def test_exact_log_normalizer_and_log_prob_match_brute_force(tiny, exact):
    joint, log_z, log_p = exact
    assert tiny.event_shape == (4,) and tiny.batch_shape == () and tiny.layer_sizes == SIZES
    v = all_states(4).astype(np.float32)
    np.testing.assert_allclose(float(tiny.log_normalizer()), log_z, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(tiny.log_prob(v)), log_p, atol=2e-5)
    assert abs(np.exp(np.asarray(tiny.log_prob(v), np.float64)).sum() - 1.0) < 1e-5
    # the other parity enumerated: 3-4-2 sums the odd layer (4 units) out and enumerates the
    # even ones (3 + 2); its hidden chain given v enumerates h2 and sums h1 out
    other = DeepBoltzmannMachine(*make_params(1, (3, 4, 2)))
    j = brute_force_joint(other.weights, other.biases)
    np.testing.assert_allclose(float(other.log_normalizer()), scipy.special.logsumexp(j), rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(other.unnormalized_log_prob(all_states(3))),
        scipy.special.logsumexp(j.reshape(8, -1), axis=1),
        atol=2e-5,
    )
    # control: without the top layer's coupling the brute force differs (W_2 matters)
    decoupled = brute_force_joint([tiny.weights[0], 0 * tiny.weights[1]], tiny.biases)
    assert abs(scipy.special.logsumexp(decoupled) - log_z) > 0.1


@pytest.mark.x64
def test_float64_enumeration_is_exact_to_float64():
    dtype = np.float64 if jax.config.jax_enable_x64 else np.float32
    dbm = DeepBoltzmannMachine(*make_params(2, dtype=dtype))
    joint = brute_force_joint(dbm.weights, dbm.biases)
    log_z = dbm.log_normalizer()
    assert log_z.dtype == dtype and dbm.weights[0].dtype == dtype
    tol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(float(log_z), scipy.special.logsumexp(joint), rtol=tol)
    bound = dbm.mean_field_bound(all_states(4).astype(dtype))
    assert bound.dtype == dtype


# -- annealed importance sampling --------------------------------------------------------------
def test_ais_log_normalizer_within_a_tenth_of_a_nat(tiny, exact):
    _, log_z, _ = exact
    res = tiny.log_normalizer(
        "ais", key=jax.random.key(0), num_chains=200, num_betas=1000, return_result=True
    )
    assert res.log_weights.shape == (200,) and res.samples.shape == (200, 4 + 2)
    assert abs(float(res.log_normalizer_ratio) - log_z) < 0.1, (
        float(res.log_normalizer_ratio),
        log_z,
    )
    assert float(res.stderr) < 0.05
    # attached, log_prob uses it
    attached = tiny.with_log_normalizer(res)
    v = all_states(4)[:3]
    shift = float(res.log_normalizer_ratio) - log_z
    np.testing.assert_allclose(attached.log_prob(v), exact[2][:3] - shift, atol=1e-4)
    # control: the same AIS on the machine with 1.2x the weights is off by more than 0.1
    hotter = tiny.with_params({"weights": [1.2 * w for w in tiny.weights], "biases": tiny.biases})
    lz_hot = hotter.log_normalizer("ais", key=jax.random.key(0), num_chains=200, num_betas=1000)
    assert abs(float(lz_hot) - log_z) > 0.1


# -- the mean-field bound ----------------------------------------------------------------------
def test_mean_field_bound_is_below_log_p_and_its_gap_is_the_kl(tiny, exact):
    joint, log_z, log_p = exact
    v = all_states(4)
    bound = np.asarray(tiny.mean_field_bound(v), np.float64)
    assert bound.shape == (16,)
    assert np.all(bound <= log_p + 1e-5), (bound - log_p).max()
    # log p(v) - bound = KL(q || p(h | v)), computed here by brute force over (h1, h2)
    mu1, mu2 = (np.asarray(m, np.float64) for m in tiny.mean_field(v))
    h1, h2 = all_states(3), all_states(2)
    log_q = (h1 @ np.log(mu1.T) + (1 - h1) @ np.log1p(-mu1.T)).T[:, :, None] + (
        h2 @ np.log(mu2.T) + (1 - h2) @ np.log1p(-mu2.T)
    ).T[:, None, :]
    log_post = joint - (log_p + log_z)[:, None, None]
    kl = np.sum(np.exp(log_q) * (log_q - log_post), axis=(1, 2))
    np.testing.assert_allclose(log_p - bound, kl, atol=5e-5)
    # the fixed-point sweeps only raise the bound (block coordinate ascent)
    p = tiny.params
    sweeps = [dbm_mean_field_bound_unnormalized(p, v, dbm_mean_field(p, v, n)) for n in (1, 3, 30)]
    assert np.all(np.diff(np.stack(sweeps), axis=0) >= -1e-5)
    # control: a stale log Z (kept by with_params) makes the "bound" exceed log p(v)
    stronger = {"weights": [1.5 * w for w in tiny.weights], "biases": tiny.biases}
    stale = tiny.with_log_normalizer(log_z).with_params(stronger)
    exact_stronger = stale.with_log_normalizer(None)
    assert np.any(np.asarray(stale.mean_field_bound(v)) > np.asarray(exact_stronger.log_prob(v)))


# -- block Gibbs and the DBN sampler -----------------------------------------------------------
def test_block_gibbs_matches_the_exact_marginals(tiny, exact):
    joint, log_z, log_p = exact
    layers = tiny.sample_layers(jax.random.key(1), 4000)
    assert [x.shape for x in layers] == [(4000, 4), (4000, 3), (4000, 2)]
    assert set(np.unique(np.asarray(layers[0]))) <= {0.0, 1.0}
    v_counts = np.bincount(state_index(layers[0]), minlength=16)
    assert chi2_pvalue(v_counts, np.exp(log_p)) > 0.01
    # the joint (v, h1, h2) over its 512 states
    idx = state_index(np.concatenate([np.asarray(x) for x in layers], axis=1))
    joint_probs = np.exp(joint - log_z).transpose(2, 1, 0).ravel()  # index v + 16 h1 + 128 h2
    assert chi2_pvalue(np.bincount(idx, minlength=512), joint_probs) > 0.01
    # control: a wrong-temperature sampler (T = 2: all params halved) must fail
    hot = DeepBoltzmannMachine(
        [0.5 * w for w in tiny.weights], [0.5 * b for b in tiny.biases], num_gibbs_steps=50
    )
    hot_counts = np.bincount(state_index(hot.sample(jax.random.key(1), (4000,))), minlength=16)
    assert chi2_pvalue(hot_counts, np.exp(log_p)) < 1e-6


def test_deep_belief_net_samples_its_exact_distribution(tiny, exact):
    dbn = DeepBeliefNet(tiny.weights, tiny.biases, num_gibbs_steps=50)
    v = all_states(4)
    log_p_dbn = np.asarray(dbn.log_prob(v), np.float64)
    # brute force: p(h1, h2) the top RBM, p(v | h1) = Π σ(±(b0 + W1 h1))
    W1, W2 = (np.asarray(w, np.float64) for w in tiny.weights)
    b0, b1, b2 = (np.asarray(b, np.float64) for b in tiny.biases)
    h1, h2 = all_states(3), all_states(2)
    top = (h1 @ b1)[:, None] + (h2 @ b2)[None, :] + h1 @ W2 @ h2.T
    log_p_h1 = scipy.special.logsumexp(top, axis=1) - scipy.special.logsumexp(top)
    logits = b0 + h1 @ W1.T  # (8, 4)
    log_p_v_h1 = v @ logits.T - np.logaddexp(0, logits).sum(1)[None, :]  # (16, 8)
    np.testing.assert_allclose(
        log_p_dbn, scipy.special.logsumexp(log_p_v_h1 + log_p_h1, axis=1), atol=2e-5
    )
    counts = np.bincount(state_index(dbn.sample(jax.random.key(3), (4000,))), minlength=16)
    assert chi2_pvalue(counts, np.exp(log_p_dbn)) > 0.01
    # control: the DBM with the same params is a different distribution
    assert chi2_pvalue(counts, np.exp(exact[2])) < 1e-6


# -- NumPyro semantics, saving, bad input -----------------------------------------------------
def test_pytree_jit_grad_numpyro_and_save(tiny, exact, tmp_path):
    v = jnp.asarray(all_states(4)[:5], jnp.float32)
    lp = jax.jit(lambda d, x: d.log_prob(x))(tiny, v)
    np.testing.assert_allclose(lp, exact[2][:5], atol=2e-5)
    leaves, treedef = jax.tree.flatten(tiny)
    assert len(leaves) == 5  # 2 weights + 3 biases (no log Z attached)
    g = jax.grad(lambda p: tiny.with_params(p).log_prob(v).sum())(tiny.params)
    # d log p(v) / d b_0 = v - E_p[v]
    ev = np.exp(exact[2]) @ all_states(4)
    np.testing.assert_allclose(g["biases"][0], (np.asarray(v) - ev).sum(0), atol=1e-4)

    def model(obs):
        numpyro.sample("v", tiny, obs=obs)

    tr = numpyro.handlers.trace(numpyro.handlers.seed(model, 0)).get_trace(v)
    np.testing.assert_allclose(tr["v"]["fn"].log_prob(tr["v"]["value"]), lp, rtol=1e-5)
    loaded = nh.load(nh.save(tmp_path / "dbm", tiny))
    assert isinstance(loaded, DeepBoltzmannMachine) and loaded.layer_sizes == SIZES
    for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(tiny.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_input_is_a_clear_error(tiny):
    W, b = make_params(0)
    with pytest.raises(ValueError, match=r"value: expected binary values in \{0, 1\}"):
        tiny.log_prob(jnp.array([0.0, 0.5, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"value: expected trailing \(event\) shape"):
        tiny.mean_field_bound(jnp.zeros((2, 5)))
    with pytest.raises(ValueError, match="weights: expected at least 2 weight matrices"):
        DeepBoltzmannMachine(W[:1])
    with pytest.raises(TypeError, match="weights: expected a sequence"):
        DeepBoltzmannMachine(W[0])
    with pytest.raises(ValueError, match=r"weights\[1\]: expected 3 rows"):
        DeepBoltzmannMachine([W[0], np.zeros((2, 2))])
    with pytest.raises(ValueError, match=r"biases\[2\]: expected shape \(2,\)"):
        DeepBoltzmannMachine(W, [b[0], b[1], np.zeros(3)])
    with pytest.raises(ValueError, match=r"weights\[0\]: expected finite values"):
        DeepBoltzmannMachine([np.full((4, 3), np.nan), W[1]])
    big = DeepBoltzmannMachine([np.zeros((30, 25)), np.zeros((25, 30))])
    with pytest.raises(ValueError, match="log_normalizer\\(method='ais'"):
        big.log_prob(jnp.zeros(30))
    with pytest.raises(ValueError, match="method: 'exact' enumerates"):
        big.log_normalizer("exact")
    with pytest.raises(ValueError, match="value: log p\\*\\(v\\) sums over the hidden layers"):
        big.with_log_normalizer(0.0).log_prob(jnp.zeros(30))
    with pytest.raises(ValueError, match="mean_field_bound: log Z is unknown"):
        big.mean_field_bound(jnp.zeros(30))
    with pytest.raises(TypeError, match="key: expected a jax.random key"):
        tiny.log_normalizer("ais")
    data = np.zeros((8, 4), np.float32)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="hidden_layers: expected at least 2 hidden layers"):
        nh.train.fit_dbm(data, (3,), key=key)
    with pytest.raises(TypeError, match="hidden_layers: expected a sequence"):
        nh.train.fit_dbm(data, 3, key=key)
    with pytest.raises(ValueError, match=r"data: expected binary values in \{0, 1\}"):
        nh.train.fit_dbm(data + 0.5, (3, 2), key=key)
    with pytest.raises(ValueError, match="dbm: expected layer sizes"):
        nh.train.fit_dbm(data, (3, 3), dbm=tiny, key=key)
    with pytest.raises(ValueError, match="validation: the held-out mean-field bound needs"):
        nh.train.fit_dbm(np.zeros((8, 30)), (25, 30), validation=np.zeros((2, 30)), key=key)
    with pytest.raises(TypeError, match="key: expected a jax.random key"):
        nh.train.fit_dbm(data, (3, 2))


# -- training ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def prototypes():
    """Two 8-bit prototypes with 5% bit flips: 200 rows (exact likelihood is enumerable)."""
    rng = np.random.default_rng(0)
    protos = np.array([[1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1, 0, 1]], np.float32)
    rows = protos[rng.integers(0, 2, 200)]
    return np.abs(rows - (rng.uniform(size=rows.shape) < 0.05)).astype(np.float32)


@pytest.mark.slow
def test_fit_dbm_raises_the_likelihood_and_the_bound(prototypes):
    data = prototypes
    dbm, result = nh.train.fit_dbm(
        data, (4, 3), key=jax.random.key(0), epochs=30, pretrain_epochs=10, batch_size=20,
        learning_rate=0.1, progress=False, return_result=True,
    )  # fmt: skip
    assert dbm.layer_sizes == (8, 4, 3) and result.history.shape == (300,)
    assert [x.shape for x in result.state.aux] == [(20, 8), (20, 4), (20, 3)]
    # the start: independent Bernoulli units at the data log-odds (W ~ N(0, 0.01²) ~ 0)
    p = (data.sum(0) + 0.5) / (len(data) + 1)
    baseline = float(np.mean(data @ np.log(p) + (1 - data) @ np.log1p(-p)))
    ll = float(jnp.mean(dbm.log_prob(data)))
    bound = float(jnp.mean(dbm.mean_field_bound(data)))
    assert bound <= ll + 1e-5
    # the two-cluster data have about log 2 + 8 H(0.05) = 2.28 nats, independence 3.97;
    # measured: bound -3.10, exact -3.10
    assert bound > baseline + 0.5, (bound, ll, baseline)


# ~17 s wall on 2 cores; default suite so that CI smoke-runs the example
def test_example_smoke(tmp_path):
    """``examples/dbm_digits.py --smoke``: it runs, its mean-field bound is below the exact
    log-likelihood and its AIS log Z is within 0.1 nats of the exact one, and the PNG exists."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "dbm_digits.py"
    out = subprocess.run(
        [sys.executable, str(example), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={"NUMPYRO_HGF_PROGRESS": "0", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "dbm_samples.png").read_bytes()[:4] == b"\x89PNG"
    text = (tmp_path / "dbm_digits.md").read_text()
    rows = dict(re.findall(r"^\| (.+?) \| (-?\d+\.\d+) \|$", text, re.M))
    exact, bound = float(rows["DBM 64-16-16, exact"]), float(rows["DBM 64-16-16, mean-field bound"])
    assert bound <= exact + 1e-4 and exact > -30.0, rows
    z_exact, z_ais = map(float, re.search(r"exact (-?[\d.]+), AIS (-?[\d.]+)", text).groups())
    assert abs(z_ais - z_exact) < 0.1, (z_exact, z_ais)
