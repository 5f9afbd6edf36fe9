"""The one trainer core that every objective-specific trainer uses.

The pure pieces, in the optax style, live in :mod:`numpyro_hgf.train.dispatch` (and are
re-exported here): :func:`init_train_state` builds a :class:`TrainState` (step, params,
optimizer state, EMA params, key); :func:`build_dispatch` returns a pure function that runs
``steps_per_dispatch`` optimizer steps inside one ``lax.scan`` (one device dispatch), drawing
minibatches from device arrays, guarding every step against a non-finite loss.

:class:`Trainer` drives them from the host: it jits the dispatch once, shows a progress
bar that can be silenced, records the loss history, calls a validation hook with early
stopping, and stops with :class:`NonFiniteLossError` (naming the step and holding the last
good state) when the loss stops being finite.  The same key gives the same params.

A loss is ``loss_fn(params, batch, key) -> scalar`` where ``batch`` is a pytree of
arrays whose leading axis is the minibatch.  With ``has_aux=True`` it is
``loss_fn(params, batch, key, aux) -> (scalar, new_aux)``: ``aux`` is non-differentiated
state carried from step to step inside the scan (persistent MCMC chains, running
statistics), checkpointed and frozen with the params.

Scaling out (all optional; the defaults train on one device exactly as before):

* ``devices=`` data-parallel training with ``jax.sharding``: a one-axis ``Mesh`` named
  ``"data"`` over the given devices (``"all"``: ``jax.devices()``, every local device, and
  every host's after ``jax.distributed.initialize``), params / optimizer state / EMA
  replicated (``NamedSharding(mesh, P())``), each minibatch sharded along its example axis
  (``NamedSharding(mesh, P("data"))``).  XLA's SPMD partitioner inserts the gradient
  all-reduce; the same key gives the same minibatches, so the loss trajectory equals the
  one-device trajectory up to float reassociation (``docs/training.md``).
* ``donate=True`` (default): the dispatch donates the state's buffers, so params and
  optimizer state are updated in place instead of doubling device memory.
* ``precision="bfloat16"``: mixed precision -- params stay float32 (the optimizer, EMA and
  checkpoints see float32), the loss is evaluated on bfloat16 casts of the params and of the
  floating-point batch, and the gradients come back in float32 through the casts.
* ``checkpoint_dir=`` / ``checkpoint_every=``: orbax checkpoints of the whole state
  (:mod:`numpyro_hgf.train.checkpoint`) every N steps, at the end, and at the last good step
  when the loss stops being finite; ``fit`` resumes from the newest one.
* ``callback=`` / ``callback_every=``: a host function of the state every N steps (sample
  grids); the progress bar and ``Trainer.throughput`` report steps/s and examples/s.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from numpyro_hgf._checks import (
    check_choice,
    check_finite,
    check_positive_float,
    check_positive_int,
    progress_enabled,
)
from numpyro_hgf.train.checkpoint import (
    TrainCheckpointer,
    keep_last_finite,
    state_fingerprint,
    training_config,
)
from numpyro_hgf.train.dispatch import (
    LossFn,
    NonFiniteLossError,
    TrainResult,
    TrainState,
    build_dispatch,
    data_parallel_mesh,
    init_train_state,
)
from numpyro_hgf.train.programs import compiled_dispatch, with_clipping

__all__ = [
    "TrainState",
    "TrainResult",
    "NonFiniteLossError",
    "Trainer",
    "init_train_state",
    "build_dispatch",
    "progress_enabled",
    "data_parallel_mesh",
]

logger = logging.getLogger("numpyro_hgf.train")
PRECISIONS = {"float32": None, "bfloat16": jnp.bfloat16}


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


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _copy(tree):
    """Fresh buffers for every leaf (the dispatch donates its input state)."""
    return jax.tree.map(lambda a: jnp.array(a, copy=True), tree)


class Trainer:
    """Jitted optax training for any ``loss_fn(params, batch, key) -> scalar``.

    Args:
        loss_fn: the objective (see :mod:`numpyro_hgf.objectives`).
        optimizer: an optax transformation, or a float learning rate for Adam.
        batch_size: minibatch size drawn (with replacement) each step; with ``devices``
            the global batch, a multiple of the number of devices.
        steps_per_dispatch: optimizer steps per ``lax.scan`` dispatch.
        ema_decay: keep an exponential moving average of the params (e.g. ``0.999``).
        clip_norm: clip gradients by global norm before the optimizer.
        has_aux: the loss is ``loss_fn(params, batch, key, aux) -> (loss, new_aux)`` and
            carries ``aux`` state from step to step (give its initial value to
            :meth:`init` / :meth:`fit`).
        progress: show a progress bar (``None``: on unless ``NUMPYRO_HGF_PROGRESS=0``).
        devices: data-parallel training over these devices (see
            :func:`data_parallel_mesh`: ``"all"``, a number, a device list or a ``Mesh``);
            ``None`` (default): the default device, no sharding.
        donate: donate the state's buffers to each dispatch (in-place updates).
        precision: ``"float32"`` or ``"bfloat16"`` (mixed precision, float32 master params).
        checkpoint_dir: save orbax checkpoints of the state here, and resume from the newest
            one in :meth:`fit` (see :mod:`numpyro_hgf.train.checkpoint`).
        checkpoint_every: save every this many steps (default: only at the end and at the
            last good step before a non-finite loss).
        keep_checkpoints: how many of the newest checkpoints to keep.
        checkpoint_description: JSON-able description of the model (e.g. the network's
            config), stored with the checkpoints; resuming with another one is an error.
        callback: ``callback(state)`` on the host every ``callback_every`` steps (sample
            grids, logging); copy what it keeps, the next dispatch donates the state.
        callback_every: steps between callbacks (default ``steps_per_dispatch``).

    After :meth:`fit`, ``trainer.throughput`` holds ``steps_per_s`` and ``examples_per_s``
    measured on the dispatches after the first (which includes compilation).

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
        devices=None,
        donate: bool = True,
        precision: str = "float32",
        checkpoint_dir=None,
        checkpoint_every: int | None = None,
        keep_checkpoints: int = 3,
        checkpoint_description: dict | None = None,
        callback: Callable[[TrainState], Any] | None = None,
        callback_every: int | None = None,
    ):
        if not callable(loss_fn):
            raise TypeError(f"loss_fn: expected a callable, got {type(loss_fn).__name__}")
        if isinstance(optimizer, int | float) and not isinstance(optimizer, bool):
            optimizer = optax.adam(check_positive_float("optimizer", optimizer))
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
            optimizer = with_clipping(optimizer, clip_norm)
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.steps_per_dispatch = check_positive_int("steps_per_dispatch", steps_per_dispatch)
        self.ema_decay = ema_decay
        self.progress = progress
        self.description = description
        self.has_aux = bool(has_aux)
        self.donate = bool(donate)
        self.precision = check_choice("precision", precision, tuple(PRECISIONS))
        self.mesh = None if devices is None else data_parallel_mesh(devices)
        batch_sharding = state_sharding = None
        if self.mesh is not None:
            from jax.sharding import NamedSharding, PartitionSpec

            num = self.mesh.shape["data"]
            if self.batch_size % num:
                raise ValueError(
                    f"batch_size: expected a multiple of the {num} devices of the data-parallel "
                    f"mesh (each device takes batch_size / {num} examples), got {self.batch_size}"
                )
            state_sharding = NamedSharding(self.mesh, PartitionSpec())
            batch_sharding = NamedSharding(self.mesh, PartitionSpec("data"))
        self._replicated = state_sharding
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = (
            None
            if checkpoint_every is None
            else check_positive_int("checkpoint_every", checkpoint_every)
        )
        if self.checkpoint_every is not None and checkpoint_dir is None:
            raise ValueError("checkpoint_every: checkpoints need a checkpoint_dir, got None")
        self.keep_checkpoints = check_positive_int("keep_checkpoints", keep_checkpoints)
        self.checkpoint_description = checkpoint_description
        if callback is not None and not callable(callback):
            raise TypeError(f"callback: expected a callable, got {type(callback).__name__}")
        self.callback = callback
        self.callback_every = (
            None
            if callback is None
            else check_positive_int(
                "callback_every",
                self.steps_per_dispatch if callback_every is None else callback_every,
            )
        )
        self.throughput: dict[str, float] = {}
        self._dispatch = compiled_dispatch(
            loss_fn,
            optimizer,
            donate=self.donate,
            batch_size=self.batch_size,
            steps_per_dispatch=self.steps_per_dispatch,
            ema_decay=ema_decay,
            has_aux=self.has_aux,
            compute_dtype=PRECISIONS[self.precision],
            batch_sharding=batch_sharding,
            state_sharding=state_sharding,
        )

    # -- placement -----------------------------------------------------------------------
    def _place(self, tree):
        """Replicate ``tree`` over the mesh (no-op without ``devices``)."""
        if self.mesh is None:
            return tree
        sharding = self._replicated
        if jax.process_count() == 1:
            return jax.device_put(tree, sharding)

        def put(x):  # several hosts: every process holds the same values
            if _is_key(x):
                data = put(jax.random.key_data(x))
                return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
            host = np.asarray(x)
            return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

        return jax.tree.map(put, tree, is_leaf=_is_key)

    def init(self, params, key, aux=None) -> TrainState:
        """Initial state for ``params``, a ``jax.random`` key and the loss's ``aux`` state."""
        if self.has_aux and aux is None:
            raise ValueError("aux: a loss with has_aux=True needs an initial aux state, got None")
        state = init_train_state(
            params, self.optimizer, key, ema=self.ema_decay is not None, aux=aux
        )
        return self._place(state)

    def _run(self, state: TrainState, data, num_steps: int, previous=None):
        """One dispatch: ``(state, losses, last_finite)``.  ``previous``: the last state with a
        finite loss before this dispatch (the good state when its very first loss fails)."""
        start = int(state.step)
        state, losses, first_bad, last_finite = self._dispatch(state, data, jnp.asarray(num_steps))
        losses = np.asarray(losses[:num_steps])
        first_bad = int(first_bad)
        if first_bad >= 0:
            good = last_finite if first_bad > 0 else previous
            raise NonFiniteLossError(start + first_bad, good, losses[:first_bad])
        return state, losses, last_finite

    def step(self, state: TrainState, data, num_steps: int | None = None):
        """Run one dispatch (``steps_per_dispatch`` steps, or the first ``num_steps``).

        Returns ``(state, losses)`` with ``losses`` a numpy array of the steps run.
        Raises :class:`NonFiniteLossError` if a loss was not finite.  ``state`` stays
        valid (with ``donate=True`` the dispatch works on a copy).
        """
        num_steps = self.steps_per_dispatch if num_steps is None else num_steps
        state = self._place(state)
        if self.donate:
            state = _copy(state)
        return self._run(state, self._place(data), num_steps)[:2]

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
        resume: bool = True,
    ) -> TrainResult:
        """Train for ``steps`` steps from ``params`` (or resume from ``state``).

        Args:
            params: initial params (ignored when ``state`` is given).
            data: pytree of arrays with a shared leading example axis, kept on device
                (replicated over the mesh with ``devices``).
            steps: number of optimizer steps to run.
            key: ``jax.random`` key; the same key gives the same params.
            state: resume from this state (e.g. ``error.last_good_state`` or a previous
                ``result.state``) instead of initialising.
            aux: initial auxiliary state when the trainer has ``has_aux=True``.
            validation_fn: ``params -> float`` (lower is better), called every
                ``validate_every`` steps on the params in use (EMA when on).
            patience: stop after this many validations without improvement and return
                the best validated params.
            resume: with a ``checkpoint_dir`` holding checkpoints of this model, continue
                from the newest one towards the same final step (``state.step + steps`` of
                the state this call starts from), so an interrupted run, started again
                with the same arguments, ends with the params of an uninterrupted one.
                ``history`` then holds the losses of the steps run by this call.

        Raises:
            NonFiniteLossError: a loss was NaN/inf; the error names the step and holds the
                last good state and the loss history (and, with a ``checkpoint_dir``, that
                state is saved there as the newest checkpoint).
            ValueError: ``checkpoint_dir`` holds checkpoints of a different model.
        """
        steps = check_positive_int("steps", steps)
        num = _num_examples(data)
        for i, leaf in enumerate(jax.tree_util.tree_leaves(data)):
            check_finite("data" if i == 0 else f"data[{i}]", leaf)
        data = self._place(jax.tree.map(jnp.asarray, data))
        if num < 1:
            raise ValueError(f"data: expected at least one example, got {num}")
        if patience is not None:
            check_positive_int("patience", patience)
            if validation_fn is None:
                raise ValueError("patience: early stopping needs a validation_fn, got None")
        if validation_fn is not None:
            validate_every = check_positive_int(
                "validate_every",
                self.steps_per_dispatch if validate_every is None else validate_every,
            )
        state = self.init(params, key, aux) if state is None else self._place(state)
        if self.donate:
            state = _copy(state)
        target = int(state.step) + steps

        checkpointer = None
        if self.checkpoint_dir is not None:
            checkpointer = TrainCheckpointer(
                self.checkpoint_dir,
                state_fingerprint(
                    state, self.checkpoint_description, training=self._training_config(data)
                ),
                max_to_keep=self.keep_checkpoints,
            )
            if resume and checkpointer.latest_step() is not None:
                state = checkpointer.restore(state)
                logger.info("resumed from %s at step %d", checkpointer.directory, int(state.step))
        try:
            return self._fit_loop(
                state, data, target, checkpointer, validation_fn, validate_every, patience
            )
        finally:
            if checkpointer is not None:
                checkpointer.close()

    def _fit_loop(self, state, data, target, checkpointer, validation_fn, validate_every, patience):
        use = (lambda s: s.ema_params) if self.ema_decay is not None else (lambda s: s.params)
        keep = _copy if self.donate else (lambda tree: tree)
        history: list[np.ndarray] = []
        validation: list[tuple[int, float]] = []
        best_value, best_params, since_best = math.inf, None, 0
        stopped_early = False
        step = int(state.step)
        steps = max(target - step, 0)
        next_validation = validate_every or 0
        done = 0
        dispatch_times: list[tuple[int, float]] = []
        last_finite = None
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
                for every in (self.checkpoint_every, self.callback_every):
                    if every is not None:
                        chunk = min(chunk, every - step % every)
                tick = time.perf_counter()
                try:
                    state, losses, last_finite = self._run(state, data, chunk, last_finite)
                except NonFiniteLossError as err:
                    err.history = np.concatenate(history + [err.history])
                    if checkpointer is not None:
                        keep_last_finite(checkpointer, err)
                    raise
                dispatch_times.append((chunk, time.perf_counter() - tick))
                history.append(losses)
                done += chunk
                step += chunk
                bar.update(chunk)
                postfix = {"loss": f"{float(losses[-1]):.4f}"}
                rate = self._measure(dispatch_times)
                if rate:
                    postfix["ex/s"] = f"{rate['examples_per_s']:.0f}"
                bar.set_postfix(postfix)
                if (
                    checkpointer is not None
                    and self.checkpoint_every
                    and not step % self.checkpoint_every
                ):
                    checkpointer.save(state)
                if self.callback is not None and not step % self.callback_every:
                    self.callback(state)
                if validation_fn is not None and done >= next_validation:
                    next_validation += validate_every
                    value = float(validation_fn(use(state)))
                    validation.append((int(state.step), value))
                    if value < best_value:
                        best_value, best_params, since_best = value, keep(use(state)), 0
                    else:
                        since_best += 1
                        if patience is not None and since_best >= patience:
                            stopped_early = True
                            break
        if checkpointer is not None:
            checkpointer.save(state)
        self.throughput = self._measure(dispatch_times) or self.throughput
        if self.throughput:
            logger.info(
                "%s: %.1f steps/s, %.0f examples/s",
                self.description,
                self.throughput["steps_per_s"],
                self.throughput["examples_per_s"],
            )
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

    def _training_config(self, data) -> dict:
        return training_config(self.batch_size, self.precision, self.ema_decay, data)

    def _measure(self, dispatch_times) -> dict[str, float]:
        """Steps/s and examples/s over the dispatches after the first (compilation)."""
        timed = dispatch_times[1:]
        seconds = sum(t for _, t in timed)
        if not timed or seconds <= 0:
            return {}
        num_steps = sum(n for n, _ in timed)
        return {
            "steps_per_s": num_steps / seconds,
            "examples_per_s": num_steps * self.batch_size / seconds,
        }
