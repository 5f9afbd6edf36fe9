"""Affine coupling layer (RealNVP; Dinh, Sohl-Dickstein & Bengio 2017, eq. 4-6).

``x: (..., dim)`` is split into a kept half ``x_k`` and a transformed half ``x_t``
(:func:`~numpyro_hgf.flows.base.coupling_split`; the ``swap`` flag alternates which half
between layers).  A conditioner MLP on ``x_k`` gives a shift ``m`` and a raw log-scale
``s_raw`` for every transformed coordinate::

    y_k = x_k,   y_t = x_t * exp(s) + m,   s = B tanh(s_raw / B)

The soft clamp to ``(-B, B)`` (``log_scale_bound``) keeps Jacobians bounded.
``log|det J| = sum(s)``; the inverse is ``x_t = (y_t - m) exp(-s)`` (one pass each way).
"""

from __future__ import annotations

import jax.numpy as jnp

from numpyro_hgf._checks import (
    check_flag,
    check_hidden_sizes,
    check_positive_float,
    check_positive_int,
)
from numpyro_hgf.flows.base import (
    NetworkTransform,
    coupling_merge,
    coupling_sizes,
    coupling_split,
    soft_clamp,
)
from numpyro_hgf.nn import MLP

__all__ = ["AffineCouplingTransform", "affine_coupling_forward", "check_coupling_dim"]


def check_coupling_dim(dim) -> int:
    """Couplings split the event into two non-empty halves: ``dim >= 2``."""
    dim = check_positive_int("event_dim", dim)
    if dim < 2:
        raise ValueError(
            "event_dim: expected at least 2 dimensions for a coupling flow (it splits the "
            f"event into two halves), got {dim}; use 'maf', 'planar' or 'radial' in 1D"
        )
    return dim


def affine_coupling_forward(x_t, shift, log_scale):
    """``y_t = x_t exp(log_scale) + shift`` and ``logdet = sum(log_scale, -1)``.

    Shapes: ``x_t, shift, log_scale: (..., n)`` -> ``((..., n), (...))``.
    """
    return x_t * jnp.exp(log_scale) + shift, jnp.sum(log_scale, axis=-1)


class AffineCouplingTransform(NetworkTransform):
    """RealNVP affine coupling on ``(..., dim)``.

    Args:
        module: an :class:`~numpyro_hgf.nn.MLP` mapping ``(..., n_kept)`` to
            ``(..., 2 * n_transformed)`` (shift, raw log-scale).
        params: its inner params.
        dim: event size (``>= 2``).
        swap: ``False`` keeps ``x[..., :dim // 2]`` and transforms the rest; ``True`` the
            reverse.
        log_scale_bound: ``B`` of the soft clamp ``s = B tanh(s_raw / B)``.
    """

    static_fields = ("dim", "swap", "log_scale_bound")

    def __init__(self, module, params, *, dim: int, swap: bool = False, log_scale_bound=3.0):
        super().__init__(module, params)
        self.dim = check_coupling_dim(dim)
        self.swap = check_flag("swap", swap)
        self.log_scale_bound = check_positive_float("log_scale_bound", log_scale_bound)
        n_t = coupling_sizes(self.dim, self.swap)[1]
        out_dim = getattr(module, "out_dim", None)
        if out_dim is not None and out_dim != 2 * n_t:
            raise ValueError(
                f"module: expected a conditioner with out_dim {2 * n_t} (shift and log-scale "
                f"for {n_t} coordinates), got out_dim {out_dim}"
            )

    @classmethod
    def create(
        cls, key, dim: int, hidden=(64, 64), swap: bool = False, log_scale_bound=3.0
    ) -> AffineCouplingTransform:
        """A layer with a fresh zero-output MLP conditioner (identity at initialisation)."""
        dim = check_coupling_dim(dim)
        hidden = check_hidden_sizes("hidden", hidden)
        swap = check_flag("swap", swap)
        log_scale_bound = check_positive_float("log_scale_bound", log_scale_bound)
        n_kept, n_t = coupling_sizes(dim, swap)
        module = MLP(hidden, 2 * n_t, zero_init_output=True)
        params = cls.init_params(module, key, jnp.zeros((n_kept,)))
        return cls(module, params, dim=dim, swap=swap, log_scale_bound=log_scale_bound)

    def init_args(self) -> tuple:
        return (jnp.zeros((coupling_sizes(self.dim, self.swap)[0],)),)

    def _shift_log_scale(self, kept):
        out = self.apply(kept)
        n_t = out.shape[-1] // 2
        return out[..., :n_t], soft_clamp(out[..., n_t:], self.log_scale_bound)

    def __call__(self, x):
        return self.call_with_intermediates(x)[0]

    def call_with_intermediates(self, x):
        kept, x_t = coupling_split(x, self.dim, self.swap)
        shift, log_scale = self._shift_log_scale(kept)
        y_t, logdet = affine_coupling_forward(x_t, shift, log_scale)
        return coupling_merge(kept, y_t, self.swap), logdet

    def _inverse(self, y):
        kept, y_t = coupling_split(y, self.dim, self.swap)
        shift, log_scale = self._shift_log_scale(kept)
        return coupling_merge(kept, (y_t - shift) * jnp.exp(-log_scale), self.swap)

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        if intermediates is not None:
            return intermediates
        kept, _ = coupling_split(x, self.dim, self.swap)
        return jnp.sum(self._shift_log_scale(kept)[1], axis=-1)
