"""The `numpyro-hgf` command: demo, sample, evaluate, bench and one-line usage errors."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import numpyro_hgf as nh
from numpyro_hgf.cli import app

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FLOW_ONLY = ["--skip", "hgf", "--skip", "inpaint", "--skip", "nlme"]


def _is_png(path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE


@pytest.fixture(scope="module")
def flow_demo(tmp_path_factory):
    """The demo's flow part alone (a tiny RealNVP on two_moons): its folder and output."""
    out = tmp_path_factory.mktemp("demo")
    args = ["demo", "--out", str(out), "--steps", "40", "--flow", "realnvp", "--quick", "-q"]
    result = CliRunner().invoke(app, args + FLOW_ONLY)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_demo_flow_part_writes_report_pngs_and_model(flow_demo):
    out, output = flow_demo
    report = (out / "report.md").read_text()
    assert "test NLL" in report and "entropy floor" in report
    assert "| flow |" in report and "| total |" in report  # the timings table
    assert "Oscillation HGF" not in report and "Theophylline" not in report  # skipped parts
    for png in ("two_moons_density.png", "two_moons_loss.png"):
        assert _is_png(out / png)
    # the reported test NLL is the loaded model's NLL on the same held-out points
    nll = float(re.search(r"test NLL on [\d,]+ held-out points: \*\*([-\d.]+) nats", report)[1])
    flow = nh.load(out / "two_moons-flow")
    _, k_test, _, _ = jax.random.split(jax.random.split(jax.random.key(0), 4)[1], 4)
    test = nh.datasets.toy2d("two_moons", 500, k_test, standardize=True)
    assert nll == pytest.approx(float(-jnp.mean(flow.log_prob(test))), abs=2e-3)
    assert "report written to" in output


def test_sample_writes_npy_and_png_matching_the_model(flow_demo, tmp_path):
    model = flow_demo[0] / "two_moons-flow"
    result = CliRunner().invoke(
        app,
        ["sample", "--model", str(model), "--num", "300", "--seed", "3", "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    x = np.load(tmp_path / "samples.npy")
    assert x.shape == (300, 2) and _is_png(tmp_path / "samples.png")
    expected = nh.load(model).sample(jax.random.key(3), (300,))
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-5)


def test_evaluate_reports_the_models_log_likelihood_and_bits_per_dim(flow_demo, tmp_path):
    model = flow_demo[0] / "two_moons-flow"
    flow = nh.load(model)
    data = np.asarray(nh.datasets.toy2d("two_moons", 400, jax.random.key(5), standardize=True))
    np.save(tmp_path / "points.npy", data)
    result = CliRunner().invoke(
        app, ["evaluate", "--model", str(model), "--data", str(tmp_path / "points.npy")]
    )
    assert result.exit_code == 0, result.output
    ll = float(re.search(r"mean log-likelihood: ([-\d.]+) nats", result.output)[1])
    bpd = float(re.search(r"bits/dim: ([-\d.]+)", result.output)[1])
    expected = float(jnp.mean(flow.log_prob(data)))
    assert ll == pytest.approx(expected, abs=1e-3)
    assert bpd == pytest.approx(-expected / (2 * math.log(2)), abs=1e-3)  # D = 2, in bits
    mmd = float(re.search(r"MMD\^2 .*: ([-\d.e]+)", result.output)[1])
    assert abs(mmd) < 0.05  # samples of a fitted flow vs its own data: small MMD


def test_bench_lists_the_benchmark_scripts():
    result = CliRunner().invoke(app, ["bench"])
    assert result.exit_code == 0, result.output
    names = {line.split()[0] for line in result.output.strip().splitlines()}
    assert {"flows", "inference", "nlme"} <= names


MISUSES = [
    (["demo", "--steps", "0"], "greater than or equal to 1"),
    (["demo", "--steps", "many"], "valid integer"),
    (["demo", "--flow", "glow"], "got 'glow'"),
    (["demo", "--skip", "everything"], "got 'everything'"),
    (["demo", "--skip", "hgf"], "inpaint"),
    (["train", "--model", "gan"], "got 'gan'"),
    (["sample", "--model", "no/such/model"], "no/such/model"),
    (["sample", "--model", "no/such/model", "--num", "-3"], "--num"),
    (["evaluate", "--model", "no/such/model", "--data", "two_moons"], "--model"),
    (["bench", "no_such_benchmark"], "got 'no_such_benchmark'"),
    (["bench", "nlme", "--quick"], "no --quick mode"),
]


@pytest.mark.parametrize(("args", "needle"), MISUSES, ids=[" ".join(a) for a, _ in MISUSES])
def test_misuse_gives_one_clear_line_and_exit_2(args, needle):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (args, result.output)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert needle in lines[0], lines[0]


def test_evaluate_misuse_on_a_saved_model(flow_demo, tmp_path):
    model = str(flow_demo[0] / "two_moons-flow")
    np.save(tmp_path / "wrong.npy", np.zeros((10, 3), np.float32))
    for args, needle in (
        (["--data", str(tmp_path / "missing.npy")], "no such file"),
        (["--data", str(tmp_path / "wrong.npy")], "got (10, 3)"),
        (["--data", "digits"], "does not fit 8x8 digits"),
        (["--data", "mnist"], "got 'mnist'"),
    ):
        result = CliRunner().invoke(app, ["evaluate", "--model", model, *args])
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], result.output


