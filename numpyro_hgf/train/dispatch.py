"""The pure pieces of the trainer core, in the optax style.

* :class:`TrainState` and :func:`init_train_state`: step, params, optimizer state, EMA params,
  key and carried auxiliary state;
* :func:`build_dispatch`: a pure function running ``steps_per_dispatch`` optimizer steps inside
  one ``lax.scan`` (one device dispatch), drawing minibatches from device arrays and guarding
  every step against a non-finite loss;
* :func:`data_parallel_mesh`: the one-axis ``"data"`` mesh for data-parallel training.

:class:`numpyro_hgf.train.trainer.Trainer` drives them from the host.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from numpyro_hgf._checks import check_choice, check_positive_int

__all__ = [
    "TrainState",
    "TrainResult",
    "NonFiniteLossError",
    "init_train_state",
    "build_dispatch",
    "data_parallel_mesh",
    "LossFn",
]

LossFn = Callable[[Any, Any, jax.Array], jax.Array]


class TrainState(NamedTuple):
    """State carried between steps (a pytree; ``ema_params`` is ``None`` without EMA,
    ``aux`` is ``None`` unless the loss carries auxiliary state)."""

    step: jax.Array
    params: Any
    opt_state: Any
    ema_params: Any
    key: jax.Array
    aux: Any = None


class TrainResult(NamedTuple):
    """What :meth:`Trainer.fit` returns.

    ``params`` are the params to use: the EMA params when EMA is on, and the best
    validated params when early stopping restored them.  ``history`` holds one training
    loss per step; ``validation`` holds ``(step, value)`` pairs.
    """

    params: Any
    state: TrainState
    history: np.ndarray
    validation: list[tuple[int, float]]
    stopped_early: bool


class NonFiniteLossError(FloatingPointError):
    """Raised when a training loss is NaN or inf.

    Attributes:
        step: the 0-based index of the first step whose loss was not finite.
        last_good_state: the newest :class:`TrainState` whose loss was finite (the state of
            step ``step - 1``), or ``None`` when no step had a finite loss.
        history: the finite losses up to that step.
    """

    def __init__(self, step: int, last_good_state: TrainState | None, history: np.ndarray):
        self.step = step
        self.last_good_state = last_good_state
        self.history = history
        if last_good_state is None:
            kept = (
                "no step had a finite loss, so there is no good state to keep (the initial "
                "params already give a non-finite loss: check the data and the initialisation)"
            )
        else:
            kept = (
                f"kept the last state whose loss was finite (step {int(last_good_state.step)}) "
                "in `error.last_good_state`"
            )
        super().__init__(
            f"training loss became non-finite at step {step}; stopped and {kept}. Lower the "
            "learning rate, enable gradient clipping, or check the data."
        )


def init_train_state(
    params, optimizer: optax.GradientTransformation, key, ema: bool = False, aux=None
):
    """Fresh :class:`TrainState` at step 0."""
    ema_params = jax.tree.map(jnp.asarray, params) if ema else None
    return TrainState(
        jnp.zeros((), jnp.int32), params, optimizer.init(params), ema_params, key, aux
    )


def build_dispatch(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    batch_size: int,
    steps_per_dispatch: int,
    ema_decay: float | None = None,
    has_aux: bool = False,
    compute_dtype=None,
    batch_sharding=None,
    state_sharding=None,
):
    """Pure ``dispatch(state, data, num_active) -> (state, losses, first_bad, last_finite)``.

    Runs ``steps_per_dispatch`` steps in one ``lax.scan``.  Step ``i`` of the scan is a
    no-op unless ``i < num_active`` (so the last, shorter chunk reuses the same compiled
    function).  Each step draws ``batch_size`` examples with replacement from ``data``
    (device arrays, leading axis = examples), evaluates ``loss_fn``, and applies the
    optax update.  A non-finite loss leaves the state unchanged, freezes the rest of
    the dispatch, and its index comes back in ``first_bad`` (``-1`` if none).

    ``last_finite`` is the newest state whose loss was evaluated and finite (the state
    before the last update applied; the input ``state`` when no step ran).  After a
    non-finite loss at step ``i > 0`` it is the state of step ``i - 1``: the params that
    the update into the failing state started from, which a rerun with a smaller learning
    rate can resume (the state at step ``i`` itself is the one whose loss diverged).

    ``compute_dtype`` (e.g. ``jnp.bfloat16``): evaluate the loss on casts of the floating
    params and batch (mixed precision; gradients and the update stay in the params' dtype).
    ``batch_sharding`` / ``state_sharding``: ``jax.sharding`` constraints for the minibatch
    (data parallel: sharded along the example axis) and the state (replicated).
    """
    if compute_dtype is not None:
        inner = loss_fn

        def cast(tree):
            return jax.tree.map(
                lambda a: (
                    a.astype(compute_dtype)
                    if jnp.issubdtype(jnp.result_type(a), jnp.floating)
                    else a
                ),
                tree,
            )

        def loss_fn(params, batch, key, *aux):
            out = inner(cast(params), cast(batch), key, *aux)
            if has_aux:
                return out[0].astype(jnp.float32), out[1]
            return out.astype(jnp.float32)

    def one_step(state: TrainState, data):
        key, batch_key, loss_key = jax.random.split(state.key, 3)
        num = jax.tree_util.tree_leaves(data)[0].shape[0]
        idx = jax.random.randint(batch_key, (batch_size,), 0, num)
        batch = jax.tree.map(lambda a: a[idx], data)
        if batch_sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
        if has_aux:
            (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                state.params, batch, loss_key, state.aux
            )
        else:
            loss, grads = jax.value_and_grad(loss_fn)(state.params, batch, loss_key)
            aux = state.aux
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema_params = state.ema_params
        if ema_decay is not None:
            ema_params = optax.incremental_update(params, ema_params, 1.0 - ema_decay)
        new = TrainState(state.step + 1, params, opt_state, ema_params, key, aux)
        return new, loss

    def dispatch(state: TrainState, data, num_active):
        loss_dtype = jax.eval_shape(one_step, state, data)[1].dtype

        def body(carry, i):
            state, last_finite, first_bad = carry
            run = (i < num_active) & (first_bad < 0)
            new, loss = jax.lax.cond(
                run,
                lambda s: one_step(s, data),
                lambda s: (s, jnp.full((), jnp.nan, loss_dtype)),
                state,
            )
            finite = jnp.isfinite(loss)
            last_finite = jax.lax.cond(run & finite, lambda: state, lambda: last_finite)
            state = jax.lax.cond(run & finite, lambda: new, lambda: state)
            first_bad = jnp.where(run & ~finite, i, first_bad)
            return (state, last_finite, first_bad), loss

        init = (state, state, jnp.asarray(-1, jnp.int32))  # int32 under x64 too: stable carry
        indices = jnp.arange(steps_per_dispatch, dtype=jnp.int32)
        (state, last_finite, first_bad), losses = jax.lax.scan(body, init, indices)
        if state_sharding is not None:
            state = jax.lax.with_sharding_constraint(state, state_sharding)
            last_finite = jax.lax.with_sharding_constraint(last_finite, state_sharding)
        return state, losses, first_bad, last_finite

    return dispatch


def data_parallel_mesh(devices="all"):
    """A one-axis ``jax.sharding.Mesh`` named ``"data"`` for data-parallel training.

    Args:
        devices: ``"all"`` (``jax.devices()``: every local device, and every host's after
            ``jax.distributed.initialize``), a number ``n`` (the first ``n`` devices), a
            sequence of devices, or a ``Mesh`` with a ``"data"`` axis (returned as is).
    """
    from jax.sharding import Mesh

    if isinstance(devices, Mesh):
        if "data" not in devices.axis_names:
            raise ValueError(
                f"devices: expected a Mesh with a 'data' axis, got axes {devices.axis_names}"
            )
        return devices
    if isinstance(devices, str):
        check_choice("devices", devices, ("all",))
        devices = jax.devices()
    elif isinstance(devices, int | np.integer) and not isinstance(devices, bool):
        n = check_positive_int("devices", devices)
        if n > jax.device_count():
            raise ValueError(
                f"devices: expected at most the {jax.device_count()} available devices, got {n}"
            )
        devices = jax.devices()[:n]
    elif not isinstance(devices, Sequence) or not devices:
        raise TypeError(
            "devices: expected 'all', a number of devices, a sequence of devices or a Mesh, "
            f"got {devices!r}"
        )
    return Mesh(np.asarray(list(devices)), ("data",))
