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
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["TrainCheckpointer", "state_fingerprint"]

_META = "numpyro_hgf_checkpoint.json"
_FORMAT_VERSION = 1


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def state_fingerprint(state, description: dict | None = None) -> dict:
    """JSON description of what a state trains: ``{path: [shape, dtype]}`` of the params and
    optimizer state, whether EMA / aux state are on, and ``description`` (e.g. the network's
    config).  Two runs of the same model give the same fingerprint."""

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
    }


def _diff(expected: dict, got: dict) -> str:
    """A short human-readable difference between two fingerprints."""
    for part in ("description", "params", "opt_state", "ema", "aux"):
        a, b = expected.get(part), got.get(part)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    return f"{part}{name}: expected {a.get(name)}, got {b.get(name)}"
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
                    f"model ({_diff(stored['fingerprint'], json.loads(json.dumps(fingerprint)))}); "
                    "use a new directory, or the model and optimizer it was written with"
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
        self._manager = ocp.CheckpointManager(self.directory, options=options)

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

    def restore(self, template, step: int | None = None):
        """The state saved at ``step`` (newest by default), shaped and sharded like
        ``template`` (a state of the same model, e.g. a fresh ``trainer.init``)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise ValueError(f"checkpoint_dir: no finished checkpoint in {str(self.directory)!r}")
        packed = self._pack(template)

        def abstract(x):
            sharding = getattr(x, "sharding", None)
            return jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x), sharding=sharding)

        target = jax.tree.map(abstract, packed)
        restored = self._manager.restore(step, args=self._ocp.args.StandardRestore(target))
        return self._unpack(template, restored)

    def close(self) -> None:
        self._manager.close()
