"""Learned fields as ``flax.linen`` modules.

Every generative model in the package is *a learned field + a path + an objective*
(see ``docs/architecture.md``).  This module holds the fields:

=============  =====================================================================
``MLP``        ``f(x)``: conditioner nets of flows, encoders, decoders, forces.
``TimeMLP``    ``f(x, t)``: velocities ``V(x, t)`` and scores ``s(x, t)``.
``EnergyMLP``  ``E(x)`` with scalar output: energies of EBMs.
``MADE``       masked autoregressive net: ``out[..., i, :]`` depends on ``x[..., <i]``.
``UNet``       ``f(x, t)`` on images ``(..., H, W, C)`` (:mod:`numpyro_hgf.unet`).
=============  =====================================================================

All modules are hashable dataclasses (tuples, not lists, for sizes), so they can be
static aux data of a pytree (a ``Distribution`` or ``Transform``) while their params
are data fields.  Sizes are validated at construction with a ``ValueError`` naming the
argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks import check_hidden_sizes, check_positive_int

__all__ = ["MLP", "TimeMLP", "EnergyMLP", "MADE", "sinusoidal_embedding", "made_degrees"]


def _zeros_or(default, zero: bool):
    return nn.initializers.zeros if zero else default


class MLP(nn.Module):
    """Fully connected network ``x: (..., d_in) -> (..., out_dim)``.

    Attributes:
        hidden: widths of the hidden layers, e.g. ``(64, 64)``; all must be positive.
        out_dim: width of the output layer.
        activation: non-linearity between layers (smooth by default, so that second
            derivatives used by score matching are informative).
        zero_init_output: start the output layer at zero (flows then start at identity).
    """

    hidden: Sequence[int] = (64, 64)
    out_dim: int = 1
    activation: Callable = nn.gelu
    zero_init_output: bool = False

    def __post_init__(self):
        object.__setattr__(self, "hidden", check_hidden_sizes("hidden", self.hidden))
        check_positive_int("out_dim", self.out_dim)
        super().__post_init__()

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = self.activation(nn.Dense(width)(x))
        kernel_init = _zeros_or(nn.initializers.lecun_normal(), self.zero_init_output)
        return nn.Dense(self.out_dim, kernel_init=kernel_init)(x)


def sinusoidal_embedding(t, dim: int, max_period: float = 10_000.0):
    """Sinusoidal time embedding (Vaswani et al. 2017; DDPM, Ho et al. 2020, Sec. 4).

    Args:
        t: times, shape ``(...)``; any real scale (multiply small times up first).
        dim: embedding width (even).

    Returns:
        ``(..., dim)`` array ``[cos(t w_k), sin(t w_k)]`` with
        ``w_k = max_period^(-k / (dim/2))``, ``k = 0..dim/2-1``.
    """
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half) / half)
    angles = jnp.asarray(t)[..., None] * freqs
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


class TimeMLP(nn.Module):
    """Time-conditioned field ``f(x, t)``.

    Shapes: ``x: (..., d)``, ``t: ()`` or ``(...)`` -> ``(..., out_dim)``.

    The time goes through :func:`sinusoidal_embedding` (scaled by ``time_scale`` so that
    ``t in [0, 1]`` spans many periods), a small dense layer, and is concatenated with
    ``x``.  ``out_dim`` defaults to ``x.shape[-1]`` (velocities and scores).
    """

    hidden: Sequence[int] = (128, 128)
    out_dim: int | None = None
    embed_dim: int = 32
    time_scale: float = 1000.0
    activation: Callable = nn.silu

    def __post_init__(self):
        object.__setattr__(self, "hidden", check_hidden_sizes("hidden", self.hidden))
        check_positive_int("embed_dim", self.embed_dim)
        if self.out_dim is not None:
            check_positive_int("out_dim", self.out_dim)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, t):
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:-1])
        emb = sinusoidal_embedding(t * self.time_scale, self.embed_dim)
        emb = self.activation(nn.Dense(self.embed_dim)(emb))
        h = jnp.concatenate([x, emb], axis=-1)
        out_dim = x.shape[-1] if self.out_dim is None else self.out_dim
        return MLP(self.hidden, out_dim, activation=self.activation)(h)


class EnergyMLP(nn.Module):
    """Scalar energy ``E(x)``: ``x: (..., d) -> (...)``.

    Smooth activations (softplus by default) keep ``-grad E`` and its Jacobian
    well defined, as exact and sliced score matching need.
    """

    hidden: Sequence[int] = (128, 128)
    activation: Callable = nn.softplus

    def __post_init__(self):
        object.__setattr__(self, "hidden", check_hidden_sizes("hidden", self.hidden))
        super().__post_init__()

    @nn.compact
    def __call__(self, x):
        return MLP(self.hidden, 1, activation=self.activation)(x)[..., 0]


def made_degrees(dim: int, hidden: Sequence[int], order: Sequence[int] | None = None):
    """Degrees of the MADE units (Germain et al. 2015, Sec. 4).

    Returns ``(input_degrees, [hidden_degrees...])``: input ``i`` has degree
    ``order[i] + 1`` in ``1..dim``; hidden units cycle through ``1..dim-1`` so every
    degree is represented.  A hidden unit of degree ``m`` may see inputs of degree
    ``<= m``; output ``i`` may see hidden units of degree ``< input_degrees[i]``.
    """
    order = np.arange(dim) if order is None else np.asarray(order)
    if sorted(order.tolist()) != list(range(dim)):
        raise ValueError(f"order: expected a permutation of 0..{dim - 1}, got {tuple(order)}")
    inputs = order + 1
    span = max(dim - 1, 1)
    hiddens = [np.arange(width) % span + 1 for width in hidden]
    return inputs, hiddens


class _MaskedDense(nn.Module):
    features: int
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x, mask):
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return x @ (kernel * mask) + bias


class MADE(nn.Module):
    """Masked autoencoder for distribution estimation (Germain et al. 2015).

    ``x: (..., dim)`` -> ``(..., dim, num_params)`` where ``out[..., i, :]`` depends only
    on the inputs that come before ``i`` in ``order`` (so ``d out_i / d x_i = 0``: the
    Jacobian of an autoregressive transform built on it is triangular).  An optional
    ``context: (..., context_dim)`` feeds every hidden unit without a mask (conditional
    flows, amortized guides).

    Attributes:
        dim: number of inputs.
        num_params: outputs per input (2 for shift/log-scale, ``3K-1`` for splines).
        hidden: hidden widths; each should be ``>= dim - 1`` so all degrees appear.
        order: autoregressive order (a permutation of ``0..dim-1``); natural if ``None``.
        zero_init_output: start the output layer at zero (identity transform).
    """

    dim: int
    num_params: int = 2
    hidden: Sequence[int] = (64, 64)
    order: Sequence[int] | None = None
    activation: Callable = nn.gelu
    zero_init_output: bool = True

    def __post_init__(self):
        check_positive_int("dim", self.dim)
        check_positive_int("num_params", self.num_params)
        object.__setattr__(self, "hidden", check_hidden_sizes("hidden", self.hidden))
        if self.order is not None:
            object.__setattr__(self, "order", tuple(int(i) for i in self.order))
        super().__post_init__()

    @nn.compact
    def __call__(self, x, context=None):
        inputs, hiddens = made_degrees(self.dim, self.hidden, self.order)
        h, prev = x, inputs
        for layer, degrees in enumerate(hiddens):
            mask = (degrees[None, :] >= prev[:, None]).astype(x.dtype)
            h = _MaskedDense(len(degrees))(h, mask)
            if layer == 0 and context is not None:
                h = h + nn.Dense(len(degrees), use_bias=False)(context)
            h = self.activation(h)
            prev = degrees
        out_degrees = np.repeat(inputs, self.num_params)
        mask = (out_degrees[None, :] > prev[:, None]).astype(x.dtype)
        init = _zeros_or(nn.initializers.lecun_normal(), self.zero_init_output)
        out = _MaskedDense(self.dim * self.num_params, kernel_init=init)(h, mask)
        return out.reshape(*out.shape[:-1], self.dim, self.num_params)


# -- (de)serialising module definitions (for nh.save / nh.load) ---------------------------
ACTIVATIONS = {
    "gelu": nn.gelu,
    "silu": nn.silu,
    "softplus": nn.softplus,
    "tanh": nn.tanh,
    "relu": nn.relu,
    "elu": nn.elu,
}
MODULES: dict[str, type] = {"MLP": MLP, "TimeMLP": TimeMLP, "EnergyMLP": EnergyMLP, "MADE": MADE}


def register_module(cls):
    """Make a ``flax.linen`` module class (de)serialisable by :func:`module_config`."""
    MODULES[cls.__name__] = cls
    return cls


def module_config(module: nn.Module) -> dict:
    """JSON description of a registered module: its class name and dataclass fields.

    Activation functions are stored by name (see ``ACTIVATIONS``).
    """
    import dataclasses

    name = type(module).__name__
    if MODULES.get(name) is not type(module):
        raise TypeError(
            f"module: expected one of the registered modules {sorted(MODULES)}, got {name}"
        )
    fields = {}
    for field in dataclasses.fields(module):
        if field.name in ("parent", "name") or not field.init:
            continue
        value = getattr(module, field.name)
        if callable(value):
            names = [k for k, fn in ACTIVATIONS.items() if fn is value]
            if not names:
                raise TypeError(
                    f"{field.name}: expected an activation in {sorted(ACTIVATIONS)}, got {value}"
                )
            value = {"activation": names[0]}
        elif isinstance(value, tuple):
            value = list(value)
        fields[field.name] = value
    return {"class": name, "fields": fields}


def module_from_config(config: dict) -> nn.Module:
    """Inverse of :func:`module_config`."""
    name = config.get("class")
    if name not in MODULES:
        raise ValueError(f"config: expected a module class in {sorted(MODULES)}, got {name!r}")
    fields = {}
    for key, value in config.get("fields", {}).items():
        if isinstance(value, dict) and set(value) == {"activation"}:
            value = ACTIVATIONS[value["activation"]]
        elif isinstance(value, list):
            value = tuple(value)
        fields[key] = value
    return MODULES[name](**fields)


# -- the image field lives in its own file (one concept per file) ---------------------------
from numpyro_hgf.unet import UNet  # noqa: E402

register_module(UNet)
__all__ += ["UNet"]
