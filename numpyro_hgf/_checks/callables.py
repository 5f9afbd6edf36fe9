"""Checks of function arguments: a user's score, log density or network is called abstractly
(``jax.eval_shape``, nothing runs) and its output shape is checked against what the caller
needs, so a mismatch names the argument instead of failing deep inside a ``lax.scan``."""

from __future__ import annotations

from collections.abc import Callable

import flax.errors
import jax
import jax.numpy as jnp

from numpyro_hgf._checks.values import describe

__all__ = [
    "describe_output",
    "check_output_shape",
    "call_field",
    "check_fits",
    "check_field_fits",
]


def describe_output(struct) -> str:
    """``"an output of shape (3,)"`` (or of its type when it has no shape)."""
    if hasattr(struct, "shape"):
        return f"an output of shape {tuple(struct.shape)}"
    return f"an output of type {type(struct).__name__}"


def check_output_shape(name: str, fn: Callable, args: tuple, expected: tuple, what: str) -> None:
    """``fn(*args)`` (evaluated abstractly) must have shape ``expected``.

    ``what`` finishes the message, e.g. ``"(the shape of x0)"``.
    """
    if not callable(fn):
        raise TypeError(f"{name}: expected a callable, got {type(fn).__name__}")
    out = jax.eval_shape(fn, *args)
    if not hasattr(out, "shape") or tuple(out.shape) != tuple(expected):
        raise ValueError(
            f"{name}: expected an output of shape {tuple(expected)} {what}, "
            f"got {describe_output(out)}"
        )


def call_field(name: str, fn: Callable, params, x, *cond, arg: str = "x", got: str | None = None):
    """Call ``fn(params, x, *cond)`` and check that it returns ``x``'s shape.

    A network whose params were initialised for another input size fails inside flax or
    ``jnp.dot``; that is re-raised as a ``ValueError`` naming ``arg`` (the data; ``got``
    describes it, default ``x``) and quoting the first line of the network's message.
    """
    try:
        out = fn(params, x, *cond)
    except (flax.errors.ScopeParamShapeError, TypeError, ValueError) as err:
        first = str(err).strip().split("\n")[0]
        raise ValueError(
            f"{arg}: expected points of the dimension the {name}'s params were initialised for, "
            f"got {got or describe(x)}; the {name} raised {type(err).__name__}: {first}"
        ) from err
    if jnp.shape(out) != x.shape:
        raise ValueError(
            f"{name}: expected an output of the shape of x {tuple(x.shape)} (a vector field), "
            f"got shape {tuple(jnp.shape(out))}"
        )
    return out


def check_fits(name: str, fn: Callable, params, data, *cond) -> None:
    """Abstract evaluation of a field on two data rows: a wrong input size names ``data``."""
    got = describe(data)
    jax.eval_shape(
        lambda p, x, *c: call_field(name, fn, p, x, *c, arg="data", got=got),
        params,
        data[:2],
        *cond,
    )


def check_field_fits(role: str, module, params, event_shape, t) -> None:
    """Abstract evaluation (nothing runs) of ``module.apply({"params": params}, x, t)`` on one
    point ``x: (1, *event_shape)``: params initialised for another input size, or an output
    of another shape than ``x``, is a ``ValueError`` naming ``params`` / ``role`` here rather
    than deep inside the first ODE solve."""
    x = jax.ShapeDtypeStruct((1, *event_shape), jnp.result_type(float))
    try:
        out = jax.eval_shape(lambda p, y: module.apply({"params": p}, y, t), params, x)
    except Exception as err:  # a network initialised for another input, or not for (x, t)
        first = str(err).strip().split("\n")[0]
        raise ValueError(
            f"params: expected the params of the {role} network for x of shape "
            f"{(1, *event_shape)} (the event shape {tuple(event_shape)}), but applying it "
            f"failed with {type(err).__name__}: {first}"
        ) from err
    if not hasattr(out, "shape") or tuple(out.shape) != (1, *event_shape):
        got = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
        raise ValueError(
            f"{role}: expected an output of the shape of x {(1, *event_shape)} (a vector field "
            f"on the event shape {tuple(event_shape)}), got {got}"
        )
