"""Every public name keeps working at its documented import path.

``tests/data/public_api_0.1.json`` froze, before the package was rearranged into the rooms of
its design table, every name of every public module's ``__all__`` and every dotted name that
the docs, the README, the examples, the benchmarks and the design's contract used.  Each must
still import from the same place (re-exports are fine).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

NAMES = json.loads((Path(__file__).parent / "data" / "public_api_0.1.json").read_text())["names"]


def resolve(dotted: str):
    """Import the longest importable prefix of ``dotted`` and get the rest as attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for part in parts[i:]:
            obj = getattr(obj, part)
        return obj
    raise ModuleNotFoundError(dotted)


def test_the_frozen_list_is_the_whole_public_api():
    assert len(NAMES) > 200
    assert "numpyro_hgf.train.fit_velocity" in NAMES
    assert "numpyro_hgf.odeflow.ODESolver" in NAMES  # an old module path, kept as an alias


@pytest.mark.parametrize("name", NAMES)
def test_documented_name_still_imports_from_its_place(name):
    resolve(name)


def test_a_name_that_does_not_exist_fails():
    with pytest.raises(AttributeError):
        resolve("numpyro_hgf.train.fit_velocityy")
    with pytest.raises(ModuleNotFoundError):
        resolve("numpyro_hgf_nope.x")
