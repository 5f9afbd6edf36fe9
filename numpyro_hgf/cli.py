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
    flow: str = typer.Option("spline", help="Flow kind: planar, radial, realnvp, maf or spline."),
    seed: int = typer.Option(0, help="Random seed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Hide progress bars."),
) -> None:
    """The main job on shipped data: fit a flow on two_moons and write runs/demo/report.md."""
    from numpyro_hgf.demo import DemoConfig, run_demo
    from numpyro_hgf.flows import FLOW_KINDS

    if flow not in FLOW_KINDS:
        raise typer.BadParameter(
            f"expected one of {', '.join(FLOW_KINDS)}, got {flow!r}", param_hint="--flow"
        )
    config = DemoConfig(
        out=out, flow=flow, steps=steps, seed=seed, progress=False if quiet else None
    )
    report = run_demo(config)
    typer.echo(report.read_text())
    typer.echo(f"report written to {report}")


if __name__ == "__main__":
    app()
