"""Diffusion samplers on the Gaussian oracle: with the exact score of ``N(m, C)`` under each SDE,
every sampler's output must have the Gaussian's mean and second moments to within Monte Carlo
error (a chi-square test on whitened samples; negative controls with too few steps or a wrong
score must fail).  Plus determinism, ``jit``, shapes and bad input.

The default suite runs each sampler on one SDE; the full SDE x sampler grid is ``slow``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy.stats import chi2

import numpyro_hgf as nh
from numpyro_hgf import ddpm
from numpyro_hgf.odeflow import ODESolver
from numpyro_hgf.sde import VESDE, VPSDE, SubVPSDE

MEAN = np.array([0.6, -0.4], np.float32)
COV = np.array([[0.5, 0.2], [0.2, 0.3]], np.float32)
NUM_CHAINS = 2000


def oracle(sde, cov=COV):
    return lambda x, t: sde.gaussian_score(x, t, jnp.asarray(MEAN), jnp.asarray(cov))


def p_value(samples, mean=MEAN, cov=COV):
    """Whitened ``w = L^{-1}(x - m)``: ``n |mean w|^2 + n sum_i (mean w_i^2 - 1)^2 / 2 +
    n sum_{i<j} (mean w_i w_j)^2 ~ chi2(d + d(d+1)/2)`` for Gaussian data."""
    samples = np.asarray(samples, np.float64)
    w = np.linalg.solve(np.linalg.cholesky(cov.astype(np.float64)), (samples - mean).T).T
    n, d = w.shape
    second = w.T @ w / n - np.eye(d)
    iu = np.triu_indices(d, 1)
    stat = n * np.sum(w.mean(0) ** 2) + n * np.sum(np.diag(second) ** 2) / 2
    stat += n * np.sum(second[iu] ** 2)
    return chi2.sf(stat, d + d * (d + 1) // 2)


def prior_draws(sde, key, n=NUM_CHAINS):
    return sde.prior((2,)).sample(key, (n,))


def run(sampler, sde, key, num_steps=400, cov=COV):
    x_T = prior_draws(sde, jax.random.fold_in(key, 1))
    score = oracle(sde, cov)
    if sampler == "reverse_sde":
        return nh.samplers.reverse_sde(key, score, sde, x_T, num_steps)
    if sampler == "pc":
        return nh.samplers.predictor_corrector(key, score, sde, x_T, num_steps)
    if sampler == "ode":
        solver = ODESolver("tsit5", rtol=1e-5, atol=1e-5)
        return nh.samplers.ode_sample(score, sde, x_T, solver=solver).value
    schedule = ddpm.schedule_from_vp(sde, num_steps)
    eps_model = lambda x, t: -sde.sigma(t) * score(x, t)
    return nh.samplers.ddpm_ancestral(key, eps_model, schedule, x_T)


DEFAULT = [("reverse_sde", VPSDE()), ("pc", VESDE(sigma_max=20.0)), ("ode", SubVPSDE())]
DEFAULT += [("ddpm", VPSDE())]
GRID = [
    (s, sde)
    for s in ("reverse_sde", "pc", "ode")
    for sde in (VPSDE(), SubVPSDE(), VESDE(sigma_max=20.0))
    if (s, sde) not in DEFAULT
]


@pytest.mark.parametrize("sampler,sde", DEFAULT, ids=lambda v: getattr(v, "name", v))
def test_sampler_moments_match_the_gaussian(sampler, sde):
    samples = run(sampler, sde, jax.random.key(0))
    assert samples.shape == (NUM_CHAINS, 2)
    assert p_value(samples) > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("sampler,sde", GRID, ids=lambda v: getattr(v, "name", v))
def test_sampler_moments_match_the_gaussian_full_grid(sampler, sde):
    assert p_value(run(sampler, sde, jax.random.key(0))) > 1e-3


@pytest.mark.parametrize("sampler", ["reverse_sde", "ddpm"])
def test_negative_control_too_few_steps_is_rejected(sampler):
    """Few steps: a visible discretisation bias that the same test must catch."""
    assert p_value(run(sampler, VPSDE(), jax.random.key(0), num_steps=4)) < 1e-6


def test_negative_control_wrong_score_is_rejected():
    """The exact score of ``N(m, 1.3 C)``: the PF-ODE then transports to the wrong law."""
    samples = run("ode", SubVPSDE(), jax.random.key(0), cov=1.3 * COV)
    assert p_value(samples) < 1e-6


def test_same_key_same_draws_and_jit():
    sde = VPSDE()
    x_T = prior_draws(sde, jax.random.key(1), 64)
    score = oracle(sde)
    f = lambda k: nh.samplers.predictor_corrector(k, score, sde, x_T, 20, snr=0.1)
    a, b = f(jax.random.key(2)), jax.jit(f)(jax.random.key(2))
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(a, f(jax.random.key(3)))
    x, traj = nh.samplers.reverse_sde(
        jax.random.key(2), score, sde, x_T, 20, return_trajectory=True, denoise=False
    )
    assert traj.shape == (20, 64, 2)
    np.testing.assert_allclose(traj[-1], x)


def test_reverse_sde_is_differentiable_in_the_start():
    sde = VESDE(sigma_max=5.0)
    score = oracle(sde)
    x_T = prior_draws(sde, jax.random.key(1), 8)
    g = jax.grad(lambda x: jnp.sum(nh.samplers.reverse_sde(jax.random.key(0), score, sde, x, 10)))
    assert np.all(np.isfinite(g(x_T)))


def test_bad_input_names_the_argument():
    sde = VPSDE()
    score = oracle(sde)
    x_T = jnp.zeros((4, 2))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="num_steps: expected a positive integer, got 0"):
        nh.samplers.reverse_sde(key, score, sde, x_T, 0)
    with pytest.raises(ValueError, match="num_steps: expected a positive integer, got -3"):
        nh.samplers.predictor_corrector(key, score, sde, x_T, -3)
    with pytest.raises(ValueError, match=r"eps: expected a time in \(0, 1\)"):
        nh.samplers.reverse_sde(key, score, sde, x_T, 10, eps=0.0)
    with pytest.raises(ValueError, match=r"eps: expected a time in \(0, 1\)"):
        nh.samplers.ode_sample(score, sde, x_T, eps=1.0)
    with pytest.raises(ValueError, match="snr"):
        nh.samplers.predictor_corrector(key, score, sde, x_T, 10, snr=-1.0)
    with pytest.raises(ValueError, match="score: expected score"):
        nh.samplers.reverse_sde(key, lambda x, t: x[:, :1], sde, x_T, 10)
    with pytest.raises(TypeError, match="sde"):
        nh.samplers.reverse_sde(key, score, "vp", x_T, 10)
    with pytest.raises(ValueError, match="x_T"):
        nh.samplers.reverse_sde(key, score, sde, jnp.zeros(()), 10)
    with pytest.raises(ValueError, match="eps_model"):
        nh.samplers.ddpm_ancestral(key, lambda x, t: x[:, :1], ddpm.linear_beta_schedule(10), x_T)
    # the target's moments used above are themselves a valid Gaussian
    assert dist.MultivariateNormal(jnp.asarray(MEAN), jnp.asarray(COV)).event_shape == (2,)
