"""Checks of scalar arguments: numbers, counts, choices, sizes, times, keys, progress."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "describe",
    "is_concrete",
    "check_positive_int",
    "check_nonnegative_int",
    "check_positive_float",
    "check_nonnegative_float",
    "check_positive_scalar",
    "check_positive_values",
    "check_fraction",
    "check_choice",
    "check_hidden_sizes",
    "check_event_shape_arg",
    "check_interval",
    "check_time_interval",
    "check_open_time",
    "check_key",
    "as_key",
    "check_instance",
    "check_callable",
    "check_finite_float",
    "is_real_scalar",
    "check_numbers",
    "progress_enabled",
]


def describe(value) -> str:
    """``"an array of shape (2, 3) and dtype float32"`` for arrays, ``repr`` otherwise."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"an array of shape {tuple(value.shape)} and dtype {value.dtype}"
    return repr(value)


def is_concrete(x) -> bool:
    """True when ``x`` holds values (not a tracer under ``jit``/``grad``/``vmap``)."""
    return not isinstance(x, jax.core.Tracer)


def _is_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | np.integer)


def check_positive_int(name: str, value) -> int:
    """Return ``value`` as an ``int`` or raise naming ``name``."""
    if not _is_int(value):
        raise TypeError(f"{name}: expected a positive integer, got {describe(value)}")
    if value <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {value}")
    return int(value)


def check_nonnegative_int(name: str, value) -> int:
    """Return ``value`` (``>= 0``) as an ``int`` or raise naming ``name``."""
    if not _is_int(value):
        raise TypeError(f"{name}: expected a non-negative integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name}: expected a non-negative integer, got {value}")
    return int(value)


def _as_float(name: str, value, what: str) -> float:
    if isinstance(value, bool) or isinstance(value, str):
        raise TypeError(f"{name}: expected {what}, got {describe(value)}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected {what}, got {describe(value)}") from None


def check_positive_float(name: str, value) -> float:
    """Return ``value`` as a positive finite ``float`` or raise naming ``name``."""
    out = _as_float(name, value, "a positive number")
    if not np.isfinite(out) or out <= 0:
        raise ValueError(f"{name}: expected a positive finite number, got {value}")
    return out


def check_nonnegative_float(name: str, value) -> float:
    """Return ``value`` as a non-negative finite ``float`` or raise naming ``name``."""
    out = _as_float(name, value, "a non-negative number")
    if not np.isfinite(out) or out < 0:
        raise ValueError(f"{name}: expected a non-negative finite number, got {value}")
    return out


def check_positive_scalar(name: str, value):
    """A positive finite scalar when concrete (a step size); traced values pass unchanged."""
    if is_concrete(value):
        if np.ndim(value) != 0:
            raise ValueError(f"{name}: expected a positive scalar, got shape {np.shape(value)}")
        check_positive_float(name, value)
    return value


def check_positive_values(name: str, value) -> None:
    """Every entry of a concrete ``value`` is positive (scalars or arrays; tracers pass)."""
    # numpy, not jnp: inside a jit trace jnp ops on constants are staged out (tracers)
    if not is_concrete(value):
        return
    array = np.asarray(value)
    if np.issubdtype(array.dtype, np.bool_) or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name}: expected a positive number or array, got {value!r}")
    if np.iscomplexobj(array) or not bool(np.all(array > 0)):
        raise ValueError(f"{name}: expected a positive value, got {value}")


def check_fraction(name: str, value) -> float:
    """Return ``value`` as a ``float`` strictly inside ``(0, 1)`` (an acceptance rate, a
    held-out share) or raise naming ``name``; strings and bools are a ``TypeError``."""
    out = _as_float(name, value, "a number in (0, 1)")
    if not 0.0 < out < 1.0:
        raise ValueError(f"{name}: expected a number in (0, 1), got {value}")
    return out


