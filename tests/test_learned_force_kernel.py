"""LearnedForceHMC as a NumPyro MCMCKernel: numpyro.infer.MCMC runs it, the posterior of a
conjugate Gaussian model matches its closed form even with a wrong learned force, and the
adjusted flag reaches arviz's sample_stats."""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import MCMC
from scipy import stats

import numpyro_hgf as nh

Y = np.array([[0.8, -0.3], [1.1, 0.2], [0.6, -0.4], [1.3, 0.1]], np.float32)
NOISE = 0.5


def model(y):
    x = numpyro.sample("x", dist.Normal(jnp.zeros(2), 1.0).to_event(1))
    numpyro.deterministic("x_sum", x.sum())
    with numpyro.plate("n", y.shape[0]):
        numpyro.sample("y", dist.Normal(x, NOISE).to_event(1), obs=y)


def wrong_force(x):
    return -0.6 * x + 0.5  # the prior's score is -x


def run_mcmc():
    kernel = nh.infer.LearnedForceHMC(model, {"x": wrong_force}, num_integration_steps=3)
    mcmc = MCMC(
        kernel,
        num_warmup=500,
        num_samples=2000,
        num_chains=4,
        progress_bar=False,
        chain_method="vectorized",
    )
    mcmc.run(jax.random.key(0), Y, extra_fields=("accept_prob",))
    return mcmc


def test_mcmc_runs_matches_the_closed_form_and_flags_reach_arviz():
    mcmc = run_mcmc()
    precision = 1.0 + Y.shape[0] / NOISE**2
    mean, var = Y.sum(0) / NOISE**2 / precision, 1.0 / precision
    x = np.asarray(mcmc.get_samples(group_by_chain=True)["x"])
    assert x.shape == (4, 2000, 2)
    z = []
    for i in range(2):
        for values, truth in ((x[..., i], mean[i]), ((x[..., i] - mean[i]) ** 2, var)):
            se = max(float(az.mcse(values, method="mean")), values.std() / np.sqrt(values.size))
            z.append((values.mean() - truth) / se)
    assert stats.chi2.sf(np.sum(np.square(z)), df=len(z)) > 0.01, z
    samples = mcmc.get_samples()
    np.testing.assert_allclose(samples["x_sum"], samples["x"].sum(-1), rtol=1e-5, atol=1e-6)

    idata = az.from_numpyro(mcmc)
    st = idata.sample_stats
    assert bool(st["is_adjusted"].values.all())
    assert 0.5 < float(mcmc.get_extra_fields()["accept_prob"].mean()) < 1.0
    assert not bool(st["diverging"].values.any())


def test_bad_input():
    with pytest.raises(TypeError, match="forces"):
        nh.infer.LearnedForceHMC(model, {})
    with pytest.raises(ValueError, match="step_size"):
        nh.infer.LearnedForceHMC(model, {"x": wrong_force}, step_size=0.0)
    kernel = nh.infer.LearnedForceHMC(model, {"q": wrong_force})
    with pytest.raises(ValueError, match="forces"):
        MCMC(kernel, num_warmup=1, num_samples=1, progress_bar=False).run(jax.random.key(0), Y)
