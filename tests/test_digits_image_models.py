"""Smoke run of benchmarks/digits_image_models.py (``--quick``: 3 training steps, so only the
plumbing and the reference rows carry meaning).  About 75 s on 2 cores: slow."""

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "digits_image_models.py"


@pytest.mark.slow
def test_digits_image_models_quick_run(tmp_path):
    spec = importlib.util.spec_from_file_location("digits_image_models", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "table.md"
    rows, hsd_rows = bench.main(["--quick", "--image-dir", str(tmp_path), "--out", str(out)])
    by_label = {label: s for label, nfe, _, s in rows if nfe == "-"}
    floor = by_label["training digits (floor)"]
    noise = by_label["noise N(0, 0.5^2) (negative control)"]
    # the metrics separate real digits from noise by a wide margin (negative control)
    assert noise["frechet"] > 5 * floor["frechet"]
    assert noise["sliced_w"] > 3 * floor["sliced_w"]
    # every model at every NFE; Heun uses two evaluations per step
    models = [(label, nfe, used) for label, nfe, used, _ in rows if nfe != "-"]
    assert len(models) == 3 * 2
    assert all(used == nfe for _, nfe, used in models)
    for name in ("oscillation", "flow_matching", "diffusion"):
        assert (tmp_path / f"digits_{name}.png").stat().st_size > 1000
    assert len(hsd_rows) == 4
    text = out.read_text()
    assert "classifier-Fréchet" in text and "HSD (held-out)" in text
