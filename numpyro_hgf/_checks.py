"""Argument checks shared by the whole package.

Every public entry point validates its input early and raises a ``ValueError`` /
``TypeError`` whose message names the argument, what was expected and what came::

    ValueError: hidden: expected a sequence of positive integers, got (64, 0)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import jax
import numpy as np

__all__ = [
    "check_choice",
    "check_event_shape",
    "check_finite",
    "check_hidden_sizes",
    "check_positive_int",
    "check_positive_float",
    "is_concrete",
]


def _describe(value) -> str:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"an array of shape {tuple(value.shape)} and dtype {value.dtype}"
    return repr(value)


def is_concrete(x) -> bool:
    """True when ``x`` holds values (not a tracer under ``jit``/``grad``/``vmap``)."""
    return not isinstance(x, jax.core.Tracer)


def check_positive_int(name: str, value) -> int:
    """Return ``value`` as an ``int`` or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}: expected a positive integer, got {_describe(value)}")
    if value <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {value}")
    return int(value)


def check_positive_float(name: str, value) -> float:
    """Return ``value`` as a ``float`` or raise naming ``name``."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a positive number, got {_describe(value)}") from None
    if not np.isfinite(out) or out <= 0:
        raise ValueError(f"{name}: expected a positive finite number, got {value}")
    return out


def check_hidden_sizes(name: str, hidden) -> tuple[int, ...]:
    """Validate a sequence of layer widths; returns it as a tuple of ints."""
    if isinstance(hidden, int | np.integer) and not isinstance(hidden, bool):
        hidden = (hidden,)
    if not isinstance(hidden, Sequence) or isinstance(hidden, str):
        raise TypeError(
            f"{name}: expected a sequence of positive integers, got {_describe(hidden)}"
        )
    bad = [
        h for h in hidden if isinstance(h, bool) or not isinstance(h, int | np.integer) or h <= 0
    ]
    if bad:
        raise ValueError(f"{name}: expected a sequence of positive integers, got {tuple(hidden)}")
    return tuple(int(h) for h in hidden)


def check_choice(name: str, value, choices: Iterable[str]) -> str:
    """Raise unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_finite(name: str, x) -> None:
    """Raise if a concrete array holds NaN or inf (no-op for tracers)."""
    if not is_concrete(x):
        return
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name}: expected a numeric array, got {_describe(x)}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(
            f"{name}: expected finite values, got {bad} non-finite entr"
            f"{'y' if bad == 1 else 'ies'} in {_describe(x)}"
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
