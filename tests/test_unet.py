"""nh.nn.UNet: shapes from 8x8x1 to 32x32x3, time conditioning, per-example independence,
saving, bad input; and (slow) a UNet trained by flow matching against the closed-form optimal
velocity of Gaussian images."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numpyro_hgf as nh
from numpyro_hgf.nn import UNet, module_config, module_from_config


def _randomize(params, key, scale=0.3):
    """Random params (the output conv starts at zero, which would make every test trivial)."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef,
        [scale * jax.random.normal(k, p.shape, p.dtype) for k, p in zip(keys, leaves, strict=True)],
    )


@pytest.fixture(scope="module")
def small():
    unet = UNet(channels=(8, 16), embed_dim=16)
    x = jax.random.normal(jax.random.key(0), (3, 8, 8, 1))
    init = jax.jit(lambda k, x, t: unet.init(k, x, t)["params"])
    initial = init(jax.random.key(1), x, jnp.zeros(()))
    params = _randomize(initial, jax.random.key(2))
    apply = jax.jit(lambda p, x, t: unet.apply({"params": p}, x, t))
    return unet, params, x, apply, initial


@pytest.mark.parametrize(
    "shape, channels",
    [((5, 8, 8, 1), (32, 64)), ((2, 32, 32, 3), (32, 64, 128)), ((2, 16, 16, 3), (16, 32, 64))],
)
def test_output_has_the_input_shape_for_digits_up_to_32x32x3(shape, channels):
    unet = UNet(channels=channels)
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    variables = jax.eval_shape(unet.init, jax.random.key(0), x, jnp.zeros(()))
    out = jax.eval_shape(unet.apply, variables, x, jnp.zeros(shape[0]))
    assert out.shape == shape and out.dtype == jnp.float32
    # extra leading batch dims and an explicit out_channels
    wide = UNet(channels=channels, out_channels=2)
    x2 = jax.ShapeDtypeStruct((4, *shape), jnp.float32)
    v2 = jax.eval_shape(wide.init, jax.random.key(0), x2, jnp.zeros(()))
    assert jax.eval_shape(wide.apply, v2, x2, jnp.zeros(())).shape == (4, *shape[:-1], 2)


def test_output_layer_starts_at_zero(small):
    unet, _, x, apply, initial = small
    np.testing.assert_array_equal(apply(initial, x, jnp.asarray(0.3)), np.zeros(x.shape))


def test_scalar_time_broadcasts_and_time_matters(small):
    unet, params, x, apply, _ = small
    t = 0.4
    out_scalar = apply(params, x, jnp.asarray(t))
    out_batch = apply(params, x, jnp.full((3,), t))
    np.testing.assert_allclose(out_scalar, out_batch, rtol=1e-6, atol=1e-6)
    # per-example times: example i with t_i equals that example alone at t_i
    ts = jnp.array([0.1, 0.5, 0.9])
    mixed = apply(params, x, ts)
    for i in range(3):
        alone = apply(params, x, jnp.full((3,), ts[i]))[i]
        np.testing.assert_allclose(mixed[i], alone, rtol=1e-5, atol=1e-5)
    # negative control: the time is an input, so another time gives another output
    assert float(jnp.max(jnp.abs(apply(params, x, 0.9) - out_scalar))) > 1e-2


def test_each_output_depends_only_on_its_own_example(small):
    # GroupNorm normalises per example (BatchNorm would not): changing examples 1 and 2 leaves
    # output 0 unchanged, while changing example 0 changes it
    unet, params, x, apply, _ = small
    t = jnp.full((3,), 0.3)
    base = apply(params, x, t)
    others = x.at[1:].set(5.0 * jax.random.normal(jax.random.key(7), x[1:].shape))
    np.testing.assert_allclose(apply(params, others, t)[0], base[0], rtol=1e-5, atol=1e-6)
    own = x.at[0].add(1.0)
    assert float(jnp.max(jnp.abs(apply(params, own, t)[0] - base[0]))) > 1e-2


