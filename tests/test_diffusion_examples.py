"""``examples/diffusion_inpainting.py`` runs end to end in its smoke mode and writes its PNG, its
summary and a loadable prior; the NumPyro model it builds has the log density it states."""

import importlib.util
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import numpyro_hgf as nh

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_diffusion_inpainting_smoke(tmp_path):
    example = _load("diffusion_inpainting")
    png = example.main(["--smoke", "--out", str(tmp_path)])
    assert png == tmp_path / "inpainting.png" and png.read_bytes()[:8] == PNG_SIGNATURE
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert sorted(summary["rmse_hidden"]) == ["NUTS (PF-ODE log_prob)", "score-based (PC)"]
    assert all(np.isfinite(v) for v in summary["rmse_observed"].values())
    prior = nh.load(tmp_path / "models" / "prior")
    assert isinstance(prior, nh.distributions.DiffusionPrior) and prior.event_shape == (64,)

    # the model: log p(x) + sum over observed pixels of log N(y | x, sigma_y)
    model = example.inpainting_model(prior, 0.1)
    x, y = jnp.full((64,), 0.1), jnp.linspace(-1, 1, 64)
    mask = jnp.arange(64) % 3 == 0
    log_joint, _ = numpyro.infer.util.log_density(model, (y, mask), {}, {"x": x})
    expected = prior.log_prob(x) + jnp.sum(jnp.where(mask, dist.Normal(x, 0.1).log_prob(y), 0))
    np.testing.assert_allclose(log_joint, expected, rtol=1e-5)
    # the likelihood term of the posterior score is exact at small t: mask * (y - x) / sigma_y^2
    score = example.posterior_score(prior, y, mask, 0.1)
    t = 1e-4
    gap = score(x[None], t)[0] - prior.score(x[None], t)[0]
    np.testing.assert_allclose(gap, jnp.where(mask, (y - x) / 0.1**2, 0.0), rtol=2e-2, atol=1e-3)
    with pytest.raises(SystemExit):
        example.parse_args(["--observed", "1.5"])


@pytest.mark.slow
def test_diffusion_inpainting_logit_coordinates_smoke(tmp_path):
    """``--logit``: the prior lives in logit coordinates ``z``, the pixels ``x = g(z)`` are a
    deterministic site, and the delta-method likelihood score is exact at small ``t``:
    ``mask * g'(z) (y - g(z)) / sigma_y^2``."""
    example = _load("diffusion_inpainting")
    example.main(["--smoke", "--logit", "0.001", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["logit"] == 0.001
    assert all(np.isfinite(v) for v in summary["rmse_hidden"].values())
    prior = nh.load(tmp_path / "models" / "prior")
    to_pixels, train_z = example.logit_pixels(jax.random.key(0), 0.001, copies=2)
    assert train_z.shape == (2 * 1437, 64)
    np.testing.assert_allclose(train_z.mean(0), 0.0, atol=1e-3)  # standardised

    model = example.inpainting_model(prior, 0.1, to_pixels)
    z, y = jnp.linspace(-2, 2, 64), jnp.linspace(-0.9, 0.9, 64)
    mask = jnp.arange(64) % 3 == 0
    log_joint, _ = numpyro.infer.util.log_density(model, (y, mask), {}, {"z": z})
    x = to_pixels(z)
    expected = prior.log_prob(z) + jnp.sum(jnp.where(mask, dist.Normal(x, 0.1).log_prob(y), 0))
    np.testing.assert_allclose(log_joint, expected, rtol=1e-5)
    score = example.posterior_score(prior, y, mask, 0.1, to_pixels)
    t = 1e-4
    gap = score(z[None], t)[0] - prior.score(z[None], t)[0]
    jacobian = jax.jacfwd(to_pixels)(z)  # diagonal: g acts pixel by pixel
    slope = jnp.diag(jacobian)
    np.testing.assert_allclose(jacobian - jnp.diag(slope), 0.0, atol=1e-6)
    exact = jnp.where(mask, slope * (y - x) / 0.1**2, 0.0)
    np.testing.assert_allclose(gap, exact, rtol=2e-2, atol=1e-2)
    with pytest.raises(SystemExit, match="--prior"):
        example.main(["--smoke", "--logit", "0.001", "--prior", str(tmp_path / "models" / "prior")])
