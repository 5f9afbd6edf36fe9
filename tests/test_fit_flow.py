"""fit_flow: maximum likelihood against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numpyro_hgf as nh
from numpyro_hgf.train import NonFiniteLossError

COV = np.array([[1.0, 0.8], [0.8, 1.0]])
# differential entropy of N(0, COV): 0.5 * log det(2 pi e COV)
GAUSSIAN_ENTROPY = 0.5 * np.log(np.linalg.det(2 * np.pi * np.e * COV))


def _gaussian(key, n):
    return jax.random.multivariate_normal(key, jnp.zeros(2), jnp.asarray(COV), (n,))


@pytest.fixture(scope="module")
def gaussian_fit():
    train = _gaussian(jax.random.key(0), 4000)
    test = _gaussian(jax.random.key(1), 4000)
    flow, result = nh.train.fit_flow(
        "realnvp",
        train,
        steps=800,
        batch_size=256,
        learning_rate=3e-3,
        num_layers=4,
        hidden=(16,),
        key=jax.random.key(2),
        validation_data=test,
        validate_every=200,
        progress=False,
        return_result=True,
    )
    return flow, result, test


def test_fit_flow_reaches_gaussian_entropy(gaussian_fit):
    flow, result, test = gaussian_fit
    test_nll = float(-jnp.mean(flow.log_prob(test)))
    # sampling error of the test NLL is ~ sqrt(Var(log p)/n) = sqrt(1/2/4000) ~ 0.011
    assert abs(test_nll - GAUSSIAN_ENTROPY) < 0.05, (test_nll, GAUSSIAN_ENTROPY)
    assert [step for step, _ in result.validation] == [200, 400, 600, 800]
    assert result.validation[-1][1] < result.validation[0][1] + 1e-3


def test_fit_flow_samples_match_covariance(gaussian_fit):
    flow, _, _ = gaussian_fit
    samples = np.asarray(flow.sample(jax.random.key(5), (20_000,)))
    np.testing.assert_allclose(np.cov(samples.T), COV, atol=0.06)


def test_fit_flow_is_deterministic_and_saveable(tmp_path):
    data = _gaussian(jax.random.key(0), 500)
    kwargs = dict(steps=30, num_layers=2, hidden=(8,), key=jax.random.key(3), progress=False)
    a = nh.train.fit_flow("maf", data, **kwargs)
    b = nh.train.fit_flow("maf", data, **kwargs)
    for pa, pb in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(pa, pb)
    loaded = nh.load(nh.save(tmp_path / "flow", a))
    np.testing.assert_allclose(loaded.log_prob(data[:50]), a.log_prob(data[:50]), rtol=1e-6)


def test_fit_flow_bad_input():
    data = _gaussian(jax.random.key(0), 100)
    with pytest.raises(ValueError, match=r"data: expected finite values"):
        nh.train.fit_flow("maf", data.at[3, 1].set(jnp.inf), steps=5, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"data: expected an array of shape \(n, d\)"):
        nh.train.fit_flow("maf", data[:, 0], steps=5, key=jax.random.key(0))
    with pytest.raises(ValueError, match="kind"):
        nh.train.fit_flow("glow", data, steps=5, key=jax.random.key(0))
    flow3 = nh.flows.build_flow("maf", 3, num_layers=1, hidden=(4,), key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"data: expected trailing \(event\) shape \(3,\)"):
        nh.train.fit_flow(flow3, data, steps=5, key=jax.random.key(0))
    with pytest.raises(TypeError, match="key"):
        nh.train.fit_flow("maf", data, steps=5)


def test_fit_flow_non_finite_loss_stops_with_step():
    # finite float32 data whose squared norm overflows: the very first loss is inf
    data = _gaussian(jax.random.key(0), 200) * 1e30
    flow = nh.flows.build_flow("maf", 2, num_layers=1, hidden=(4,), key=jax.random.key(0))
    with pytest.raises(NonFiniteLossError, match="non-finite at step 0") as info:
        nh.train.fit_flow(flow, data, steps=20, key=jax.random.key(0), progress=False)
    # no step had a finite loss, so there is no good state to keep (not the initial one,
    # whose loss is the infinite one)
    assert info.value.last_good_state is None
    assert "no step had a finite loss" in str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, floor",
    [
        ("flowjax_moons", nh.datasets.FLOWJAX_MOONS_ENTROPY),
        ("two_moons", nh.datasets.TWO_MOONS_ENTROPY),
    ],
)
def test_fit_flow_two_moons_near_entropy_floor(name, floor):
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    train = nh.datasets.toy2d(name, 20_000, k1, standardize=True)
    test = nh.datasets.toy2d(name, 20_000, k2, standardize=True)
    flow = nh.train.fit_flow(
        "spline",
        train,
        steps=4000,
        batch_size=512,
        learning_rate=3e-3,
        num_layers=4,
        hidden=(64, 64),
        key=k3,
        progress=False,
    )
    test_nll = float(-jnp.mean(flow.log_prob(test)))
    # standard error of the test NLL on 20k points is ~0.007 nats
    assert test_nll - floor < 0.1, (name, test_nll, floor)
