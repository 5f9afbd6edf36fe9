"""(De)serialising module definitions for ``nh.save`` / ``nh.load``.

A module class takes part by being decorated with :func:`register_module`; every field
module of the package is (they all live in :mod:`numpyro_hgf.nn`, whose ``__init__`` imports
them, so the registry is complete once ``numpyro_hgf.nn`` is imported).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn

__all__ = ["ACTIVATIONS", "MODULES", "register_module", "module_config", "module_from_config"]

ACTIVATIONS = {
    "gelu": nn.gelu,
    "silu": nn.silu,
    "softplus": nn.softplus,
    "tanh": nn.tanh,
    "relu": nn.relu,
    "elu": nn.elu,
}
MODULES: dict[str, type] = {}


def register_module(cls):
    """Make a ``flax.linen`` module class (de)serialisable by :func:`module_config`."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"cls: expected a flax.linen Module class, got {cls!r}")
    MODULES[cls.__name__] = cls
    return cls


def module_config(module: nn.Module) -> dict:
    """JSON description of a registered module: its class name and dataclass fields.

    Activation functions are stored by name (see ``ACTIVATIONS``).
    """
    name = type(module).__name__
    if MODULES.get(name) is not type(module):
        raise TypeError(
            f"module: expected one of the registered modules {sorted(MODULES)}, got {name}"
        )
    fields = {}
    for field in dataclasses.fields(module):
        if field.name in ("parent", "name") or not field.init:
            continue
        value = getattr(module, field.name)
        if callable(value):
            names = [k for k, fn in ACTIVATIONS.items() if fn is value]
            if not names:
                raise TypeError(
                    f"{field.name}: expected an activation in {sorted(ACTIVATIONS)}, got {value}"
                )
            value = {"activation": names[0]}
        elif isinstance(value, tuple):
            value = list(value)
        fields[field.name] = value
    return {"class": name, "fields": fields}


def module_from_config(config: dict) -> nn.Module:
    """Inverse of :func:`module_config`."""
    if not isinstance(config, dict):
        raise TypeError(f"config: expected a dict from module_config, got {type(config).__name__}")
    name = config.get("class")
    if name not in MODULES:
        raise ValueError(f"config: expected a module class in {sorted(MODULES)}, got {name!r}")
    fields = {}
    for key, value in config.get("fields", {}).items():
        if isinstance(value, dict) and set(value) == {"activation"}:
            if value["activation"] not in ACTIVATIONS:
                raise ValueError(
                    f"{key}: expected an activation in {sorted(ACTIVATIONS)}, got "
                    f"{value['activation']!r}"
                )
            value = ACTIVATIONS[value["activation"]]
        elif isinstance(value, list):
            value = tuple(value)
        fields[key] = value
    return MODULES[name](**fields)
