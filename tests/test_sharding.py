"""Data-parallel training with jax.sharding, donation and bf16 mixed precision.

The 4-device check runs in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` set before jax is imported (the flag
cannot change a running process).  It trains the same flow-matching loss (a TimeMLP on
flattened digits by default, a UNet on 8x8x1 digits in the slow variant) from the same key on
one device and on a 4-device data-parallel mesh: the minibatches are the same, so the loss
trajectories must agree to float tolerance.  A run from another key is the negative control:
it must differ by far more than the tolerance.
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from numpyro_hgf.train import Trainer

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import jax, jax.numpy as jnp, numpy as np, optax
    import numpyro_hgf as nh
    from numpyro_hgf.paths import FlowMatchingPath
    from numpyro_hgf.train import Trainer, velocity_matching_loss

    assert jax.device_count() == 4, jax.devices()
    if sys.argv[1] == "unet":
        images = nh.datasets.digits().images[:64, :, :, None]
        unet = nh.nn.UNet(channels=(8, 16), embed_dim=16)
    else:  # the same objective with a TimeMLP on flattened digits (much faster to compile)
        images = nh.datasets.digits().images[:64].reshape(64, 64)
        unet = nh.nn.TimeMLP(hidden=(32, 32))
    params = unet.init(jax.random.key(0), images[:1], jnp.zeros(()))["params"]
    path = FlowMatchingPath()
    seen = []

    def loss(p, batch, key):
        jax.debug.inspect_array_sharding(batch, callback=lambda s: seen.append(repr(s)))
        return velocity_matching_loss(unet, p, path, batch, key)

    # Adam's eps keeps gradients at rounding level (exactly-cancelling sums) from being
    # amplified to full-size steps, so the params can be compared too
    opt = optax.adam(3e-3, eps=1e-4)

    def trainer_for(devices):
        return Trainer(loss, opt, batch_size=8, steps_per_dispatch=6, ema_decay=0.9,
                       progress=False, devices=devices)

    try:
        Trainer(loss, 0.1, batch_size=6, devices="all")
        batch_error = None
    except ValueError as err:
        batch_error = str(err)
    single = trainer_for(None)
    t0 = time.perf_counter()
    one = single.fit(params, images, 12, jax.random.key(1))
    seen_one = list(seen)
    other = single.fit(params, images, 12, jax.random.key(2))
    t1 = time.perf_counter()
    trainer = trainer_for("all")
    four = trainer.fit(params, images, 12, jax.random.key(1))
    seen_four = seen[len(seen_one):]
    t2 = time.perf_counter()
    leaf = jax.tree.leaves(four.state.params)[0]
    hlo = trainer._dispatch.lower(
        trainer.init(params, jax.random.key(1)), trainer._place(images), jnp.asarray(6)
    ).compile().as_text()
    print(f"one device {t1 - t0:.1f}s, four {t2 - t1:.1f}s, hlo {time.perf_counter() - t2:.1f}s",
          file=sys.stderr)
    flat = lambda tree: np.concatenate([np.ravel(a) for a in jax.tree.leaves(tree)]).tolist()
    json.dump({
        "one": one.history.tolist(), "four": four.history.tolist(),
        "other": other.history.tolist(),
        "params_one": flat(one.params), "params_four": flat(four.params),
        "replicated": bool(leaf.sharding.is_fully_replicated),
        "num_devices": len(leaf.sharding.device_set),
        "batch_sharding_one": seen_one, "batch_sharding_four": seen_four,
        "all_reduce": "all-reduce" in hlo,
        "batch_error": batch_error,
    }, sys.stdout)
    """
)


def _run_four_devices(network: str) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["NUMPYRO_HGF_PROGRESS"] = "0"
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, network],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def four_device_run():
    return _run_four_devices("mlp")


def test_four_devices_give_the_one_device_loss_trajectory(four_device_run):
    run = four_device_run
    one, four, other = (np.asarray(run[k]) for k in ("one", "four", "other"))
    assert one.shape == four.shape == (12,)
    np.testing.assert_allclose(four, one, rtol=2e-5)
    np.testing.assert_allclose(run["params_four"], run["params_one"], rtol=1e-3, atol=1e-5)
    # negative control: another key gives other minibatches and another trajectory
    assert np.max(np.abs(other - one) / one) > 100 * 2e-5


