"""The `numpyro-hgf` command."""

from typer.testing import CliRunner

from numpyro_hgf.cli import app


def test_demo_writes_report_and_pngs(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--out", str(out), "--steps", "40", "--flow", "realnvp", "-q"]
    )
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert "test NLL" in report and "entropy floor" in report
    for png in ("two_moons_density.png", "two_moons_loss.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "two_moons-flow" / "model.json").is_file()


def test_bad_arguments_exit_2_with_one_clear_line():
    for args, needle in (
        (["demo", "--steps", "0"], "greater than or equal to 1"),
        (["demo", "--flow", "glow"], "got 'glow'"),
        (["demo", "--steps", "many"], "valid integer"),
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, args
        assert needle in result.output, result.output
