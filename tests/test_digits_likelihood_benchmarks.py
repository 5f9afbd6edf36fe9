"""Smoke runs of benchmarks/digits_likelihood.py and benchmarks/diffusion_digits.py in logit
coordinates (``--quick``: tiny networks, 50 steps, so only the plumbing carries meaning: the
rows exist, the bits/dim are finite, the sample grid is written).  Slow: each compiles an
exact-trace ODE likelihood."""

import importlib.util
import math
import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def bits(table: str, label: str) -> float:
    row = next(line for line in table.splitlines() if label in line)
    return float(re.split(r"\s*\|\s*", row)[2])


@pytest.mark.slow
def test_ode_models_in_logit_coordinates_quick_run(tmp_path):
    out = tmp_path / "table.md"
    load("digits_likelihood").main(
        ["--quick", "--logit", "0.001", "--skip-baselines", "--paths", "fm", "--out", str(out)]
    )
    value = bits(out.read_text(), "fm (logit coordinates, alpha 0.001) ODE")
    assert math.isfinite(value) and 0.5 < value < 20.0


@pytest.mark.slow
def test_diffusion_prior_in_logit_coordinates_quick_run(tmp_path):
    table = load("diffusion_digits").main(
        ["--quick", "--logit", "0.001", "--skip-baselines", "--out-dir", str(tmp_path)]
    )
    value = bits(table, "VP diffusion (logit coordinates, alpha 0.001)")
    assert math.isfinite(value) and 0.5 < value < 20.0
    assert (tmp_path / "digits_samples.png").stat().st_size > 1000
    assert not (tmp_path / "prior").exists()  # a prior on z is not saved as a pixel prior
