"""Neural Hamiltonian flow (seed 003): the volume-preserving transform, the bounds, the fit."""

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numpyro_hgf as nh
from numpyro_hgf.dynamics import harmonic
from numpyro_hgf.flows import HamiltonianTransform, NeuralHamiltonianFlow
from numpyro_hgf.train.hamiltonian_flow import fit_hamiltonian_flow

COV = np.array([[1.0, 0.8], [0.8, 1.0]])
MU = np.array([1.0, -0.5])
# differential entropy of N(MU, COV): 0.5 log det(2 pi e COV); E[log p] = -entropy
GAUSSIAN_ENTROPY = 0.5 * np.log(np.linalg.det(2 * np.pi * np.e * COV))


def _gaussian(key, n):
    return jax.random.multivariate_normal(key, jnp.asarray(MU), jnp.asarray(COV), (n,))


@jax.jit
def _perturb(params, key, scale):
    """Add N(0, scale^2) noise to every leaf (non-trivial potentials, masses, ...)."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    noisy = [
        a + scale * jax.random.normal(k, a.shape, a.dtype)
        for a, k in zip(leaves, keys, strict=True)
    ]
    return jax.tree.unflatten(tree, noisy)


def _as_f64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _random_transform(event_dim=4, dt=0.3, num_steps=5):
    t = HamiltonianTransform.create(jax.random.key(0), event_dim, (16,), dt=dt, num_steps=num_steps)
    return t.with_params(_perturb(t.params, jax.random.key(1), 0.3))


# -- the transform -------------------------------------------------------------------------
@jax.jit
def _round_trip(t, z):
    y = t(z)
    logdets = jax.vmap(lambda zi: jnp.linalg.slogdet(jax.jacfwd(t)(zi)))(z[:4])
    return y, t.inv(y), t.log_abs_det_jacobian(z, y), logdets


def test_transform_inverse_and_zero_logdet_f32():
    t = _random_transform()
    z = 1.5 * jax.random.normal(jax.random.key(2), (64, 4))
    y, back, ladj, (sign, logdet) = _round_trip(t, z)
    assert float(jnp.max(jnp.abs(y - z))) > 0.5  # the map is far from the identity
    np.testing.assert_allclose(back, z, atol=1e-5)
    np.testing.assert_array_equal(ladj, np.zeros(64))
    np.testing.assert_array_equal(sign, np.ones(4))
    np.testing.assert_allclose(logdet, np.zeros(4), atol=1e-5)


def test_transform_inverse_and_zero_logdet_x64():
    with jax.enable_x64(True):
        t = _random_transform()
        t = t.with_params(_as_f64(t.params))
        z = 1.5 * jax.random.normal(jax.random.key(2), (16, 4), jnp.float64)
        y, back, ladj, (sign, logdet) = _round_trip(t, z)
        assert y.dtype == jnp.float64
        np.testing.assert_allclose(back, z, atol=1e-10)
        np.testing.assert_array_equal(sign, np.ones(4))
        np.testing.assert_allclose(logdet, np.zeros(4), atol=1e-9)


class _HarmonicNet(fnn.Module):
    """U(q) = |q|^2 / 2 and unit mass: the harmonic oscillator with omega = 1."""

    dim: int

    @fnn.compact
    def __call__(self, q):
        log_mass = self.param("log_mass", fnn.initializers.zeros, (self.dim,))
        return 0.5 * jnp.sum(q**2, axis=-1), log_mass


def test_transform_reproduces_harmonic_closed_form_to_second_order():
    with jax.enable_x64(True):
        module = _HarmonicNet(2)
        params = _as_f64(module.init(jax.random.key(0), jnp.zeros(2))["params"])
        z = jax.random.normal(jax.random.key(3), (32, 4), jnp.float64)
        q_exact, p_exact = harmonic(z[:, :2], z[:, 2:], 1.0, 1.0)
        exact = jnp.concatenate([q_exact, p_exact], axis=-1)
        errors = []
        for dt, n in ((0.1, 10), (0.05, 20), (0.025, 40)):
            t = HamiltonianTransform(module, params, dim=2, dt=dt, num_steps=n)
            errors.append(float(jnp.max(jnp.abs(t(z) - exact))))
        assert errors[0] < 0.1**2  # O(dt^2) with a constant below 1
        ratios = [errors[0] / errors[1], errors[1] / errors[2]]
        assert all(3.7 < r < 4.3 for r in ratios), (errors, ratios)


# -- the bounds on a 1-D model with an exactly integrable marginal --------------------------
KS = (1, 10, 100)
TABLE = np.linspace(-7.0, 7.0, 71)


class _TableEncoder(fnn.Module):
    """Momentum proposal ``q -> (mean, raw log-scale)`` interpolated from a table (d = 1).

    Its params are the table, so the proposal of the test is set by quadrature (below).
    """

    size: int

    @fnn.compact
    def __call__(self, q):
        zeros = fnn.initializers.zeros
        mean = self.param("mean", zeros, (self.size,))
        raw_log_scale = self.param("raw_log_scale", zeros, (self.size,))
        grid = jnp.asarray(TABLE, q.dtype)
        return jnp.stack(
            [jnp.interp(q[..., 0], grid, mean), jnp.interp(q[..., 0], grid, raw_log_scale)], -1
        )


def _logmeanexp(a, axis):
    """``log mean exp`` in float64 numpy."""
    top = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.mean(np.exp(a - top), axis=axis))


def _quadrature(model, q):
    """``log p(q)`` by trapezoid over ``p`` in [-10, 10] (2001 nodes; and every 4th node), and
    the posterior mean and sd of ``p`` given ``q``.  ``p(q, p) = pi(H^{-1}(q, p))`` exactly."""
    grid = jnp.linspace(-10.0, 10.0, 2001)
    z = jnp.stack(jnp.broadcast_arrays(q[:, None], grid[None, :]), axis=-1)
    joint = jnp.exp(model.joint_log_prob(z))
    marginal = jnp.trapezoid(joint, grid, axis=-1)
    coarse = jnp.trapezoid(joint[:, ::4], grid[::4], axis=-1)
    post = joint / marginal[:, None]
    mean = jnp.trapezoid(post * grid, grid, axis=-1)
    sd = jnp.sqrt(jnp.trapezoid(post * (grid - mean[:, None]) ** 2, grid, axis=-1))
    return jnp.log(marginal), jnp.log(coarse), mean, sd


@jax.jit
def _sample_and_quadrature(model):
    q = jnp.clip(model.sample(jax.random.key(3), (12,)), -6.5, 6.5)
    out = _quadrature(model, jnp.concatenate([jnp.asarray(TABLE), q[:, 0]]))
    return q, out


@pytest.fixture(scope="module")
def tiny_1d():
    """A random 1-D NHF (2-D phase space, non-trivial potentials and masses), f64.

    Its proposal is the exact posterior mean of ``p_T | q_T`` with 1.5 x the exact posterior
    sd (from quadrature): a clear ELBO gap (about 0.2 nats for a Gaussian posterior) with
    light-tailed importance weights, so the finite-K bounds are well resolved.  Returns the
    exact ``log p`` and the IWAE_K estimates from one batch of 20,000 draws per point.
    """
    with jax.enable_x64(True):
        model = NeuralHamiltonianFlow.create(0, 1, num_layers=2, num_steps=3, dt=0.3, hidden=(8,))
        layers = _as_f64(_perturb(model.params[0], jax.random.key(1), 0.3))
        model = model.with_params((layers, model.params[1]))
        q, quadrature = _sample_and_quadrature(model)
        log_p, coarse, mean, sd = (np.asarray(a) for a in quadrature)
        bound = model.log_sigma_bound
        table = {
            "mean": jnp.asarray(mean[: TABLE.size]),
            "raw_log_scale": bound * jnp.arctanh(np.log(1.5 * sd[: TABLE.size]) / bound),
        }
        nhf = NeuralHamiltonianFlow(model.transforms, _TableEncoder(TABLE.size), table)
        log_w = np.asarray(nhf.log_weights(q, jax.random.key(4), 20_000))  # (20000, 12)
    n = log_w.shape[0]
    # IWAE_K per point, averaged over the n / K disjoint groups of K draws
    iwae = {k: np.mean(_logmeanexp(log_w.reshape(n // k, k, -1), axis=1), axis=0) for k in KS}
    converged = _logmeanexp(log_w, axis=0)
    exact = log_p[TABLE.size :]
    return dict(
        exact=exact,
        coarse=coarse[TABLE.size :],
        iwae=iwae,
        elbo=log_w.mean(0),
        converged=converged,
    )


@pytest.mark.slow  # ~40 s of compilation on 2 cores; a numerical-convergence check of the test grid
def test_exact_marginal_grid_is_converged(tiny_1d):
    np.testing.assert_allclose(tiny_1d["exact"], tiny_1d["coarse"], atol=1e-6)


def test_elbo_below_iwae_below_exact_log_p(tiny_1d):
    exact, elbo, iwae100 = tiny_1d["exact"], tiny_1d["elbo"], tiny_1d["iwae"][100]
    gap = exact - elbo
    # the ELBO gap is KL(f || posterior) > 0; its Monte Carlo error over 20,000 draws is < 0.01
    assert np.all(gap > 0.05) and np.mean(gap) > 0.1, gap
    assert np.all(elbo < iwae100), (elbo, iwae100)
    # IWAE_100 averaged over 200 groups: standard error about 0.005 per point
    assert np.all(iwae100 <= exact + 0.02), iwae100 - exact


def test_iwae_increases_with_k_and_converges_to_exact(tiny_1d):
    means = [float(np.mean(tiny_1d["iwae"][k])) for k in KS]
    assert means[0] < means[1] - 0.05 and means[1] < means[2], means
    # K = 1 is the ELBO
    assert abs(means[0] - float(np.mean(tiny_1d["elbo"]))) < 1e-9
    np.testing.assert_allclose(tiny_1d["converged"], tiny_1d["exact"], atol=0.01)


# -- fitting -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moons_fit():
    data = nh.datasets.toy2d("two_moons", 2000, jax.random.key(0), standardize=True)
    test = nh.datasets.toy2d("two_moons", 1000, jax.random.key(1), standardize=True)
    model = NeuralHamiltonianFlow.create(2, 2, num_layers=2, num_steps=3, dt=0.3, hidden=(16,))
    fitted, result = fit_hamiltonian_flow(
        data,
        model=model,
        steps=300,
        batch_size=64,
        learning_rate=1e-2,
        key=jax.random.key(3),
        progress=False,
        return_result=True,
    )
    return model, fitted, result, test


def test_fit_on_two_moons_improves_test_elbo(moons_fit):
    model, fitted, result, test = moons_fit
    key = jax.random.key(4)
    before = float(jnp.mean(model.elbo(test, key, 8)))
    after = float(jnp.mean(fitted.elbo(test, key, 8)))
    # observed: about -5.2 -> -2.9 nats (the entropy floor of standardized moons is 1.83 nats)
    assert after > before + 1.5, (before, after)
    assert result.history.shape == (300,)
    assert np.mean(result.history[-50:]) < np.mean(result.history[:10]) - 1.5
    samples = fitted.sample(jax.random.key(5), (2000,))
    assert samples.shape == (2000, 2) and bool(jnp.all(jnp.isfinite(samples)))
    # the fitted samples look like standardized moons: mean 0, unit variances, roughly
    np.testing.assert_allclose(jnp.mean(samples, 0), [0.0, 0.0], atol=0.2)
    np.testing.assert_allclose(jnp.std(samples, 0), [1.0, 1.0], atol=0.25)


@pytest.mark.slow
def test_fit_gaussian_iwae_reaches_true_log_likelihood():
    train, test = _gaussian(jax.random.key(0), 4000), _gaussian(jax.random.key(1), 2000)
    fitted = fit_hamiltonian_flow(
        train,
        num_layers=1,
        num_steps=4,
        dt=0.25,
        hidden=(16,),
        steps=800,
        batch_size=128,
        learning_rate=1e-2,
        objective="iwae",
        num_samples=8,
        key=jax.random.key(2),
        progress=False,
    )
    iwae = float(jnp.mean(fitted.log_prob_iwae(test, jax.random.key(3), 256)))
    # Under the true law E[log p_model] = -H - KL <= -H, and IWAE <= log p_model, so the
    # estimate sits below -H up to sampling noise: the test-set standard error is
    # sqrt(Var log p / n) = sqrt((d/2) / 2000) = 0.022.  0.1 nats allows the remaining
    # KL + IWAE gap after 800 steps (observed 0.02).
    assert -GAUSSIAN_ENTROPY - 0.1 < iwae < -GAUSSIAN_ENTROPY + 3 * 0.022, (
        iwae,
        -GAUSSIAN_ENTROPY,
    )


@pytest.mark.slow  # ~40 s; trainer determinism is also covered by tests/test_trainer.py
def test_fit_is_deterministic():
    data = _gaussian(jax.random.key(0), 200)
    kwargs = dict(
        num_layers=1,
        num_steps=1,
        dt=0.2,
        hidden=(2,),
        steps=3,
        key=jax.random.key(1),
        progress=False,
    )
    a = fit_hamiltonian_flow(data, **kwargs)
    b = fit_hamiltonian_flow(data, **kwargs)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(x, y)


def test_same_key_same_numbers_and_save_load_round_trip(moons_fit, tmp_path):
    _, fitted, _, test = moons_fit
    q, key = test[:7], jax.random.key(2)
    np.testing.assert_array_equal(fitted.elbo(q, key), fitted.elbo(q, key))
    np.testing.assert_array_equal(fitted.sample(key, (3,)), fitted.sample(key, (3,)))
    assert not np.array_equal(fitted.sample(key, (3,)), fitted.sample(jax.random.key(3), (3,)))

    nh.save(tmp_path / "nhf", fitted)
    loaded = nh.load(tmp_path / "nhf")
    assert isinstance(loaded, NeuralHamiltonianFlow) and loaded.config == fitted.config
    for x, y in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(fitted.params), strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(loaded.log_prob(q), fitted.log_prob(q))
    np.testing.assert_array_equal(loaded.sample(key, (3,)), fitted.sample(key, (3,)))


def test_is_a_numpyro_distribution_with_pytree_params(moons_fit):
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer.util import log_density

    _, model, _, test = moons_fit
    assert isinstance(model, dist.Distribution)
    assert model.event_shape == (2,) and model.batch_shape == ()
    x = test[:5]

    def prog():
        numpyro.sample("x", model)

    lp, _ = log_density(prog, (), {}, {"x": x[0]})
    np.testing.assert_allclose(lp, model.log_prob(x[0]), rtol=1e-6)
    # a pytree whose leaves are the params (+ the log_prob key): no recompilation
    f = jax.jit(lambda m, x: m.log_prob(x))
    # common random numbers: a point's log_prob does not depend on its batch
    np.testing.assert_allclose(f(model, x)[0], lp, rtol=1e-5)
    f(model.with_params(jax.tree.map(lambda a: a * 1.01, model.params)), x)
    assert f._cache_size() == 1


# -- bad input -------------------------------------------------------------------------------
def test_bad_input_errors_name_the_argument():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="dt: expected a positive"):
        HamiltonianTransform.create(key, 4, dt=0.0)
    with pytest.raises(ValueError, match="dt: expected a positive"):
        fit_hamiltonian_flow(np.zeros((10, 2)), dt=-0.1, key=key, steps=1)
    with pytest.raises(ValueError, match="num_steps: expected a positive integer"):
        HamiltonianTransform.create(key, 4, num_steps=0)
    with pytest.raises(ValueError, match="num_steps: expected a positive integer"):
        NeuralHamiltonianFlow.create(key, 2, num_steps=-1)
    with pytest.raises(ValueError, match="event_dim: expected an even phase-space dimension"):
        HamiltonianTransform.create(key, 3)
    t = HamiltonianTransform.create(key, 4, (4,))
    with pytest.raises(ValueError, match=r"z: expected trailing \(event\) shape \(4,\)"):
        t(jnp.zeros((2, 3)))
    bad = np.zeros((10, 2))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="data: expected finite values"):
        fit_hamiltonian_flow(bad, key=key, steps=1)
    with pytest.raises(ValueError, match=r"data: expected an array of shape \(n, d\)"):
        fit_hamiltonian_flow(np.zeros(10), key=key, steps=1)
    model = NeuralHamiltonianFlow.create(key, 2, hidden=(4,))
    with pytest.raises(ValueError, match=r"data: expected trailing \(event\) shape \(2,\)"):
        fit_hamiltonian_flow(np.zeros((10, 3)), model=model, key=key, steps=1)
    with pytest.raises(ValueError, match=r"q: expected trailing \(event\) shape \(2,\)"):
        model.elbo(jnp.zeros((5, 3)), key)
    with pytest.raises(TypeError, match="key: expected a jax.random key"):
        fit_hamiltonian_flow(np.zeros((10, 2)), steps=1)
    with pytest.raises(ValueError, match="objective: expected one of"):
        fit_hamiltonian_flow(np.zeros((10, 2)), key=key, steps=1, objective="kl")
