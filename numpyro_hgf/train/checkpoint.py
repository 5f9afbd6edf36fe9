"""Orbax checkpoints of a :class:`~numpyro_hgf.train.TrainState`, for resuming training.

A checkpoint directory holds::

    checkpoint_dir/
      numpyro_hgf_checkpoint.json   what was trained: the structure, shapes and dtypes of the
                                    params and optimizer state, and the caller's description
      <step>/                       one orbax checkpoint per saved step (the newest few kept)

Orbax writes each step to a temporary directory and renames it when complete, so a process
killed while writing (``SIGKILL``, pre-emption) leaves the previous checkpoints intact and
:meth:`TrainCheckpointer.restore` picks the newest *finished* one.  Opening a directory
written for a different model (other parameter shapes, another optimizer, another
description) is a ``ValueError`` naming ``checkpoint_dir``, never a silent mix.

The ``jax.random`` key of the state is stored as its raw key data and re-wrapped on restore,
and the arrays are restored with the shardings of a template state, so a run resumes on the
same device layout it was set up with (one device, a data-parallel mesh, several hosts).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["TrainCheckpointer", "keep_last_finite", "state_fingerprint", "training_config"]

_META = "numpyro_hgf_checkpoint.json"
_FORMAT_VERSION = 1


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def state_fingerprint(state, description: dict | None = None, training: dict | None = None) -> dict:
    """JSON description of what a state trains: ``{path: [shape, dtype]}`` of the params and
    optimizer state, whether EMA / aux state are on, ``description`` (e.g. the network's
    config) and ``training`` (the training configuration a resume must match: data shapes,
    batch size, precision).  Two runs of the same model give the same fingerprint."""

    def leaves(tree) -> dict[str, list]:
        flat = jax.tree_util.tree_flatten_with_path(tree)[0]
        return {
            jax.tree_util.keystr(path): [list(np.shape(leaf)), str(jnp.result_type(leaf))]
            for path, leaf in flat
        }

    return {
        "params": leaves(state.params),
        "opt_state": leaves(state.opt_state),
        "ema": state.ema_params is not None,
        "aux": leaves(state.aux) if state.aux is not None else None,
        "description": description or {},
        "training": training or {},
    }


def _diff(expected: dict, got: dict) -> str:
    """A short human-readable difference between two fingerprints."""
    for part in ("training", "description", "params", "opt_state", "ema", "aux"):
        a, b = expected.get(part), got.get(part)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    key = name if name.startswith("[") else f"[{name!r}]"
                    return f"{part}{key}: expected {a.get(name)}, got {b.get(name)}"
        return f"{part}: expected {a}, got {b}"
    return "no difference"


class TrainCheckpointer:
    """Save and restore :class:`~numpyro_hgf.train.TrainState` s with ``orbax.checkpoint``.

    Args:
        directory: the checkpoint directory (created if needed).
        fingerprint: :func:`state_fingerprint` of the state this run trains; checked against
            the one stored in ``directory`` (``ValueError`` naming ``checkpoint_dir`` when it
            differs).
        max_to_keep: how many of the newest checkpoints to keep.

    Saving is synchronous: when :meth:`save` returns, the step is on disk.
    """

    def __init__(self, directory, fingerprint: dict, *, max_to_keep: int = 3):
        import orbax.checkpoint as ocp

        self.directory = Path(directory).absolute()
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(
                f"checkpoint_dir: expected a directory, got the file {str(self.directory)!r}"
            )
        meta = self.directory / _META
        if self.directory.is_dir() and any(self.directory.iterdir()) and not meta.is_file():
            raise ValueError(
                f"checkpoint_dir: expected an empty directory or one written by a numpyro_hgf "
                f"Trainer (with {_META}), got {str(self.directory)!r} holding other files"
            )
        if meta.is_file():
            stored = json.loads(meta.read_text())
            if stored.get("format_version") != _FORMAT_VERSION:
                raise ValueError(
                    f"checkpoint_dir: expected checkpoint format {_FORMAT_VERSION}, got "
                    f"{stored.get('format_version')!r} in {str(self.directory)!r}"
                )
            if stored["fingerprint"] != json.loads(json.dumps(fingerprint)):
                raise ValueError(
                    f"checkpoint_dir: {str(self.directory)!r} holds checkpoints of a different "
                    f"run ({_diff(stored['fingerprint'], json.loads(json.dumps(fingerprint)))}); "
                    "to start afresh, pass a new checkpoint_dir or delete this one; to resume, "
                    "use the model, data and training options it was written with"
                )
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            if jax.process_index() == 0:
                payload = {"format_version": _FORMAT_VERSION, "fingerprint": fingerprint}
                meta.write_text(json.dumps(payload, indent=2, sort_keys=True))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
        )
        self._ocp = ocp
        # one item, declared (not guessed from the newest step folder, which may be damaged)
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_handlers=ocp.StandardCheckpointHandler()
        )

    # -- (un)packing: orbax stores arrays, not typed keys or ``None`` fields -----------------
    @staticmethod
    def _pack(state) -> dict[str, Any]:
        out = {}
        for name, value in state._asdict().items():
            if value is None:
                continue
            out[name] = jax.tree.map(
                lambda x: jax.random.key_data(x) if _is_key(x) else x, value, is_leaf=_is_key
            )
        return out

    @staticmethod
    def _unpack(template, restored: dict):
        fields = {}
        for name, value in template._asdict().items():
            if value is None:
                fields[name] = None
                continue
            fields[name] = jax.tree.map(
                lambda t, r: (
                    jax.random.wrap_key_data(r, impl=jax.random.key_impl(t)) if _is_key(t) else r
                ),
                value,
                restored[name],
                is_leaf=_is_key,
            )
        return type(template)(**fields)

    # -- public --------------------------------------------------------------------------
    def latest_step(self) -> int | None:
        """The newest finished checkpoint's step, or ``None``."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, state) -> int:
        """Write ``state`` under its step (a no-op if that step is already saved)."""
        step = int(state.step)
        if step in self._manager.all_steps():
            return step
        packed = self._pack(state)
        self._manager.save(step, args=self._ocp.args.StandardSave(packed), force=True)
        self._manager.wait_until_finished()
        return step

    def discard_after(self, step: int) -> str:
        """Delete the checkpoints newer than ``step``; returns a note for messages."""
        newer = [s for s in self.all_steps() if s > step]
        for s in newer:
            self._manager.delete(s)
        return f" (removed the newer checkpoints {newer})" if newer else ""

    def restore(self, template, step: int | None = None):
        """The state saved at ``step`` (newest readable by default), shaped and sharded like
        ``template`` (a state of the same model, e.g. a fresh ``trainer.init``).

        An unreadable newest checkpoint (an emptied or damaged step folder) is skipped with a
        warning and the previous one restored; ``ValueError`` naming ``checkpoint_dir`` when
        none can be read.
        """
        steps = [step] if step is not None else sorted(self.all_steps(), reverse=True)
        if not steps:
            raise ValueError(f"checkpoint_dir: no finished checkpoint in {str(self.directory)!r}")
        packed = self._pack(template)

        def abstract(x):
            sharding = getattr(x, "sharding", None)
            return jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x), sharding=sharding)

        target = jax.tree.map(abstract, packed)
        failures = []
        for candidate in steps:
            try:
                restored = self._manager.restore(
                    candidate, args=self._ocp.args.StandardRestore(target)
                )
            except Exception as err:  # orbax raises many types for a damaged step folder
                failures.append(f"step {candidate}: {type(err).__name__}: {str(err)[:200]}")
                warnings.warn(
                    f"checkpoint_dir: the checkpoint of step {candidate} in "
                    f"{str(self.directory)!r} cannot be read ({type(err).__name__}); "
                    "trying the previous one",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            return self._unpack(template, restored)
        raise ValueError(
            f"checkpoint_dir: no checkpoint in {str(self.directory)!r} can be read "
            f"({'; '.join(failures)}); delete the folder (or pass a new checkpoint_dir) to "
            "start afresh"
        )

    def close(self) -> None:
        self._manager.close()


def training_config(batch_size: int, precision: str, ema_decay, data) -> dict:
    """What a checkpoint must match to be resumed: the data's shapes and dtypes, the batch
    size, precision and EMA.  The optimizer's hyper-parameters may change (a lower learning
    rate is the usual remedy after a :class:`~numpyro_hgf.train.NonFiniteLossError`)."""
    return {
        "batch_size": batch_size,
        "precision": precision,
        "ema_decay": ema_decay,
        "data": [
            [list(np.shape(leaf)), str(jnp.result_type(leaf))]
            for leaf in jax.tree_util.tree_leaves(data)
        ],
    }


def keep_last_finite(checkpointer: TrainCheckpointer, err) -> None:
    """After a non-finite loss, make the last state with a finite loss the newest checkpoint:
    drop the newer ones (a periodic checkpoint can hold the state whose loss then diverged),
    save it, and say so in the error's message."""
    where = f"checkpoint_dir {str(checkpointer.directory)!r}"
    good = err.last_good_state
    if good is None:
        kept = checkpointer.discard_after(-1)
        err.args = (f"{err.args[0]} Nothing was saved in {where}{kept}.",)
        return
    kept = checkpointer.discard_after(int(good.step))
    saved = checkpointer.save(good)
    err.checkpoint_dir = checkpointer.directory
    err.checkpoint_step = saved
    err.args = (
        f"{err.args[0]} That state (step {saved}) is the newest checkpoint in {where}{kept}; "
        "running again with a lower learning rate resumes from it.",
    )
