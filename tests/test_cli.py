"""The `numpyro-hgf` command."""

from typer.testing import CliRunner

from numpyro_hgf.cli import app


def test_demo_writes_report_and_pngs(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--steps", "40", "--quiet"])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert "test NLL" in report and "entropy floor" in report
    for png in ("two_moons_density.png", "two_moons_loss.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "two_moons-flow" / "model.json").is_file()


def test_bad_argument_exits_2():
    result = CliRunner().invoke(app, ["demo", "--steps", "0"])
    assert result.exit_code == 2