def check_choice(name: str, value, choices: Iterable[str]) -> str:
    """Raise unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if not isinstance(value, str | int | float | type(None)) or value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_hidden_sizes(name: str, hidden) -> tuple[int, ...]:
    """Validate a sequence of layer widths; returns it as a tuple of ints."""
    if _is_int(hidden):
        hidden = (hidden,)
    if not isinstance(hidden, Sequence) or isinstance(hidden, str):
        raise TypeError(f"{name}: expected a sequence of positive integers, got {describe(hidden)}")
    if any(not _is_int(h) or h <= 0 for h in hidden):
        raise ValueError(f"{name}: expected a sequence of positive integers, got {tuple(hidden)}")
    return tuple(int(h) for h in hidden)


def check_event_shape_arg(name: str, event_shape) -> tuple[int, ...]:
    """An event shape: a positive integer or a tuple of them; returns the tuple."""
    if _is_int(event_shape):
        event_shape = (event_shape,)
    try:
        shape = tuple(event_shape)
    except TypeError:
        raise TypeError(
            f"{name}: expected a tuple of positive integers, got {event_shape!r}"
        ) from None
    if any(not _is_int(s) or s <= 0 for s in shape):
        raise ValueError(f"{name}: expected a tuple of positive integers, got {shape}")
    return tuple(int(s) for s in shape)


def check_interval(name: str, interval) -> tuple[float, float]:
    """A pair ``(low, high)`` of finite numbers with ``low < high``."""
    try:
        low, high = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a pair (low, high), got {interval!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        raise ValueError(f"{name}: expected finite low < high, got {interval!r}")
    return low, high


def check_time_interval(name: str, t, low: float, high: float, *, open_low: bool = False):
    """Every concrete entry of ``t`` lies in ``[low, high]`` (``(low, high]`` with
    ``open_low``), up to a relative ``1e-6`` at the ends; tracers pass."""
    if not is_concrete(t):
        return
    arr = np.asarray(t)
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name}: expected real times, got an array of dtype {arr.dtype}")
    if not arr.size:
        return
    tol = 1e-6 * max(1.0, abs(high))
    if open_low:
        inside = np.all(arr > low) and np.all(arr <= high + tol)
        interval = f"({low:g}, {high:g}]"
    else:
        inside = np.all(arr >= low - tol) and np.all(arr <= high + tol)
        interval = f"[{low}, {high:.6g}]"
    if not inside:
        raise ValueError(
            f"{name}: expected times in {interval}, got values in "
            f"[{arr.min():.6g}, {arr.max():.6g}]"
        )


def check_open_time(name: str, value, high: float = 1.0) -> float:
    """A time strictly inside ``(0, high)`` (the last time of a sampler or ODE solve)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name}: expected a number in (0, {high:g}), got {describe(value)}"
        ) from None
    if not 0.0 < out < high:
        raise ValueError(f"{name}: expected a time in (0, {high:g}), got {value}")
    return out


def _is_key_array(key) -> bool:
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key.shape == ()
    # a raw ``jax.random.PRNGKey``: uint32 of shape (2,)
    return hasattr(key, "dtype") and np.dtype(key.dtype) == np.uint32 and np.shape(key) == (2,)


def check_key(name: str, key):
    """A single ``jax.random`` key (``jax.random.key(0)`` or a raw ``PRNGKey``)."""
    if not _is_key_array(key):
        raise TypeError(
            f"{name}: expected a jax.random key, got {describe(key)} (make one with "
            "jax.random.key(seed))"
        )
    return key


def as_key(key):
    """``None`` -> ``PRNGKey(0)``, ``int`` -> ``PRNGKey(int)``; a key passes through."""
    if key is None:
        return jax.random.PRNGKey(0)
    if _is_int(key):
        return jax.random.PRNGKey(int(key))
    return check_key("key", key)


def check_instance(name: str, value, types, what: str):
    """Raise ``TypeError`` naming ``name`` unless ``isinstance(value, types)``."""
    if not isinstance(value, types):
        raise TypeError(f"{name}: expected {what}, got {value!r}")
    return value


_BOOLS = (bool, np.bool_)


def check_flag(name: str, value) -> bool:
    """``value`` as a Python ``bool``: ``True`` or ``False`` (NumPy bools too); ``0``, ``1``,
    ``"no"`` and the like are a ``TypeError`` naming ``name``."""
    return bool(check_instance(name, value, _BOOLS, "True or False"))


def check_progress(progress) -> bool | None:
    """A ``progress`` option: ``True``, ``False`` or ``None`` (the environment default)."""
    check_instance("progress", progress, (*_BOOLS, type(None)), "True, False or None")
    return None if progress is None else bool(progress)


def check_path(name: str, path):
    """A file or folder name: a ``str`` or an ``os.PathLike``."""
    return check_instance(name, path, (str, os.PathLike), "a str or os.PathLike file name")


def check_callable(name: str, value, what: str = "a callable"):
    """Raise ``TypeError`` naming ``name`` unless ``value`` is callable (a function, a
    network's apply, an activation)."""
    if not callable(value):
        raise TypeError(f"{name}: expected {what}, got {describe(value)}")
    return value


def check_finite_float(name: str, value) -> float:
    """Return ``value`` as a finite ``float`` (any sign) or raise naming ``name``."""
    out = _as_float(name, value, "a finite number")
    if not np.isfinite(out):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    return out


def is_real_scalar(value) -> bool:
    """A real scalar (a Python, NumPy or concrete JAX number; not a string or a bool)."""
    if isinstance(value, str | bool) or np.ndim(value) != 0:
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not np.iscomplexobj(value)


def check_numbers(name: str, values) -> tuple[float, ...]:
    """A sequence of plain numbers as floats (``TypeError`` naming ``name`` otherwise)."""
    try:
        if isinstance(values, str):
            raise TypeError
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a sequence of numbers, got {values!r}") from None


def progress_enabled(progress: bool | None) -> bool:
    """Resolve a ``progress`` argument: ``None`` follows ``NUMPYRO_HGF_PROGRESS`` (default on)."""
    if progress is not None:
        return bool(progress)
    return os.environ.get("NUMPYRO_HGF_PROGRESS", "1").lower() not in ("0", "false", "no")
