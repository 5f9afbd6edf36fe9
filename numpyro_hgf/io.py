"""Saving and loading trained models: ``nh.save(path, model)`` / ``nh.load(path)``.

A saved model is a directory::

    path/
      model.json      {"format": "numpyro_hgf", "format_version": 1, "kind": ..., "module": ...,
                       "package_version": ..., "config": {...}, "param_shapes": {...},
                       "params_sha256": ...}
      params.msgpack  the params pytree (flax.serialization, msgpack)

A model class takes part by being *saveable*:

* ``model.save_config() -> dict``: JSON-serialisable hyper-parameters (kind-specific);
* ``cls.from_config(config) -> model``: rebuilds the architecture with template params;
* ``model.params`` and ``model.with_params(params) -> model``.

and by registering itself with :func:`register_model` under a ``kind`` name.  This module
knows no model module: the registry fills as model classes are defined, ``save`` writes the
module that defines the class into ``model.json``, and ``load`` imports that module (only
modules of this package) before it looks the kind up.

**Atomic.** :func:`save` writes both files into a temporary folder beside ``path``, flushes
them to disk and renames the folder into place, so a process killed at any moment leaves
either the previous model or the new one, never the config of one with the params of the
other.  Replacing an existing model (``overwrite=True``) moves it aside first and removes it
once the new one is in place; :func:`load` finishes an overwrite that was interrupted
between the two renames.

**Verified.** ``model.json`` records the SHA-256 of ``params.msgpack``; :func:`load` checks it,
rebuilds the architecture from the config and restores the params into the template's
structure, so a flipped byte, a hand-edited file or an incompatible version is a
``ValueError`` naming the path, never a silently wrong model.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Protocol

import jax
import numpy as np
from flax import serialization

from numpyro_hgf._version import __version__

__all__ = ["save", "load", "register_model", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_METADATA = "model.json"
_PARAMS = "params.msgpack"
_REGISTRY: dict[str, type] = {}


class Saveable(Protocol):
    params: Any

    def save_config(self) -> dict: ...

    def with_params(self, params) -> Saveable: ...


def register_model(kind: str):
    """Class decorator: make ``cls`` loadable by :func:`load` under ``kind``."""

    def decorator(cls):
        _REGISTRY[kind] = cls
        cls.model_kind = kind
        return cls

    return decorator


def _param_shapes(params) -> dict[str, list[int]]:
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {jax.tree_util.keystr(path): list(np.shape(leaf)) for path, leaf in flat}


def _backup_of(path: Path) -> Path:
    """Where an overwrite parks the previous model while the new one is renamed in."""
    return path.with_name(f".{path.name}.previous")


def _write_synced(file: Path, data: bytes) -> None:
    with open(file, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _check_target(path: Path, overwrite: bool) -> bool:
    """Whether ``path`` holds a model to replace; ``ValueError`` where saving would clobber."""
    if not path.exists():
        return False
    if not path.is_dir():
        raise ValueError(f"path: expected a directory for the model, got the file {str(path)!r}")
    entries = {entry.name for entry in path.iterdir()}
    if not entries:
        path.rmdir()
        return False
    if _METADATA not in entries:
        raise ValueError(
            f"path: {str(path)!r} is a directory holding other files ({sorted(entries)[:3]}); "
            "save a model into a new or empty directory"
        )
    if not overwrite:
        raise ValueError(
            f"path: {str(path)!r} already holds a saved model; pass overwrite=True to replace it"
        )
    return True


def save(path, model: Saveable, *, overwrite: bool = False) -> Path:
    """Write ``model`` to the directory ``path`` atomically; returns the path.

    Args:
        path: the model directory; it must not exist, be empty, or (with ``overwrite=True``)
            hold a model written by :func:`save`.
        model: a saveable model (a flow, prior, energy model, RBM, ...).
        overwrite: replace a model already saved at ``path``.

    Raises:
        TypeError: ``model`` is not saveable.
        ValueError: ``path`` is a file, a directory of other files, or an existing model and
            ``overwrite`` is False.
    """
    kind = getattr(type(model), "model_kind", None)
    if kind is None or not hasattr(model, "save_config"):
        raise TypeError(
            f"model: expected a saveable numpyro_hgf model (one of {sorted(_REGISTRY)}), "
            f"got {type(model).__name__}"
        )
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite: expected a bool, got {overwrite!r}")
    path = Path(path)
    params = jax.device_get(model.params)
    payload = serialization.to_bytes(params)
    metadata = {
        "format": "numpyro_hgf",
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "package_version": __version__,
        "module": type(model).__module__,
        "config": model.save_config(),
        "param_shapes": _param_shapes(params),
        "params_sha256": hashlib.sha256(payload).hexdigest(),
    }
    text = json.dumps(metadata, indent=2, sort_keys=True)
    replace = _check_target(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.saving-{uuid.uuid4().hex[:12]}")
    staging.mkdir()
    try:
        _write_synced(staging / _PARAMS, payload)
        _write_synced(staging / _METADATA, text.encode())
        backup = _backup_of(path)
        if replace:
            if backup.exists():
                shutil.rmtree(backup)
            os.rename(path, backup)
        os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if replace:
        shutil.rmtree(backup, ignore_errors=True)
    return path


def _read_metadata(path: Path) -> dict:
    meta_file = path / _METADATA
    try:
        metadata = json.loads(meta_file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"path: {str(meta_file)!r} is not UTF-8 text ({err})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"path: {str(meta_file)!r} is not valid JSON ({err})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != "numpyro_hgf":
        raise ValueError(
            f"path: {str(meta_file)!r} does not describe a numpyro_hgf model (expected a JSON "
            f"object with format 'numpyro_hgf', got {type(metadata).__name__})"
        )
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"path: expected model format version {FORMAT_VERSION}, got {version!r} "
            f"(written by numpyro_hgf {metadata.get('package_version', '?')}); "
            "re-save it with a compatible version"
        )
    if not isinstance(metadata.get("config"), dict):
        raise ValueError(
            f"path: {str(meta_file)!r} has no 'config' object (got "
            f"{type(metadata.get('config')).__name__}); the file was edited or truncated"
        )
    return metadata


def load(path):
    """Read a model written by :func:`save`.

    Raises:
        ValueError: ``path`` is not a saved model, was written by an incompatible format
            version, names an unknown kind, has a config its kind cannot build, or its params
            do not match their checksum or the config.
    """
    path = Path(path)
    backup = _backup_of(path)
    if not path.exists() and (backup / _METADATA).is_file():
        os.rename(backup, path)  # an overwrite stopped between its two renames
    if not path.is_dir() or not (path / _METADATA).is_file() or not (path / _PARAMS).is_file():
        raise ValueError(
            f"path: expected a directory written by numpyro_hgf.save (with {_METADATA} and "
            f"{_PARAMS}), got {str(path)!r}"
        )
    metadata = _read_metadata(path)
    _import_model_module(metadata.get("module"))
    kind = metadata.get("kind")
    if not isinstance(kind, str) or kind not in _REGISTRY:
        raise ValueError(f"path: unknown model kind {kind!r}; known kinds: {sorted(_REGISTRY)}")
    raw = (path / _PARAMS).read_bytes()
    checksum = metadata.get("params_sha256")
    if checksum is not None and hashlib.sha256(raw).hexdigest() != checksum:
        raise ValueError(
            f"path: {str(path / _PARAMS)!r} does not match the checksum in {_METADATA} "
            "(the file is corrupt or belongs to another model)"
        )
    try:
        template = _REGISTRY[kind].from_config(metadata["config"])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise ValueError(
            f"path: the config in {str(path / _METADATA)!r} cannot build a {kind!r} model "
            f"({type(err).__name__}: {err})"
        ) from None
    try:
        params = serialization.from_bytes(template.params, raw)
    except Exception as err:  # msgpack raises its own exception types on corrupt bytes
        raise ValueError(f"path: params in {path} do not fit the saved config: {err}") from None
    expected, got = _param_shapes(template.params), _param_shapes(params)
    if expected != got:
        raise ValueError(
            f"path: params in {path} do not fit the saved config: "
            f"expected shapes {expected}, got {got}"
        )
    return template.with_params(params)


def _import_model_module(module) -> None:
    """Import the module that defines a saved kind (its class registers itself on import).

    Files written before the module was recorded name none: the package root is imported,
    which imports every model family.
    """
    if not isinstance(module, str) or not (
        module == "numpyro_hgf" or module.startswith("numpyro_hgf.")
    ):
        module = "numpyro_hgf"
    try:
        importlib.import_module(module)
    except ImportError:
        importlib.import_module("numpyro_hgf")
