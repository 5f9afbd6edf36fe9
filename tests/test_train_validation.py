"""Validation-based checkpoint selection and early stopping for fit_velocity / fit_diffusion.

The trainers compute the training loss on held-out rows (fixed draws) every
``validate_every`` steps and hand back the params with the lowest value: checked by
recomputing that value on the returned params, which must equal the minimum of the recorded
history (and differ from the last params' value when the minimum is not the last entry);
bad input fails early.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numpyro_hgf as nh
from numpyro_hgf.paths import FlowMatchingPath, ReflectionPath
from numpyro_hgf.sde import VPSDE
from numpyro_hgf.train.diffusion import diffusion_score_matching_loss
from numpyro_hgf.train.validation import held_out_loss
from numpyro_hgf.train.velocity import velocity_matching_loss

KEY = jax.random.key(3)


def gaussian(key, n):
    return jax.random.normal(key, (n, 2)) * jnp.array([1.0, 0.3]) + 1.0


def validation_key(key):
    return jax.random.fold_in(jax.random.split(key)[1], 1)


@pytest.fixture(scope="module")
def small_data():
    # 24 training rows, so a network can over-fit them; 512 fresh validation rows
    return gaussian(jax.random.key(0), 24), gaussian(jax.random.key(1), 512)


def test_fit_velocity_returns_the_best_validated_params(small_data):
    train, valid = small_data
    path = FlowMatchingPath()
    prior, result = nh.train.fit_velocity(
        path, train, hidden=(32, 32), steps=600, learning_rate=1e-2, key=KEY, progress=False,
        validation=valid, validate_every=50, ema_decay=None, return_result=True,
    )  # fmt: skip
    values = [v for _, v in result.validation]
    assert len(values) == 12 and not result.stopped_early
    value = held_out_loss(
        lambda p, b, k: velocity_matching_loss(prior.velocity, p, path, b, k),
        valid,
        validation_key(KEY),
        like=train,
    )
    np.testing.assert_allclose(value(prior.params), min(values), rtol=1e-5)
    if int(np.argmin(values)) != len(values) - 1:  # the last params are not the ones returned
        assert value(result.state.params) > min(values)


def test_fit_diffusion_validation_and_patience(small_data):
    train, valid = small_data
    prior, result = nh.train.fit_diffusion(
        VPSDE(), train, hidden=(32, 32), steps=600, learning_rate=1e-2, key=KEY,
        progress=False, validation=valid, validate_every=50, patience=2, ema_decay=None,
        return_result=True,
    )  # fmt: skip
    values = [v for _, v in result.validation]
    best = int(np.argmin(values))
    # stopped after two validations without improvement, or ran to the end
    assert len(values) - 1 - best <= 2
    assert result.stopped_early == (len(values) < 12)
    value = held_out_loss(
        lambda p, b, k: diffusion_score_matching_loss(prior.network, p, VPSDE(), b, k, eps=1e-5),
        valid,
        validation_key(KEY),
        like=train,
    )
    np.testing.assert_allclose(value(prior.params), values[best], rtol=1e-5)


def test_bad_validation_input(small_data):
    train, valid = small_data
    kw = dict(hidden=(4,), steps=2, key=KEY, progress=False)
    with pytest.raises(ValueError, match="patience: early stopping needs validation"):
        nh.train.fit_velocity(FlowMatchingPath(), train, patience=3, **kw)
    with pytest.raises(ValueError, match=r"validation: expected rows of shape \(2,\)"):
        nh.train.fit_velocity(FlowMatchingPath(), train, validation=valid[:, :1], **kw)
    with pytest.raises(ValueError, match="validation"):
        nh.train.fit_diffusion(VPSDE(), train, validation=valid.at[0, 0].set(jnp.nan), **kw)
    box = ReflectionPath(low=-5.0, high=5.0)
    with pytest.raises(ValueError, match="validation"):
        nh.train.fit_velocity(box, train, validation=valid + 10.0, **kw)
