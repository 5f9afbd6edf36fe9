"""Rational-quadratic spline coupling (Durkan, Bekasov, Murray & Papamakarios 2019,
"Neural Spline Flows", Sec. 3 and App. A).

A monotone rational-quadratic spline with ``K`` bins maps ``[-B, B]`` onto itself; outside
it is the identity (linear tails, boundary derivatives fixed to 1 so the map is C^1).
Inside bin ``k`` with knots ``(x_k, y_k)``, width ``w_k``, height ``h_k``, slope
``s_k = h_k / w_k``, knot derivatives ``d_k, d_{k+1}`` and ``xi = (x - x_k) / w_k``
(Durkan eq. 4 and 5)::

    y = y_k + h_k [s_k xi^2 + d_k xi (1 - xi)] / [s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi)]
    dy/dx = s_k^2 [d_{k+1} xi^2 + 2 s_k xi (1 - xi) + d_k (1 - xi)^2]
            / [s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi)]^2

The inverse solves the quadratic ``a xi^2 + b xi + c = 0`` of Durkan eq. 29-32 with the
root ``xi = 2c / (-b - sqrt(b^2 - 4ac))`` (no cancellation).

The coupling layer (Durkan Sec. 3.3 with RealNVP splitting) feeds the kept half to an MLP
giving ``3K - 1`` unconstrained numbers per transformed coordinate: ``K`` widths, ``K``
heights (softmax, with minimum sizes) and ``K - 1`` interior derivatives (softplus).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from numpyro_hgf._checks import (
    check_flag,
    check_hidden_sizes,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    check_positive_scalar,
)
from numpyro_hgf.flows.base import NetworkTransform, coupling_merge, coupling_sizes, coupling_split
from numpyro_hgf.flows.coupling import check_coupling_dim
from numpyro_hgf.nn import MLP

__all__ = [
    "SplineCouplingTransform",
    "rational_quadratic_spline",
    "spline_params",
]

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3


def spline_params(
    raw, min_bin_width=MIN_BIN_WIDTH, min_bin_height=MIN_BIN_HEIGHT, min_derivative=MIN_DERIVATIVE
):
    """Constrain raw conditioner outputs ``(..., 3K - 1)`` into spline parameters.

    Returns:
        ``widths (..., K)`` and ``heights (..., K)``: positive fractions of the interval
        summing to 1 (each ``>= min_bin_*``); ``derivatives (..., K + 1)``: positive knot
        derivatives, 1 at both boundary knots.  All-zero ``raw`` gives the identity spline.
    """
    num_bins = (raw.shape[-1] + 1) // 3
    if 3 * num_bins - 1 != raw.shape[-1]:
        raise ValueError(f"raw: expected a last axis of size 3K-1, got {raw.shape[-1]}")
    for name, value in (("min_bin_width", min_bin_width), ("min_bin_height", min_bin_height)):
        if check_nonnegative_float(name, value) * num_bins > 1.0:
            raise ValueError(
                f"{name}: expected at most 1 / num_bins = {1.0 / num_bins:.4g} (the "
                f"{num_bins} bins share the interval), got {value}"
            )
    check_nonnegative_float("min_derivative", min_derivative)
    if min_derivative >= 1.0:
        raise ValueError(f"min_derivative: expected a value in [0, 1), got {min_derivative}")
    w, h, d = raw[..., :num_bins], raw[..., num_bins : 2 * num_bins], raw[..., 2 * num_bins :]
    widths = min_bin_width + (1.0 - min_bin_width * num_bins) * jax.nn.softmax(w, axis=-1)
    heights = min_bin_height + (1.0 - min_bin_height * num_bins) * jax.nn.softmax(h, axis=-1)
    shift = math.log(math.expm1(1.0 - min_derivative))  # softplus(shift) + min_d == 1
    inner = min_derivative + jax.nn.softplus(d + shift)
    ones = jnp.ones(raw.shape[:-1] + (1,), raw.dtype)
    return widths, heights, jnp.concatenate([ones, inner, ones], axis=-1)


def _knots(fractions, bound):
    """Bin fractions ``(..., K)`` -> knot positions ``(..., K + 1)`` from ``-B`` to ``B``."""
    cum = jnp.cumsum(fractions, axis=-1)
    cum = jnp.concatenate([jnp.zeros_like(cum[..., :1]), cum], axis=-1)
    knots = -bound + 2.0 * bound * cum
    return knots.at[..., 0].set(-bound).at[..., -1].set(bound)


def _gather(arr, idx):
    """``arr[..., idx]`` elementwise; ``arr: (..., K + 1)`` broadcasts against ``idx: (...)``."""
    shape = jnp.broadcast_shapes(idx.shape, arr.shape[:-1])
    arr = jnp.broadcast_to(arr, shape + arr.shape[-1:])
    return jnp.take_along_axis(arr, jnp.broadcast_to(idx, shape)[..., None], axis=-1)[..., 0]


def rational_quadratic_spline(x, widths, heights, derivatives, bound, inverse=False):
    """Monotone rational-quadratic spline on ``[-bound, bound]``, identity outside.

    Args:
        x: inputs ``(...)`` (outputs of the spline if ``inverse``); the batch shapes of
            ``x`` and of the spline parameters broadcast against each other.
        widths, heights: ``(..., K)`` positive bin fractions summing to 1 (see
            :func:`spline_params`); the interval is ``[-bound, bound]`` on both axes.
        derivatives: ``(..., K + 1)`` positive derivatives at the knots (1 at the ends
            for continuous linear tails).
        bound: ``B > 0``.
        inverse: evaluate the inverse map instead (Durkan eq. 29-32).

    Returns:
        ``(y, logdet)``, shapes ``(...)``: the map and ``log |dy/dx|`` of the map that was
        evaluated (for ``inverse=True`` that is ``log |dx/dy|`` of the forward spline).
    """
    check_positive_scalar("bound", bound)
    xs, ys = _knots(widths, bound), _knots(heights, bound)
    inside = (x >= -bound) & (x <= bound)
    xc = jnp.clip(x, -bound, bound)
    edges = ys if inverse else xs
    idx = jnp.sum(xc[..., None] >= edges[..., 1:-1], axis=-1)
    x_k, y_k = _gather(xs, idx), _gather(ys, idx)
    w_k = _gather(xs, idx + 1) - x_k
    h_k = _gather(ys, idx + 1) - y_k
    d_k, d_k1 = _gather(derivatives, idx), _gather(derivatives, idx + 1)
    s_k = h_k / w_k
    curv = d_k1 + d_k - 2.0 * s_k
    if inverse:
        dy = xc - y_k
        a = h_k * (s_k - d_k) + dy * curv
        b = h_k * d_k - dy * curv
        c = -s_k * dy
        disc = jnp.maximum(b**2 - 4.0 * a * c, 0.0)
        xi = jnp.clip(2.0 * c / (-b - jnp.sqrt(disc)), 0.0, 1.0)
        out = x_k + xi * w_k
    else:
        xi = (xc - x_k) / w_k
        out = y_k + h_k * (s_k * xi**2 + d_k * xi * (1.0 - xi)) / (s_k + curv * xi * (1.0 - xi))
    t = xi * (1.0 - xi)
    denom = s_k + curv * t
    num = s_k**2 * (d_k1 * xi**2 + 2.0 * s_k * t + d_k * (1.0 - xi) ** 2)
    logdet = jnp.log(num) - 2.0 * jnp.log(denom)
    if inverse:
        logdet = -logdet
    return jnp.where(inside, out, x), jnp.where(inside, logdet, 0.0)


def check_num_bins(name: str, num_bins) -> int:
    """``K`` bins of at least ``MIN_BIN_WIDTH`` each: ``1 <= K <= 1 / MIN_BIN_WIDTH``."""
    num_bins = check_positive_int(name, num_bins)
    if num_bins * MIN_BIN_WIDTH > 1.0:
        raise ValueError(
            f"{name}: expected at most {round(1 / MIN_BIN_WIDTH)} bins (each at least "
            f"{MIN_BIN_WIDTH} of the interval), got {num_bins}"
        )
    return num_bins


class SplineCouplingTransform(NetworkTransform):
    """Neural spline coupling on ``(..., dim)``: RQ splines on the transformed half.

    Args:
        module: an :class:`~numpyro_hgf.nn.MLP` mapping ``(..., n_kept)`` to
            ``(..., n_transformed * (3 * num_bins - 1))``.
        params: its inner params.
        dim: event size (``>= 2``).
        swap: which half is kept (see :func:`~numpyro_hgf.flows.base.coupling_split`).
        num_bins: ``K``.
        bound: ``B``; the spline acts on ``[-B, B]``, identity outside.
    """

    static_fields = ("dim", "swap", "num_bins", "bound")

    def __init__(self, module, params, *, dim: int, swap: bool = False, num_bins=8, bound=5.0):
        super().__init__(module, params)
        self.dim = check_coupling_dim(dim)
        self.swap = check_flag("swap", swap)
        self.num_bins = check_num_bins("num_bins", num_bins)
        self.bound = check_positive_float("bound", bound)
        n_t = coupling_sizes(self.dim, self.swap)[1]
        expected = n_t * (3 * self.num_bins - 1)
        out_dim = getattr(module, "out_dim", None)
        if out_dim is not None and out_dim != expected:
            raise ValueError(
                f"module: expected a conditioner with out_dim {expected} ({n_t} coordinates x "
                f"(3 * {self.num_bins} - 1) spline params), got out_dim {out_dim}"
            )

    @classmethod
    def create(
        cls, key, dim: int, hidden=(64, 64), swap: bool = False, num_bins=8, bound=5.0
    ) -> SplineCouplingTransform:
        """A layer with a fresh zero-output MLP conditioner (identity at initialisation)."""
        dim = check_coupling_dim(dim)
        hidden = check_hidden_sizes("hidden", hidden)
        num_bins = check_num_bins("num_bins", num_bins)
        swap = check_flag("swap", swap)
        bound = check_positive_float("bound", bound)
        n_kept, n_t = coupling_sizes(dim, swap)
        module = MLP(hidden, n_t * (3 * num_bins - 1), zero_init_output=True)
        params = cls.init_params(module, key, jnp.zeros((n_kept,)))
        return cls(module, params, dim=dim, swap=swap, num_bins=num_bins, bound=bound)

    def init_args(self) -> tuple:
        return (jnp.zeros((coupling_sizes(self.dim, self.swap)[0],)),)

    def _spline(self, kept, values, inverse):
        raw = self.apply(kept)
        raw = raw.reshape(raw.shape[:-1] + (values.shape[-1], 3 * self.num_bins - 1))
        out, logdet = rational_quadratic_spline(
            values, *spline_params(raw), self.bound, inverse=inverse
        )
        return out, jnp.sum(logdet, axis=-1)

    def __call__(self, x):
        return self.call_with_intermediates(x)[0]

    def call_with_intermediates(self, x):
        kept, x_t = coupling_split(x, self.dim, self.swap)
        y_t, logdet = self._spline(kept, x_t, inverse=False)
        return coupling_merge(kept, y_t, self.swap), logdet

    def _inverse(self, y):
        kept, y_t = coupling_split(y, self.dim, self.swap)
        return coupling_merge(kept, self._spline(kept, y_t, inverse=True)[0], self.swap)

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        if intermediates is not None:
            return intermediates
        kept, x_t = coupling_split(x, self.dim, self.swap)
        return self._spline(kept, x_t, inverse=False)[1]
