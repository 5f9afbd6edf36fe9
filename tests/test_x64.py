"""Float64 (``jax_enable_x64``), the usual setting for MCMC in NumPyro: the trainer core and the
BlackJAX bridge run under it and give the float32 answers.

Before the fix every trainer failed under x64 (``scan`` carry int32 vs int64 in the dispatch)
and ``run_nuts`` failed in the warmup (``cond`` branches of different integer dtypes).  The
per-trainer x64 runs are the ``x64`` leg of ``make test`` (tests marked ``x64`` run again with
``--x64``); this module switches precision inside one test with ``jax.enable_x64``.
"""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_run_nuts import SIGMA, Y, closed_form_mean_z, eight_schools, eight_schools_moments

import numpyro_hgf as nh
from numpyro_hgf.train import Trainer


def _quadratic(params, batch, key):
    return jnp.mean((batch - params["w"]) ** 2)


def test_trainer_fit_under_x64_matches_float32():
    data = np.full((16, 1), 2.0)  # equal rows: every minibatch (drawn with replacement) alike

    def run():
        trainer = Trainer(_quadratic, optax.sgd(0.1), batch_size=16, progress=False)
        return trainer.fit({"w": jnp.zeros(1)}, jnp.asarray(data), 30, jax.random.key(0))

    single = run()
    with jax.enable_x64(True):
        double = run()
        assert double.params["w"].dtype == jnp.float64
        assert double.state.step.dtype == jnp.int32
    assert single.params["w"].dtype == jnp.float32
    # sgd on a quadratic: w_k = 2 (1 - 0.8^k), the same in both precisions
    closed = 2.0 * (1 - 0.8**30)
    np.testing.assert_allclose(double.params["w"], closed, rtol=1e-12)
    np.testing.assert_allclose(single.params["w"], closed, rtol=1e-5)


@pytest.mark.slow  # two run_nuts compilations; the x64 leg runs test_run_nuts under x64
def test_run_nuts_eight_schools_under_x64_matches_float32_and_quadrature():
    # 4 x 1000 draws as the default eight-schools test: with 2 x 600 the MCSE of the
    # heavy-tailed tau is itself too noisy for a 4-sigma check (|z| 4.5 seen on one run)
    kw = dict(num_warmup=300, num_samples=1000, num_chains=4, progress=False)
    single = nh.infer.run_nuts(eight_schools, SIGMA, y=Y, key=jax.random.key(4), **kw)
    with jax.enable_x64(True):
        double = nh.infer.run_nuts(
            eight_schools, SIGMA.astype(np.float64), y=Y.astype(np.float64),
            key=jax.random.key(4), **kw,
        )  # fmt: skip
    assert double.posterior["mu"].dtype == np.float64
    assert single.posterior["mu"].dtype == np.float32
    moments = eight_schools_moments(Y, SIGMA)
    for idata in (single, double):
        z = closed_form_mean_z(idata, moments)
        assert max(abs(v) for v in z.values()) < 4.0, z
    for name in ("mu", "tau"):  # the two precisions agree within their Monte Carlo errors
        a, b = single.posterior[name].values, double.posterior[name].values
        se = np.hypot(float(az.mcse(a, method="mean")), float(az.mcse(b, method="mean")))
        assert abs(a.mean() - b.mean()) < 4 * se, (name, a.mean(), b.mean(), se)


def test_run_hmc_under_x64():
    import numpyro
    import numpyro.distributions as dist

    def model():
        numpyro.sample("x", dist.Normal(jnp.array([1.0, -2.0]), 0.5).to_event(1))

    with jax.enable_x64(True):
        idata = nh.infer.run_hmc(
            model, key=jax.random.key(0), num_warmup=200, num_samples=400, num_chains=2,
            progress=False,
        )  # fmt: skip
    x = idata.posterior["x"].values.reshape(-1, 2)
    assert x.dtype == np.float64
    se = 0.5 / np.sqrt(float(az.ess(idata, var_names=["x"])["x"].values.min()))
    np.testing.assert_allclose(x.mean(0), [1.0, -2.0], atol=5 * se)


@pytest.mark.parametrize("leg", ["float32", "float64"])
def test_dispatch_carry_dtypes_are_stable(leg):
    """The compiled dispatch has the same carry dtypes in both precisions (negative control:
    the old int64 step index of ``jnp.arange`` under x64 is a different dtype)."""
    with jax.enable_x64(leg == "float64"):
        trainer = Trainer(_quadratic, 0.1, batch_size=4, steps_per_dispatch=3, progress=False)
        state = trainer.init({"w": jnp.zeros(1)}, jax.random.key(0))
        out = jax.eval_shape(trainer._dispatch, state, jnp.zeros((4, 1)), jnp.asarray(3))
        assert out[2].dtype == jnp.int32 and out[0].step.dtype == jnp.int32
        assert jnp.arange(3).dtype == (jnp.int64 if leg == "float64" else jnp.int32)
