"""Values of the ODE priors (``ContinuousFlow``, ``HGFPrior``, ``DiffusionPrior``).

* A point's ``log_prob`` is the same alone and at any position of any batch, for every trace
  option (the Hutchinson probes were drawn per batch element: the same point scored
  -28.50 in a batch of 3 and -28.15 alone).
* Non-finite values: ``nan`` in, ``nan`` out; ``inf`` in, ``-inf`` out; never an error (the
  adaptive solver used to raise "maximum number of solver steps" from inside the jitted
  potential); a warning under ``validate_args``; finite gradients.
* float64: inside ``jax.enable_x64(True)`` samples and log-densities are float64 and match
  the float32 values.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from numpyro_hgf.distributions import ContinuousFlow, DiffusionPrior, HGFPrior
from numpyro_hgf.nn import TimeMLP
from numpyro_hgf.paths import VPSDE, FlowMatchingPath
from numpyro_hgf.samplers.ode import ODESolver, ode_log_prob

FIXED = ODESolver("rk4", nfe=8)


def tiny_net(dim=2, seed=0):
    net = TimeMLP(hidden=(8,), out_dim=dim, embed_dim=4, time_scale=1.0)
    params = net.init(jax.random.key(seed), jnp.zeros((1, dim)), jnp.zeros(()))["params"]
    return net, params


def make(kind, dim=2, **kwargs):
    net, params = tiny_net(dim)
    if kind == "cnf":
        base = dist.Normal(jnp.zeros(dim), 1.0).to_event(1)
        return ContinuousFlow(net, params, base, **kwargs)
    if kind == "hgf":
        return HGFPrior(net, params, FlowMatchingPath(), **kwargs)
    return DiffusionPrior(net, params, VPSDE(), eps=1e-3, **kwargs)


KINDS = ("cnf", "hgf", "diffusion")


# -- a point's value does not depend on its batch ------------------------------------------
@pytest.mark.parametrize(
    "kind, trace, num_probes",
    [
        ("cnf", "hutchinson", 1),
        ("hgf", "hutchinson", 1),
        ("diffusion", "hutchinson", 1),
        ("hgf", "hutchinson", 3),
        ("diffusion", "exact", 1),
    ],
)
def test_log_prob_of_a_point_is_the_same_alone_and_in_any_batch(kind, trace, num_probes):
    prior = make(kind, trace=trace, num_probes=num_probes, solver=FIXED)
    a, b = jax.random.normal(jax.random.key(1), (2, 2))
    point = jnp.array([0.7, -1.1])
    alone = float(prior.log_prob(point[None])[0])
    first = prior.log_prob(jnp.stack([point, a, b]))
    last = prior.log_prob(jnp.stack([b, a, point]))
    print(f"{kind} {trace} k={num_probes}: alone {alone:.5f}, first {first[0]:.5f}, "
          f"last {last[2]:.5f}")  # fmt: skip
    tol = 2e-5 * max(1.0, abs(alone))
    assert abs(float(first[0]) - alone) < tol and abs(float(last[2]) - alone) < tol
    # the others are the same numbers in either order too
    np.testing.assert_allclose(first[1:], last[1::-1], rtol=2e-5, atol=2e-5)


def test_hutchinson_still_depends_on_the_probe_key_and_is_unbiased():
    """The shared probes are still random draws: over keys, the estimate of each point
    averages to the exact value (fixed-step solver: the positions do not depend on the trace)."""
    net, params = tiny_net(3)
    field = lambda x, t: net.apply({"params": params}, x, t)
    base = dist.Normal(jnp.zeros(3), 1.0).to_event(1)
    y = jax.random.normal(jax.random.key(2), (4, 3))
    exact = ode_log_prob(field, y, 0.0, 1.0, base.log_prob, FIXED).value
    for probe in ("rademacher", "gaussian"):
        keys = jax.random.split(jax.random.key(3), 256)
        est = jax.jit(
            jax.vmap(
                lambda k, probe=probe: ode_log_prob(
                    field, y, 0.0, 1.0, base.log_prob, FIXED,
                    trace="hutchinson", key=k, probe=probe,
                ).value
            )
        )(keys)  # fmt: skip
        se = est.std(0, ddof=1) / np.sqrt(len(keys))
        assert float(jnp.min(est.std(0))) > 1e-4  # genuinely random
        assert np.all(np.abs((est.mean(0) - exact) / se) < 3.5)
