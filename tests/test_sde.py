"""VP / VE / sub-VP SDEs and the discrete DDPM against closed forms.

* the marginal coefficients solve the moment ODEs of a linear SDE,
  ``d alpha/dt = c(t) alpha`` and ``d sigma^2/dt = 2 c(t) sigma^2 + g(t)^2`` (autodiff);
* the exact one-step kernels compose to the marginals;
* the Gaussian-oracle score is the gradient of the Gaussian marginal's log density, and
  perturbed Gaussian data have that marginal (chi-square test, with a negative control);
* DDPM: the VP-derived schedule has ``abar_i = alpha(i/N)^2``; the ELBO weights reproduce the
  Gaussian KL of each term.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import chi2, multivariate_normal

import numpyro_hgf as nh
from numpyro_hgf import ddpm
from numpyro_hgf.sde import VESDE, VPSDE, SubVPSDE, sde_from_config

SDES = [VPSDE(), SubVPSDE(), VESDE(sigma_max=20.0)]
MEAN = np.array([0.6, -0.4])
COV = np.array([[0.5, 0.2], [0.2, 0.3]])


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("sde", SDES, ids=lambda s: s.name)
def test_marginal_coefficients_solve_the_moment_odes(x64, sde):
    ts = jnp.linspace(0.01, 1.0, 23, dtype=jnp.float64)
    dalpha = jax.vmap(jax.grad(sde.alpha))(ts)
    dvar = jax.vmap(jax.grad(lambda t: sde.sigma(t) ** 2))(ts)
    c, g2 = sde.drift_coeff(ts), sde.g2(ts)
    np.testing.assert_allclose(dalpha, c * sde.alpha(ts), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dvar, 2 * c * sde.sigma(ts) ** 2 + g2, rtol=1e-10, atol=1e-12)
    # the drift is c(t) x, the diffusion sqrt(g^2); sigma(0) = 0, alpha(0) = 1
    x = jnp.array([[1.0, -2.0]])
    np.testing.assert_allclose(sde.drift(x, 0.3), sde.drift_coeff(0.3) * x, rtol=1e-12)
    np.testing.assert_allclose(sde.diffusion(0.3) ** 2, sde.g2(0.3), rtol=1e-12)
    assert abs(float(sde.sigma(1e-12))) < 1e-5 and abs(float(sde.alpha(0.0)) - 1) < 1e-12


@pytest.mark.parametrize("sde", [VPSDE(), VESDE()], ids=lambda s: s.name)
def test_exact_one_step_kernels_compose_to_the_marginal(x64, sde):
    t, dt = jnp.asarray(0.7), jnp.asarray(0.05)
    x = jnp.array([[1.5, -0.5]])
    f, g = sde.discretize(x, t, dt)
    ratio = sde.alpha(t) / sde.alpha(t - dt)
    np.testing.assert_allclose(x + f, ratio * x, rtol=1e-12)
    np.testing.assert_allclose(
        sde.sigma(t) ** 2, ratio**2 * sde.sigma(t - dt) ** 2 + g**2, rtol=1e-10
    )


def test_default_discretization_is_euler_maruyama(x64):
    sde = SubVPSDE()
    x = jnp.array([[1.5, -0.5]])
    f, g = sde.discretize(x, 0.4, 0.01)
    np.testing.assert_allclose(f, sde.drift(x, 0.4) * 0.01)
    np.testing.assert_allclose(g, sde.diffusion(0.4) * 0.1)


@pytest.mark.parametrize("sde", SDES, ids=lambda s: s.name)
def test_gaussian_score_is_the_gradient_of_the_marginal_log_density(sde):
    """Against central finite differences of scipy's Gaussian log density of
    ``N(alpha m, alpha^2 C + sigma^2 I)`` (float64, no JAX on that side)."""
    x = np.random.default_rng(0).normal(size=(5, 2))
    for t in (1e-3, 1.0):
        a, s = float(sde.alpha(t)), float(sde.sigma(t))
        logpdf = multivariate_normal(a * MEAN, a**2 * COV + s**2 * np.eye(2)).logpdf
        h = 1e-5
        fd = np.stack(
            [(logpdf(x + h * e) - logpdf(x - h * e)) / (2 * h) for e in np.eye(2)], axis=-1
        )
        score = sde.gaussian_score(jnp.asarray(x, jnp.float32), t, MEAN, COV)
        np.testing.assert_allclose(score, fd, rtol=2e-4, atol=1e-4)


def _gaussian_chi2(samples, mean, cov):
    """Mean and second moments of whitened samples: sum of independent squared z-scores,
    ``chi2(d + d(d+1)/2)`` under the null.  Returns the p-value."""
    w = np.linalg.solve(np.linalg.cholesky(cov), (np.asarray(samples, np.float64) - mean).T).T
    n, d = w.shape
    stat = n * np.sum(np.mean(w, 0) ** 2)
    second = (w.T @ w) / n - np.eye(d)
    iu = np.triu_indices(d, 1)
    stat += n * np.sum(np.diag(second) ** 2) / 2 + n * np.sum(second[iu] ** 2)
    return chi2.sf(stat, d + d * (d + 1) // 2)


@pytest.mark.parametrize("sde", SDES, ids=lambda s: s.name)
def test_perturbed_gaussian_data_have_the_gaussian_marginal(sde):
    rng = np.random.default_rng(1)
    n, t = 4000, 0.3
    x0 = rng.multivariate_normal(MEAN, COV, size=n).astype(np.float32)
    z = rng.normal(size=x0.shape).astype(np.float32)
    xt = np.asarray(sde.perturb(jnp.asarray(x0), jnp.full((n,), t), jnp.asarray(z)))
    m_t, c_t = (np.asarray(v, np.float64) for v in sde.gaussian_marginal(t, MEAN, COV))
    assert _gaussian_chi2(xt, m_t, c_t) > 1e-3
    # negative control: the marginal at another time must be rejected
    m_w, c_w = (np.asarray(v, np.float64) for v in sde.gaussian_marginal(0.4, MEAN, COV))
    assert _gaussian_chi2(xt, m_w, c_w) < 1e-6


@pytest.mark.parametrize("t", [0.0, -0.1, 1.5, float("nan")])
def test_times_outside_the_unit_interval_are_rejected(t):
    with pytest.raises(ValueError, match=r"t: expected times in \(0, 1\]"):
        VPSDE().marginal(jnp.zeros((3, 2)), jnp.full((3,), t))


def test_bad_sde_parameters_name_the_argument():
    with pytest.raises(ValueError, match="beta_max"):
        VPSDE(beta_min=1.0, beta_max=0.5)
    with pytest.raises(ValueError, match="sigma_max"):
        VESDE(sigma_min=1.0, sigma_max=1.0)
    with pytest.raises(ValueError, match="beta_min"):
        SubVPSDE(beta_min=-1.0)
    with pytest.raises(ValueError, match="config"):
        sde_from_config({"name": "brownian"})
    assert sde_from_config(VESDE(sigma_max=7.0).config()) == VESDE(sigma_max=7.0)


def test_prior_shapes_and_std():
    assert VESDE(sigma_max=7.0).prior((8, 8)).event_shape == (8, 8)
    np.testing.assert_allclose(VESDE(sigma_max=7.0).prior((2,)).base_dist.scale, 7.0)
    assert nh.sde.VPSDE().prior((3,)).batch_shape == ()


# -- discrete DDPM ---------------------------------------------------------------------------
def test_ddpm_schedule_from_vp_matches_the_vp_marginals(x64):
    sde = VPSDE()
    schedule = ddpm.schedule_from_vp(sde, 1000)
    t = schedule.times()
    np.testing.assert_allclose(schedule.alpha_bars, sde.alpha(t) ** 2, rtol=1e-9)
    # and is close to Ho et al.'s linear schedule (b_i ~ b(t_i) / N)
    linear = ddpm.linear_beta_schedule(1000, 1e-4, 0.02)
    np.testing.assert_allclose(schedule.betas, linear.betas, atol=5e-4)


def _iso_gaussian_kl(m1, v1, m2, v2):
    """``KL(N(m1, v1 I) || N(m2, v2 I))``."""
    d = m1.shape[-1]
    return 0.5 * (d * v1 / v2 + np.sum((m1 - m2) ** 2) / v2 - d + d * np.log(v2 / v1))


def test_ddpm_elbo_weights_reproduce_the_gaussian_kl():
    """``KL(q(x_{i-1}|x_i,x_0) || p(x_{i-1}|x_i))`` (isotropic Gaussians, written out from the
    definitions of ``q``'s posterior and ``p``'s e-mean) minus its value at ``e_theta = e`` is
    ``w_i ||e - e_theta||^2``."""
    schedule = ddpm.linear_beta_schedule(50, 1e-3, 0.2)
    b_all, a_all, abar_all = (np.asarray(v, np.float64) for v in schedule)
    x0, e, e_hat = np.random.default_rng(3).normal(size=(3, 4))
    for variance in ("beta", "posterior"):
        w = np.asarray(ddpm.elbo_weights(schedule, variance), np.float64)
        for i in (4, 20, 49):  # 0-based index of step i+1 (not the decoder step)
            b, a, abar, abar_prev = b_all[i], a_all[i], abar_all[i], abar_all[i - 1]
            var = b if variance == "beta" else (1 - abar_prev) / (1 - abar) * b
            x_i = np.sqrt(abar) * x0 + np.sqrt(1 - abar) * e
            q_mean = (np.sqrt(abar_prev) * b * x0 + np.sqrt(a) * (1 - abar_prev) * x_i) / (1 - abar)
            q_var = (1 - abar_prev) / (1 - abar) * b

            p_mean = (x_i - b / np.sqrt(1 - abar) * e_hat) / np.sqrt(a)
            kl = _iso_gaussian_kl(q_mean, q_var, p_mean, var)
            kl_best = _iso_gaussian_kl(q_mean, q_var, q_mean, var)
            np.testing.assert_allclose(kl - kl_best, w[i] * np.sum((e - e_hat) ** 2), rtol=2e-5)


def test_ddpm_noise_loss_is_zero_mean_error_for_the_oracle_and_checks_input():
    schedule = ddpm.linear_beta_schedule(100)
    x0 = jnp.zeros((512, 2))
    # data at 0: x_i = sqrt(1 - abar) e, so the oracle is e = x_i / sqrt(1 - abar_i)
    times = schedule.times()

    def oracle(x, t):
        index = jnp.round(t * schedule.num_steps).astype(int) - 1
        return x / jnp.sqrt(1 - schedule.alpha_bars[index])[:, None]

    zero = lambda x, t: jnp.zeros_like(x)
    losses = jax.jit(
        lambda k: (
            ddpm.ddpm_noise_loss(oracle, schedule, x0, k),
            ddpm.ddpm_noise_loss(zero, schedule, x0, k),
        )
    )(jax.random.key(0))
    assert float(losses[0]) < 1e-8
    assert abs(float(losses[1]) - 2.0) < 0.3  # E||e||^2 = d = 2, standard error 0.09
    assert times[-1] == 1.0
    with pytest.raises(ValueError, match="betas"):
        nh.paths.ddpm._from_betas(jnp.array([0.1, 1.2]))
    with pytest.raises(ValueError, match="variance"):
        ddpm.elbo_weights(schedule, "learned")
    with pytest.raises(TypeError, match="sde"):
        ddpm.schedule_from_vp(VESDE())
