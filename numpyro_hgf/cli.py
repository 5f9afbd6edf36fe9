"""The ``numpyro-hgf`` command."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="numpyro_hgf: learned generative priors (flows, HGFs, diffusion, EBMs) for NumPyro.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """numpyro_hgf command line."""


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Folder for the report, PNGs and models."),
    steps: int = typer.Option(3000, min=1, help="Training steps for the flow."),
    seed: int = typer.Option(0, help="Random seed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Hide progress bars."),
) -> None:
    """The main job on shipped data: fit a flow on two_moons and write runs/demo/report.md."""
    from numpyro_hgf.demo import DemoConfig, run_demo

    report = run_demo(
        DemoConfig(out=out, steps=steps, seed=seed, progress=False if quiet else None)
    )
    typer.echo(report.read_text())
    typer.echo(f"report written to {report}")


if __name__ == "__main__":
    app()
