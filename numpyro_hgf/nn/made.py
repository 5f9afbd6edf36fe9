"""``MADE``: the masked autoregressive network of MAF layers and amortized flow guides."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import numpy as np

from numpyro_hgf._checks import check_hidden_sizes, check_positive_int
from numpyro_hgf.nn.config import register_module
from numpyro_hgf.nn.mlp import _zeros_or, check_activation

__all__ = ["MADE", "made_degrees"]


def made_degrees(dim: int, hidden: Sequence[int], order: Sequence[int] | None = None):
    """Degrees of the MADE units (Germain et al. 2015, Sec. 4).

    Returns ``(input_degrees, [hidden_degrees...])``: input ``i`` has degree
    ``order[i] + 1`` in ``1..dim``; hidden units cycle through ``1..dim-1`` so every
    degree is represented.  A hidden unit of degree ``m`` may see inputs of degree
    ``<= m``; output ``i`` may see hidden units of degree ``< input_degrees[i]``.
    """
    dim = check_positive_int("dim", dim)
    order = np.arange(dim) if order is None else np.asarray(_check_order(order, dim))
    inputs = order + 1
    span = max(dim - 1, 1)
    hiddens = [np.arange(width) % span + 1 for width in hidden]
    return inputs, hiddens


def _check_order(order, dim: int) -> tuple[int, ...]:
    """``order`` as a tuple of ints, a permutation of ``0..dim-1`` (``TypeError`` for
    non-integer entries, ``ValueError`` for another set)."""
    expected = f"order: expected a permutation of 0..{dim - 1}"
    try:
        arr = np.asarray(order)
    except (TypeError, ValueError):
        raise TypeError(f"{expected}, got {order!r}") from None
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{expected}, got {order!r}")
    entries = tuple(int(i) for i in arr)
    if sorted(entries) != list(range(dim)):
        raise ValueError(f"{expected}, got {entries}")
    return entries


class _MaskedDense(nn.Module):
    features: int
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x, mask):
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return x @ (kernel * mask) + bias


@register_module
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
            object.__setattr__(self, "order", _check_order(self.order, self.dim))
        check_activation(self.activation)
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
