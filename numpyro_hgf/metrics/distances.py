"""Sample-based distances between distributions.

All functions are pure JAX and work under ``jax.jit`` (array shapes and the Python options are
static; the checks below only look at shapes, and at values when they are concrete).

Samples are ``(n, d)`` arrays, one row per point; ``(n, *event_shape)`` is accepted too and
flattened to ``(n, prod(event_shape))`` (e.g. ``(n, 8, 8)`` images).  The pairwise metrics
(:func:`mmd`, :func:`energy_distance`) build ``(n + m) x (n + m)`` distance matrices: memory and
time are ``O((n + m)^2 d)``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks import (
    _describe,
    check_finite,
    check_key,
    check_positive_float,
    check_positive_int,
    is_concrete,
)

__all__ = ["mmd", "sliced_wasserstein", "wasserstein2", "energy_distance"]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _as_samples(name: str, x, min_n: int = 1) -> jax.Array:
    # the dtype is read before JAX sees the array: strings and objects fail in jnp.asarray
    arr = x if hasattr(x, "dtype") else np.asarray(x)
    real = jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)
    if not real:  # complex samples would lose their imaginary part silently
        raise TypeError(f"{name}: expected a real (float or integer) array, got {_describe(arr)}")
    x = jnp.asarray(arr)
    if x.ndim < 2:
        raise ValueError(
            f"{name}: expected samples of shape (n, d) or (n, *event_shape), got {_describe(x)}"
        )
    if min(x.shape[1:]) < 1:
        raise ValueError(f"{name}: expected a non-empty event shape, got {_describe(x)}")
    if x.shape[0] < min_n:
        raise ValueError(f"{name}: expected at least {min_n} samples (rows), got {x.shape[0]}")
    check_finite(name, x)
    x = x.reshape(x.shape[0], -1)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    return x


def _sample_pair(x, y, min_n: int = 1) -> tuple[jax.Array, jax.Array]:
    x2 = _as_samples("x", x, min_n)
    y2 = _as_samples("y", y, min_n)
    if np.shape(x)[1:] != np.shape(y)[1:]:
        raise ValueError(
            f"y: expected samples with the same event shape as x, {tuple(np.shape(x)[1:])}, "
            f"got an array of shape {tuple(np.shape(y))}"
        )
    dtype = jnp.result_type(x2.dtype, y2.dtype)
    return x2.astype(dtype), y2.astype(dtype)


def _sq_dists(a: jax.Array, b: jax.Array) -> jax.Array:
    """``(n, m)`` squared Euclidean distances (inputs already centred for accuracy)."""
    aa = jnp.sum(a * a, axis=1)[:, None]
    bb = jnp.sum(b * b, axis=1)[None, :]
    return jnp.maximum(aa + bb - 2.0 * (a @ b.T), 0.0)


def _safe_sqrt(d2: jax.Array) -> jax.Array:
    """``sqrt`` with a zero (not NaN) gradient at 0."""
    pos = d2 > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, d2, 1.0)), 0.0)


def _off_diagonal_mean(k: jax.Array) -> jax.Array:
    n = k.shape[0]
    return (jnp.sum(k) - jnp.trace(k)) / (n * (n - 1))


def _pooled_blocks(x, y):
    """Squared-distance blocks ``(xx, yy, xy)`` after centring on the pooled mean."""
    c = jnp.mean(jnp.concatenate([x, y], axis=0), axis=0)
    x, y = x - c, y - c
    return _sq_dists(x, x), _sq_dists(y, y), _sq_dists(x, y)


# --------------------------------------------------------------------------------------------
# MMD
# --------------------------------------------------------------------------------------------


def mmd(x, y, bandwidth=None, *, unbiased: bool = True) -> jax.Array:
    """Squared maximum mean discrepancy with a Gaussian (RBF) kernel.

    ``k(a, b) = exp(-|a - b|^2 / (2 h^2))`` and

    ``MMD^2 = E k(X, X') + E k(Y, Y') - 2 E k(X, Y)``,  ``X, X' ~ P``, ``Y, Y' ~ Q``.

    * ``unbiased=True`` (default): the U-statistic (Gretton et al. 2012, eq. 3)
      ``1/(n(n-1)) sum_{i!=j} k(x_i, x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i, y_j)
      - 2/(nm) sum_{i,j} k(x_i, y_j)``; unbiased, so it can be slightly negative when
      ``P = Q`` (its null distribution is centred at 0 with spread ``O(1/n)``).
    * ``unbiased=False``: the V-statistic (diagonal terms included, ``1/n^2``); always
      ``>= 0``, biased upwards by ``O(1/n)``.

    Args:
      x: ``(n, d)`` samples of P (or ``(n, *event_shape)``); ``n >= 2``.
      y: ``(m, d)`` samples of Q with the same trailing shape; ``m >= 2``.
      bandwidth: kernel width ``h > 0``; ``None`` uses the median heuristic, ``h`` = median of
        the pairwise Euclidean distances ``|z_i - z_j|, i < j`` over the pooled sample
        ``z = (x, y)`` (permutation-invariant, so a permutation test with it is valid).
      unbiased: U-statistic (default) or V-statistic, see above.

    Returns:
      Scalar ``MMD^2`` estimate (same float dtype as the inputs).
    """
    x, y = _sample_pair(x, y, min_n=2)
    if bandwidth is None:
        bandwidth = jnp.zeros((), x.dtype)
        median = True
    else:
        if is_concrete(bandwidth):
            check_positive_float("bandwidth", bandwidth)
        bandwidth = jnp.asarray(bandwidth, x.dtype)
        median = False
    return _mmd(x, y, bandwidth, bool(unbiased), median)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _mmd(x, y, bandwidth, unbiased: bool, median: bool):
    dxx, dyy, dxy = _pooled_blocks(x, y)
    if median:
        n, m = x.shape[0], y.shape[0]
        pooled = jnp.block([[dxx, dxy], [dxy.T, dyy]])
        iu = np.triu_indices(n + m, k=1)
        h2 = jnp.median(pooled[iu])  # median of squared distances = (median distance)^2
        h2 = jnp.where(h2 > 0, h2, 1.0)  # all points equal: any bandwidth gives MMD = 0
    else:
        h2 = bandwidth**2
    kxx, kyy, kxy = (jnp.exp(-d / (2.0 * h2)) for d in (dxx, dyy, dxy))
    if unbiased:
        return _off_diagonal_mean(kxx) + _off_diagonal_mean(kyy) - 2.0 * jnp.mean(kxy)
    return jnp.mean(kxx) + jnp.mean(kyy) - 2.0 * jnp.mean(kxy)


# --------------------------------------------------------------------------------------------
# sliced Wasserstein
# --------------------------------------------------------------------------------------------


def _quantile_grid(n: int, m: int):
    """Merged quantile breakpoints of two empirical distributions with ``n`` and ``m`` atoms.

    Returns NumPy ``(weights, ix, iy)``: on the ``k``-th piece of ``[0, 1]`` (length
    ``weights[k]``) the two quantile functions equal ``sorted_x[ix[k]]`` and ``sorted_y[iy[k]]``.
    """
    u = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)
    u[-1] = 1.0
    w = np.diff(np.concatenate([[0.0], u]))
    mid = u - w / 2.0
    ix = np.minimum(np.floor(mid * n).astype(np.int64), n - 1)
    iy = np.minimum(np.floor(mid * m).astype(np.int64), m - 1)
    return w, ix, iy


def sliced_wasserstein(x, y, key, num_projections: int = 128, p: float = 2) -> jax.Array:
    """Sliced Wasserstein-p distance, Monte Carlo over random directions.

    ``SW_p(P, Q) = ( E_theta[ W_p^p(theta#P, theta#Q) ] )^(1/p)``, ``theta`` uniform on the unit
    sphere ``S^{d-1}``, ``theta#P`` the law of ``theta . X``.  Each 1-D ``W_p^p`` is computed
    exactly from the sorted projections as ``int_0^1 |F^-1(u) - G^-1(u)|^p du`` over the
    merged quantile grid, so ``n != m`` is handled exactly (for ``n == m`` it is
    ``mean_i |x_(i) - y_(i)|^p``).  The expectation over ``theta`` is a Monte Carlo average over
    ``num_projections`` directions drawn from ``key`` (same key, same directions).

    Closed-form check: for ``Q`` = ``P`` shifted by ``mu``, ``W_2^2(theta#P, theta#Q) =
    (theta . mu)^2`` and ``SW_2^2 = |mu|^2 / d``.

    Args:
      x: ``(n, d)`` samples of P (or ``(n, *event_shape)``).
      y: ``(m, d)`` samples of Q with the same trailing shape.
      key: ``jax.random`` key for the directions.
      num_projections: number of random directions (positive int).
      p: order ``p >= 1``.

    Returns:
      Scalar ``SW_p`` (not raised to the power ``p``).
    """
    x, y = _sample_pair(x, y, min_n=1)
    check_key("key", key)
    num_projections = check_positive_int("num_projections", num_projections)
    p = check_positive_float("p", p)
    if p < 1:
        raise ValueError(f"p: expected an order p >= 1, got {p}")
    return _sliced_wasserstein(x, y, key, num_projections, p)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _sliced_wasserstein(x, y, key, num_projections: int, p: float):
    d = x.shape[1]
    theta = jax.random.normal(key, (num_projections, d), x.dtype)
    theta = theta / jnp.linalg.norm(theta, axis=1, keepdims=True)
    px = jnp.sort(x @ theta.T, axis=0)  # (n, L)
    py = jnp.sort(y @ theta.T, axis=0)  # (m, L)
    n, m = x.shape[0], y.shape[0]
    if n == m:
        wpp = jnp.mean(jnp.abs(px - py) ** p, axis=0)
    else:
        w, ix, iy = _quantile_grid(n, m)
        diff = jnp.abs(px[ix] - py[iy])
        wpp = jnp.sum(jnp.asarray(w, x.dtype)[:, None] * diff**p, axis=0)
    return jnp.mean(wpp) ** (1.0 / p)


# --------------------------------------------------------------------------------------------
# exact Wasserstein-2 between two equal-size samples
# --------------------------------------------------------------------------------------------


def wasserstein2(x, y) -> float:
    """Exact 2-Wasserstein distance between two empirical measures of equal size.

    ``W_2(P_n, Q_n) = ( min_sigma (1/n) sum_i |x_i - y_sigma(i)|^2 )^(1/2)``: for uniform
    weights on ``n`` points each, the optimal transport plan is a permutation (Birkhoff), found
    exactly by the Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`,
    ``O(n^3)`` time, ``O(n^2)`` memory; ``n = 2000`` takes about a second).

    This runs on the host (NumPy/SciPy), not under ``jax.jit``.  Even for ``P = Q`` the value
    is positive and shrinks slowly with ``n`` (about ``n^(-1/d)``): compare models at the same
    ``n`` and report the data-vs-data value as the floor.

    Args:
      x: ``(n, d)`` samples of P (or ``(n, *event_shape)``).
      y: ``(n, d)`` samples of Q, same shape.

    Returns:
      ``W_2`` as a Python float.
    """
    from scipy.optimize import linear_sum_assignment

    x, y = _sample_pair(x, y, min_n=1)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"y: expected as many samples as x ({x.shape[0]}) for the exact assignment, "
            f"got {y.shape[0]}"
        )
    a = np.asarray(x, np.float64)
    b = np.asarray(y, np.float64)
    cost = np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2.0 * a @ b.T
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(max(cost[rows, cols].mean(), 0.0)))


# --------------------------------------------------------------------------------------------
# energy distance
# --------------------------------------------------------------------------------------------


def energy_distance(x, y, *, unbiased: bool = True) -> jax.Array:
    """Energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` (Szekely & Rizzo).

    This is the *squared* form (zero iff P = Q); ``scipy.stats.energy_distance`` returns its
    square root of the V-statistic.

    * ``unbiased=True`` (default): within-sample terms are U-statistics
      ``1/(n(n-1)) sum_{i!=j} |x_i - x_j|``; unbiased, can be slightly negative when P = Q.
    * ``unbiased=False``: V-statistic (``1/n^2``, zero diagonal included); always ``>= 0`` and
      equal to ``scipy.stats.energy_distance(x, y) ** 2`` in 1-D.

    Args:
      x: ``(n, d)`` samples of P (or ``(n, *event_shape)``); ``n >= 2``.
      y: ``(m, d)`` samples of Q with the same trailing shape; ``m >= 2``.
      unbiased: U-statistic (default) or V-statistic.

    Returns:
      Scalar estimate; Euclidean norm ``|.|`` in ``R^d``.
    """
    x, y = _sample_pair(x, y, min_n=2)
    return _energy_distance(x, y, bool(unbiased))


@functools.partial(jax.jit, static_argnums=2)
def _energy_distance(x, y, unbiased: bool):
    dxx, dyy, dxy = (_safe_sqrt(d2) for d2 in _pooled_blocks(x, y))
    if unbiased:
        within = _off_diagonal_mean(dxx) + _off_diagonal_mean(dyy)
    else:
        within = jnp.mean(dxx) + jnp.mean(dyy)
    return 2.0 * jnp.mean(dxy) - within
