"""``ContinuousFlow`` and ``HGFPrior`` as NumPyro distributions.

Oracles: with the analytic optimal velocity of a Gaussian ``N(mean, cov)`` and the exact
``x_T`` marginal as base, an HGF prior *is* ``N(mean, cov)``: its ``log_prob``, its score
and its samples are checked against the Gaussian, and NUTS on a conjugate model against
the closed-form posterior.  A linear field gives the matrix-exponential closed form of a
``ContinuousFlow``.  The rest checks distribution semantics on a small random ``TimeMLP``.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.diagnostics import effective_sample_size
from numpyro.infer import MCMC, NUTS
from scipy.linalg import expm

import numpyro_hgf as nh
from numpyro_hgf.distributions import ContinuousFlow, HGFPrior
from numpyro_hgf.nn import TimeMLP
from numpyro_hgf.odeflow import ODESolver
from numpyro_hgf.paths import DiffusionPath, FlowMatchingPath, OscillationPath, ReflectionPath

MEAN = (0.6, -0.4)
COV = ((0.5, 0.2), (0.2, 0.3))


class GaussianOracle(nn.Module):
    """``V*(x, t)`` of ``hpath`` for data ``N(mean, cov)`` (``path`` is reserved by flax)."""

    hpath: object
    mean: tuple = MEAN
    cov: tuple = COV

    @nn.compact
    def __call__(self, x, t):
        dummy = self.param("dummy", nn.initializers.zeros, ())
        mean, cov = jnp.asarray(self.mean, x.dtype), jnp.asarray(self.cov, x.dtype)
        return self.hpath.optimal_velocity_gaussian(x, t, mean, cov) + dummy


class Linear(nn.Module):
    """``f(x, t) = x A^T`` with ``A`` a param."""

    matrix: tuple

    @nn.compact
    def __call__(self, x, t):
        a = self.param("a", lambda key: jnp.asarray(self.matrix, x.dtype))
        return x @ a.T


def oracle_prior(path, solver, mean=MEAN, cov=COV):
    mean_arr, cov_arr = jnp.asarray(mean), jnp.asarray(cov)
    return HGFPrior(
        GaussianOracle(path, mean, cov),
        {"dummy": jnp.zeros(())},
        path,
        event_shape=(2,),
        base=path.exact_base_gaussian(mean_arr, cov_arr),
        solver=solver,
    )


# -- oracles (float64) --------------------------------------------------------------------
@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize(
    "path", [FlowMatchingPath(), DiffusionPath(T=5.0), OscillationPath(omega=1.5)], ids=str
)
def test_hgf_prior_with_the_analytic_velocity_is_the_gaussian(x64, path):
    prior = oracle_prior(path, ODESolver("tsit5", rtol=1e-8, atol=1e-8))
    target = dist.MultivariateNormal(jnp.asarray(MEAN), jnp.asarray(COV))
    y = target.sample(jax.random.key(0), (6,)) * 1.5
    lp = jax.jit(lambda d, y: d.log_prob(y))(prior, y)
    err = float(jnp.max(jnp.abs(lp - target.log_prob(y))))
    print(f"{path.name}: max |log_prob - exact| = {err:.2e}")
    assert err < 1e-3


def test_hgf_prior_oracle_samples(x64):
    """Samples (``x_T ~ pi_T``, backward ODE to ``t = 0``) are ``N(mean, cov)``."""
    prior = oracle_prior(OscillationPath(omega=1.5), ODESolver("tsit5", rtol=1e-8, atol=1e-8))
    # moments within 4.5 standard errors
    n = 4000
    x = np.asarray(jax.jit(lambda d, k: d.sample(k, (n,)))(prior, jax.random.key(1)))
    sd = np.sqrt(np.diag(COV))
    np.testing.assert_array_less(np.abs(x.mean(0) - MEAN), 4.5 * sd / np.sqrt(n))
    se_cov = np.sqrt((np.outer(sd**2, sd**2) + np.asarray(COV) ** 2) / n)
    np.testing.assert_array_less(np.abs(np.cov(x.T) - COV), 4.5 * se_cov)


def test_continuous_flow_with_a_linear_field_is_closed_form(x64):
    a = ((-0.3, 0.8), (-0.6, 0.2))
    base = dist.Normal(jnp.array([0.5, -1.0]), jnp.array([1.0, 0.7])).to_event(1)
    flow = ContinuousFlow(
        Linear(a), {"a": jnp.asarray(a)}, base, t0=0.5, t1=2.0,
        solver=ODESolver("tsit5", rtol=1e-10, atol=1e-10),
    )  # fmt: skip
    prop = expm(np.asarray(a) * 1.5)  # x(t1) = expm(A (t1 - t0)) x(t0)
    key = jax.random.key(2)
    np.testing.assert_allclose(
        flow.sample(key, (4,)), np.asarray(base.sample(key, (4,))) @ prop.T, atol=1e-8
    )
    y = jax.random.normal(jax.random.key(3), (5, 2))
    expected = base.log_prob(np.asarray(y) @ np.linalg.inv(prop).T) - np.trace(a) * 1.5
    np.testing.assert_allclose(flow.log_prob(y), expected, atol=1e-8)


# -- as a prior in a NumPyro model (conjugate: the posterior is known) --------------------
SIGMA = 0.5
Y_OBS = jnp.array([1.5, 0.5])


def conjugate_model(prior):
    def model(y):
        x = numpyro.sample("x", prior)
        numpyro.sample("y", dist.Normal(x, SIGMA).to_event(1), obs=y)

    return model


def test_hgf_prior_in_a_numpyro_model_has_the_conjugate_posterior_density():
    """``log p(x, y)`` of the model and its gradient in ``x`` are the conjugate ones."""
    prior = oracle_prior(FlowMatchingPath(), ODESolver("rk4", nfe=24))
    model = conjugate_model(prior)
    cov = np.asarray(COV)
    gauss = dist.MultivariateNormal(jnp.asarray(MEAN), jnp.asarray(COV))

    def joint(x):
        return numpyro.infer.util.log_density(model, (Y_OBS,), {}, {"x": x})[0]

    # three points at once: the joint density sums over them, the gradient is per point
    x = jnp.array([[0.3, -0.1], [1.2, 0.4], [-0.5, 0.8]])
    value, grads = jax.jit(jax.value_and_grad(joint))(x)
    expected = jnp.sum(gauss.log_prob(x) + dist.Normal(x, SIGMA).to_event(1).log_prob(Y_OBS))
    np.testing.assert_allclose(value, expected, atol=3e-3)
    expected_grad = -np.linalg.solve(cov, (np.asarray(x) - MEAN).T).T + (Y_OBS - x) / SIGMA**2
    np.testing.assert_allclose(grads, expected_grad, atol=2e-3)


@pytest.mark.slow
def test_hgf_prior_under_nuts_gives_the_conjugate_posterior():
    """Prior ``x ~ HGF = N(mean, cov)`` (analytic field), ``y ~ N(x, 0.5^2 I)``; ~40 s
    on a contended CPU, mostly compiling NUTS around the ODE solve."""
    prior = oracle_prior(FlowMatchingPath(), ODESolver("rk4", nfe=24))
    y_obs, sigma = Y_OBS, SIGMA
    model = conjugate_model(prior)
    mcmc = MCMC(NUTS(model), num_warmup=200, num_samples=600, progress_bar=False)
    mcmc.run(jax.random.key(4), y_obs)
    x = np.asarray(mcmc.get_samples()["x"])
    prec = np.linalg.inv(COV) + np.eye(2) / sigma**2
    post_cov = np.linalg.inv(prec)
    post_mean = post_cov @ (np.linalg.solve(COV, MEAN) + np.asarray(y_obs) / sigma**2)
    # Monte Carlo standard error from the chain's effective sample size
    ess = np.asarray(effective_sample_size(x[None]))
    assert np.all(ess > 50), ess
    se = np.sqrt(np.diag(post_cov) / ess)
    print(f"NUTS posterior mean {x.mean(0)} vs exact {post_mean} (se {se}, ess {ess})")
    np.testing.assert_array_less(np.abs(x.mean(0) - post_mean), 4.5 * se)
    np.testing.assert_allclose(np.cov(x.T), post_cov, atol=0.03)
    # the prior's own density is exact up to the fixed-step solver's error
    lp = prior.log_prob(jnp.asarray(x[:5]))
    exact = dist.MultivariateNormal(jnp.asarray(MEAN), jnp.asarray(COV)).log_prob(x[:5])
    np.testing.assert_allclose(lp, exact, atol=1e-3)


# -- distribution semantics on a random TimeMLP (float32) ---------------------------------
@pytest.fixture(scope="module")
def mlp_prior():
    net = TimeMLP(hidden=(16,), out_dim=2, embed_dim=8, time_scale=10.0)
    params = jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 2)), jnp.zeros(()))["params"]
    # a cheap fixed-step solver: these tests are about semantics, not accuracy
    return HGFPrior(net, params, FlowMatchingPath(), solver=ODESolver("euler", nfe=4))


def test_sample_and_log_prob_shapes(mlp_prior):
    key = jax.random.key(1)
    assert mlp_prior.batch_shape == () and mlp_prior.event_shape == (2,)
    for sample_shape in [(), (3,)]:  # shapes by tracing only (no compilation)
        x = jax.eval_shape(lambda k, s=sample_shape: mlp_prior.sample(k, s), key)
        assert x.shape == (*sample_shape, 2)
        lp = jax.eval_shape(mlp_prior.log_prob, x)
        assert lp.shape == sample_shape
    x = mlp_prior.sample(key, (2, 3))
    assert x.shape == (2, 3, 2) and bool(jnp.all(jnp.isfinite(x)))
    lp = mlp_prior.log_prob(x)
    assert lp.shape == (2, 3) and bool(jnp.all(jnp.isfinite(lp)))
    # batching neither mixes elements nor depends on the layout
    np.testing.assert_allclose(lp.reshape(6), mlp_prior.log_prob(x.reshape(6, 2)), rtol=1e-6)
    np.testing.assert_allclose(mlp_prior.log_prob(x[::-1]), lp[::-1], rtol=1e-5, atol=1e-5)
    # a sample and its own key: the same key gives the same sample
    np.testing.assert_array_equal(mlp_prior.sample(key, (2, 3)), x)


def test_jit_with_the_distribution_as_argument_and_no_recompilation(mlp_prior):
    traces = []

    @jax.jit
    def log_prob(d, x):
        traces.append(1)
        return d.log_prob(x)

    x = jax.random.normal(jax.random.key(2), (6, 2))
    eager = mlp_prior.log_prob(x)
    np.testing.assert_allclose(log_prob(mlp_prior, x), eager, rtol=1e-5, atol=1e-5)
    other = mlp_prior.with_params(jax.tree.map(lambda p: p * 1.1, mlp_prior.params))
    changed = log_prob(other, x)
    assert len(traces) == 1  # new params: same compiled function
    assert float(jnp.max(jnp.abs(changed - eager))) > 1e-4  # ... and they are used
    # leaves of the pytree are exactly the params (plus the base's arrays and probe key)
    n_params = len(jax.tree.leaves(mlp_prior.params))
    assert n_params <= len(jax.tree.leaves(mlp_prior)) <= n_params + 3


def test_grad_of_log_prob_wrt_value_and_params_is_finite(mlp_prior):
    x = jax.random.normal(jax.random.key(3), (6, 2))
    f = lambda params, x: mlp_prior.with_params(params).log_prob(x).sum()
    g_params, g_x = jax.jit(jax.grad(f, argnums=(0, 1)))(mlp_prior.params, x)
    leaves = jax.tree.leaves(g_params)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in leaves)
    assert bool(jnp.all(jnp.isfinite(g_x)))
    assert min(float(jnp.max(jnp.abs(leaf))) for leaf in leaves) > 0  # every layer learns
    assert float(jnp.min(jnp.abs(g_x))) > 0  # (the value of the gradient: see the oracles)


def test_save_load_round_trip(tmp_path, mlp_prior):
    base = dist.Normal(jnp.array([0.0, 1.0]), jnp.array([1.0, 2.0])).to_event(1)
    models = {
        "cnf": ContinuousFlow(
            mlp_prior.velocity, mlp_prior.params, base, t0=0.0, t1=1.5, solver=mlp_prior.solver
        ),
        "hgf": mlp_prior,
    }
    y = jax.random.uniform(jax.random.key(6), (6, 2), minval=-0.9, maxval=0.9)
    for name, model in models.items():
        loaded = nh.load(nh.save(tmp_path / name, model))
        assert type(loaded) is type(model)
        assert (loaded.t0, loaded.t1, loaded.solver) == (model.t0, model.t1, model.solver)
        assert getattr(loaded, "path", None) == getattr(model, "path", None)
        np.testing.assert_array_equal(loaded.log_prob(y), model.log_prob(y))
        np.testing.assert_array_equal(loaded.base.log_prob(y), model.base.log_prob(y))


def test_reflection_prior_has_box_support_and_uniform_base(mlp_prior):
    net, params = mlp_prior.velocity, mlp_prior.params
    prior = HGFPrior(net, params, ReflectionPath(low=-2.0, high=1.0, T=4.0))
    support = prior.support
    inside, outside = jnp.array([[-1.9, 0.9], [0.0, 0.0]]), jnp.array([[-2.1, 0.0], [0.0, 1.2]])
    assert bool(jnp.all(support.check(inside)))
    assert not bool(jnp.any(support.check(outside)))
    assert isinstance(prior.base, dist.Independent)
    assert isinstance(prior.base.base_dist, dist.Uniform)
    np.testing.assert_allclose(prior.base.log_prob(inside), -2 * np.log(3.0), rtol=1e-6)
    assert (prior.t0, prior.t1) == (4.0, 0.0)  # base at T, data at 0
    # the other paths: unconstrained support and their own bases
    fm = HGFPrior(net, params, FlowMatchingPath())
    assert bool(jnp.all(fm.support.check(outside)))


def test_hutchinson_flow_is_deterministic_given_its_probe_key(mlp_prior):
    prior = HGFPrior(
        mlp_prior.velocity, mlp_prior.params, FlowMatchingPath(),
        trace="hutchinson", solver=ODESolver("euler", nfe=4),
    )  # fmt: skip
    x = jax.random.normal(jax.random.key(8), (6, 2))
    np.testing.assert_array_equal(prior.log_prob(x), prior.log_prob(x))
    other = prior.with_probe_key(jax.random.key(99)).log_prob(x)
    assert float(jnp.max(jnp.abs(other - prior.log_prob(x)))) > 1e-6


def test_bad_input_names_the_argument(mlp_prior):
    net, params = mlp_prior.velocity, mlp_prior.params
    base = dist.Normal(jnp.zeros(2), 1.0).to_event(1)
    with pytest.raises(ValueError, match=r"^t1: expected a time different from t0"):
        ContinuousFlow(net, params, base, t0=1.0, t1=1.0)
    with pytest.raises(TypeError, match=r"^base: expected a numpyro Distribution"):
        ContinuousFlow(net, params, "normal")
    with pytest.raises(ValueError, match=r"^base: expected batch_shape \(\)"):
        ContinuousFlow(net, params, dist.Normal(jnp.zeros(2), 1.0))
    with pytest.raises(TypeError, match=r"^velocity: expected a flax.linen module"):
        ContinuousFlow(lambda x, t: x, params, base)
    with pytest.raises(ValueError, match=r"^trace: expected one of"):
        ContinuousFlow(net, params, base, trace="skilling")
    with pytest.raises(ValueError, match=r"^solver: expected one of"):
        ContinuousFlow(net, params, base, solver="rk45")
    with pytest.raises(TypeError, match=r"^path: expected a HamiltonianPath"):
        HGFPrior(net, params, "flow_matching")
    with pytest.raises(ValueError, match=r"^event_shape: expected the data shape"):
        HGFPrior(GaussianOracle(FlowMatchingPath()), {"dummy": 0.0}, FlowMatchingPath())
    with pytest.raises(ValueError, match=r"^value: expected trailing \(event\) shape \(2,\)"):
        mlp_prior.log_prob(jnp.zeros((4, 3)))
