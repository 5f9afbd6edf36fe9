"""Checks of array arguments: finiteness, shapes, data matrices, chains, binary and spin values,
noise levels and temperature schedules.  Values are inspected only when concrete (a traced
array inside a user's ``jit`` passes); shapes always are."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks.values import describe, is_concrete

__all__ = [
    "check_finite",
    "check_event_shape",
    "check_floating",
    "check_points",
    "check_data_matrix",
    "check_data_array",
    "check_chains",
    "check_binary",
    "check_spins",
    "check_symmetric_zero_diagonal",
    "check_noise_levels",
    "check_decreasing_levels",
    "check_betas",
]


def check_finite(name: str, x) -> None:
    """Raise if a concrete array holds NaN or inf (no-op for tracers)."""
    if not is_concrete(x):
        return
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name}: expected a numeric array, got {describe(x)}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(
            f"{name}: expected finite values, got {bad} non-finite entr"
            f"{'y' if bad == 1 else 'ies'} in {describe(x)}"
        )


def check_event_shape(name: str, x, event_shape: tuple[int, ...]) -> None:
    """Raise unless the trailing dimensions of ``x`` equal ``event_shape``."""
    shape = tuple(np.shape(x))
    k = len(event_shape)
    if len(shape) < k or (k and shape[-k:] != tuple(event_shape)):
        raise ValueError(
            f"{name}: expected trailing (event) shape {tuple(event_shape)}, "
            f"got an array of shape {shape}"
        )


def check_floating(name: str, x) -> jax.Array:
    """``x`` as a JAX array of a floating dtype (``TypeError`` naming ``name`` otherwise)."""
    if not hasattr(x, "dtype"):
        x = np.asarray(x)
    if not np.issubdtype(np.dtype(x.dtype), np.floating):
        raise TypeError(f"{name}: expected a floating-point array, got {describe(x)}")
    return jnp.asarray(x)


def check_points(name: str, x) -> jax.Array:
    """A batch of points ``(batch, d)`` of a floating dtype."""
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(
            f"{name}: expected a batch of points of shape (batch, d), got {describe(x)}"
        )
    return check_floating(name, x)


def check_data_array(name: str, data, min_rows: int = 1) -> jax.Array:
    """Training data ``(n, *event_shape)``: floating, finite, a non-empty event, enough rows."""
    arr = data if hasattr(data, "dtype") else np.asarray(data)
    if np.ndim(arr) < 2:
        raise ValueError(
            f"{name}: expected an array of shape (n, *event_shape), got {describe(arr)}"
        )
    arr = check_floating(name, arr)
    if min(arr.shape[1:]) < 1:
        raise ValueError(f"{name}: expected a non-empty event shape, got {describe(arr)}")
    if arr.shape[0] < min_rows:
        raise ValueError(
            f"{name}: expected at least {min_rows} row{'s' if min_rows > 1 else ''}, "
            f"got {describe(arr)}"
        )
    check_finite(name, arr)
    return arr


def check_data_matrix(name: str, data, min_rows: int = 1) -> jax.Array:
    """Training data ``(n, d)``: :func:`check_data_array` with one event dimension."""
    if np.ndim(data) != 2:
        arr = data if hasattr(data, "dtype") else np.asarray(data)
        raise ValueError(f"{name}: expected an array of shape (n, d), got {describe(arr)}")
    return check_data_array(name, data, min_rows)


def check_chains(name: str, x0) -> jax.Array:
    """Chain states ``(num_chains, *event_shape)`` as a floating array."""
    x0 = jnp.asarray(x0)
    if x0.ndim < 1:
        raise ValueError(
            f"{name}: expected an array of shape (num_chains, *event_shape), got shape ()"
        )
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        x0 = x0.astype(jnp.result_type(float))
    return x0


def _check_levels(name: str, x, levels: tuple, what: str) -> None:
    if not is_concrete(x):
        return
    arr = np.asarray(x)
    if arr.dtype == bool and levels == (0, 1):
        return
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name}: expected a numeric array of {what}, got {describe(x)}")
    bad = ~((arr == levels[0]) | (arr == levels[1]))
    if np.any(bad):
        example = arr[bad].ravel()[:3].tolist()
        count = int(bad.sum())
        kind = "binary values in {0, 1}" if levels == (0, 1) else "spins in {-1, +1}"
        raise ValueError(
            f"{name}: expected {kind}, got {count} other entr{'y' if count == 1 else 'ies'} "
            f"(e.g. {example}) in {describe(x)}"
        )


def check_binary(name: str, x) -> None:
    """Raise a ``ValueError`` naming ``name`` unless a concrete ``x`` holds only 0s and 1s."""
    _check_levels(name, x, (0, 1), "0s and 1s")


def check_spins(name: str, x) -> None:
    """Raise a ``ValueError`` naming ``name`` unless a concrete ``x`` holds only ±1."""
    _check_levels(name, x, (-1, 1), "-1s and +1s")


def check_symmetric_zero_diagonal(name: str, W, tol: float = 1e-5) -> None:
    """A concrete square matrix that is symmetric with a zero diagonal (relative ``tol``)."""
    if not is_concrete(W):
        return
    w = np.asarray(W)
    asym = float(np.max(np.abs(w - w.T))) if w.size else 0.0
    diag = float(np.max(np.abs(np.diag(w)))) if w.size else 0.0
    scale = max(1.0, float(np.max(np.abs(w)))) if w.size else 1.0
    if asym > tol * scale or diag > tol * scale:
        raise ValueError(
            f"{name}: expected a symmetric matrix with zero diagonal, got max |W - Wᵀ| = "
            f"{asym:.3g} and max |diag W| = {diag:.3g}"
        )


def check_noise_levels(name: str, sigma):
    """A positive noise level or a 1-D sequence of them (checked when concrete)."""
    if not is_concrete(sigma):
        return sigma
    arr = np.asarray(sigma, dtype=float)
    if arr.ndim > 1 or arr.size == 0:
        raise ValueError(
            f"{name}: expected a positive number or a 1-D sequence of them, got {describe(arr)}"
        )
    if not (np.all(np.isfinite(arr)) and np.all(arr > 0)):
        raise ValueError(f"{name}: expected positive finite noise levels, got {sigma}")
    return sigma


def check_decreasing_levels(name: str, sigmas) -> jax.Array:
    """Noise levels ``sigma_1 > ... > sigma_L > 0`` as a 1-D floating array."""
    sigmas = jnp.asarray(sigmas)
    if sigmas.ndim != 1 or sigmas.shape[0] < 1:
        raise ValueError(
            f"{name}: expected a 1-d array of noise levels sigma_1 > ... > sigma_L > 0, "
            f"got shape {tuple(sigmas.shape)}"
        )
    if not jnp.issubdtype(sigmas.dtype, jnp.floating):
        sigmas = sigmas.astype(jnp.result_type(float))
    if is_concrete(sigmas):
        s = np.asarray(sigmas)
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError(f"{name}: expected positive finite noise levels, got {s.tolist()}")
        if np.any(np.diff(s) >= 0):
            raise ValueError(
                f"{name}: expected a strictly decreasing sequence sigma_1 > ... > sigma_L, "
                f"got {s.tolist()}"
            )
    return sigmas


def check_betas(name: str, betas) -> None:
    """Inverse temperatures ``0 = beta_0 <= ... <= beta_K = 1`` (at least two)."""
    if betas.ndim != 1 or betas.shape[0] < 2:
        raise ValueError(
            f"{name}: expected a 1-d array of at least 2 inverse temperatures, got shape "
            f"{tuple(betas.shape)}"
        )
    if not is_concrete(betas):
        return
    b = np.asarray(betas)
    if not np.all(np.isfinite(b)):
        raise ValueError(f"{name}: expected finite values, got non-finite entries")
    if abs(b[0]) > 1e-6 or abs(b[-1] - 1.0) > 1e-6:
        raise ValueError(
            f"{name}: expected to start at 0 and end at 1, got first={b[0]!r}, last={b[-1]!r}"
        )
    if np.any(np.diff(b) < 0):
        raise ValueError(f"{name}: expected a non-decreasing sequence, got a decreasing step")


def check_inverse_mass_matrix(name: str, m) -> None:
    """A concrete inverse mass matrix: a positive finite scalar, a ``(d,)`` diagonal of them,
    or a symmetric positive-definite ``(d, d)`` matrix (no-op for tracers)."""
    if not is_concrete(m):
        return
    arr = np.asarray(m)
    if not np.issubdtype(arr.dtype, np.number) or arr.ndim > 2:
        raise ValueError(
            f"{name}: expected a positive scalar, a (d,) diagonal or a (d, d) matrix, "
            f"got {describe(arr)}"
        )
    arr = arr.astype(float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite values, got {arr.tolist()}")
    if arr.ndim < 2:
        if np.any(arr <= 0):
            raise ValueError(
                f"{name}: expected positive entries (a mass of 0 or below never moves the "
                f"chain), got {arr.tolist()}"
            )
        return
    if arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name}: expected a square (d, d) matrix, got {describe(arr)}")
    scale = max(1.0, float(np.max(np.abs(arr))))
    if float(np.max(np.abs(arr - arr.T))) > 1e-6 * scale:
        raise ValueError(f"{name}: expected a symmetric matrix, got {arr.tolist()}")
    smallest = float(np.min(np.linalg.eigvalsh(arr)))
    if smallest <= 0:
        raise ValueError(
            f"{name}: expected a positive-definite matrix, got smallest eigenvalue {smallest:.3g}"
        )


def check_finite_tree(name: str, tree) -> None:
    """:func:`check_finite` on every floating leaf of a concrete pytree (no-op for tracers)."""
    for leaf in jax.tree.leaves(tree):
        if hasattr(leaf, "dtype") and np.issubdtype(np.dtype(leaf.dtype), np.inexact):
            check_finite(name, leaf)


def check_real_array(name: str, x, *, integers: bool = True) -> jax.Array:
    """``x`` as a JAX array of real numbers: floats (and, with ``integers``, ints and bools
    cast to the default float dtype); strings, objects and complex numbers are a
    ``TypeError`` naming ``name`` before JAX sees them."""
    arr = x if hasattr(x, "dtype") else np.asarray(x)
    dtype = np.dtype(arr.dtype)
    if np.issubdtype(dtype, np.floating):
        return jnp.asarray(arr)
    if integers and (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.bool_)):
        return jnp.asarray(arr, jnp.result_type(float))
    wanted = "real numbers (a float, int or bool array)" if integers else "a floating-point array"
    raise TypeError(f"{name}: expected {wanted}, got {describe(arr)}")
