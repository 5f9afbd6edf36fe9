"""``DiffusionPrior`` as a NumPyro distribution, and ``fit_diffusion``.

Oracles: with the exact score of Gaussian data ``N(m, C)`` under each SDE and the exact ``p_T``
as base, the PF-ODE ``log_prob`` *is* the Gaussian's log density (x64, within 1e-3; measured
~1e-5), its gradient in the value is the Gaussian score, the Hutchinson trace is unbiased for
it, and ``bits_per_dim`` is the closed-form value.  A ``TimeMLP`` trained by ``fit_diffusion``
on Gaussian data has a relative (lambda-weighted) score error below 5 %.  The rest checks
distribution semantics and bad input on a small random network.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import numpyro_hgf as nh
from numpyro_hgf.distributions import DiffusionPrior
from numpyro_hgf.nn import TimeMLP
from numpyro_hgf.odeflow import ODESolver
from numpyro_hgf.sde import VESDE, VPSDE, SubVPSDE

MEAN = (0.6, -0.4)
COV = ((0.5, 0.2), (0.2, 0.3))
SDES = [VPSDE(), SubVPSDE(), VESDE(sigma_max=20.0)]


class GaussianScore(nn.Module):
    """Exact score of ``p_t`` for data ``N(mean, cov)`` under ``sde``."""

    sde: object
    mean: tuple = MEAN
    cov: tuple = COV

    @nn.compact
    def __call__(self, x, t):
        dummy = self.param("dummy", nn.initializers.zeros, ())
        mean, cov = jnp.asarray(self.mean, x.dtype), jnp.asarray(self.cov, x.dtype)
        return self.sde.gaussian_score(x, t, mean, cov) + dummy


def oracle_prior(sde, exact_base=True, **kwargs):
    mean, cov = jnp.asarray(MEAN), jnp.asarray(COV)
    base = None
    if exact_base:
        base = dist.MultivariateNormal(*sde.gaussian_marginal(sde.T, mean, cov))
    return DiffusionPrior(
        GaussianScore(sde), {"dummy": jnp.zeros(())}, sde, event_shape=(2,), base=base, **kwargs
    )


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def target():
    return dist.MultivariateNormal(jnp.asarray(MEAN), jnp.asarray(COV))


# -- Gaussian oracle (x64) ---------------------------------------------------------------------
@pytest.mark.parametrize("sde", SDES[1:], ids=lambda s: s.name)
def test_log_prob_of_the_oracle_prior_is_the_gaussian(x64, sde):
    prior = oracle_prior(sde, solver=ODESolver("tsit5", rtol=1e-8, atol=1e-8))
    x = target().sample(jax.random.key(0), (32,))
    log_prob, nfe = prior.log_prob_with_nfe(x)
    assert log_prob.shape == (32,) and int(nfe) > 0
    np.testing.assert_allclose(log_prob, target().log_prob(x), atol=1e-3)


def test_vp_log_prob_is_the_gaussian_and_differentiable_under_jit(x64):
    """VP: ``log_prob`` is the Gaussian's (within 1e-3) and ``grad_x log_prob`` the Gaussian's
    score, from one jitted ``value_and_grad``."""
    prior = oracle_prior(VPSDE(), solver=ODESolver("tsit5", rtol=1e-8, atol=1e-8))
    x = target().sample(jax.random.key(1), (32,))
    value, grad = jax.jit(jax.value_and_grad(lambda y: jnp.sum(prior.log_prob(y))))(x)
    np.testing.assert_allclose(value, jnp.sum(target().log_prob(x)), atol=32e-3)
    expected = jax.grad(lambda y: jnp.sum(target().log_prob(y)))(x)
    np.testing.assert_allclose(grad, expected, atol=1e-3)
    np.testing.assert_allclose(prior.log_prob(x), target().log_prob(x), atol=1e-3)


def test_hutchinson_trace_is_unbiased_for_the_oracle():
    """Rademacher probes in 2D: each draw is exact +- c (the PF-ODE field of a Gaussian is
    linear), so the mean over 200 probe keys must sit within a few standard errors."""
    prior = oracle_prior(
        VESDE(sigma_max=20.0), trace="hutchinson", solver=ODESolver("heun", nfe=16)
    )
    exact = oracle_prior(VESDE(sigma_max=20.0), trace="exact", solver=ODESolver("heun", nfe=16))
    x = target().sample(jax.random.key(2), (3,))
    keys = jax.random.split(jax.random.key(3), 200)
    draws = jax.jit(jax.vmap(lambda k: prior.with_probe_key(k).log_prob(x)))(keys)
    mean, se = draws.mean(0), draws.std(0) / math.sqrt(keys.shape[0])
    assert np.all(np.abs(mean - exact.log_prob(x)) < 4 * se + 1e-4)
    assert np.all(draws.std(0) > 0)  # the estimator is random: the test is not vacuous


def test_bits_per_dim_is_the_closed_form_for_the_oracle():
    prior = oracle_prior(SubVPSDE(), solver=ODESolver("rk4", nfe=80))
    raw = jnp.array([[3.0, 7.0], [9.0, 16.0], [0.0, 5.0]])
    key = jax.random.key(4)
    bpd = prior.bits_per_dim(raw, key, num_levels=17, interval=(-1.0, 1.0))
    x = nh.datasets.dequantize(key, raw, 17, (-1.0, 1.0))
    expected = -(target().log_prob(x) + 2 * math.log(2 / 17)) / (2 * math.log(2))
    np.testing.assert_allclose(bpd, expected, atol=1e-3)


# -- semantics on a small random network -------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    net = TimeMLP(hidden=(16,), out_dim=3, embed_dim=8)
    params = net.init(jax.random.key(0), jnp.zeros((1, 3)), jnp.ones(()))["params"]
    return DiffusionPrior(
        net, params, VPSDE(), output="noise", solver=ODESolver("euler", nfe=4), num_steps=8
    )


def test_shapes_support_and_sampler_choices(small):
    assert small.event_shape == (3,) and small.batch_shape == ()
    assert small.support.event_dim == 1 and not small.support.is_discrete
    x = small.sample(jax.random.key(0), (2, 5))
    assert x.shape == (2, 5, 3)
    assert small.log_prob(x).shape == (2, 5)
    for sampler, nfe, expected in [("reverse_sde", 6, 6), ("pc", 6, 6), ("ddpm", 5, 5)]:
        y, used = small.sample_with_nfe(jax.random.key(1), (4,), sampler=sampler, nfe=nfe)
        assert y.shape == (4, 3) and int(used) == expected and np.all(np.isfinite(y))
    # the same key gives the same draws
    np.testing.assert_allclose(small.sample(jax.random.key(0), (2, 5)), x)


def test_grad_in_params_vmap_and_numpyro_model(small):
    x = jnp.ones((4, 3)) * 0.3

    def model(y):
        z = numpyro.sample("z", small)
        numpyro.sample("y", dist.Normal(z, 0.5).to_event(1), obs=y)

    @jax.jit
    def check(params):
        prior = small.with_params(params)
        g = jax.grad(lambda p: jnp.sum(prior.with_params(p).log_prob(x)))(params)
        per_row = jax.vmap(prior.log_prob)(x)
        log_joint, _ = numpyro.infer.util.log_density(model, (x[0],), {}, {"z": x[1]})
        return g, per_row, prior.log_prob(x), log_joint

    g, per_row, batched, log_joint = check(small.params)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(g))
    assert any(np.any(leaf != 0) for leaf in jax.tree_util.tree_leaves(g))
    np.testing.assert_allclose(per_row, batched, rtol=1e-5)
    expected = batched[1] + dist.Normal(x[1], 0.5).to_event(1).log_prob(x[0])
    np.testing.assert_allclose(log_joint, expected, rtol=1e-5)


def test_save_and_load_round_trip(small, tmp_path):
    nh.save(tmp_path / "prior", small)
    loaded = nh.load(tmp_path / "prior")
    assert isinstance(loaded, DiffusionPrior) and loaded.sde == small.sde
    assert loaded.output == "noise" and loaded.num_steps == 8
    x = jnp.full((2, 3), 0.2)
    np.testing.assert_allclose(loaded.log_prob(x), small.log_prob(x), rtol=1e-6)
    with pytest.raises(TypeError, match="overridden base"):
        nh.save(tmp_path / "oracle", oracle_prior(VPSDE()))


def test_bad_input_names_the_argument(small):
    with pytest.raises(ValueError, match=r"value: expected trailing \(event\) shape \(3,\)"):
        small.log_prob(jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="raw_levels"):
        small.bits_per_dim(jnp.zeros((2, 8, 8)), jax.random.key(0))
    with pytest.raises(ValueError, match=r"t: expected times in \(0, 1\]"):
        small.score(jnp.zeros((2, 3)), 0.0)
    with pytest.raises(ValueError, match=r"t: expected times in \(0, 1\]"):
        small.score(jnp.zeros((2, 3)), 1.5)
    with pytest.raises(ValueError, match="nfe: expected a positive integer, got 0"):
        small.sample_with_nfe(jax.random.key(0), (2,), sampler="pc", nfe=0)
    with pytest.raises(ValueError, match="num_steps: expected a positive integer, got -1"):
        DiffusionPrior(small.network, small.params, VPSDE(), num_steps=-1)
    with pytest.raises(ValueError, match=r"eps: expected a time in \(0, 1\)"):
        DiffusionPrior(small.network, small.params, VPSDE(), eps=0.0)
    with pytest.raises(ValueError, match="sampler"):
        DiffusionPrior(small.network, small.params, VPSDE(), sampler="euler")
    with pytest.raises(TypeError, match="sde"):
        DiffusionPrior(small.network, small.params, "vp")
    with pytest.raises(ValueError, match="sampler: 'ddpm' needs a VPSDE"):
        DiffusionPrior(small.network, small.params, VESDE()).sample_with_nfe(
            jax.random.key(0), (2,), sampler="ddpm"
        )


def test_fit_diffusion_bad_input():
    data = jnp.zeros((10, 2))
    with pytest.raises(TypeError, match="key"):
        nh.train.fit_diffusion(VPSDE(), data)
    with pytest.raises(ValueError, match="steps: expected a positive integer, got 0"):
        nh.train.fit_diffusion(VPSDE(), data, steps=0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="data: expected finite"):
        nh.train.fit_diffusion(VPSDE(), data.at[0, 0].set(jnp.nan), key=jax.random.key(0))
    with pytest.raises(ValueError, match="network"):
        nh.train.fit_diffusion(VPSDE(), jnp.zeros((10, 8, 8)), key=jax.random.key(0))
    with pytest.raises(TypeError, match="sde"):
        nh.train.fit_diffusion("vp", data, key=jax.random.key(0))


# -- trained score on Gaussian data ------------------------------------------------------------
def relative_score_error(prior, sde, key, n=4096):
    """``sqrt(E lambda ||s_theta - s*||^2 / E lambda ||s*||^2)``, ``lambda = sigma(t)^2``,
    ``t ~ U[1e-3, 1]``, ``x ~ p_t`` exact."""
    mean, cov = jnp.asarray(MEAN), jnp.asarray(COV)
    t_key, x_key = jax.random.split(key)
    t = jax.random.uniform(t_key, (n,), minval=1e-3, maxval=1.0)

    def one(t, k):
        m_t, c_t = sde.gaussian_marginal(t, mean, cov)
        x = jax.random.multivariate_normal(k, m_t, c_t)[None]
        s, s_star = prior.score(x, t)[0], sde.gaussian_score(x, t, mean, cov)[0]
        return sde.sigma(t) ** 2 * jnp.sum((s - s_star) ** 2), sde.sigma(t) ** 2 * jnp.sum(
            s_star**2
        )

    num, den = jax.jit(jax.vmap(one))(t, jax.random.split(x_key, n))
    return float(jnp.sqrt(num.mean() / den.mean()))


def _train(sde, steps=4000):
    data = target().sample(jax.random.key(0), (20_000,))
    return nh.train.fit_diffusion(
        sde,
        data,
        hidden=(64, 64),
        steps=steps,
        batch_size=512,
        learning_rate=2e-3,
        key=jax.random.key(1),
        progress=False,
    )


def test_trained_vp_score_has_small_relative_error():
    sde = VPSDE()
    prior = _train(sde)
    err = relative_score_error(prior, sde, jax.random.key(3))
    assert err < 0.05, err
    # negative control: the same measure flags a network that predicts no noise (s = 0)
    zero = prior.with_params(jax.tree.map(jnp.zeros_like, prior.params))
    assert relative_score_error(zero, sde, jax.random.key(3)) > 0.9


@pytest.mark.slow
@pytest.mark.parametrize("sde", [SubVPSDE(), VESDE(sigma_max=10.0)], ids=lambda s: s.name)
def test_trained_score_has_small_relative_error_other_sdes(sde):
    assert relative_score_error(_train(sde), sde, jax.random.key(3)) < 0.05
