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


TRAIN_DATA = ("digits",)


@app.command()
def train(
    model: str = typer.Option(
        ..., help="flow_matching (alias fm), oscillation, reflection, diffusion or hsm."
    ),
    data: str = typer.Option("digits", help="Training images: digits (8x8x1, in [-1, 1])."),
    out: Path = typer.Option(None, help="Run folder (default runs/<data>-<model>)."),
    steps: int = typer.Option(5000, min=1, help="Optimizer steps."),
    batch_size: int = typer.Option(128, min=1, help="Global minibatch size."),
    learning_rate: float = typer.Option(2e-4, help="Adam learning rate (cosine decay)."),
    channels: str = typer.Option("32,64", help="UNet widths per resolution level."),
    devices: str = typer.Option(
        "1", help="'all' for data parallelism over every device, or a number of devices."
    ),
    precision: str = typer.Option("float32", help="float32 or bfloat16 (mixed precision)."),
    checkpoint_every: int = typer.Option(
        1000, min=1, help="Orbax checkpoint interval (steps); a rerun resumes."
    ),
    sample_every: int = typer.Option(1000, min=1, help="Sample-grid PNG interval (steps)."),
    seed: int = typer.Option(0, help="Random seed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Hide progress bars."),
    coordinator: str = typer.Option(
        None, help="Multi-host: address:port of process 0 ('auto' on SLURM/MPI/TPU)."
    ),
    num_processes: int = typer.Option(None, min=1, help="Multi-host: number of processes."),
    process_id: int = typer.Option(None, min=0, help="Multi-host: this process's index."),
) -> None:
    """Train an image model with a UNet; write the model (nh.load(out)), checkpoints and PNGs.

    Example: numpyro-hgf train --model oscillation --data digits --steps 20000
    (multi-host launch commands: docs/training.md)
    """
    import jax

    if coordinator is not None:
        # CPU processes need gloo for cross-process collectives; GPUs/TPUs ignore this
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        if coordinator == "auto":
            jax.distributed.initialize()
        else:
            jax.distributed.initialize(coordinator, num_processes, process_id)

    import numpyro_hgf as nh
    from numpyro_hgf.train.images import IMAGE_MODELS, fit_images, save_image_grid

    model = {"fm": "flow_matching"}.get(model, model)
    if model not in IMAGE_MODELS:
        raise typer.BadParameter(
            f"expected one of fm, {', '.join(IMAGE_MODELS)}, got {model!r}", param_hint="--model"
        )
    if data not in TRAIN_DATA:
        raise typer.BadParameter(
            f"expected one of {', '.join(TRAIN_DATA)}, got {data!r}", param_hint="--data"
        )
    try:
        widths = tuple(int(c) for c in channels.split(","))
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated integers, got {channels!r}", param_hint="--channels"
        ) from None
    if devices != "all" and not devices.isdigit():
        raise typer.BadParameter(
            f"expected 'all' or a number, got {devices!r}", param_hint="--devices"
        )
    n_devices = "all" if devices == "all" else int(devices)
    out = Path(f"runs/{data}-{model}") if out is None else out
    images = nh.datasets.digits("train").images[..., None]
    velocity_model = model in ("flow_matching", "oscillation", "reflection")
    options = {}
    if velocity_model:
        options = dict(
            devices=None if n_devices == 1 else n_devices,
            precision=precision,
            checkpoint_dir=out / "checkpoints",
            checkpoint_every=checkpoint_every,
            sample_dir=out / "samples",
            sample_every=sample_every,
        )
    try:
        trained, result = fit_images(
            model,
            images,
            key=jax.random.key(seed),
            channels=widths,
            steps=steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            progress=False if quiet else None,
            return_result=True,
            **options,
        )
    except (TypeError, ValueError) as err:
        raise typer.BadParameter(str(err)) from None
    if jax.process_index() != 0:  # process 0 writes the model and the figures
        return
    # host copies of the (possibly multi-host, global) params: process 0 samples alone
    import numpy as np

    if hasattr(trained, "with_params"):
        trained = trained.with_params(jax.tree.map(np.asarray, trained.params))
    if model != "hsm":  # the HSM force on flattened images is not a saveable prior
        nh.save(out, trained)
        grid = trained.sample(jax.random.key(seed + 1), (64,))
        save_image_grid(out / "samples.png", grid, ncols=8, title=f"{data} {model}")
    from numpyro_hgf.plots import plot_loss

    out.mkdir(parents=True, exist_ok=True)
    plot_loss(out / "loss.png", result.history, title=f"{data} {model}")
    typer.echo(f"trained {model} on {data} for {steps} steps; final loss {result.history[-1]:.4f}")
    typer.echo(f"run written to {out}")


if __name__ == "__main__":
    app()
