"""Saving and loading trained models: ``nh.save(path, model)`` / ``nh.load(path)``.

A saved model is a directory::

    path/
      model.json      {"format": "numpyro_hgf", "format_version": 1, "kind": ...,
                       "package_version": ..., "config": {...}, "param_shapes": {...}}
      params.msgpack  the params pytree (flax.serialization, msgpack)

A model class takes part by being *saveable*:

* ``model.save_config() -> dict``: JSON-serialisable hyper-parameters (kind-specific);
* ``cls.from_config(config) -> model``: rebuilds the architecture with template params;
* ``model.params`` and ``model.with_params(params) -> model``.

and by registering itself with :func:`register_model` under a ``kind`` name.  This module
knows no model module: the registry fills as model classes are defined, ``save`` writes the
module that defines the class into ``model.json``, and ``load`` imports that module (only
modules of this package) before it looks the kind up.  Loading rebuilds the architecture
from the config, then restores the params into the template's structure, so a mismatch (a
file edited by hand, an incompatible version) is an error, never a silently wrong model.
"""

from __future__ import annotations

import importlib
import json
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


def save(path, model: Saveable) -> Path:
    """Write ``model`` to the directory ``path`` (created if needed); returns the path."""
    kind = getattr(type(model), "model_kind", None)
    if kind is None or not hasattr(model, "save_config"):
        raise TypeError(
            f"model: expected a saveable numpyro_hgf model (one of {sorted(_REGISTRY)}), "
            f"got {type(model).__name__}"
        )
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    params = jax.device_get(model.params)
    metadata = {
        "format": "numpyro_hgf",
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "package_version": __version__,
        "module": type(model).__module__,
        "config": model.save_config(),
        "param_shapes": _param_shapes(params),
    }
    (path / _PARAMS).write_bytes(serialization.to_bytes(params))
    (path / _METADATA).write_text(json.dumps(metadata, indent=2, sort_keys=True))
    return path


def load(path):
    """Read a model written by :func:`save`.

    Raises:
        ValueError: ``path`` is not a saved model, was written by an incompatible
            format version, names an unknown kind, or its params do not fit the config.
    """
    path = Path(path)
    meta_file = path / _METADATA
    if not path.is_dir() or not meta_file.is_file() or not (path / _PARAMS).is_file():
        raise ValueError(
            f"path: expected a directory written by numpyro_hgf.save (with {_METADATA} and "
            f"{_PARAMS}), got {str(path)!r}"
        )
    try:
        metadata = json.loads(meta_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"path: {meta_file} is not valid JSON ({err})") from None
    if metadata.get("format") != "numpyro_hgf":
        raise ValueError(f"path: {meta_file} does not describe a numpyro_hgf model")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"path: expected model format version {FORMAT_VERSION}, got {version!r} "
            f"(written by numpyro_hgf {metadata.get('package_version', '?')}); "
            "re-save it with a compatible version"
        )
    _import_model_module(metadata.get("module"))
    kind = metadata.get("kind")
    if kind not in _REGISTRY:
        raise ValueError(f"path: unknown model kind {kind!r}; known kinds: {sorted(_REGISTRY)}")
    template = _REGISTRY[kind].from_config(metadata["config"])
    raw = (path / _PARAMS).read_bytes()
    try:
        params = serialization.from_bytes(template.params, raw)
    except (ValueError, KeyError, TypeError) as err:
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
