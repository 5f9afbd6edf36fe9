"""The one trainer core that every objective-specific trainer uses.

Pure pieces first, in the optax style:

* :func:`init_train_state` builds a :class:`TrainState` (step, params, optimizer state,
  EMA params, key);
* :func:`build_dispatch` returns a pure function that runs ``steps_per_dispatch``
  optimizer steps inside one ``lax.scan`` (one device dispatch), drawing minibatches
  from device arrays, guarding every step against a non-finite loss.

:class:`Trainer` drives them from the host: it jits the dispatch once, shows a progress
bar that can be silenced, records the loss history, calls a validation hook with early
stopping, and stops with :class:`NonFiniteLossError` (naming the step and holding the last
good state) when the loss stops being finite.  The same key gives the same params.

A loss is ``loss_fn(params, batch, key) -> scalar`` where ``batch`` is a pytree of
arrays whose leading axis is the minibatch.  With ``has_aux=True`` it is
``loss_fn(params, batch, key, aux) -> (scalar, new_aux)``: ``aux`` is non-differentiated
state carried from step to step inside the scan (persistent MCMC chains, running
statistics), checkpointed and frozen with the params.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from numpyro_hgf._checks import check_finite, check_positive_int

__all__ = [
    "TrainState",
    "TrainResult",
    "NonFiniteLossError",
    "Trainer",
    "init_train_state",
    "build_dispatch",
    "progress_enabled",
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
        last_good_state: the :class:`TrainState` just before that step.
        history: the finite losses up to that step.
    """

    def __init__(self, step: int, last_good_state: TrainState, history: np.ndarray):
        self.step = step
        self.last_good_state = last_good_state
        self.history = history
        super().__init__(
            f"training loss became non-finite at step {step}; stopped and kept the last good "
            f"params (from step {step - 1}) in `error.last_good_state`. Lower the learning "
            "rate, enable gradient clipping, or check the data."
        )


def progress_enabled(progress: bool | None) -> bool:
    """Resolve a ``progress`` argument: ``None`` follows ``NUMPYRO_HGF_PROGRESS`` (default on)."""
    if progress is not None:
        return bool(progress)
    return os.environ.get("NUMPYRO_HGF_PROGRESS", "1").lower() not in ("0", "false", "no")


def _num_examples(data) -> int:
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ValueError("data: expected at least one array, got an empty pytree")
    sizes = {int(np.shape(leaf)[0]) if np.ndim(leaf) else -1 for leaf in leaves}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(
            "data: expected arrays sharing a leading (example) axis, got leading sizes "
            f"{sorted(sizes)}"
        )
    return sizes.pop()


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
):
    """Pure ``dispatch(state, data, num_active) -> (state, losses, first_bad)``.

    Runs ``steps_per_dispatch`` steps in one ``lax.scan``.  Step ``i`` of the scan is a
    no-op unless ``i < num_active`` (so the last, shorter chunk reuses the same compiled
    function).  Each step draws ``batch_size`` examples with replacement from ``data``
    (device arrays, leading axis = examples), evaluates ``loss_fn``, and applies the
    optax update.  A non-finite loss leaves the state unchanged, freezes the rest of
    the dispatch, and its index comes back in ``first_bad`` (``-1`` if none).
    """

    def one_step(state: TrainState, data):
        key, batch_key, loss_key = jax.random.split(state.key, 3)
        num = jax.tree_util.tree_leaves(data)[0].shape[0]
        idx = jax.random.randint(batch_key, (batch_size,), 0, num)
        batch = jax.tree.map(lambda a: a[idx], data)
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
            state, first_bad = carry
            run = (i < num_active) & (first_bad < 0)
            new, loss = jax.lax.cond(
                run,
                lambda s: one_step(s, data),
                lambda s: (s, jnp.full((), jnp.nan, loss_dtype)),
                state,
            )
            finite = jnp.isfinite(loss)
            state = jax.lax.cond(run & finite, lambda: new, lambda: state)
            first_bad = jnp.where(run & ~finite, i, first_bad)
            return (state, first_bad), loss

        init = (state, jnp.asarray(-1, jnp.int32))
        (state, first_bad), losses = jax.lax.scan(body, init, jnp.arange(steps_per_dispatch))
        return state, losses, first_bad

    return dispatch


