"""``EnergyBasedModel``: unnormalised density, score, MCMC sampling, log normaliser.

Oracles:
* a quadratic energy ``E(x) = (x - m)^T P (x - m) / 2`` is a Gaussian: its score, its
  normaliser ``log((2 pi)^{d/2} |Sigma|^{1/2})`` and, as a prior with a Gaussian
  likelihood, the conjugate posterior that NUTS must recover;
* for a random (fixed) ``EnergyMLP`` with a quadratic confinement, AIS agrees with 2D
  trapezoid quadrature.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import MCMC, NUTS

import numpyro_hgf as nh
from numpyro_hgf.distributions.energy import EnergyBasedModel
from numpyro_hgf.nn import EnergyMLP


class QuadraticEnergy(nn.Module):
    """``E(x) = (x - mean)^T precision (x - mean) / 2``.

    Params: ``mean: (d,)``, ``precision: (d, d)``.
    """

    dim: int = 2

    @nn.compact
    def __call__(self, x):
        mean = self.param("mean", nn.initializers.zeros, (self.dim,))
        precision = self.param("precision", lambda k, s: jnp.eye(s[0]), (self.dim, self.dim))
        d = x - mean
        return 0.5 * jnp.einsum("...i,ij,...j->...", d, precision, d)


MEAN = np.array([0.5, -1.0])
COV = np.array([[1.0, 0.6], [0.6, 2.0]])
PREC = np.linalg.inv(COV)


def gaussian_ebm(**kwargs):
    params = {"mean": jnp.asarray(MEAN), "precision": jnp.asarray(PREC)}
    return EnergyBasedModel(QuadraticEnergy(2), params, (2,), **kwargs)


def gaussian_log_z(cov):
    d = cov.shape[0]
    return 0.5 * d * np.log(2 * np.pi) + 0.5 * np.linalg.slogdet(cov)[1]


@pytest.fixture(scope="module")
def mlp_ebm():
    """A random but fixed EnergyMLP, confined so that it is normalisable."""
    net = EnergyMLP(hidden=(32, 32))
    params = net.init(jax.random.key(1), jnp.zeros((1, 2)))["params"]
    params = jax.tree.map(lambda p: 2.0 * p, params)  # a clearly non-Gaussian landscape
    return EnergyBasedModel(net, params, (2,), confinement=1.0, step_size=0.1)


# -- density and score ---------------------------------------------------------------------
def test_log_prob_is_minus_energy_and_score_is_minus_grad():
    ebm = gaussian_ebm()
    x = jnp.array([[0.0, 0.0], [1.0, -2.0], [2.0, 1.0]])
    d = np.asarray(x) - MEAN
    energy = 0.5 * np.einsum("ni,ij,nj->n", d, PREC, d)
    np.testing.assert_allclose(ebm.log_prob(x), -energy, rtol=1e-5)
    np.testing.assert_allclose(ebm.score(x), -d @ PREC, rtol=1e-5, atol=1e-6)
    assert ebm.log_prob(x[0]).shape == ()
    assert ebm.log_prob(jnp.zeros((4, 3, 2))).shape == (4, 3)
    assert not ebm.is_normalized
    # normalised copy: exactly the Gaussian log density
    normed = ebm.with_log_normalizer(gaussian_log_z(COV))
    assert normed.is_normalized
    expected = -energy - gaussian_log_z(COV)
    np.testing.assert_allclose(normed.log_prob(x), expected, rtol=1e-5)
    assert not normed.with_log_normalizer(None).is_normalized


def test_quadrature_log_normalizer_of_gaussian_energy():
    ebm = gaussian_ebm()
    log_z = ebm.log_normalizer(method="quadrature", bounds=(-12.0, 12.0))
    assert abs(float(log_z) - gaussian_log_z(COV)) < 1e-3, (float(log_z), gaussian_log_z(COV))
    # default method in <= 2D is quadrature
    assert abs(float(ebm.log_normalizer(bounds=(-12.0, 12.0))) - float(log_z)) < 1e-6
    # 1D
    net = QuadraticEnergy(1)
    ebm1 = EnergyBasedModel(net, {"mean": jnp.ones(1), "precision": jnp.full((1, 1), 4.0)}, (1,))
    log_z1 = float(ebm1.log_normalizer_quadrature())
    assert abs(log_z1 - gaussian_log_z(np.array([[0.25]]))) < 1e-3, log_z1
    # truncation is flagged
    with pytest.warns(UserWarning, match="bounds"):
        ebm1.log_normalizer_quadrature(bounds=(-1.0, 1.5), resolution=101)


def test_ais_log_normalizer_matches_quadrature(mlp_ebm):
    quad = float(mlp_ebm.log_normalizer_quadrature(bounds=(-8.0, 8.0)))
    settings = dict(num_chains=1024, num_betas=500, step_size=0.2, base_scale=2.0)
    result = mlp_ebm.log_normalizer_ais(jax.random.key(0), **settings)
    ais = float(result.log_normalizer_ratio)
    assert abs(ais - quad) < 0.05, (ais, quad, float(result.stderr))
    assert float(result.stderr) < 0.025
    assert result.samples.shape == (1024, 2)


def test_sample_mala_chains_match_gaussian(mlp_ebm):
    ebm = gaussian_ebm(step_size=0.3, num_steps=150, init_scale=2.0)
    x, accept = ebm.sample_with_info(jax.random.key(3), (50, 20))
    assert x.shape == (50, 20, 2) and accept.shape == (50, 20)
    assert 0.4 < float(accept.mean()) < 1.0
    flat = np.asarray(x).reshape(-1, 2)
    n = flat.shape[0]
    z_mean = (flat.mean(0) - MEAN) / np.sqrt(np.diag(COV) / n)
    assert np.all(np.abs(z_mean) < 3.5), z_mean
    np.testing.assert_allclose(np.cov(flat.T), COV, atol=0.25)
    # same key, same draws
    np.testing.assert_array_equal(ebm.sample(jax.random.key(3), (50, 20)), x)


@pytest.mark.parametrize("sampler", ["hmc", "langevin"])
def test_other_samplers_run(sampler):
    ebm = gaussian_ebm(sampler=sampler, step_size=0.1, num_steps=60, num_integration_steps=5)
    x, accept = ebm.sample_with_info(jax.random.key(4), (400,))
    assert x.shape == (400, 2) and bool(jnp.all(jnp.isfinite(x)))
    assert 0.5 < float(accept.mean()) <= 1.0
    flat = np.asarray(x)
    assert np.all(np.abs(flat.mean(0) - MEAN) < 4 * np.sqrt(np.diag(COV) * 1.1 / 400))


# -- NumPyro / NUTS ---------------------------------------------------------------------------
NOISE = 0.8
Y_OBS = np.array([[1.2, -0.4], [0.7, 0.3], [1.5, -0.9]])


def conjugate_model(prior, y):
    x = numpyro.sample("x", prior)
    numpyro.sample("y", dist.Normal(x, NOISE).to_event(1), obs=y)


def conjugate_posterior():
    post_prec = PREC + len(Y_OBS) / NOISE**2 * np.eye(2)
    post_cov = np.linalg.inv(post_prec)
    post_mean = post_cov @ (PREC @ MEAN + Y_OBS.sum(0) / NOISE**2)
    return post_mean, post_cov


def test_ebm_prior_log_joint_and_gradient_in_a_numpyro_model():
    """The log joint NumPyro computes (what NUTS differentiates) is the Gaussian one."""
    from numpyro.infer.util import log_density

    prior = gaussian_ebm()
    y = jnp.asarray(Y_OBS)

    def log_joint(x):
        return log_density(conjugate_model, (prior, y), {}, {"x": x})[0]

    x = jnp.array([0.3, -0.7])
    post_mean, post_cov = conjugate_posterior()
    grad = np.asarray(jax.jit(jax.grad(log_joint))(x))
    # the log joint is a Gaussian in x with the posterior's mean and covariance
    np.testing.assert_allclose(
        grad, -np.linalg.solve(post_cov, np.asarray(x) - post_mean), rtol=1e-4
    )


@pytest.mark.slow
def test_ebm_prior_under_nuts_recovers_conjugate_posterior():
    mcmc = MCMC(NUTS(conjugate_model), num_warmup=200, num_samples=1000, progress_bar=False)
    mcmc.run(jax.random.key(0), gaussian_ebm(), jnp.asarray(Y_OBS))
    draws = np.asarray(mcmc.get_samples()["x"])
    post_mean, post_cov = conjugate_posterior()
    ess = np.asarray(numpyro.diagnostics.effective_sample_size(draws[None]))
    assert np.all(ess > 200), ess
    z = (draws.mean(0) - post_mean) / np.sqrt(np.diag(post_cov) / ess)
    assert np.all(np.abs(z) < 3), (z, ess)
    var = draws.var(0)
    z_var = (var - np.diag(post_cov)) / (np.diag(post_cov) * np.sqrt(2 / ess))
    assert np.all(np.abs(z_var) < 3), (var, np.diag(post_cov), ess)


# -- pytree, jit, vmap, saving -----------------------------------------------------------
def test_pytree_jit_does_not_recompile_and_vmaps_over_params(mlp_ebm):
    traces = []

    @jax.jit
    def f(model, x):
        traces.append(1)
        return model.log_prob(x)

    x = jnp.ones((3, 2))
    a = f(mlp_ebm, x)
    other = mlp_ebm.with_params(jax.tree.map(lambda p: 0.5 * p, mlp_ebm.params))
    b = f(other, x)
    assert len(traces) == 1
    assert not np.allclose(a, b)
    np.testing.assert_allclose(b, other.log_prob(x), rtol=1e-5)
    leaves = jax.tree.leaves(mlp_ebm)
    assert len(leaves) == len(jax.tree.leaves(mlp_ebm.params))

    stacked = jax.tree.map(lambda p, q: jnp.stack([p, q]), mlp_ebm.params, other.params)
    out = jax.vmap(lambda p: mlp_ebm.with_params(p).log_prob(x))(stacked)
    np.testing.assert_allclose(out, np.stack([a, b]), rtol=1e-5)
    # differentiable in x and in the params
    g = jax.grad(lambda p: mlp_ebm.with_params(p).log_prob(x).sum())(mlp_ebm.params)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(g))


def test_save_load_round_trip(tmp_path, mlp_ebm):
    model = mlp_ebm.with_log_normalizer(1.25)
    nh.save(tmp_path / "ebm", model)
    loaded = nh.load(tmp_path / "ebm")
    assert isinstance(loaded, EnergyBasedModel)
    assert loaded.energy == model.energy and loaded.event_shape == (2,)
    assert loaded.confinement == 1.0 and loaded.step_size == model.step_size
    x = jnp.array([[0.3, -0.2], [1.0, 2.0]])
    np.testing.assert_allclose(loaded.log_prob(x), model.log_prob(x), rtol=1e-6)
    assert loaded.is_normalized


# -- bad input ---------------------------------------------------------------------------------
class VectorEnergy(nn.Module):
    """Wrong: one energy per coordinate instead of a scalar per point."""

    @nn.compact
    def __call__(self, x):
        return nn.Dense(x.shape[-1])(x)


def zero_params(module, dim):
    """Params of the right structure without running (and compiling) the initialisers."""
    shapes = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, dim)))["params"]
    return jax.tree.map(lambda s: np.zeros(s.shape, np.float32), shapes)


def test_bad_input_names_the_argument(mlp_ebm):
    with pytest.raises(ValueError, match=r"value: expected trailing \(event\) shape \(2,\)"):
        mlp_ebm.log_prob(jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"x: expected trailing \(event\) shape"):
        mlp_ebm.score(jnp.zeros((5, 3)))
    net = VectorEnergy()
    params = zero_params(net, 2)
    with pytest.raises(
        ValueError, match=r"energy: expected an output of shape \(n,\).*got shape \(1, 2\)"
    ):
        EnergyBasedModel(net, params, (2,))
    with pytest.raises(ValueError, match=r"energy: expected a module mapping x: \(n, 3\)"):
        EnergyBasedModel(mlp_ebm.energy, mlp_ebm.params, (3,))
    with pytest.raises(TypeError, match="energy: expected a flax.linen module"):
        EnergyBasedModel(lambda x: x, {}, (2,))
    for kwargs, name in [
        ({"step_size": 0.0}, "step_size"),
        ({"step_size": -1.0}, "step_size"),
        ({"init_scale": 0.0}, "init_scale"),
        ({"num_steps": 0}, "num_steps"),
        ({"confinement": -1.0}, "confinement"),
        ({"sampler": "nuts"}, "sampler"),
    ]:
        with pytest.raises(ValueError, match=f"{name}: expected"):
            EnergyBasedModel(mlp_ebm.energy, mlp_ebm.params, (2,), **kwargs)
    with pytest.raises(ValueError, match="event_shape"):
        EnergyBasedModel(mlp_ebm.energy, mlp_ebm.params, (0,))
    with pytest.raises(ValueError, match="key: expected a jax.random key"):
        mlp_ebm.log_normalizer(method="ais")
    with pytest.raises(ValueError, match="method: expected one of"):
        mlp_ebm.log_normalizer(method="exact")
    with pytest.raises(ValueError, match="step_size: expected a positive"):
        mlp_ebm.log_normalizer_ais(jax.random.key(0), step_size=-0.1)
    with pytest.raises(ValueError, match=r"bounds: expected finite low < high"):
        mlp_ebm.log_normalizer_quadrature(bounds=(1.0, -1.0))
    with pytest.raises(ValueError, match="log_normalizer: expected a scalar"):
        mlp_ebm.with_log_normalizer(jnp.zeros(2))
    big = EnergyMLP(hidden=(8,))
    ebm3 = EnergyBasedModel(big, zero_params(big, 3), (3,))
    with pytest.raises(ValueError, match="method: quadrature needs an event of at most 2"):
        ebm3.log_normalizer(method="quadrature")