def test_time_free_field_has_no_time_parameters():
    unet = UNet(channels=(8, 16), embed_dim=16)
    x = jnp.ones((2, 8, 8, 1))
    with_t = jax.eval_shape(unet.init, jax.random.key(0), x, jnp.zeros(()))["params"]
    without = jax.eval_shape(unet.init, jax.random.key(0), x)["params"]
    size = lambda p: sum(math.prod(a.shape) for a in jax.tree.leaves(p))
    # time parameters: the embedding MLP 16 -> 64 -> 64, and in each of the 7 residual
    # blocks (1 + 1 down, 1 bottleneck, 2 + 2 up) a projection 64 -> width
    widths = [8, 16, 16, 16, 16, 8, 8]
    expected = (16 * 64 + 64) + (64 * 64 + 64) + sum(64 * w + w for w in widths)
    assert sum(1 for k in with_t if k.startswith("ResBlock")) == len(widths)
    assert size(with_t) - size(without) == expected
    assert jax.eval_shape(unet.apply, {"params": without}, x).shape == x.shape


def test_unet_round_trips_through_module_config():
    unet = UNet(channels=(8, 16, 32), embed_dim=16, time_scale=1000.0 / 3, num_res_blocks=2)
    assert module_from_config(module_config(unet)) == unet


@pytest.mark.slow  # nh.load builds template params with an eager UNet init
def test_unet_prior_round_trips_through_nh_save(tmp_path):
    unet = UNet(channels=(8, 16), embed_dim=16, time_scale=1000.0 / (math.pi / 2))
    assert module_from_config(module_config(unet)) == unet
    path = nh.paths.OscillationPath()
    shapes = jax.eval_shape(unet.init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)), 0.0)
    params = _randomize(shapes["params"], jax.random.key(1))
    prior = nh.distributions.HGFPrior(unet, params, path, event_shape=(8, 8, 1))
    loaded = nh.load(nh.save(tmp_path / "prior", prior))
    assert loaded.velocity == unet and loaded.event_shape == (8, 8, 1)
    for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_input_is_named():
    unet = UNet(channels=(8, 16, 32))
    with pytest.raises(
        ValueError, match=r"x: expected images whose height and width are multiples of 4"
    ):
        unet.init(jax.random.key(0), jnp.zeros((1, 6, 8, 1)), jnp.zeros(()))
    with pytest.raises(ValueError, match=r"x: expected images of shape \(..., H, W, C\)"):
        unet.init(jax.random.key(0), jnp.zeros((8, 8)), jnp.zeros(()))
    with pytest.raises(ValueError, match="channels: expected a sequence of positive integers"):
        UNet(channels=(8, 0))
    with pytest.raises(ValueError, match="embed_dim: expected an even positive integer, got 15"):
        UNet(embed_dim=15)
    with pytest.raises(TypeError, match="num_res_blocks: expected a positive integer"):
        UNet(num_res_blocks=1.5)


@pytest.mark.slow
def test_flow_matching_unet_learns_the_gaussian_optimal_velocity():
    # images with iid N(0.5, 0.3^2) pixels: the optimal FM velocity is affine per pixel
    # (closed form: FlowMatchingPath.optimal_velocity_gaussian); a trained UNet must get close
    mean, std, n = 0.5, 0.3, 4096
    data = mean + std * jax.random.normal(jax.random.key(0), (n, 8, 8, 1))
    path = nh.paths.FlowMatchingPath()
    prior = nh.train.fit_velocity(
        path,
        data,
        velocity=UNet(channels=(16, 32), embed_dim=32),
        steps=800,
        batch_size=64,
        learning_rate=3e-3,
        key=jax.random.key(1),
        ema_decay=None,  # an EMA of 0.999 over 800 steps still weighs the zero init by 0.45
        progress=False,
    )
    d = 64
    mu, cov = jnp.full((d,), mean), std**2 * jnp.eye(d)
    errors, scales, controls = [], [], []
    for t in (0.2, 0.5, 0.8):
        x_t, _ = path.motion(
            data[:256], path.couple(data[:256], jax.random.key(2)), jnp.full((256,), t)
        )
        want = path.optimal_velocity_gaussian(x_t.reshape(256, d), jnp.asarray(t), mu, cov)
        got = prior.velocity.apply({"params": prior.params}, x_t, t).reshape(256, d)
        errors.append(float(jnp.mean((got - want) ** 2)))
        scales.append(float(jnp.mean((want - jnp.mean(want, 0)) ** 2) + jnp.mean(want) ** 2))
        wrong = path.optimal_velocity_gaussian(
            x_t.reshape(256, d), jnp.asarray(t), 0 * mu, jnp.eye(d)
        )
        controls.append(float(jnp.mean((got - wrong) ** 2)))
    rel = np.asarray(errors) / np.asarray(scales)
    assert np.all(rel < 0.05), rel
    # negative control: the optimal velocity of another Gaussian, N(0, I), is far away
    assert np.all(np.asarray(controls) / np.asarray(scales) > 0.2), controls
