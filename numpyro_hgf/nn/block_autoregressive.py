"""Block neural autoregressive network (BNAF; De Cao, Titov & Aziz 2019, UAI).

A monotone autoregressive map ``f: R^D -> R^D``: output ``y_i`` depends on ``x_{<=i}``
only and is strictly increasing in ``x_i``.  Every layer is a *block-triangular* dense map
(paper eq. 8-10): the weight ``(D a, D b)`` is cut into ``D x D`` blocks of ``a x b``;
blocks above the block diagonal are zero (no dependence on later coordinates), diagonal
blocks are ``exp(W)`` (positive) and below-diagonal blocks are free, and every output
column is weight-normalised (Salimans & Kingma 2016): ``w = exp(s) w / ||w||``.  Between
layers a *leaky* tanh ``tanh(h) + c h`` (``c = min_slope``) keeps the map onto ``R^D``
(NumPyro's ``LeakyTanh``; plain tanh would bound the image).

Besides ``y`` the network returns the log of the diagonal of its Jacobian,
``log dy_i / dx_i: (..., D)``, composed layer by layer as log-sum-exp matrix products of
the ``(a, b)`` diagonal blocks (paper eq. 12), so ``log |det J| = sum_i`` of it exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions.util import logmatmulexp

from numpyro_hgf._checks import (
    check_flag,
    check_hidden_sizes,
    check_positive_float,
    check_positive_int,
)
from numpyro_hgf.nn.config import register_module

__all__ = ["BlockAutoregressiveNet", "BlockMaskedDense", "leaky_tanh"]


def _block_masks(num_blocks: int, in_factor: int, out_factor: int):
    """``(mask_diagonal, mask_below)`` of shape ``(num_blocks * in_factor, num_blocks *
    out_factor)``: input block ``j`` feeds output block ``i`` iff ``j <= i``."""
    block = np.ones((in_factor, out_factor))
    diagonal = np.kron(np.eye(num_blocks), block)
    below = np.kron(np.triu(np.ones((num_blocks, num_blocks)), k=1), block)
    return diagonal, below


def leaky_tanh(h, log_diag, min_slope: float):
    """``tanh(h) + c h`` and its log-derivative added to the block log-Jacobian.

    ``h: (..., D * b)``; ``log_diag: (..., D, a, b)`` -> same shapes.
    """
    out = jnp.tanh(h) + min_slope * h
    log_tanh_grad = -2.0 * (h + jax.nn.softplus(-2.0 * h) - jnp.log(2.0))  # log(1 - tanh^2)
    log_grad = jnp.logaddexp(log_tanh_grad, jnp.log(min_slope))
    return out, log_diag + log_grad.reshape(log_diag.shape[:-2] + (1, log_diag.shape[-1]))


@register_module
class BlockMaskedDense(nn.Module):
    """One block-triangular, weight-normalised dense layer (BNAF eq. 8-10).

    ``__call__(h: (..., D a), log_diag: (..., D, 1, a) | None) -> (out: (..., D b),
    log_diag: (..., D, 1, b))``.
    """

    num_blocks: int
    in_factor: int
    out_factor: int

    def __post_init__(self):
        for name in ("num_blocks", "in_factor", "out_factor"):
            check_positive_int(name, getattr(self, name))
        super().__post_init__()

    @nn.compact
    def __call__(self, h, log_diag=None):
        d, a, b = self.num_blocks, self.in_factor, self.out_factor
        diagonal, below = _block_masks(d, a, b)
        weight = self.param("weight", nn.initializers.glorot_uniform(), (d * a, d * b))
        log_scale = self.param(
            "log_scale", lambda k, s: jnp.log(jax.random.uniform(k, s, minval=0.1)), (d * b,)
        )
        bound = 1.0 / np.sqrt(d * b)
        bias = self.param(
            "bias", lambda k, s: jax.random.uniform(k, s, minval=-bound, maxval=bound), (d * b,)
        )
        w = jnp.exp(weight) * diagonal + weight * below
        norm = jnp.linalg.norm(w, axis=0)
        w = jnp.exp(log_scale) * w / norm
        out = h @ w + bias
        # log of the positive diagonal blocks: log(exp(s) exp(W) / ||w||), shape (D, a, b)
        blocks = (weight.reshape(d, a, d, b)[np.arange(d), :, np.arange(d), :]).reshape(d, a, b)
        blocks = blocks + (log_scale - jnp.log(norm)).reshape(d, 1, b)
        if log_diag is None:
            log_diag = jnp.broadcast_to(blocks, h.shape[:-1] + (d, a, b))
        else:
            log_diag = logmatmulexp(log_diag, blocks)
        return out, log_diag


@register_module
class BlockAutoregressiveNet(nn.Module):
    """BNAF network on ``(..., dim)``: ``x -> (y, log dy_i/dx_i)``, both ``(..., dim)``.

    Attributes:
        dim: ``D``.
        hidden_factors: per-coordinate widths of the hidden layers (layer ``l`` has
            ``D * hidden_factors[l]`` units; NumPyro's ``AutoBNAFNormal`` uses ``(8, 8)``).
        min_slope: ``c`` of the leaky tanh (> 0; the map is onto ``R^D``).
        reverse: apply in the reversed coordinate order (``y = R f(R x)``), to alternate
            the autoregressive order between stacked layers.
    """

    dim: int
    hidden_factors: Sequence[int] = (8, 8)
    min_slope: float = 0.01
    reverse: bool = False

    def __post_init__(self):
        check_positive_int("dim", self.dim)
        factors = check_hidden_sizes("hidden_factors", self.hidden_factors)
        object.__setattr__(self, "hidden_factors", factors)
        check_positive_float("min_slope", self.min_slope)
        check_flag("reverse", self.reverse)
        super().__post_init__()

    @nn.compact
    def __call__(self, x):
        if self.reverse:
            x = x[..., ::-1]
        factors = (1, *self.hidden_factors, 1)
        h, log_diag = x, None
        for layer, (a, b) in enumerate(zip(factors[:-1], factors[1:], strict=True)):
            h, log_diag = BlockMaskedDense(self.dim, a, b, name=f"dense_{layer}")(h, log_diag)
            if layer < len(factors) - 2:
                h, log_diag = leaky_tanh(h, log_diag, self.min_slope)
        log_diag = log_diag.reshape(log_diag.shape[:-3] + (self.dim,))
        if self.reverse:
            h, log_diag = h[..., ::-1], log_diag[..., ::-1]
        return h, log_diag
