"""Fixed changes of coordinates between dequantized pixels and a model's space.

Dequantized pixels live in a box, and many pixels sit at its walls (most digit pixels are 0):
a smooth density model (an ODE flow, a diffusion prior) pays for every hard wall it has to
draw.  :func:`logit_coordinates` returns the NumPyro bijection ``z -> x`` of Dinh et al.
(2017, "Density estimation using Real NVP", Sec. 4.1), fitted to training data::

    x = (sigmoid(m + s z) - a) / (1 - 2 a),     z = (logit(a + (1 - 2 a) x) - m) / s,

elementwise, with ``m, s`` the per-pixel mean and standard deviation of the training logits.
The walls of ``[0, 1)`` move to ``logit(a)`` and ``logit(1 - a)``, where the pushed-forward
density is ``O(a)``: they become smooth tails.  A model fitted to ``z`` is a density on ``x``
by ``numpyro.distributions.TransformedDistribution(model, transform)``, with the change of
variables ``log p_x(x) = log p_z(z) - sum log|dx/dz|`` (the induced density puts mass at most
one on ``[0, 1)``, so the dequantization bound of
:func:`numpyro_hgf.metrics.bits_per_dim` with ``interval=(0, 1)`` stays a bound).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from numpyro.distributions import transforms as T

from numpyro_hgf._checks import _describe, check_finite, is_concrete

__all__ = ["logit_coordinates"]


def logit_coordinates(data01, alpha: float = 1e-3) -> T.Transform:
    """The bijection ``z -> x`` from standardised logit coordinates to ``x`` in ``[0, 1)``.

    Args:
        data01: training data in ``[0, 1)``, shape ``(n, *event)`` (e.g. dequantized pixels
            ``(raw + u) / L``); the per-coordinate mean and standard deviation of its
            logits standardise ``z``.
        alpha: the margin ``a`` in ``(0, 1/2)``; smaller keeps less of a wall at ``x = 0``
            (the density there is ``O(a)`` relative to the cell) at the price of longer
            tails in ``z``.

    Returns:
        A ``numpyro`` ``ComposeTransform`` (``AffineTransform(m, s)``,
        ``SigmoidTransform()``, ``AffineTransform(-a / (1 - 2a), 1 / (1 - 2a))``): its
        ``inv`` maps data to ``z`` and ``log_abs_det_jacobian(z, x)`` is elementwise.

    Raises:
        ValueError: ``alpha`` outside ``(0, 1/2)``; data outside ``[0, 1)``; fewer than
            two rows; a coordinate with constant logits (zero spread).
        TypeError: ``data01`` not a numeric array.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, int | float | np.floating):
        raise TypeError(f"alpha: expected a number in (0, 1/2), got {_describe(alpha)}")
    alpha = float(alpha)
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha: expected a number in (0, 1/2), got {alpha}")
    # the dtype is read before JAX sees the data: strings and objects fail in jnp.asarray
    x = data01 if hasattr(data01, "dtype") else np.asarray(data01)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"data01: expected a floating array in [0, 1), got {_describe(x)}")
    x = jnp.asarray(x)
    check_finite("data01", x)
    if x.ndim < 1 or x.shape[0] < 2:
        raise ValueError(f"data01: expected at least two rows (n, *event), got shape {x.shape}")
    if x.ndim > 1 and min(x.shape[1:]) < 1:
        raise ValueError(f"data01: expected a non-empty event shape, got shape {x.shape}")
    if is_concrete(x) and (float(x.min()) < 0.0 or float(x.max()) >= 1.0):
        raise ValueError(
            f"data01: expected values in [0, 1) (dequantized (raw + u) / L), got the range "
            f"[{float(x.min()):.4g}, {float(x.max()):.4g}]"
        )
    y = alpha + (1.0 - 2.0 * alpha) * x
    logits = jnp.log(y) - jnp.log1p(-y)
    mean, std = logits.mean(0), logits.std(0)
    if is_concrete(std) and float(std.min()) <= 0.0:
        raise ValueError(
            "data01: a coordinate has constant values; its logits have no spread to "
            "standardise by (dequantize the data first)"
        )
    return T.ComposeTransform(
        [
            T.AffineTransform(mean, std),
            T.SigmoidTransform(),
            T.AffineTransform(-alpha / (1.0 - 2.0 * alpha), 1.0 / (1.0 - 2.0 * alpha)),
        ]
    )