def test_evaluate_and_sample_on_bad_data_or_a_corrupt_model_give_one_line(flow_demo, tmp_path):
    import shutil

    model = flow_demo[0] / "two_moons-flow"
    bad = np.zeros((10, 2), np.float32)
    bad[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    np.save(tmp_path / "text.npy", np.array([["a", "b"]] * 4))
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    (broken / "model.json").write_bytes(b"\xff\xfe not json")
    listed = tmp_path / "listed"
    shutil.copytree(model, listed)
    (listed / "model.json").write_text("[1, 2]")
    cases = [
        (["evaluate", "--model", str(model), "--data", str(tmp_path / "nan.npy")], "NaN/inf"),
        (["evaluate", "--model", str(model), "--data", str(tmp_path / "text.npy")], "dtype"),
        (["evaluate", "--model", str(broken), "--data", "two_moons"], "not UTF-8"),
        (["sample", "--model", str(broken), "--out", str(tmp_path)], "not UTF-8"),
        (["sample", "--model", str(listed), "--out", str(tmp_path)], "numpyro_hgf model"),
    ]
    for args, needle in cases:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.slow
def test_demo_quick_runs_every_part(tmp_path):
    """``demo --quick``: all four parts end to end (a few minutes on a loaded 2-core CPU)."""
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--quick", "-q"])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "report.md").read_text()
    for heading in ("Oscillation HGF on digits", "two_moons", "BlackJAX NUTS", "Theophylline"):
        assert heading in report
    for part in ("hgf", "flow", "inpaint", "nlme", "total"):
        assert f"| {part} |" in report
    assert "| ka |" in report and "1.594" in report  # parameter table vs published FOCE-I
    bpd = float(re.search(r"likelihood, RK4 with \d+ evaluations\): \*\*([\d.]+)\*\*", report)[1])
    assert 0 < bpd < 20
    for png in (
        "digits_hgf_samples.png",
        "two_moons_density.png",
        "two_moons_loss.png",
        "inpainting.png",
        "theophylline_vpc.png",
    ):
        assert _is_png(tmp_path / png), png
    assert isinstance(nh.load(tmp_path / "digits-hgf"), nh.distributions.HGFPrior)


def test_the_command_runs_under_a_fixed_hash_seed():
    """NumPyro sums ELBO sites over a ``set``: without a fixed hash seed an SVI fit's numbers
    change in the last bits between processes and JAX's persistent cache misses."""
    import os
    import subprocess
    import sys

    from numpyro_hgf.cli import reexec_command

    command = reexec_command(["numpyro-hgf", "demo", "--quick"], {})
    assert command == [sys.executable, "-m", "numpyro_hgf.cli", "demo", "--quick"]
    assert reexec_command(["numpyro-hgf", "demo"], {"PYTHONHASHSEED": "3"}) is None  # the user's
    assert reexec_command(["numpyro-hgf", "train", "--help"], {}) is None
    assert reexec_command(["numpyro-hgf"], {}) is None
    # end to end: the restarted process runs once (no loop) and keeps the one-line errors
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    script = (
        "import sys; sys.argv = ['numpyro-hgf', 'sample']; from numpyro_hgf.cli import run; run()"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "Error: numpyro-hgf sample: Missing option '--model'."
    ]
