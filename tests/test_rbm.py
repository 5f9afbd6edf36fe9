"""BernoulliRBM, contrastive divergence, fit_rbm, Gibbs sampling (numpyro_hgf RBM row)."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
import scipy.special
import scipy.stats

import numpyro_hgf as nh
from numpyro_hgf.distributions.rbm import BernoulliRBM, rbm_log_normalizer_exact
from numpyro_hgf.objectives.contrastive import contrastive_divergence
from numpyro_hgf.samplers import gibbs
from numpyro_hgf.train.rbm import fit_rbm

V, H = 4, 3


def all_states(k):
    return ((np.arange(2**k)[:, None] >> np.arange(k)) & 1).astype(np.float32)


def state_index(v):
    return (np.asarray(v).astype(np.int64) << np.arange(v.shape[-1])).sum(-1)


def make_rbm(seed, scale=1.5, v=V, h=H, **kw):
    rng = np.random.default_rng(seed)
    return BernoulliRBM(
        (scale * rng.standard_normal((v, h))).astype(np.float32),
        rng.standard_normal(v).astype(np.float32),
        rng.standard_normal(h).astype(np.float32),
        **kw,
    )


def np_free_energy(p, v):
    W, b, c = (np.asarray(p[k], np.float64) for k in ("W", "b_visible", "b_hidden"))
    return -(v @ b) - np.logaddexp(0.0, v @ W + c).sum(-1)


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
    return make_rbm(0, num_gibbs_steps=50)


@pytest.fixture(scope="module")
def tiny_probs(tiny):
    return np.exp(np.asarray(tiny.log_prob(all_states(V)), np.float64))


# -- exactness on a tiny model -----------------------------------------------------------------


def test_log_prob_normalised(tiny, tiny_probs):
    assert tiny.event_shape == (V,) and tiny.batch_shape == ()
    assert abs(tiny_probs.sum() - 1.0) < 1e-5


def test_enumeration_over_hidden_and_visible_agree(tiny):
    p = tiny.params
    W, b, c = (np.asarray(p[k], np.float64) for k in ("W", "b_visible", "b_hidden"))
    vs, hs = all_states(V).astype(np.float64), all_states(H).astype(np.float64)
    # brute force (numpy, float64) over the joint (v, h), the visible and the hidden layer
    joint = (vs @ b)[:, None] + (hs @ c)[None, :] + vs @ W @ hs.T
    lz_joint = scipy.special.logsumexp(joint)
    lz_visible = scipy.special.logsumexp(-np_free_energy(p, vs))
    lz_hidden = scipy.special.logsumexp(hs @ c + np.logaddexp(0.0, hs @ W.T + b).sum(-1))
    np.testing.assert_allclose([lz_visible, lz_hidden], lz_joint, rtol=1e-10)
    # the package: H < V enumerates the hidden layer; the transposed machine (V'=3 < H'=4)
    # enumerates its visible layer
    transposed = {"W": p["W"].T, "b_visible": p["b_hidden"], "b_hidden": p["b_visible"]}
    lz_pkg = jax.jit(lambda p, q: jnp.stack([rbm_log_normalizer_exact(x) for x in (p, q)]))(
        p, transposed
    )
    np.testing.assert_allclose(np.asarray(lz_pkg), lz_joint, atol=2e-5)
    # free energy = -log sum_h exp(-E(v, h))
    np.testing.assert_allclose(
        -np.asarray(tiny.free_energy(vs)), scipy.special.logsumexp(joint, axis=1), atol=2e-5
    )


def test_exact_log_normalizer_chunked_matches_brute_force():
    # V=16 visible, H=18 hidden: 2^16 visible states enumerated in 4 chunks of 2^14
    rbm = make_rbm(1, scale=0.3, v=16, h=18)
    lz = float(rbm.log_normalizer())
    brute = scipy.special.logsumexp(-np_free_energy(rbm.params, all_states(16)))
    np.testing.assert_allclose(lz, brute, rtol=2e-6)


@pytest.fixture(scope="module")
def tiny_samples(tiny):
    return np.asarray(tiny.sample(jax.random.key(1), (4000,)))


def test_gibbs_samples_match_exact_probabilities(tiny, tiny_probs, tiny_samples):
    assert tiny_samples.shape == (4000, V)
    assert set(np.unique(tiny_samples)) <= {0.0, 1.0}
    counts = np.bincount(state_index(tiny_samples), minlength=2**V)
    assert chi2_pvalue(counts, tiny_probs) > 0.01
    # negative control: the same samples against a different RBM's probabilities
    lp_other = -np_free_energy(make_rbm(7).params, all_states(V))
    other_probs = np.exp(lp_other - scipy.special.logsumexp(lp_other))
    assert chi2_pvalue(counts, other_probs) < 1e-6


def test_generic_gibbs_driver_with_block_updates(tiny, tiny_probs):
    p = tiny.params

    def update_h(key, state):
        v, _ = state
        h = jax.random.bernoulli(key, jax.nn.sigmoid(v @ p["W"] + p["b_hidden"]))
        return v, h.astype(jnp.float32)

    def update_v(key, state):
        _, h = state
        v = jax.random.bernoulli(key, jax.nn.sigmoid(h @ p["W"].T + p["b_visible"]))
        return v.astype(jnp.float32), h

    init = (jnp.zeros((2000, V)), jnp.zeros((2000, H)))
    run = jax.jit(
        lambda key, init: gibbs(key, [update_h, update_v], init, 40, thin=20, return_trace=True)
    )
    (v, _), trace = run(jax.random.key(2), init)
    assert trace[0].shape == (2, 2000, V)
    counts = np.bincount(state_index(np.asarray(v)), minlength=2**V)
    assert chi2_pvalue(counts, tiny_probs) > 0.01
    # the model's own sweep through the same driver
    v2 = gibbs(jax.random.key(3), tiny, jnp.ones((8, V)), 3)
    assert v2.shape == (8, V)


# -- NumPyro behaviour -------------------------------------------------------------------------


def test_jit_vmap_grad_and_numpyro_model(tiny):
    v = jnp.asarray(all_states(V)[:5])
    lp = jax.jit(lambda d, x: d.log_prob(x))(tiny, v)
    np.testing.assert_allclose(lp, tiny.log_prob(v), rtol=1e-5)
    np.testing.assert_allclose(jax.vmap(tiny.log_prob)(v), lp, rtol=1e-5)
    g = jax.grad(lambda p: tiny.with_params(p).log_prob(v).sum())(tiny.params)
    assert set(g) == {"W", "b_visible", "b_hidden"} and jnp.all(jnp.isfinite(g["W"]))
    # d/db_v log p(v) = v - E[v]
    ev = jnp.asarray(np.exp(np.asarray(tiny.log_prob(all_states(V)))) @ all_states(V))
    np.testing.assert_allclose(g["b_visible"], (v - ev).sum(0), atol=1e-4)

    def model(obs):
        numpyro.sample("v", tiny, obs=obs)

    tr = numpyro.handlers.trace(numpyro.handlers.seed(model, 0)).get_trace(v)
    np.testing.assert_allclose(tr["v"]["fn"].log_prob(tr["v"]["value"]), lp, rtol=1e-5)
    assert tiny.support(v).all()


def test_large_rbm_needs_ais_estimate():
    rbm = BernoulliRBM(jnp.zeros((25, 22)), num_gibbs_steps=2)
    v = jnp.zeros((2, 25))
    with pytest.raises(ValueError, match="log_normalizer\\(method='ais'"):
        rbm.log_prob(v)
    with pytest.raises(ValueError, match="method: 'exact'"):
        rbm.log_normalizer("exact")
    # W = 0: Z = 2^H prod_i (1 + e^0) = 2^(V + H) -- attach it and log_prob works
    attached = rbm.with_log_normalizer((25 + 22) * np.log(2.0))
    np.testing.assert_allclose(attached.log_prob(v), -25 * np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(attached.unnormalized_log_prob(v), 22 * np.log(2.0), rtol=1e-6)


def test_save_load_roundtrip(tmp_path, tiny):
    path = nh.save(tmp_path / "rbm", tiny)
    loaded = nh.load(path)
    assert isinstance(loaded, BernoulliRBM) and loaded.num_gibbs_steps == tiny.num_gibbs_steps
    for k in ("W", "b_visible", "b_hidden"):
        np.testing.assert_array_equal(loaded.params[k], tiny.params[k])


# -- bad input ---------------------------------------------------------------------------------


def test_bad_input_is_a_clear_error(tiny):
    with pytest.raises(ValueError, match=r"value: expected binary values in \{0, 1\}, got"):
        tiny.log_prob(jnp.array([0.0, 0.5, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"value: expected trailing \(event\) shape"):
        tiny.log_prob(jnp.zeros((2, V + 1)))
    data = np.zeros((10, V), np.float32)
    with pytest.raises(ValueError, match=r"data: expected binary values in \{0, 1\}, got"):
        fit_rbm(data + 0.3, 2, key=jax.random.key(0), steps=1)
    with pytest.raises(ValueError, match="data: expected an array of shape \\(n, V\\).*flatten"):
        fit_rbm(np.zeros((10, 2, 2)), 2, key=jax.random.key(0), steps=1)
    with pytest.raises(ValueError, match="num_hidden: expected a positive integer, got 0"):
        fit_rbm(data, 0, key=jax.random.key(0), steps=1)
    for lr in (0.0, -0.1):
        with pytest.raises(ValueError, match="learning_rate: expected a positive"):
            fit_rbm(data, 2, key=jax.random.key(0), steps=1, learning_rate=lr)
    with pytest.raises(ValueError, match="method: expected one of"):
        fit_rbm(data, 2, key=jax.random.key(0), steps=1, method="ml")
    with pytest.raises(ValueError, match="b_hidden: expected shape \\(3,\\)"):
        BernoulliRBM(jnp.zeros((4, 3)), None, jnp.zeros(2))
    with pytest.raises(ValueError, match="W: expected finite values"):
        BernoulliRBM(jnp.full((4, 3), jnp.nan))


def test_contrastive_divergence_gradient_is_cd_statistics(tiny):
    v = jnp.asarray(all_states(V)[[1, 5, 9, 14]])
    key = jax.random.key(4)
    (loss, v_model), g = jax.jit(
        jax.value_and_grad(lambda p: contrastive_divergence(p, v, key, k=2), has_aux=True)
    )(tiny.params)
    assert v_model.shape == v.shape and loss.shape == ()
    # -grad_W = <v h>_data - <v h>_model with h the conditional expectations (Hinton 2002)
    W, c = np.asarray(tiny.W), np.asarray(tiny.b_hidden)
    v, vm = np.asarray(v), np.asarray(v_model)
    hd, hm = scipy.special.expit(v @ W + c), scipy.special.expit(vm @ W + c)
    np.testing.assert_allclose(-g["W"], (v.T @ hd - vm.T @ hm) / len(v), atol=1e-5)
    np.testing.assert_allclose(-g["b_visible"], (v - vm).mean(0), atol=1e-5)
    np.testing.assert_allclose(-g["b_hidden"], (hd - hm).mean(0), atol=1e-5)
    np.testing.assert_allclose(
        float(loss),
        np_free_energy(tiny.params, v).mean() - np_free_energy(tiny.params, vm).mean(),
        rtol=1e-4,
    )


# -- digits: CD / PCD improve the exact test log-likelihood; AIS agrees with exact -------------


@pytest.fixture(scope="module")
def digits():
    tr = np.asarray(nh.datasets.digits("train", form="binary").images).reshape(-1, 64)
    te = np.asarray(nh.datasets.digits("test", form="binary").images).reshape(-1, 64)
    p = (tr.sum(0) + 0.5) / (len(tr) + 1)
    baseline = float(np.mean(te @ np.log(p) + (1 - te) @ np.log1p(-p)))
    return tr, te, baseline


FIT = dict(epochs=20, batch_size=20, learning_rate=0.05, progress=False)


_FITTED = {}


def fitted_rbm(digits, method):
    """Fit once per module run (CD and PCD are fitted lazily, only when a test asks)."""
    if method not in _FITTED:
        _FITTED[method] = fit_rbm(
            digits[0],
            16,
            method=method,
            key=jax.random.key(0),
            return_result=True,
            validation_data=digits[1],  # exact test NLL tracked by the trainer core
            validate_every=720,
            **FIT,
        )
    return _FITTED[method]


# one trainer compile per method; CD (the simpler loss) only in the slow suite
@pytest.mark.parametrize("method", [pytest.param("cd", marks=pytest.mark.slow), "pcd"])
def test_training_improves_test_log_likelihood(digits, method):
    tr, te, baseline = digits
    rbm, result = fitted_rbm(digits, method)
    assert rbm.num_visible == 64 and rbm.num_hidden == 16
    assert result.history.shape == (20 * int(np.ceil(len(tr) / 20)),)
    p = np.clip((tr.sum(0) + 0.5) / (len(tr) + 1), 1e-3, 1 - 1e-3)
    init = BernoulliRBM(jnp.zeros((64, 16)), np.log(p) - np.log1p(-p))  # fit_rbm's start
    ll = float(rbm.log_prob(te).mean())
    ll_init = float(init.log_prob(te).mean())
    # the untrained model is about the independent-Bernoulli baseline; training beats both
    assert abs(ll_init - baseline) < 0.1
    # the trainer's validation hook tracked the exact test NLL at steps 720 and 1440
    assert [s for s, _ in result.validation] == [720, 1440]
    assert abs(result.validation[-1][1] + ll) < 1e-3
    assert ll > baseline + 1.5, (ll, baseline)
    assert ll > ll_init + 1.5, (ll, ll_init)


@pytest.mark.slow
def test_ais_matches_exact_on_digits_rbm(digits):
    tr, te, _ = digits
    rbm, _ = fitted_rbm(digits, "pcd")
    exact = float(rbm.log_normalizer("exact"))
    res = rbm.log_normalizer(
        "ais", key=jax.random.key(1), num_chains=100, num_betas=3000, data=tr, return_result=True
    )
    assert abs(float(res.log_normalizer_ratio) - exact) < 0.5
    ll_exact = float(rbm.log_prob(te).mean())
    ll_ais = float(rbm.with_log_normalizer(res).log_prob(te).mean())
    assert abs(ll_ais - ll_exact) < 0.5


def test_pcd_chains_live_in_train_state(digits):
    _, result = fitted_rbm(digits, "pcd")
    chains = np.asarray(result.state.aux)
    assert chains.shape == (20, 64) and set(np.unique(chains)) <= {0.0, 1.0}
    assert set(result.params) == {"W", "b_visible", "b_hidden"}
