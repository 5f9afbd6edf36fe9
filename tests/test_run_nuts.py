"""nh.infer.run_nuts / run_hmc: BlackJAX NUTS and HMC on NumPyro models.

Peers and closed forms: eight schools (non-centred) against NumPyro's own NUTS run side by
side (posterior means within Monte Carlo standard error, with a negative control on
shifted data), a conjugate Gaussian model against its closed-form posterior, and the
learned-force path (force of the prior site swapped, the rest autodiff) against the chain
rule written out by hand.
"""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import MCMC, NUTS
from scipy import stats

import numpyro_hgf as nh
from numpyro_hgf.infer.potential import model_potential

Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], np.float32)
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], np.float32)


def eight_schools(sigma, y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("J", sigma.shape[0]):
        eta = numpyro.sample("eta", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", mu + tau * eta)
        numpyro.sample("obs", dist.Normal(theta, sigma), obs=y)


def gaussian_model(y, noise=0.5):
    """x ~ N(0, I_2), y_i ~ N(x, noise^2 I_2): posterior N(sum y / (n + noise^2), ...)."""
    x = numpyro.sample("x", dist.Normal(jnp.zeros(2), 1.0).to_event(1))
    with numpyro.plate("n", y.shape[0]):
        numpyro.sample("y", dist.Normal(x, noise).to_event(1), obs=y)


Y_GAUSS = np.array([[0.8, -0.3], [1.1, 0.2], [0.6, -0.4], [1.3, 0.1]], np.float32)


def gaussian_posterior(y, noise=0.5):
    precision = 1.0 + y.shape[0] / noise**2
    return y.sum(0) / noise**2 / precision, 1.0 / precision


def mean_z(a, b, names):
    """z-scores of the posterior-mean differences of two InferenceData, by MCSE."""
    out = {}
    for name in names:
        ma, mb = float(a.posterior[name].mean()), float(b.posterior[name].mean())
        sa = float(az.mcse(a, var_names=[name])[name].values.mean())
        sb = float(az.mcse(b, var_names=[name])[name].values.mean())
        out[name] = (ma - mb) / np.hypot(sa, sb)
    return out


def eight_schools_runs():
    kw = dict(num_warmup=400, num_samples=1000, num_chains=4)
    ours = nh.infer.run_nuts(eight_schools, SIGMA, y=Y, key=jax.random.key(1), progress=False, **kw)
    mcmc = MCMC(NUTS(eight_schools), progress_bar=False, chain_method="vectorized", **kw)
    mcmc.run(jax.random.key(2), SIGMA, y=Y)
    shifted = nh.infer.run_nuts(
        eight_schools, SIGMA, y=Y + 15.0, key=jax.random.key(3), progress=False, **kw
    )
    return ours, az.from_numpyro(mcmc), shifted


@pytest.mark.slow
def test_eight_schools_agrees_with_numpyro_nuts():
    ours, peer, shifted = eight_schools_runs()
    z = mean_z(ours, peer, ["mu", "tau"])
    theta_ours = ours.posterior["theta"].values[..., 0]
    theta_peer = peer.posterior["theta"].values[..., 0]
    z["theta0"] = (theta_ours.mean() - theta_peer.mean()) / np.hypot(
        float(az.mcse(theta_ours, method="mean")), float(az.mcse(theta_peer, method="mean"))
    )
    assert all(abs(v) < 3.0 for v in z.values()), z
    assert stats.chi2.sf(sum(v**2 for v in z.values()), df=len(z)) > 0.01, z
    assert float(az.rhat(ours, var_names=["mu"])["mu"]) < 1.02
    # negative control: the same comparison on shifted data must fail
    zs = mean_z(shifted, peer, ["mu", "tau"])
    assert stats.chi2.sf(sum(v**2 for v in zs.values()), df=len(zs)) < 1e-3, zs
    # constrained values, deterministic site, observed data, sample stats
    post = ours.posterior
    assert set(post.data_vars) == {"mu", "tau", "eta", "theta"}
    assert post["tau"].shape == (4, 1000) and post["theta"].shape == (4, 1000, 8)
    assert float(post["tau"].min()) > 0.0
    np.testing.assert_allclose(
        post["theta"].values,
        post["mu"].values[..., None] + post["tau"].values[..., None] * post["eta"].values,
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_array_equal(ours.observed_data["obs"].values, Y)
    check_sample_stats(ours.sample_stats, (4, 1000))


def check_sample_stats(st, shape):
    for name in ("diverging", "acceptance_rate", "step_size", "tree_depth", "n_steps", "lp"):
        assert st[name].shape == shape, name
    assert st["diverging"].dtype == bool
    n, depth = st["n_steps"].values, st["tree_depth"].values
    assert np.all((n >= 1) & (n <= 2**depth - 1) & (n >= 2 ** (depth - 1)))
    assert 0.6 < float(st["acceptance_rate"].mean()) < 0.99  # target 0.8
    step = st["step_size"].values
    assert np.all(step > 0) and np.all(step == step[:, :1])  # fixed after warmup, per chain


def eight_schools_moments(y, sigma, mu_sd=5.0, tau_scale=5.0):
    """Posterior means of ``mu``, ``tau`` and ``theta_0`` of :func:`eight_schools` by
    quadrature over ``tau``: given ``tau`` the model is conjugate Gaussian
    (``y_j ~ N(mu, sigma_j^2 + tau^2)``, ``mu ~ N(0, mu_sd^2)``), so ``p(tau | y)`` and
    ``E[mu | tau, y]``, ``E[theta_j | tau, y]`` are closed forms; ``tau`` is integrated on a
    fine log grid (Gelman et al., BDA3, Sec. 5.4)."""
    u = np.linspace(np.log(1e-4), np.log(1e4), 100_001)
    tau = np.exp(u)
    v = sigma.astype(float) ** 2 + tau[:, None] ** 2
    precision = 1.0 / mu_sd**2 + (1.0 / v).sum(1)
    m = (y / v).sum(1) / precision
    log_marginal = (
        -0.5 * np.log(mu_sd**2 * precision)
        - 0.5 * np.log(2 * np.pi * v).sum(1)
        - 0.5 * ((y**2 / v).sum(1) - m**2 * precision)
    )
    log_w = log_marginal + stats.halfcauchy.logpdf(tau, scale=tau_scale) + u  # d tau = tau du
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    theta0 = (y[0] / sigma[0] ** 2 + m / tau**2) / (1 / sigma[0] ** 2 + 1 / tau**2)
    return {"mu": (w * m).sum(), "tau": (w * tau).sum(), "theta0": (w * theta0).sum()}


def closed_form_mean_z(idata, moments):
    post = idata.posterior
    values = {
        "mu": post["mu"].values,
        "tau": post["tau"].values,
        "theta0": post["theta"].values[..., 0],
    }
    return {
        k: (v.mean() - moments[k]) / float(az.mcse(v, method="mean")) for k, v in values.items()
    }


@pytest.mark.x64
def test_run_nuts_eight_schools_matches_quadrature_constrains_and_caches():
    """Default (fast) check of the eight-schools acceptance item: posterior means within
    MCSE of the quadrature values, ``tau > 0``, the deterministic ``theta`` present; new data
    of the same shapes reuses the compiled sampler; shifted data is a negative control."""
    kw = dict(num_warmup=300, num_samples=1000, num_chains=4, progress=False)
    a = nh.infer.run_nuts(eight_schools, SIGMA, y=Y, key=jax.random.key(1), **kw)
    from numpyro_hgf.infer import programs as bb

    mp, functions = bb._CACHE[next(reversed(bb._CACHE))]
    sizes = [f._cache_size() for f in functions]
    b = nh.infer.run_nuts(eight_schools, SIGMA, y=Y, key=jax.random.key(1), **kw)
    shifted = nh.infer.run_nuts(eight_schools, SIGMA, y=Y + 15.0, key=jax.random.key(3), **kw)
    assert [f._cache_size() for f in functions] == sizes  # new data, no recompilation
    assert bb._CACHE[next(reversed(bb._CACHE))][0] is mp  # nor a new trace of the model
    np.testing.assert_array_equal(shifted.observed_data["obs"].values, Y + 15.0)
    np.testing.assert_array_equal(a.posterior["mu"].values, b.posterior["mu"].values)

    moments = eight_schools_moments(Y, SIGMA)
    np.testing.assert_allclose(  # the quadrature reproduces the published values
        [moments["mu"], moments["tau"]], [4.4, 3.6], atol=0.05
    )
    z = closed_form_mean_z(a, moments)
    assert all(abs(v) < 3.0 for v in z.values()), z
    assert stats.chi2.sf(sum(v**2 for v in z.values()), df=len(z)) > 0.01, z
    # the shifted-data run matches its own quadrature and fails against the original one
    zs = closed_form_mean_z(shifted, eight_schools_moments(Y + 15.0, SIGMA))
    assert stats.chi2.sf(sum(v**2 for v in zs.values()), df=len(zs)) > 0.01, zs
    zs = closed_form_mean_z(shifted, moments)
    assert stats.chi2.sf(sum(v**2 for v in zs.values()), df=len(zs)) < 1e-3, zs

    post = a.posterior
    assert set(post.data_vars) == {"mu", "tau", "eta", "theta"}
    assert post["tau"].shape == (4, 1000) and post["theta"].shape == (4, 1000, 8)
    assert float(post["tau"].min()) > 0.0  # HalfCauchy support through the bijection
    np.testing.assert_allclose(
        post["theta"].values,
        post["mu"].values[..., None] + post["tau"].values[..., None] * post["eta"].values,
        rtol=1e-5,
        atol=1e-4,
    )
    np.testing.assert_array_equal(a.observed_data["obs"].values, Y)
    check_sample_stats(a.sample_stats, (4, 1000))
    # laid out exactly as arviz.from_dict lays out the same arrays (dims, coords, dtypes)
    ref = az.from_dict(
        **{g: {k: v.values for k, v in getattr(a, g).items()} for g in a.groups()},
        save_warmup=True,
    )
    assert a.groups() == ref.groups()
    assert {k: a.posterior.attrs[k] for k in ("arviz_version", "inference_library")} == {
        "arviz_version": az.__version__,
        "inference_library": "blackjax",
    }
    for group in a.groups():
        ours, theirs = getattr(a, group), getattr(ref, group)
        assert {k: (v.dims, v.dtype) for k, v in ours.items()} == {
            k: (v.dims, v.dtype) for k, v in theirs.items()
        }
        assert {c: ours[c].values.tolist() for c in ours.coords} == {
            c: theirs[c].values.tolist() for c in theirs.coords
        }
    assert a.attrs["sampler"] == "nuts"
    steps = a.attrs["warmup_n_steps"]  # warmup gradients: 1 to 2^10 - 1 per step and chain
    assert 300 * 4 <= steps <= 1023 * 300 * 4 and steps != a.sample_stats["n_steps"].sum()
    warm = a.warmup_sample_stats["n_steps"].values  # per warmup transition and chain
    assert warm.shape == (4, 300) and warm.sum() == steps and warm.min() >= 1

    # no warmup: the documented unit step size, no warmup gradients (compiled code reused)
    cold = nh.infer.run_nuts(
        eight_schools, SIGMA, y=Y, key=jax.random.key(2), **kw | {"num_warmup": 0}
    )
    assert cold.attrs["warmup_n_steps"] == 0 and "warmup_sample_stats" not in cold.groups()
    np.testing.assert_array_equal(cold.sample_stats["step_size"].values, 1.0)

    # bad input, here because it reuses the compiled init: a NaN observation makes the
    # potential non-finite at every initial point, and the error names the site
    bad_y = Y.copy()
    bad_y[2] = np.nan
    with pytest.raises(ValueError, match="observed site 'obs'"):
        nh.infer.run_nuts(eight_schools, SIGMA, y=bad_y, key=jax.random.key(1), **kw)


def gaussian_runs():
    # short trajectories (3 steps): fixed-length HMC near a half period is antithetic and
    # its ESS (hence MCSE) is unreliable on Gaussians
    kw = dict(num_warmup=500, num_samples=2000, num_chains=4, num_integration_steps=3)
    kw["progress"] = False
    mean, var = gaussian_posterior(Y_GAUSS)
    wrong_force = {"x": lambda x: -0.6 * x + 0.5}  # the prior's score is -x
    hmc = nh.infer.run_hmc(gaussian_model, Y_GAUSS, key=jax.random.key(4), **kw)
    forced = nh.infer.run_hmc(
        gaussian_model, Y_GAUSS, key=jax.random.key(5), forces=wrong_force, **kw
    )
    unadjusted = nh.infer.run_hmc(
        gaussian_model,
        Y_GAUSS,
        key=jax.random.key(5),
        forces=wrong_force,
        adjusted=False,
        step_size=0.3,
        **kw,
    )
    return (mean, var), hmc, forced, unadjusted


def mcse(values):
    """ArviZ's MCSE of the mean, floored at the i.i.d. value ``sd / sqrt(N)``.

    Fixed-length HMC on a Gaussian is antithetic (ESS > N); its autocorrelation-based ESS
    is then noisy and can overstate precision, so the floor keeps the z-scores honest.
    """
    return max(float(az.mcse(values, method="mean")), float(values.std() / np.sqrt(values.size)))


def closed_form_z(idata, mean, var):
    x = idata.posterior["x"].values
    z = []
    for i in range(2):
        z.append((x[..., i].mean() - mean[i]) / mcse(x[..., i]))
        d2 = (x[..., i] - mean[i]) ** 2
        z.append((d2.mean() - var) / mcse(d2))
    return np.array(z)


@pytest.mark.slow
def test_run_hmc_and_learned_force_runs_match_the_closed_form():
    (mean, var), hmc, forced, unadjusted = gaussian_runs()
    z = closed_form_z(hmc, mean, var)
    assert np.all(np.abs(z) < 3.0), z
    assert stats.chi2.sf(np.sum(z**2), df=z.size) > 0.01
    assert "tree_depth" not in hmc.sample_stats and hmc.attrs["sampler"] == "hmc"
    assert np.all(hmc.sample_stats["n_steps"].values == 3)

    # the learned (wrong) force for the prior site with the Metropolis step stays exact
    z = closed_form_z(forced, mean, var)
    assert stats.chi2.sf(np.sum(z**2), df=z.size) > 0.01, z
    assert forced.sample_stats["is_adjusted"].values.all() and forced.attrs["adjusted"] == 1
    # the same wrong force without the Metropolis step is biased, and flagged
    zu = closed_form_z(unadjusted, mean, var)
    assert stats.chi2.sf(np.sum(zu**2), df=zu.size) < 1e-3, zu
    assert not unadjusted.sample_stats["is_adjusted"].values.any()
    assert unadjusted.attrs["adjusted"] == 0 and unadjusted.attrs["force_sites"] == "x"


def test_data_of_another_shape_gets_its_own_trace_and_sampler():
    """The cache is keyed on the shapes of the data too: a second data set with more rows
    (a larger plate) is sampled from its own posterior, not through the first one's trace."""
    kw = dict(num_warmup=200, num_samples=500, num_chains=2, progress=False)
    y7 = np.concatenate([Y_GAUSS, Y_GAUSS[:3] + 1.0])
    small = nh.infer.run_nuts(gaussian_model, Y_GAUSS, key=jax.random.key(6), **kw)
    large = nh.infer.run_nuts(gaussian_model, y7, key=jax.random.key(6), **kw)
    assert large.observed_data["y"].shape == (7, 2) and small.observed_data["y"].shape == (4, 2)
    for idata, y in ((small, Y_GAUSS), (large, y7)):
        z = closed_form_z(idata, *gaussian_posterior(y))
        assert stats.chi2.sf(np.sum(z**2), df=z.size) > 0.01, z
    z = closed_form_z(large, *gaussian_posterior(Y_GAUSS))  # negative control
    assert stats.chi2.sf(np.sum(z**2), df=z.size) < 1e-3, z


def test_learned_site_uses_the_force_and_other_sites_use_autodiff():
    """-grad U_F = F(x) dx/dz + (autodiff of the rest), written out for a positive site."""

    def model(y):
        s = numpyro.sample("s", dist.LogNormal(0.0, 1.0))  # learned prior, x = exp(z)
        m = numpyro.sample("m", dist.Normal(0.0, 2.0))
        numpyro.sample("y", dist.Normal(m * s, 1.0), obs=y)

    force = lambda s: 3.0 - s**2  # noqa: E731  (any position-only field)
    y = jnp.array(0.7)
    mp = model_potential(model, (y,), {}, jax.random.key(0), forces={"s": force})
    z = {"s": jnp.array(0.3), "m": jnp.array(-0.4)}
    s = jnp.exp(z["s"])

    def rest(zs, m):  # log-likelihood + log|dx/dz| + prior of m, autodiff by hand-checked jax
        sv = jnp.exp(zs)
        return dist.Normal(m * sv, 1.0).log_prob(y) + zs + dist.Normal(0.0, 2.0).log_prob(m)

    @jax.jit  # one compiled program instead of op-by-op dispatch
    def both(z):
        got = jax.grad(mp.force_potential({"s": force}))(z, (y,), {})
        return got, jax.grad(rest, argnums=(0, 1))(z["s"], z["m"])

    got, (gs, gm) = both(z)
    np.testing.assert_allclose(-got["s"], force(s) * s + gs, rtol=1e-5)
    np.testing.assert_allclose(-got["m"], gm, rtol=1e-5)


def test_bad_input():
    def discrete(y):
        k = numpyro.sample("k", dist.Bernoulli(0.3))
        numpyro.sample("y", dist.Normal(k, 1.0), obs=y)

    with pytest.raises(ValueError, match="site 'k' is a discrete latent"):
        nh.infer.run_nuts(discrete, 1.0, progress=False)

    for name in ("num_chains", "num_samples"):
        with pytest.raises(ValueError, match=name):
            nh.infer.run_nuts(gaussian_model, Y_GAUSS, **{name: 0})
    with pytest.raises(ValueError, match="forces"):
        nh.infer.run_hmc(gaussian_model, Y_GAUSS, forces={"z": lambda x: x})
    with pytest.raises(ValueError, match="step_size"):
        nh.infer.run_hmc(gaussian_model, Y_GAUSS, forces={"x": lambda x: -x}, adjusted=False)
