"""Learned bijective priors as NumPyro ``TransformedDistribution``s, sampled in their base.

* ``prior.as_transformed()`` is ``TransformedDistribution(base, ODEMapTransform(prior))``;
  its ``log_prob`` (inverse solve + exact-trace log-Jacobian) reproduces ``prior.log_prob``
  with the exact trace, the transform inverts itself, and its log-Jacobian is the log
  determinant of the autodiff Jacobian of the forward solve.
* ``TransformReparam`` (NumPyro's, unchanged) works on it: ``x_base`` is the latent,
  ``x`` a deterministic site; ``nh.infer.base_space(model)`` does this for every learned
  prior site of a model.
* ``run_nuts`` samples these priors in their base by default and returns ``x``; the
  posterior matches x-space NUTS with the exact trace (slow test; a wrong prior fails).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro import handlers
from numpyro.infer.reparam import TransformReparam

import numpyro_hgf as nh
from numpyro_hgf.distributions import ContinuousFlow, DiffusionPrior, HGFPrior
from numpyro_hgf.flows.ode_map import ODEMapTransform
from numpyro_hgf.nn import TimeMLP
from numpyro_hgf.paths import VPSDE, FlowMatchingPath
from numpyro_hgf.samplers.ode import ODESolver

SOLVER = ODESolver("rk4", nfe=16)
SIGMA = 0.5
Y_OBS = jnp.array([0.8, -0.3])


def make(kind, seed=0, scale=1.0, shift=0.0, **kwargs):
    net = TimeMLP(hidden=(8,), out_dim=2, embed_dim=4, time_scale=1.0)
    params = net.init(jax.random.key(seed), jnp.zeros((1, 2)), jnp.zeros(()))["params"]
    params = jax.tree.map(lambda p: scale * p, params)
    kwargs = {"solver": SOLVER, "trace": "exact", **kwargs}
    base = dist.Normal(jnp.full(2, shift), 1.0).to_event(1)  # every kind's own base at 0
    if kind == "cnf":
        return ContinuousFlow(net, params, base, **kwargs)
    if kind == "hgf":
        return HGFPrior(net, params, FlowMatchingPath(), base=base, **kwargs)
    # the VP drift -beta(t) x / 2 (beta up to 20) needs short steps, and a small random
    # score net keeps the map tame
    kwargs["solver"] = ODESolver("rk4", nfe=64)
    base = base if shift else None
    return DiffusionPrior(net, params, VPSDE(), eps=1e-2, base=base, **kwargs)


KINDS = ("cnf", "hgf", "diffusion")
SCALES = {"cnf": 1.0, "hgf": 1.0, "diffusion": 0.05}


@pytest.mark.parametrize("kind", ("hgf", "diffusion"))  # a ContinuousFlow is an HGF's class
def test_the_transformed_distribution_is_the_prior(kind):
    prior = make(kind, scale=SCALES[kind])
    td = prior.as_transformed()
    assert isinstance(td, dist.TransformedDistribution)
    assert isinstance(prior.transform, ODEMapTransform)
    x = jnp.array([[0.3, -0.2], [1.0, 0.5], [-0.7, 0.9]])
    np.testing.assert_allclose(td.log_prob(x), prior.log_prob(x), rtol=1e-5, atol=1e-5)
    t = prior.transform
    z = t.inv(x)
    tol = 2e-2 if kind == "diffusion" else 2e-3  # the VP map expands (discretisation)
    np.testing.assert_allclose(t(z), x, rtol=tol / 4, atol=2e-4)
    jac = jax.vmap(jax.jacrev(lambda v: t(v[None])[0]))(z)
    logdet = np.linalg.slogdet(np.asarray(jac, np.float64))[1]
    np.testing.assert_allclose(t.log_abs_det_jacobian(z, x), logdet, atol=tol)


@pytest.mark.parametrize("kind", KINDS)
def test_transform_reparam_samples_the_base(kind):
    prior = make(kind, scale=SCALES[kind])

    def model(y):
        x = numpyro.sample("x", prior)
        numpyro.sample("y", dist.Normal(x, SIGMA).to_event(1), obs=y)

    def model_td(y):
        x = numpyro.sample("x", prior.as_transformed())
        numpyro.sample("y", dist.Normal(x, SIGMA).to_event(1), obs=y)

    ours = nh.infer.base_space(model)
    for reparam in (handlers.reparam(model_td, {"x": TransformReparam()}), ours):
        tr = handlers.trace(handlers.seed(reparam, 0)).get_trace(Y_OBS)
        assert tr["x_base"]["type"] == "sample" and tr["x"]["type"] == "deterministic"
        z = jnp.array([0.4, -1.2])
        lp = numpyro.infer.util.log_density(reparam, (Y_OBS,), {}, {"x_base": z})[0]
        x = prior.transform(z)
        expected = prior.base.log_prob(z) + dist.Normal(x, SIGMA).to_event(1).log_prob(Y_OBS)
        np.testing.assert_allclose(lp, expected, rtol=1e-5)
    assert ours.config.sites == {"x"}


def conditioning(prior):
    def model(y):
        x = numpyro.sample("x", prior)
        numpyro.sample("y", dist.Normal(x, SIGMA).to_event(1), obs=y)

    return model


def posterior(prior, base_space, key=0, y=Y_OBS):
    idata = nh.infer.run_nuts(
        conditioning(prior), y, num_warmup=300, num_samples=1000, num_chains=2,
        key=jax.random.key(key), progress=False, base_space=base_space, return_base=True,
    )  # fmt: skip
    return idata


def moments(idata):
    import arviz as az

    x = np.asarray(idata.posterior["x"]).reshape(-1, 2)
    ess = np.asarray(az.ess(idata, var_names=["x"])["x"])
    sd = x.std(0)
    return x.mean(0), sd, sd / np.sqrt(ess)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_base_space_nuts_matches_x_space_nuts(kind):
    """Same model, the prior sampled in its base (default) and in x space (exact trace):
    means within 4 combined MC standard errors, sds within 10%; a wrong prior (its base
    shifted by 1.5; for the diffusion prior, shifted data) is outside them (negative
    control). Minutes per prior on a contended
    CPU."""
    prior = make(kind, scale=SCALES[kind])
    base = posterior(prior, True)
    assert "x_base" in base.posterior and base.posterior["x"].shape[-1] == 2
    x_space = posterior(prior, False, key=1)
    if kind == "diffusion":
        # the VP flow expands its base by exp(int beta / 2) ~ 150: a shifted base barely
        # moves this likelihood-dominated posterior, so the control shifts the data instead
        wrong = posterior(prior, True, key=2, y=Y_OBS + 1.0)
    else:
        wrong = posterior(make(kind, scale=SCALES[kind], shift=1.5), True, key=2)
    (m0, s0, e0), (m1, s1, e1), (m2, s2, e2) = map(moments, (base, x_space, wrong))
    print(f"{kind}: base mean {m0} sd {s0}; x-space mean {m1} sd {s1}; wrong mean {m2}")
    z = np.abs(m0 - m1) / np.hypot(e0, e1)
    assert np.all(z < 4.0), z
    np.testing.assert_allclose(s0, s1, rtol=0.1)
    z_wrong = np.abs(m2 - m1) / np.hypot(e2, e1)
    assert np.any(z_wrong > 4.0), z_wrong


def test_x_space_sampling_of_a_hutchinson_prior_warns():
    """The check ``run_nuts`` makes on its traced model, before compiling anything."""
    from numpyro_hgf.infer.blackjax_bridge import _warn_hutchinson
    from numpyro_hgf.infer.potential import model_potential

    hutch = make("hgf", solver=ODESolver("euler", nfe=2), trace="hutchinson")
    key = jax.random.key(0)
    mp = model_potential(conditioning(hutch), (Y_OBS,), {}, key)
    with pytest.warns(UserWarning, match="Hutchinson trace.*biased"):
        _warn_hutchinson(mp)
    mp = model_potential(nh.infer.base_space(conditioning(hutch)), (Y_OBS,), {}, key)
    with warnings.catch_warnings():  # base space: no trace estimator, no warning
        warnings.simplefilter("error")
        _warn_hutchinson(mp)
    exact = model_potential(conditioning(make("hgf", solver=ODESolver("euler", nfe=2))),
                            (Y_OBS,), {}, key)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_hutchinson(exact)


@pytest.mark.slow
def test_run_nuts_in_base_space_returns_x_and_warns_on_hutchinson_in_x_space():
    """~90 s on a contended CPU (three NUTS compilations around an ODE)."""
    prior = make("hgf", solver=ODESolver("euler", nfe=2))
    model = conditioning(prior)
    kw = dict(num_warmup=20, num_samples=20, num_chains=1, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nh.infer.SamplingWarning)
        idata = nh.infer.run_nuts(model, Y_OBS, **kw)
    assert set(idata.posterior.data_vars) == {"x"}
    hutch = make("hgf", solver=ODESolver("euler", nfe=2), trace="hutchinson")
    with pytest.warns(UserWarning, match="Hutchinson trace.*biased"):
        nh.infer.run_nuts(
            conditioning(hutch), Y_OBS, base_space=False, diagnostics_warn=False, **kw
        )
    with warnings.catch_warnings():  # base space: no trace estimator, no warning
        warnings.simplefilter("error")
        nh.infer.run_nuts(conditioning(hutch), Y_OBS, diagnostics_warn=False, **kw)
