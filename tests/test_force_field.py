"""Force-field HMC / Langevin kernels (numpyro_hgf.infer.force_field).

Checks against peers and closed forms:
* with F = grad log p and the same keys, force_field_hmc reproduces blackjax.hmc;
* exactness: a wrong force (0.7 grad log p + a rotation) with the Metropolis step samples a
  correlated Gaussian exactly (MCSE z-scores of mean, variance, correlation < 2.33); the
  same force without the correction must fail (negative control);
* unadjusted Langevin with the exact score has the closed-form ULA stationary variance.
"""

import arviz as az
import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import numpyro_hgf as nh
from numpyro_hgf.infer import force_field as ff

MU = jnp.array([1.0, -0.5])
RHO = 0.8
SD = jnp.array([1.0, 2.0])
COV = jnp.array([[SD[0] ** 2, RHO * SD[0] * SD[1]], [RHO * SD[0] * SD[1], SD[1] ** 2]])
PREC = jnp.linalg.inv(COV)
ROTATION = jnp.array([[0.0, -1.0], [1.0, 0.0]])


def logdensity(x):
    d = x - MU
    return -0.5 * d @ PREC @ d


def exact_force(x):
    return -PREC @ (x - MU)


def learned_force(x):
    """A deliberately wrong force: 0.7 grad log p plus a rotation about the mean."""
    return 0.7 * exact_force(x) + 0.4 * ROTATION @ (x - MU)


def run_chains(algorithms, key, num_chains, num_draws, burn=200):
    """Runs every algorithm of ``algorithms`` (same keys) in one compiled program; per
    algorithm the draws ``(num_chains, num_draws, 2)`` (after ``burn``), the acceptance
    rates and the ``is_adjusted`` flags."""

    def chains(algorithm, key):
        x0 = MU + jax.random.normal(jax.random.fold_in(key, 1), (num_chains, 2))
        state = jax.vmap(algorithm.init)(x0)

        def step(state, k):
            state, info = jax.vmap(algorithm.step)(jax.random.split(k, num_chains), state)
            return state, (state.position, info.acceptance_rate, info.is_adjusted)

        return jax.lax.scan(step, state, jax.random.split(key, burn + num_draws))[1]

    # one jit for all runs: compilation, not sampling, dominates these tests
    runs = jax.jit(lambda key: [chains(a, key) for a in algorithms])(key)
    return [
        (np.swapaxes(np.asarray(xs[burn:]), 0, 1), np.asarray(acc[burn:]), np.asarray(adj))
        for xs, acc, adj in runs
    ]


def z_scores(draws):
    """MCSE z-scores of mean (2), variance (2) and correlation (1) vs the truth."""
    mu, sd = np.asarray(MU), np.asarray(SD)
    d = draws - mu
    quantities = {
        "mean0": (draws[..., 0], mu[0]),
        "mean1": (draws[..., 1], mu[1]),
        "var0": (d[..., 0] ** 2, sd[0] ** 2),
        "var1": (d[..., 1] ** 2, sd[1] ** 2),
        "corr": (d[..., 0] * d[..., 1] / (sd[0] * sd[1]), RHO),
    }
    out = {}
    for name, (values, truth) in quantities.items():
        mcse = float(az.mcse(values, method="mean"))
        out[name] = (float(values.mean()) - truth) / mcse
    return out


def exactness_runs():
    kw = dict(step_size=0.35, num_integration_steps=8)
    return run_chains(
        [
            nh.infer.force_field_hmc(learned_force, logdensity, **kw),
            nh.infer.force_field_hmc(learned_force, None, **kw),
            nh.infer.force_field_langevin(learned_force, logdensity, step_size=0.3),
        ],
        jax.random.key(7),
        10,
        2000,
    )


