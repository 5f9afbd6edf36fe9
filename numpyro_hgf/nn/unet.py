"""``UNet``: a time-conditioned residual U-Net for image fields (re-exported as ``nh.nn.UNet``).

The learned field of the image models: velocities ``V(x, t)`` (flow matching, oscillation and
reflection HGFs), scores / noise predictors ``s(x, t)`` (diffusion), and -- with ``t=None`` --
time-free forces ``F(x)`` (Hamiltonian score matching).

Architecture (DDPM's U-Net, Ho et al. 2020, App. B, without attention; the residual block of
He et al. 2016 with the time embedding added between its two convolutions)::

    x (B, H, W, C) -> conv3x3 -> [ResBlock x num_res_blocks, then downsample] per level
                   -> ResBlock (bottleneck)
                   -> [concat skip, ResBlock] x (num_res_blocks + 1), then upsample, per level
                   -> GroupNorm -> act -> conv3x3 (zero-initialised) -> (B, H, W, out_channels)

    ResBlock(h, emb) = h' + skip(h),   h' = conv(act(norm(conv(act(norm(h)))) + Dense(emb)))

Level ``i`` runs at resolution ``H / 2^i`` with ``channels[i]`` feature maps, so an image of
height and width divisible by ``2^(len(channels) - 1)`` is accepted: 8x8x1 digits with two
levels (8 -> 4), 32x32x3 images with three or four levels.  Normalisation is GroupNorm (per
example), so an output never depends on the other examples of the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from numpyro_hgf._checks import (
    _describe,
    check_event_shape_arg,
    check_hidden_sizes,
    check_instance,
    check_positive_float,
    check_positive_int,
)
from numpyro_hgf.nn.config import register_module
from numpyro_hgf.nn.mlp import check_activation

__all__ = ["UNet", "ResBlock", "FlatImageField"]


def _groups(num_groups: int, channels: int) -> int:
    """The largest group count ``<= num_groups`` that divides ``channels``."""
    return math.gcd(num_groups, channels)


class ResBlock(nn.Module):
    """Residual block ``h -> h + f(h, emb)`` on ``(B, H, W, C_in) -> (B, H, W, features)``.

    ``emb: (B, E)`` (or ``None`` for a time-free field) is projected to ``features`` and added
    to every pixel between the two 3x3 convolutions.  A 1x1 convolution matches the skip
    connection when ``C_in != features``.
    """

    features: int
    num_groups: int = 8
    activation: Callable = nn.silu

    def __post_init__(self):
        check_positive_int("features", self.features)
        check_positive_int("num_groups", self.num_groups)
        check_activation(self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, emb=None):
        h = nn.GroupNorm(num_groups=_groups(self.num_groups, x.shape[-1]))(x)
        h = nn.Conv(self.features, (3, 3))(self.activation(h))
        if emb is not None:
            h = h + nn.Dense(self.features)(emb)[:, None, None, :]
        h = nn.GroupNorm(num_groups=_groups(self.num_groups, self.features))(h)
        h = nn.Conv(self.features, (3, 3))(self.activation(h))
        skip = x if x.shape[-1] == self.features else nn.Conv(self.features, (1, 1))(x)
        return h + skip


@register_module
class UNet(nn.Module):
    """Time-conditioned residual U-Net: ``x: (..., H, W, C), t -> (..., H, W, out_channels)``.

    Attributes:
        channels: feature maps per resolution level, e.g. ``(32, 64)`` (8x8 digits) or
            ``(64, 128, 256)`` (32x32x3); ``H`` and ``W`` must be divisible by
            ``2^(len(channels) - 1)``.
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        out_channels: output channels (default: the input's ``C``: velocities, scores).
        embed_dim: width of the sinusoidal time embedding (even).
        time_scale: ``t`` is multiplied by it before the embedding (``t in [0, T]`` should
            span many periods: ``1000 / T``).
        num_groups: GroupNorm groups (reduced to a divisor of each width).
        activation: non-linearity.

    Call as ``unet.apply({"params": p}, x, t)`` with ``t`` of shape ``()`` or the batch shape
    ``x.shape[:-3]``; with ``t=None`` the network is time-free (a force ``F(x)``) and has no
    time-embedding parameters, so initialise it the same way it is called.
    """

    channels: Sequence[int] = (32, 64)
    num_res_blocks: int = 1
    out_channels: int | None = None
    embed_dim: int = 64
    time_scale: float = 1000.0
    num_groups: int = 8
    activation: Callable = nn.silu

    def __post_init__(self):
        object.__setattr__(self, "channels", check_hidden_sizes("channels", self.channels))
        check_positive_int("num_res_blocks", self.num_res_blocks)
        check_positive_int("num_groups", self.num_groups)
        embed_dim = check_positive_int("embed_dim", self.embed_dim)
        if embed_dim % 2:
            raise ValueError(f"embed_dim: expected an even positive integer, got {embed_dim}")
        if self.out_channels is not None:
            check_positive_int("out_channels", self.out_channels)
        check_positive_float("time_scale", self.time_scale)
        check_activation(self.activation)
        super().__post_init__()

    @property
    def downsampling(self) -> int:
        """``2^(levels - 1)``: image height and width must be multiples of it."""
        return 2 ** (len(self.channels) - 1)

    def check_input(self, x, name: str = "x") -> None:
        """Raise a ``ValueError`` naming ``name`` unless ``x`` is a batch of images this net
        takes."""
        shape = tuple(jnp.shape(x))
        if len(shape) < 3:
            raise ValueError(
                f"{name}: expected images of shape (..., H, W, C), got {_describe(jnp.asarray(x))}"
            )
        h, w = shape[-3], shape[-2]
        k = self.downsampling
        if h % k or w % k:
            raise ValueError(
                f"{name}: expected images whose height and width are multiples of {k} "
                f"(2^(levels-1) for channels={self.channels}), got shape {shape}"
            )

    @nn.compact
    def __call__(self, x, t=None):
        self.check_input(x)
        image_shape = x.shape[-3:]
        batch_shape = x.shape[:-3]
        h = x.reshape(-1, *image_shape)
        emb = None
        if t is not None:
            t = jnp.broadcast_to(jnp.asarray(t, x.dtype), batch_shape).reshape(-1)
            angles = t * self.time_scale
            half = self.embed_dim // 2
            freqs = jnp.exp(-math.log(10_000.0) * jnp.arange(half, dtype=x.dtype) / half)
            emb = jnp.concatenate(
                [jnp.cos(angles[:, None] * freqs), jnp.sin(angles[:, None] * freqs)], axis=-1
            )
            emb = nn.Dense(4 * self.embed_dim)(emb)
            emb = nn.Dense(4 * self.embed_dim)(self.activation(emb))

        h = nn.Conv(self.channels[0], (3, 3))(h)
        skips = [h]
        for level, width in enumerate(self.channels):
            for _ in range(self.num_res_blocks):
                h = ResBlock(width, self.num_groups, self.activation)(h, emb)
                skips.append(h)
            if level < len(self.channels) - 1:
                h = nn.Conv(width, (3, 3), strides=(2, 2))(h)
                skips.append(h)
        h = ResBlock(self.channels[-1], self.num_groups, self.activation)(h, emb)
        for level in reversed(range(len(self.channels))):
            width = self.channels[level]
            for _ in range(self.num_res_blocks + 1):
                h = jnp.concatenate([h, skips.pop()], axis=-1)
                h = ResBlock(width, self.num_groups, self.activation)(h, emb)
            if level > 0:
                b, hh, ww, c = h.shape
                h = jax.image.resize(h, (b, 2 * hh, 2 * ww, c), "nearest")
                h = nn.Conv(width, (3, 3))(h)
        h = nn.GroupNorm(num_groups=_groups(self.num_groups, h.shape[-1]))(h)
        out_channels = image_shape[-1] if self.out_channels is None else self.out_channels
        h = nn.Conv(out_channels, (3, 3), kernel_init=nn.initializers.zeros)(self.activation(h))
        return h.reshape(*batch_shape, *image_shape[:-1], out_channels)


@register_module
class FlatImageField(nn.Module):
    """A UNet on flattened images: ``x: (batch, H*W*C)``, ``t`` -> ``(batch, H*W*C)``.

    For trainers that take vectors (:func:`~numpyro_hgf.train.fit_hsm`): the input is reshaped
    to ``(batch, *image_shape)``, passed through ``network`` and flattened back.
    """

    network: nn.Module
    image_shape: Sequence[int]

    def __post_init__(self):
        check_instance("network", self.network, nn.Module, "a flax.linen module (e.g. a UNet)")
        shape = check_event_shape_arg("image_shape", self.image_shape)
        object.__setattr__(self, "image_shape", shape)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, t=None):
        shape = tuple(self.image_shape)
        if x.shape[-1] != math.prod(shape):
            raise ValueError(
                f"x: expected flattened images of {math.prod(shape)} values {shape}, "
                f"got {_describe(x)}"
            )
        out = self.network(x.reshape(*x.shape[:-1], *shape), t)
        return out.reshape(*x.shape[:-1], -1)
