"""AutoFlowGuide on a conjugate Normal-Normal model with an analytic posterior."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from numpyro.infer import SVI, Trace_ELBO

from numpyro_hgf.guides import AutoFlowGuide

PRIOR_SCALE, NOISE = 2.0, 1.0
Y = jnp.array([[1.2, -0.4], [0.7, 0.1], [1.9, -1.0], [1.1, -0.3], [0.4, 0.2]])


def model(y):
    mu = numpyro.sample("mu", dist.Normal(jnp.zeros(2), PRIOR_SCALE).to_event(1))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", dist.Normal(mu, NOISE).to_event(1), obs=y)


def analytic_posterior(y):
    precision = 1 / PRIOR_SCALE**2 + y.shape[0] / NOISE**2
    mean = (y.sum(0) / NOISE**2) / precision
    return np.asarray(mean), np.full(2, precision**-0.5)


@pytest.mark.parametrize("kind", ["maf", "spline"])
def test_auto_flow_guide_recovers_conjugate_posterior(kind):
    guide = AutoFlowGuide(model, flow=kind, num_layers=2, hidden=(16,))
    svi = SVI(model, guide, optax.adam(optax.cosine_decay_schedule(0.02, 2000)), Trace_ELBO(8))
    result = svi.run(jax.random.key(0), 2000, Y, progress_bar=False)
    assert np.all(np.isfinite(result.losses))
    # flow params were registered through flax_module and moved
    flow_sites = [k for k in result.params if k.startswith("auto_flow")]
    assert flow_sites and all(k.endswith("$params") for k in flow_sites)
    draws = guide.sample_posterior(jax.random.key(1), result.params, sample_shape=(20_000,))
    mean, std = analytic_posterior(Y)
    np.testing.assert_allclose(draws["mu"].mean(0), mean, atol=0.05)
    np.testing.assert_allclose(draws["mu"].std(0), std, rtol=0.2)


def test_auto_flow_guide_rejects_bad_options():
    with pytest.raises(ValueError, match="flow: expected one of"):
        AutoFlowGuide(model, flow="glow")
    with pytest.raises(ValueError, match="hidden: expected a sequence of positive integers"):
        AutoFlowGuide(model, hidden=(0,))
