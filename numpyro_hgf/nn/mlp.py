"""Fully connected fields: ``MLP``, ``TimeMLP``, ``EnergyMLP`` and ``VelocityMLP``.

=================  ==================================================================
``MLP``            ``f(x)``: conditioner nets of flows, encoders, decoders, forces.
``TimeMLP``        ``f(x, t)``: velocities ``V(x, t)`` and scores ``s(x, t)``.
``EnergyMLP``      ``E(x)`` with scalar output: energies of EBMs.
``VelocityMLP``    ``t * TimeMLP(x, t)``: the velocity player of Hamiltonian score matching.
=================  ==================================================================

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

from numpyro_hgf._checks import (
    check_callable,
    check_hidden_sizes,
    check_positive_float,
    check_positive_int,
)
from numpyro_hgf.nn.config import register_module

__all__ = ["MLP", "TimeMLP", "EnergyMLP", "VelocityMLP", "sinusoidal_embedding"]


def _zeros_or(default, zero: bool):
    return nn.initializers.zeros if zero else default


def check_activation(activation) -> None:
    """An activation must be a function (``nn.gelu``), not its name (``"gelu"``)."""
    check_callable("activation", activation, "a callable non-linearity (e.g. flax.linen.gelu)")


def _check_time_field(embed_dim, time_scale_name: str, time_scale) -> None:
    """The time embedding of :class:`TimeMLP` / :class:`VelocityMLP`: at least one frequency
    (``embed_dim >= 2``) and a positive finite time scale."""
    embed_dim = check_positive_int("embed_dim", embed_dim)
    if embed_dim < 2:
        raise ValueError(
            f"embed_dim: expected an integer >= 2 (the sinusoidal embedding has embed_dim // 2 "
            f"frequencies; with 1 the time is ignored), got {embed_dim}"
        )
    check_positive_float(time_scale_name, time_scale)


@register_module
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
        check_activation(self.activation)
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
    dim = check_positive_int("dim", dim)
    if dim % 2:
        raise ValueError(f"dim: expected an even embedding width ([cos, sin] pairs), got {dim}")
    check_positive_float("max_period", max_period)
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half) / half)
    angles = jnp.asarray(t)[..., None] * freqs
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


@register_module
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
        _check_time_field(self.embed_dim, "time_scale", self.time_scale)
        if self.out_dim is not None:
            check_positive_int("out_dim", self.out_dim)
        check_activation(self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, t):
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:-1])
        # an odd embed_dim has embed_dim // 2 frequencies (the even width below it)
        emb = sinusoidal_embedding(t * self.time_scale, self.embed_dim - self.embed_dim % 2)
        emb = self.activation(nn.Dense(self.embed_dim)(emb))
        h = jnp.concatenate([x, emb], axis=-1)
        out_dim = x.shape[-1] if self.out_dim is None else self.out_dim
        return MLP(self.hidden, out_dim, activation=self.activation)(h)


@register_module
class EnergyMLP(nn.Module):
    """Scalar energy ``E(x)``: ``x: (..., d) -> (...)``.

    Smooth activations (softplus by default) keep ``-grad E`` and its Jacobian
    well defined, as exact and sliced score matching need.
    """

    hidden: Sequence[int] = (128, 128)
    activation: Callable = nn.softplus

    def __post_init__(self):
        object.__setattr__(self, "hidden", check_hidden_sizes("hidden", self.hidden))
        check_activation(self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, x):
        return MLP(self.hidden, 1, activation=self.activation)(x)[..., 0]


@register_module
class VelocityMLP(nn.Module):
    """Velocity predictor ``V(x, t) = t * TimeMLP(x, t)`` for Hamiltonian score matching.

    With ``v0 ~ N(0, I)`` independent of ``x0`` the optimal predictor vanishes at ``t = 0``
    (``E[v_0 | x_0] = 0``) and grows like ``t (F - grad log pi)`` for small ``t``; the factor
    ``t`` builds that in, so the network learns the O(1) part ``U ~ F - grad log pi`` and
    starts near the game's fixed point.  Shapes as :class:`~numpyro_hgf.nn.TimeMLP`:
    ``x: (..., d)``, ``t: ()`` or ``(...)`` -> ``(..., d)``.

    Attributes:
        hidden, embed_dim, activation: as :class:`~numpyro_hgf.nn.TimeMLP`.
        horizon: the largest time ``T`` (scales the time embedding to ``[0, T]``).
    """

    hidden: Sequence[int] = (128, 128)
    horizon: float = 1.0
    embed_dim: int = 32
    activation: Callable = nn.silu

    def __post_init__(self):
        object.__setattr__(self, "hidden", check_hidden_sizes("hidden", self.hidden))
        _check_time_field(self.embed_dim, "horizon", self.horizon)
        check_activation(self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, t):
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:-1])
        net = TimeMLP(
            hidden=self.hidden,
            embed_dim=self.embed_dim,
            time_scale=1000.0 / self.horizon,
            activation=self.activation,
        )
        return t[..., None] * net(x, t)
