"""Samplers reject starts and mass matrices that would run a useless chain (issue 16, item 7),
and run under float64.

Measured on the old code: ``mala`` / ``langevin`` / ``hmc`` / ``annealed_langevin`` from an
``x0`` holding a NaN returned all-NaN chains, ``force_field_hmc`` with
``inverse_mass_matrix=0`` (or a negative one) ran a chain whose position never changed
(acceptance 1, zero momentum) or NaN.  Now each is a ``ValueError`` naming the argument;
traced values (inside ``jit``) are not inspected.
"""

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numpyro_hgf as nh
from numpyro_hgf.infer import force_field as ff
from numpyro_hgf.samplers import block_gibbs, mcmc

KEY = jax.random.PRNGKey(0)


def log_density(x):
    return -0.5 * jnp.sum(x**2, axis=-1)


def score(x):
    return -x


def noise_score(x, sigma):
    return -x / (1.0 + sigma**2)


def _run(name, x0, **kw):
    if name == "langevin":
        return mcmc.langevin(KEY, score, x0, 0.1, 5, **kw)
    if name == "mala":
        return mcmc.mala(KEY, log_density, x0, 0.1, 5, **kw).samples
    if name == "hmc":
        return mcmc.hmc(KEY, log_density, x0, 0.1, 5, num_integration_steps=3, **kw).samples
    return mcmc.annealed_langevin(KEY, noise_score, x0, jnp.array([1.0, 0.5]), 0.01, 3, **kw)


SAMPLERS = ("langevin", "mala", "hmc", "annealed_langevin")


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_start_is_rejected(name, bad):
    x0 = jnp.zeros((3, 2)).at[1, 0].set(bad)
    with pytest.raises(ValueError, match=r"x0: expected finite values, got 1 non-finite entry"):
        _run(name, x0)


@pytest.mark.parametrize("name", SAMPLERS)
def test_traced_start_is_not_inspected(name):
    # under jit the values are unknown: no check, the sampler runs (NaN in, NaN out)
    out = jax.jit(lambda x: _run(name, x))(jnp.full((2, 2), jnp.nan))
    assert out.shape == (2, 2) and bool(jnp.all(jnp.isnan(out)))
    ok = jax.jit(lambda x: _run(name, x))(jnp.zeros((2, 2)))
    assert bool(jnp.all(jnp.isfinite(ok)))


def test_gibbs_rejects_a_non_finite_init():
    rbm = nh.distributions.BernoulliRBM(jnp.zeros((3, 2)), num_gibbs_steps=2)
    with pytest.raises(ValueError, match="init: expected finite values"):
        block_gibbs.gibbs(KEY, rbm, jnp.zeros((2, 3)).at[0, 0].set(jnp.nan), 2)


@pytest.mark.parametrize(
    "imm, what",
    [
        (0.0, "expected positive entries"),
        (-1.0, "expected positive entries"),
        (jnp.array([1.0, 0.0]), "expected positive entries"),
        (jnp.array([[1.0, 0.0], [0.0, -2.0]]), "expected a positive-definite"),
        (jnp.array([[1.0, 0.5], [0.0, 1.0]]), "expected a symmetric"),
        (jnp.nan, "expected finite"),
    ],
)
def test_force_field_hmc_rejects_a_non_positive_mass(imm, what):
    with pytest.raises(ValueError, match=f"inverse_mass_matrix: {what}"):
        ff.force_field_hmc(
            score, log_density, step_size=0.1, num_integration_steps=2, inverse_mass_matrix=imm
        )
    kernel = ff.build_kernel()
    state = ff.init(jnp.zeros(2), score, log_density)
    with pytest.raises(ValueError, match=f"inverse_mass_matrix: {what}"):
        kernel(KEY, state, score, log_density, 0.1, imm, 2)


def test_force_field_rejects_a_non_finite_position():
    alg = ff.force_field_hmc(score, log_density, step_size=0.1, num_integration_steps=2)
    with pytest.raises(ValueError, match="position: expected finite values"):
        alg.init(jnp.array([0.0, jnp.nan]))


def test_force_field_hmc_with_a_positive_mass_still_moves():
    alg = ff.force_field_hmc(
        score,
        log_density,
        step_size=0.3,
        num_integration_steps=3,
        inverse_mass_matrix=jnp.array([1.0, 2.0]),
    )
    state = alg.init(jnp.zeros(2))
    state, info = jax.jit(alg.step)(KEY, state)
    assert bool(jnp.any(state.position != 0.0))
    # a traced mass is not inspected (jit of the kernel with the mass as an argument)
    kernel = ff.build_kernel()
    run = jax.jit(
        lambda m: (
            kernel(KEY, ff.init(jnp.zeros(2), score, log_density), score, log_density, 0.3, m, 3)[
                0
            ].position
        )
    )
    assert run(jnp.array([1.0, 2.0])).shape == (2,)


# -- float64 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SAMPLERS)
def test_samplers_run_in_float64(name):
    # float64 draws use other random bits than float32 ones: compare the laws of 2000 chains
    # (moments agree within a few Monte Carlo standard errors, ~0.03 here)
    x0 = jnp.full((2000, 2), 1.5)
    out32 = _run(name, x0)
    with jax.enable_x64(True):
        out64 = _run(name, jnp.asarray(np.asarray(x0), jnp.float64))
        assert out64.dtype == jnp.float64
    assert out32.dtype == jnp.float32
    a, b = np.asarray(out32, np.float64), np.asarray(out64)
    np.testing.assert_allclose(b.mean(0), a.mean(0), atol=0.15)
    np.testing.assert_allclose(b.var(0), a.var(0), atol=0.15)


def test_force_field_and_gibbs_run_in_float64():
    def step(x):
        alg = ff.force_field_hmc(
            score,
            log_density,
            step_size=0.2,
            num_integration_steps=3,
            inverse_mass_matrix=jnp.ones(2, x.dtype),
        )
        keys = jax.random.split(KEY, 2000)
        return jax.vmap(lambda k: alg.step(k, alg.init(x))[0].position)(keys)

    p32 = step(jnp.array([0.5, -0.5]))
    with jax.enable_x64(True):
        p64 = step(jnp.array([0.5, -0.5], jnp.float64))
        assert p64.dtype == jnp.float64
        rbm = nh.distributions.BernoulliRBM(jnp.zeros((3, 2), jnp.float64), num_gibbs_steps=2)
        v = block_gibbs.gibbs(KEY, rbm, jnp.zeros((2, 3), jnp.float64), 2)
        assert v.dtype == jnp.float64
    # other random bits in float64: compare the laws of 2000 one-step chains
    np.testing.assert_allclose(np.asarray(p64).mean(0), np.asarray(p32).mean(0), atol=0.1)
    np.testing.assert_allclose(np.asarray(p64).var(0), np.asarray(p32).var(0), atol=0.1)
    assert blackjax is not None