def test_reproduces_blackjax_hmc_with_the_exact_force():
    kw = dict(step_size=0.3, num_integration_steps=7)
    ours = nh.infer.force_field_hmc(exact_force, logdensity, **kw)
    peer = blackjax.hmc(logdensity, inverse_mass_matrix=jnp.ones(2), **kw)
    x0 = jnp.array([2.0, 1.0])

    def chain(algorithm):
        def step(state, k):
            state, info = algorithm.step(k, state)
            return state, (state.position, info.acceptance_rate, info.is_accepted)

        return jax.lax.scan(step, algorithm.init(x0), jax.random.split(jax.random.key(3), 300))

    (s1, (x1, a1, acc1)), (s2, (x2, a2, acc2)) = jax.jit(lambda: (chain(ours), chain(peer)))()
    np.testing.assert_allclose(x1, x2, atol=1e-6, rtol=0)
    np.testing.assert_allclose(a1, a2, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(acc1, acc2)
    assert 0.05 < float(jnp.mean(acc1)) < 1.0  # rejections happen, so the accept draw is shared
    np.testing.assert_allclose(s1.logdensity, s2.logdensity, atol=1e-6)


def test_adjusted_wrong_force_is_exact_and_unadjusted_fails():
    """The exactness invariant (10 chains x 2,000 draws, MCSE z-scores < 2.33) for
    force-field HMC, its negative control without the Metropolis step, and MALA with the
    same wrong force."""
    (draws, acc, adjusted), unadjusted_run, langevin_run = exactness_runs()
    assert draws.shape == (10, 2000, 2) and adjusted.all()
    z = z_scores(draws)
    assert all(abs(v) < 2.33 for v in z.values()), z
    assert stats.chi2.sf(sum(v**2 for v in z.values()), df=len(z)) > 0.01
    assert 0.3 < acc.mean() < 0.99  # the wrong force costs acceptance, not correctness

    # negative control: the same force without the Metropolis correction must fail
    draws, acc, adjusted = unadjusted_run
    assert not adjusted.any() and np.all(acc == 1.0)
    z = z_scores(draws)
    assert max(abs(v) for v in z.values()) > 2.33, z
    assert stats.chi2.sf(sum(v**2 for v in z.values()), df=len(z)) < 1e-3

    # Metropolis-adjusted Langevin with the same wrong force is exact as well
    draws, acc, adjusted = langevin_run
    assert adjusted.all() and 0.2 < acc.mean() < 1.0
    z = z_scores(draws)
    assert stats.chi2.sf(sum(v**2 for v in z.values()), df=len(z)) > 0.01, z


def test_unadjusted_langevin_matches_the_ula_stationary_variance():
    # x' = x + eps s(x) + sqrt(2 eps) z on N(0, diag(lam^-1)) has per-coordinate stationary
    # variance 1 / (lam (1 - eps lam / 2)) (Roberts & Tweedie 1996).
    lam = jnp.array([1.0, 4.0])
    eps = 0.2
    algorithm = nh.infer.force_field_langevin(lambda x: -lam * x, step_size=eps)
    key = jax.random.key(11)

    @jax.jit
    def chains(key):
        state = jax.vmap(algorithm.init)(jnp.zeros((10, 2)))

        def step(state, k):
            state, info = jax.vmap(algorithm.step)(jax.random.split(k, 10), state)
            return state, (state.position, info.is_adjusted)

        return jax.lax.scan(step, state, jax.random.split(key, 3000))[1]

    xs, adjusted = chains(key)
    xs = np.swapaxes(np.asarray(xs[200:]), 0, 1)
    assert not np.asarray(adjusted).any()
    target = 1.0 / (np.asarray(lam) * (1 - eps * np.asarray(lam) / 2))
    exact = 1.0 / np.asarray(lam)
    for i in range(2):
        values = xs[..., i] ** 2
        mcse = float(az.mcse(values, method="mean"))
        assert abs(values.mean() - target[i]) / mcse < 2.33
        assert abs(values.mean() - exact[i]) / mcse > 2.33  # ULA bias is visible


def test_with_force_keeps_the_value_and_swaps_the_gradient():
    g = ff.with_force(logdensity, learned_force)
    x = jnp.array([0.3, -1.2])
    value, grad = jax.jit(jax.value_and_grad(g))(x)
    np.testing.assert_allclose(value, logdensity(x), rtol=1e-6)
    np.testing.assert_allclose(grad, learned_force(x), rtol=1e-6)


@pytest.mark.slow
def test_dense_mass_matches_blackjax_statistics():
    # a dense inverse mass equal to the covariance: the whitened leapfrog is exact HMC
    algorithm = nh.infer.force_field_hmc(
        exact_force, logdensity, step_size=0.5, num_integration_steps=4, inverse_mass_matrix=COV
    )
    ((draws, acc, _),) = run_chains([algorithm], jax.random.key(2), 4, 1000)
    assert acc.mean() > 0.9  # the whitened problem is an isotropic Gaussian
    z = z_scores(draws)
    assert stats.chi2.sf(sum(v**2 for v in z.values()), df=len(z)) > 0.01, z


def test_bad_input():
    with pytest.raises(TypeError, match="force"):
        nh.infer.force_field_hmc(3.0, step_size=0.1, num_integration_steps=3)
    with pytest.raises(ValueError, match="step_size"):
        nh.infer.force_field_hmc(exact_force, step_size=-0.1, num_integration_steps=3)
    with pytest.raises(ValueError, match="num_integration_steps"):
        nh.infer.force_field_hmc(exact_force, step_size=0.1, num_integration_steps=0)
    with pytest.raises(TypeError, match="logdensity_fn"):
        nh.infer.force_field_langevin(exact_force, "p", step_size=0.1)
    with pytest.raises(ValueError, match="force: expected an output"):
        nh.infer.force_field_hmc(lambda x: x[:1], step_size=0.1, num_integration_steps=2).init(
            jnp.zeros(2)
        )
    algorithm = nh.infer.force_field_hmc(
        exact_force, step_size=0.1, num_integration_steps=2, inverse_mass_matrix=jnp.ones(3)
    )
    with pytest.raises(ValueError, match="inverse_mass_matrix"):
        algorithm.step(jax.random.key(0), algorithm.init(jnp.zeros(2)))
