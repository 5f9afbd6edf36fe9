"""Amortized guides on a linear Gaussian model with an analytic posterior.

Model: ``z_n ~ N(0, I_2)``, ``x_n = W z_n + eps``, ``eps ~ N(0, s^2 I_4)`` with ``W`` known.
Exact posterior: ``N(P^{-1} W^T x / s^2, P^{-1})``, ``P = I + W^T W / s^2``.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from numpyro.infer import SVI, Predictive, Trace_ELBO

import numpyro_hgf as nh
from numpyro_hgf.guides import AmortizedFlowGuide, AmortizedNormalGuide

NOISE = 0.5
N = 256
# orthogonal columns: the exact posterior covariance is diagonal (mean field is exact)
W_ORTH = jnp.array([[1.0, 0.5], [1.0, -0.5], [1.0, 0.5], [1.0, -0.5]])
# correlated columns: the posterior has correlation ~ -0.8 (mean field cannot match it)
W_CORR = jnp.array([[1.0, 0.9], [1.0, 1.1], [0.2, 0.1], [0.1, 0.2]])


def make_model(W):
    def model(x, subsample_size=None):
        with numpyro.plate("data", x.shape[0], subsample_size=subsample_size):
            xb = numpyro.subsample(x, event_dim=1)
            z = numpyro.sample("z", dist.Normal(jnp.zeros(2), 1.0).to_event(1))
            numpyro.sample("x", dist.Normal(z @ W.T, NOISE).to_event(1), obs=xb)

    return model


def exact_posterior(W, x):
    P = jnp.eye(2) + W.T @ W / NOISE**2
    cov = jnp.linalg.inv(P)
    return np.asarray(x @ W @ cov / NOISE**2), np.asarray(cov)


def data(W, key=0):
    k1, k2 = jax.random.split(jax.random.key(key))
    z = jax.random.normal(k1, (N, 2))
    return z @ W.T + NOISE * jax.random.normal(k2, (N, 4))


@pytest.fixture(scope="module")
def fitted_normal():
    """AmortizedNormalGuide trained by numpyro's own SVI with a subsampled plate."""
    model, x = make_model(W_ORTH), data(W_ORTH)
    guide = AmortizedNormalGuide(model, None, "z", hidden=(16,))
    svi = SVI(model, guide, optax.adam(optax.cosine_decay_schedule(0.02, 1500)), Trace_ELBO())
    result = svi.run(jax.random.key(1), 1500, x, subsample_size=64, progress_bar=False)
    return model, guide, x, result


def check_normal_guide_matches_analytic_posterior_per_datum(fitted_normal):
    model, guide, x, result = fitted_normal
    assert np.all(np.isfinite(result.losses))
    assert "amortized_encoder$params" in result.params
    mean, cov = exact_posterior(W_ORTH, x)
    loc, scale = guide.encode(result.params, x)
    assert np.max(np.abs(np.asarray(loc) - mean)) < 0.1
    np.testing.assert_allclose(
        np.asarray(scale), np.broadcast_to(np.sqrt(np.diag(cov)), (N, 2)), rtol=0.2
    )
    # sample_posterior on the full data: one draw per datum, right moments
    draws = guide.sample_posterior(jax.random.key(2), result.params, x, sample_shape=(2000,))["z"]
    assert draws.shape == (2000, N, 2)
    assert np.max(np.abs(np.asarray(draws.mean(0)) - mean)) < 0.1
    np.testing.assert_allclose(np.asarray(draws.std(0)).mean(0), np.sqrt(np.diag(cov)), rtol=0.2)


def check_normal_guide_rejects_wrong_posterior(fitted_normal):
    """Negative control: the same tolerances fail against the posterior of another noise."""
    model, guide, x, result = fitted_normal
    loc, scale = guide.encode(result.params, x)
    P = jnp.eye(2) + W_ORTH.T @ W_ORTH / 1.0**2  # noise 1.0 instead of 0.5
    wrong_mean = np.asarray(x @ W_ORTH @ jnp.linalg.inv(P))
    wrong_std = np.sqrt(np.diag(np.linalg.inv(np.asarray(P))))
    assert np.max(np.abs(np.asarray(loc) - wrong_mean)) > 0.1
    assert np.max(np.abs(np.asarray(scale).mean(0) / wrong_std - 1)) > 0.2


def check_predictive_and_subsampled_guide_shapes(fitted_normal):
    model, guide, x, result = fitted_normal
    pred = Predictive(
        model, guide=guide, params=result.params, num_samples=50, return_sites=["z", "x"]
    )
    out = pred(jax.random.key(3), x)
    assert out["z"].shape == (50, N, 2) and out["x"].shape == (50, N, 4)
    # guide draws through Predictive have the analytic posterior mean (Monte Carlo error of
    # 50 draws ~ 0.06 per entry); observed x stays conditioned
    mean, _ = exact_posterior(W_ORTH, x)
    assert np.abs(np.asarray(out["z"].mean(0)) - mean).mean() < 0.1
    np.testing.assert_allclose(np.asarray(out["x"][0]), np.asarray(x))
    # in a subsampled plate the guide encodes only the minibatch rows
    tr = numpyro.handlers.trace(
        numpyro.handlers.seed(numpyro.handlers.substitute(guide, result.params), 4)
    ).get_trace(x, subsample_size=64)
    assert tr["z"]["value"].shape == (64, 2)