@pytest.mark.slow
def test_four_devices_give_the_one_device_loss_trajectory_with_a_unet():
    run = _run_four_devices("unet")
    one, four = np.asarray(run["one"]), np.asarray(run["four"])
    np.testing.assert_allclose(four, one, rtol=2e-5)
    np.testing.assert_allclose(run["params_four"], run["params_one"], rtol=1e-3, atol=1e-5)
    assert np.max(np.abs(np.asarray(run["other"]) - one) / one) > 100 * 2e-5
    assert run["all_reduce"] and run["replicated"] and run["num_devices"] == 4


def test_four_device_run_is_really_data_parallel(four_device_run):
    run = four_device_run
    assert run["replicated"] and run["num_devices"] == 4
    assert run["all_reduce"]  # the gradient is summed across the devices
    # the minibatch is split along its example axis over the 4 devices (and not on one device)
    assert run["batch_sharding_four"] and all(
        "spec=P('data',)" in s and "'data': 4" in s for s in run["batch_sharding_four"]
    )
    assert not any("'data'" in s for s in run["batch_sharding_one"])


def _quadratic(params, batch, key):
    target = batch @ jnp.array([0.5, -1.0, 2.0, 0.25], batch.dtype)
    return jnp.mean((batch @ params["w"] - target) ** 2)


def test_batch_size_must_divide_over_devices_and_devices_are_checked(four_device_run):
    assert four_device_run["batch_error"] == (
        "batch_size: expected a multiple of the 4 devices of the data-parallel mesh "
        "(each device takes batch_size / 4 examples), got 6"
    )
    with pytest.raises(ValueError, match="devices: expected at most the"):
        Trainer(_quadratic, 0.1, batch_size=4, devices=jax.device_count() + 1)
    with pytest.raises(ValueError, match="devices: expected one of 'all'"):
        Trainer(_quadratic, 0.1, batch_size=4, devices="gpu")
    with pytest.raises(ValueError, match="precision: expected one of"):
        Trainer(_quadratic, 0.1, precision="float16")


def test_bfloat16_mixed_precision_tracks_float32_and_keeps_float32_params():
    # least squares with the closed-form solution: both precisions must reach it, and the
    # bf16 trajectory stays within bf16 rounding of the float32 one
    # noise-free targets x @ w_star: every minibatch has the same minimiser w_star
    x = jax.random.normal(jax.random.key(0), (256, 4))
    w_star = np.array([0.5, -1.0, 2.0, 0.25], np.float32)
    runs = {}
    for precision in ("float32", "bfloat16"):
        schedule = optax.cosine_decay_schedule(0.05, 300)
        trainer = Trainer(
            _quadratic, optax.adam(schedule), batch_size=256, precision=precision, progress=False
        )
        runs[precision] = trainer.fit({"w": jnp.zeros(4)}, x, 300, jax.random.key(1))
    f32, bf16 = runs["float32"], runs["bfloat16"]
    assert bf16.params["w"].dtype == jnp.float32
    np.testing.assert_allclose(f32.params["w"], w_star, atol=1e-3)
    np.testing.assert_allclose(bf16.params["w"], w_star, atol=0.03)
    # bf16 has an 8-bit mantissa: relative loss differences of order 2^-8, not 0
    rel = np.abs(bf16.history[:20] - f32.history[:20]) / f32.history[:20]
    assert 0 < rel.max() < 0.05


def test_donation_leaves_the_callers_params_usable():
    params = {"w": jnp.ones(4)}
    trainer = Trainer(_quadratic, 0.1, batch_size=8, donate=True, progress=False)
    data = jnp.ones((16, 4))
    result = trainer.fit(params, data, 5, jax.random.key(0))
    np.testing.assert_array_equal(params["w"], np.ones(4))  # not deleted by donation
    state, _ = trainer.step(result.state, data, 3)
    assert int(result.state.step) == 5 and int(state.step) == 8  # step() works on a copy
