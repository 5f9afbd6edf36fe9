"""scikit-learn's bundled 8x8 handwritten digits with a fixed train/test split, and uniform
dequantization of integer grey levels for density models."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks import (
    check_choice,
    check_finite,
    check_interval,
    check_key,
    check_positive_int,
    describe,
    is_concrete,
)

__all__ = ["DIGITS_NUM_LEVELS", "Digits", "digits", "dequantize"]

#: Grey levels of the 8x8 digits: integers 0..16, i.e. 17 levels.
DIGITS_NUM_LEVELS = 17


class Digits(NamedTuple):
    """8x8 handwritten digits.

    Attributes:
      images: ``(n, 8, 8)`` float32 -- grey levels 0..16 (``raw``), in ``[-1, 1]``
        (``scaled``: ``2 raw / 16 - 1``) or in ``{0, 1}`` (``binary``: ``raw > 8``).
      labels: ``(n,)`` int32 digit classes 0..9.
    """

    images: jax.Array
    labels: jax.Array


@functools.lru_cache(maxsize=1)
def _digits_numpy() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()  # ships inside the scikit-learn wheel
    images = np.asarray(bunch.images, np.float32)  # (1797, 8, 8), integers 0..16
    labels = np.asarray(bunch.target, np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(images, labels, test_size=0.2, random_state=0)
    out = {"train": (x_tr, y_tr), "test": (x_te, y_te), "both": (images, labels)}
    for arr in (a for pair in out.values() for a in pair):
        arr.setflags(write=False)
    return out


def digits(split: str = "train", form: str = "scaled") -> Digits:
    """scikit-learn's bundled 8x8 handwritten digits (``sklearn.datasets.load_digits``).

    The split is ``train_test_split(test_size=0.2, random_state=0)``: 1,437 training and 360
    test images; ``"both"`` gives all 1,797 in scikit-learn's original order.

    Args:
      split: ``"train"``, ``"test"`` or ``"both"``.
      form: ``"scaled"`` (``[-1, 1]``, ``2 raw / 16 - 1``), ``"raw"`` (grey levels 0..16 as
        float32; :data:`DIGITS_NUM_LEVELS` = 17 levels) or ``"binary"`` (``raw > 8`` as 0./1.).

    Returns:
      :class:`Digits` with ``images`` ``(n, 8, 8)`` float32 and ``labels`` ``(n,)`` int32.

    For continuous density models on the discrete grey levels use :func:`dequantize` and report
    :func:`numpyro_hgf.metrics.bits_per_dim` with ``num_levels=17``.
    """
    check_choice("split", split, ("train", "test", "both"))
    check_choice("form", form, ("scaled", "raw", "binary"))
    raw, labels = _digits_numpy()[split]
    if form == "raw":
        images = raw
    elif form == "scaled":
        images = raw * np.float32(2.0 / 16.0) - np.float32(1.0)
    else:
        images = (raw > 8).astype(np.float32)
    return Digits(jnp.asarray(images, jnp.float32), jnp.asarray(labels, jnp.int32))


def dequantize(key, raw_levels, num_levels: int = DIGITS_NUM_LEVELS, interval=(0.0, 1.0)):
    """Uniform dequantization of integer levels into continuous data.

    ``x = low + (high - low) (raw + u) / num_levels`` with ``u ~ U[0, 1)`` i.i.d. per entry, so
    ``x`` lies in ``[low, high)``; the default ``interval=(0, 1)`` gives ``(raw + u) / L``, and
    ``interval=(-1, 1)`` gives ``2 (raw + u) / L - 1``.

    Log-likelihood correction.  Each level ``k`` owns the cell ``[k, k+1) * scale + low`` of
    width ``scale = (high - low) / num_levels`` in ``x``-space, so for any continuous density
    ``p`` on ``x`` (Jensen, Theis et al. 2016)::

        log P(raw) >= E_u[log p(x)] + D log(scale),     D = number of dimensions,

    and the bits/dim of the discrete data is bounded by
    ``-(E_u[log p(x)] + D log scale) / (D log 2)`` -- what
    :func:`numpyro_hgf.metrics.bits_per_dim` computes with the same ``num_levels`` and
    ``interval``.  Example: the uniform density on ``[-1, 1]^D`` has ``log p = -D log 2``; with
    17 levels its bits/dim is ``log2(17) = 4.09``.

    Args:
      key: a ``jax.random`` key.
      raw_levels: array of integer levels in ``0 .. num_levels - 1`` (any shape, any numeric
        dtype), e.g. ``digits(form="raw").images``.
      num_levels: number of discrete levels ``L`` (17 for the digits).
      interval: ``(low, high)`` of the continuous data.

    Returns:
      float32 array of the shape of ``raw_levels``.
    """
    key = check_key("key", key)
    num_levels = check_positive_int("num_levels", num_levels)
    low, high = check_interval("interval", interval)
    raw = jnp.asarray(raw_levels)
    check_finite("raw_levels", raw)
    if not np.issubdtype(raw.dtype, np.number) or raw.dtype == jnp.bool_:
        raise TypeError(f"raw_levels: expected a numeric array of levels, got {describe(raw)}")
    if is_concrete(raw) and raw.size:
        arr = np.asarray(raw)
        integral = bool(np.all(arr == np.round(arr)))
        if not integral or arr.min() < 0 or arr.max() > num_levels - 1:
            raise ValueError(
                f"raw_levels: expected integer levels in 0..{num_levels - 1}, got "
                f"{'non-integer ' if not integral else ''}values in [{arr.min()}, {arr.max()}]"
            )
    return _dequantize(key, raw, num_levels, low, high)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _dequantize(key, raw, num_levels: int, low: float, high: float):
    u = jax.random.uniform(key, raw.shape, jnp.float32)
    scale = (high - low) / num_levels
    x = (low + scale * (raw.astype(jnp.float32) + u)).astype(jnp.float32)
    # u < 1, but the top cell can round up to ``high`` in float32: keep the half-open range
    return jnp.minimum(x, jnp.nextafter(jnp.float32(high), jnp.float32(low)))