def test_normal_guide(fitted_normal):
    """Every check of the trained guide in one test (one SVI run per xdist worker)."""
    check_normal_guide_matches_analytic_posterior_per_datum(fitted_normal)
    check_normal_guide_rejects_wrong_posterior(fitted_normal)
    check_predictive_and_subsampled_guide_shapes(fitted_normal)


def test_constrained_scalar_latent():
    """A positive per-datum latent goes through biject_to(positive): draws are positive."""

    def model(y):
        with numpyro.plate("data", y.shape[0]):
            s = numpyro.sample("s", dist.LogNormal(0.0, 1.0))
            numpyro.sample("y", dist.Normal(0.0, s), obs=y)

    y = jnp.linspace(-2.0, 2.0, 8)
    guide = AmortizedNormalGuide(model, None, "s", hidden=(8,), encoder_input=lambda y: y[:, None])
    svi = SVI(model, guide, optax.adam(1e-2), Trace_ELBO())
    params = svi.get_params(svi.init(jax.random.key(0), y))
    draws = guide.sample_posterior(jax.random.key(1), params, y, sample_shape=(5,))["s"]
    assert draws.shape == (5, 8) and bool(jnp.all(draws > 0))


@pytest.fixture(scope="module")
def fitted_flow():
    model, x = make_model(W_CORR), data(W_CORR, key=5)
    guide = AmortizedFlowGuide(model, None, "z", hidden=(32,), flow_hidden=(16,), num_layers=2)
    fit = nh.models.fit_svi(
        model,
        guide,
        (x,),
        steps=1500,
        key=jax.random.key(6),
        optimizer=optax.adam(optax.cosine_decay_schedule(0.01, 1500)),
        elbo=Trace_ELBO(4),
        progress=False,
    )
    return model, guide, x, fit


@pytest.mark.slow
def test_flow_guide_captures_correlated_posterior(fitted_flow):
    model, guide, x, fit = fitted_flow
    assert any(k.startswith("amortized_maf_") for k in fit.params)
    mean, cov = exact_posterior(W_CORR, x)
    draws = np.asarray(
        guide.sample_posterior(jax.random.key(7), fit.params, x, sample_shape=(2000,))["z"]
    )
    assert np.max(np.abs(draws.mean(0) - mean)) < 0.1
    np.testing.assert_allclose(draws.std(0).mean(0), np.sqrt(np.diag(cov)), rtol=0.2)
    corr = np.mean([np.corrcoef(draws[:, i].T)[0, 1] for i in range(0, N, 8)])
    exact_corr = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    assert abs(corr - exact_corr) < 0.15, (corr, exact_corr)


@pytest.mark.slow
def test_flow_guide_log_density_is_change_of_variables(fitted_flow):
    """log q(z) equals log N(xi) - log|det dz/dxi|, the Jacobian taken by autodiff."""
    model, guide, x, fit = fitted_flow
    q = guide.get_posterior(fit.params, x[:2])
    xi = jax.random.normal(jax.random.key(8), (2, 2))

    def push(rows):
        for t in q.transforms:
            rows = t(rows)
        return rows

    logdets = [
        jnp.linalg.slogdet(jax.jacfwd(lambda e, i=i: push(xi.at[i].set(e))[i])(xi[i]))[1]
        for i in range(2)
    ]
    expected = dist.Normal(0, 1).log_prob(xi).sum(-1) - jnp.stack(logdets)
    np.testing.assert_allclose(np.asarray(q.log_prob(push(xi))), np.asarray(expected), atol=1e-4)


def test_bad_arguments():
    model = make_model(W_ORTH)
    x = data(W_ORTH)
    with pytest.raises(ValueError, match="latent_site: expected the name of a latent"):
        _setup(model, "w", x)
    with pytest.raises(ValueError, match="encoder: expected an output of width 4"):
        _setup(model, "z", x, encoder=nh.nn.MLP((8,), 3))
    with pytest.raises(TypeError, match="encoder: expected a flax.linen Module"):
        AmortizedNormalGuide(model, lambda x: x, "z")
    with pytest.raises(ValueError, match="hidden: expected a sequence of positive integers"):
        AmortizedNormalGuide(model, None, "z", hidden=(0,))
    assert isinstance(nh.nn.MLP((8,), 4), nn.Module)


def _setup(model, site, x, encoder=None):
    guide = AmortizedNormalGuide(model, encoder, site)
    SVI(model, guide, optax.adam(1e-3), Trace_ELBO()).init(jax.random.key(0), x)
