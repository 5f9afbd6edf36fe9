"""The examples run end to end (``--smoke``: tiny settings) and write their PNGs."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import numpyro_hgf as nh

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE


def test_hgf_2d_smoke_one_path_in_process(tmp_path):
    example = _load("hgf_2d")
    png = example.main(["--smoke", "--paths", "reflection", "--out", str(tmp_path)])
    assert png == tmp_path / "transport.png" and _is_png(png)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["paths"]) == ["reflection"]
    assert np.isfinite(summary["paths"]["reflection"]["final_loss"])
    assert np.isfinite(summary["paths"]["reflection"]["test_nll"])
    prior = nh.load(tmp_path / "models" / "reflection")
    assert prior.path == example.PATHS["reflection"][1]
    with pytest.raises(SystemExit):
        example.parse_args(["--paths", "brownian"])


@pytest.mark.slow
def test_hgf_2d_smoke_script(tmp_path):
    """The script as users run it: all four paths (~1 min on a contended CPU)."""
    out = tmp_path / "hgf"
    subprocess.run(
        [sys.executable, str(EXAMPLES / "hgf_2d.py"), "--smoke", "--out", str(out)],
        check=True,
        timeout=600,
    )
    assert _is_png(out / "transport.png")
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["paths"]) == ["fm", "oscillation", "ot-fm", "reflection"]
