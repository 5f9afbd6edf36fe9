"""Sampling diagnostics that warn: R-hat > 1.01, bulk ESS < 100 per chain, divergences.

They fire on a bimodal target with two well-separated modes (chains stuck in different
modes) and stay silent on the non-centred eight schools; ``diagnostics_warn=False`` silences
them.  On synthetic draws each check fires alone.
"""

import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import numpyro_hgf as nh
from numpyro_hgf.infer import SamplingWarning, warn_diagnostics

J = 8
Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def eight_schools_noncentered(sigma, y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("J", sigma.shape[0]):
        theta_raw = numpyro.sample("theta_raw", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", mu + tau * theta_raw)
        numpyro.sample("obs", dist.Normal(theta, sigma), obs=y)


def bimodal():
    mix = dist.MixtureSameFamily(
        dist.Categorical(jnp.array([0.5, 0.5])), dist.Normal(jnp.array([-12.0, 12.0]), 1.0)
    )
    numpyro.sample("x", mix)


def idata_of(x, diverging=None):
    x = np.asarray(x)
    stats = {"diverging": np.zeros(x.shape[:2], bool) if diverging is None else diverging}
    return az.from_dict(posterior={"x": x}, sample_stats=stats)


def test_each_check_fires_alone_on_synthetic_draws():
    rng = np.random.default_rng(0)
    good = rng.normal(size=(4, 500))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_diagnostics(idata_of(good)) == []
    shifted = good + np.array([0.0, 0.0, 0.0, 3.0])[:, None]
    with pytest.warns(SamplingWarning, match=r"R-hat \d\.\d+ > 1.01 for 'x'"):
        warn_diagnostics(idata_of(shifted))
    sticky = np.cumsum(rng.normal(size=(4, 500)), axis=1) * 0.01 + good * 1e-3  # random walk
    with pytest.warns(SamplingWarning, match=r"bulk ESS \d+ < 400 \(100 per chain\)"):
        warn_diagnostics(idata_of(sticky))
    diverging = np.zeros((4, 500), bool)
    diverging[1, 7] = True
    with pytest.warns(SamplingWarning, match="1 of 2000 transitions diverged"):
        messages = warn_diagnostics(idata_of(good, diverging))
    assert len(messages) == 1  # one line per failed check, nothing else


def test_run_nuts_warns_on_a_bimodal_target_and_can_be_silenced():
    kw = dict(num_warmup=200, num_samples=300, num_chains=4, key=jax.random.key(3), progress=False)
    with pytest.warns(SamplingWarning) as record:
        idata = nh.infer.run_nuts(bimodal, **kw)
    modes = np.sign(np.asarray(idata.posterior["x"]).mean(1))
    assert len(set(modes.tolist())) == 2  # the chains are stuck in different modes
    text = " ".join(str(w.message) for w in record)
    assert "R-hat" in text and "bulk ESS" in text
    rhat = float(az.rhat(idata)["x"])
    assert f"{rhat:.3f}" in text  # the arviz numbers
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplingWarning)
        nh.infer.run_nuts(bimodal, diagnostics_warn=False, **kw)


def test_run_nuts_is_silent_on_noncentered_eight_schools():
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplingWarning)
        idata = nh.infer.run_nuts(
            eight_schools_noncentered, SIGMA, Y, num_warmup=500, num_samples=500,
            num_chains=4, key=jax.random.key(0), progress=False, target_accept=0.9,
        )  # fmt: skip
    assert float(np.sum(idata.sample_stats["diverging"])) == 0
