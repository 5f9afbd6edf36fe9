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

import warnings

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


# -- non-finite values and validate_args ---------------------------------------------------
@pytest.mark.parametrize("kind, solver", [("cnf", "tsit5"), ("hgf", FIXED), ("diffusion", FIXED)])
def test_non_finite_values_give_nan_and_minus_inf_and_never_raise(kind, solver):
    """With the default adaptive solver a solve through ``inf`` used to exhaust
    ``max_steps`` and raise from inside the jitted ``log_prob`` (NUTS crashed instead of
    counting a divergence)."""
    prior = make(kind, validate_args=False, solver=solver)
    values = jnp.array([[jnp.inf, 0.0], [jnp.nan, 0.0], [0.3, -0.2], [-jnp.inf, jnp.nan]])
    lp = np.asarray(jax.jit(lambda d, v: d.log_prob(v))(prior, values))
    assert lp[0] == -np.inf and np.isnan(lp[1]) and np.isfinite(lp[2]) and np.isnan(lp[3])
    # the finite point is unaffected by its non-finite neighbours
    np.testing.assert_allclose(lp[2], prior.log_prob(values[2]), rtol=1e-5)
    # the gradient at the finite point stays finite (no NaN cotangent leaks through)
    grad = jax.grad(lambda v: jnp.sum(jnp.where(jnp.isfinite(lp), prior.log_prob(v), 0.0)))
    assert np.all(np.isfinite(np.asarray(grad(values))[2]))


@pytest.mark.parametrize("kind", KINDS)
def test_validate_args_warns_on_non_finite_values(kind):
    prior = make(kind, validate_args=True, solver=FIXED)
    cases = [(jnp.array([jnp.inf, 0.0]), np.isneginf), (jnp.array([jnp.nan, 0.0]), np.isnan)]
    for value, check in cases:
        with pytest.warns(UserWarning, match="Out-of-support"):
            assert check(float(prior.log_prob(value)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(float(prior.log_prob(jnp.array([0.3, -0.2]))))
    # validate_args=False is silent
    quiet = make(kind, validate_args=False, solver=FIXED)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isneginf(float(quiet.log_prob(jnp.array([jnp.inf, 0.0]))))


# -- float64 -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_float64_sample_and_log_prob(kind):
    x = np.array([[0.3, -0.2], [1.0, 0.5], [-0.4, 0.8]])
    lp32 = make(kind, solver=FIXED).log_prob(jnp.asarray(x, jnp.float32))
    with jax.enable_x64(True):
        prior = make(kind, solver=FIXED)
        lp64 = prior.log_prob(jnp.asarray(x))
        draws = prior.sample(jax.random.key(0), (3,))
        assert lp64.dtype == jnp.float64 and draws.dtype == jnp.float64
        assert np.all(np.isfinite(np.asarray(draws)))
        if kind == "hgf":
            grad = jax.grad(lambda v: prior.log_prob(v).sum())(jnp.asarray(x))
            assert grad.dtype == jnp.float64 and np.all(np.isfinite(np.asarray(grad)))
    assert lp32.dtype == jnp.float32
    np.testing.assert_allclose(lp64, lp32, rtol=2e-5, atol=2e-5)