class Trainer:
    """Jitted optax training for any ``loss_fn(params, batch, key) -> scalar``.

    Args:
        loss_fn: the objective (see :mod:`numpyro_hgf.objectives`).
        optimizer: an optax transformation, or a float learning rate for Adam.
        batch_size: minibatch size drawn (with replacement) each step.
        steps_per_dispatch: optimizer steps per ``lax.scan`` dispatch.
        ema_decay: keep an exponential moving average of the params (e.g. ``0.999``).
        clip_norm: clip gradients by global norm before the optimizer.
        has_aux: the loss is ``loss_fn(params, batch, key, aux) -> (loss, new_aux)`` and
            carries ``aux`` state from step to step (give its initial value to
            :meth:`init` / :meth:`fit`).
        progress: show a progress bar (``None``: on unless ``NUMPYRO_HGF_PROGRESS=0``).

    Example::

        trainer = Trainer(loss_fn, optax.adam(1e-3), batch_size=256)
        result = trainer.fit(params, data, steps=2_000, key=jax.random.key(0))
    """

    def __init__(
        self,
        loss_fn: LossFn,
        optimizer: optax.GradientTransformation | float = 1e-3,
        *,
        batch_size: int = 256,
        steps_per_dispatch: int = 100,
        ema_decay: float | None = None,
        clip_norm: float | None = None,
        progress: bool | None = None,
        description: str = "training",
        has_aux: bool = False,
    ):
        if not callable(loss_fn):
            raise TypeError(f"loss_fn: expected a callable, got {type(loss_fn).__name__}")
        if isinstance(optimizer, int | float):
            optimizer = optax.adam(float(optimizer))
        if not isinstance(optimizer, optax.GradientTransformation):
            raise TypeError(
                "optimizer: expected an optax.GradientTransformation or a learning rate, "
                f"got {type(optimizer).__name__}"
            )
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay: expected a number in (0, 1), got {ema_decay}")
        if clip_norm is not None:
            if not clip_norm > 0:
                raise ValueError(f"clip_norm: expected a positive number, got {clip_norm}")
            optimizer = optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.steps_per_dispatch = check_positive_int("steps_per_dispatch", steps_per_dispatch)
        self.ema_decay = ema_decay
        self.progress = progress
        self.description = description
        self.has_aux = bool(has_aux)
        self._dispatch = jax.jit(
            build_dispatch(
                loss_fn,
                optimizer,
                batch_size=self.batch_size,
                steps_per_dispatch=self.steps_per_dispatch,
                ema_decay=ema_decay,
                has_aux=self.has_aux,
            )
        )

    def init(self, params, key, aux=None) -> TrainState:
        """Initial state for ``params``, a ``jax.random`` key and the loss's ``aux`` state."""
        if self.has_aux and aux is None:
            raise ValueError("aux: a loss with has_aux=True needs an initial aux state, got None")
        return init_train_state(
            params, self.optimizer, key, ema=self.ema_decay is not None, aux=aux
        )

    def step(self, state: TrainState, data, num_steps: int | None = None):
        """Run one dispatch (``steps_per_dispatch`` steps, or the first ``num_steps``).

        Returns ``(state, losses)`` with ``losses`` a numpy array of the steps run.
        Raises :class:`NonFiniteLossError` if a loss was not finite.
        """
        num_steps = self.steps_per_dispatch if num_steps is None else num_steps
        start = int(state.step)
        state, losses, first_bad = self._dispatch(state, data, jnp.asarray(num_steps))
        losses = np.asarray(losses[:num_steps])
        first_bad = int(first_bad)
        if first_bad >= 0:
            raise NonFiniteLossError(start + first_bad, state, losses[:first_bad])
        return state, losses

    def fit(
        self,
        params,
        data,
        steps: int,
        key,
        *,
        state: TrainState | None = None,
        aux=None,
        validation_fn: Callable[[Any], float] | None = None,
        validate_every: int | None = None,
        patience: int | None = None,
    ) -> TrainResult:
        """Train for ``steps`` steps from ``params`` (or resume from ``state``).

        Args:
            params: initial params (ignored when ``state`` is given).
            data: pytree of arrays with a shared leading example axis, kept on device.
            steps: number of optimizer steps to run.
            key: ``jax.random`` key; the same key gives the same params.
            state: resume from this state (e.g. ``error.last_good_state`` or a previous
                ``result.state``) instead of initialising.
            aux: initial auxiliary state when the trainer has ``has_aux=True``.
            validation_fn: ``params -> float`` (lower is better), called every
                ``validate_every`` steps on the params in use (EMA when on).
            patience: stop after this many validations without improvement and return
                the best validated params.

        Raises:
            NonFiniteLossError: a loss was NaN/inf; the error names the step and holds the
                last good state and the loss history.
        """
        steps = check_positive_int("steps", steps)
        num = _num_examples(data)
        for i, leaf in enumerate(jax.tree_util.tree_leaves(data)):
            check_finite("data" if i == 0 else f"data[{i}]", leaf)
        data = jax.tree.map(jnp.asarray, data)
        if num < 1:
            raise ValueError(f"data: expected at least one example, got {num}")
        if patience is not None:
            check_positive_int("patience", patience)
            if validation_fn is None:
                raise ValueError("patience: early stopping needs a validation_fn, got None")
        if validation_fn is not None:
            validate_every = check_positive_int(
                "validate_every", validate_every or self.steps_per_dispatch
            )
        if state is None:
            state = self.init(params, key, aux)

        use = (lambda s: s.ema_params) if self.ema_decay is not None else (lambda s: s.params)
        history: list[np.ndarray] = []
        validation: list[tuple[int, float]] = []
        best_value, best_params, since_best = math.inf, None, 0
        stopped_early = False
        next_validation = validate_every or 0
        done = 0
        with tqdm(
            total=steps,
            desc=self.description,
            disable=not progress_enabled(self.progress),
            leave=False,
            dynamic_ncols=True,
        ) as bar:
            while done < steps:
                chunk = min(self.steps_per_dispatch, steps - done)
                if validation_fn is not None:
                    chunk = min(chunk, next_validation - done)
                try:
                    state, losses = self.step(state, data, chunk)
                except NonFiniteLossError as err:
                    err.history = np.concatenate(history + [err.history])
                    raise
                history.append(losses)
                done += chunk
                bar.update(chunk)
                bar.set_postfix(loss=f"{float(losses[-1]):.4f}")
                if validation_fn is not None and done >= next_validation:
                    next_validation += validate_every
                    value = float(validation_fn(use(state)))
                    validation.append((int(state.step), value))
                    if value < best_value:
                        best_value, best_params, since_best = value, use(state), 0
                    else:
                        since_best += 1
                        if patience is not None and since_best >= patience:
                            stopped_early = True
                            break
        params_out = use(state)
        if patience is not None and best_params is not None:
            params_out = best_params
        return TrainResult(
            params_out,
            state,
            np.concatenate(history) if history else np.zeros(0),
            validation,
            stopped_early,
        )
