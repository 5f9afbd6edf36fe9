"""The ``numpyro-hgf`` command: ``demo``, ``train``, ``sample``, ``evaluate`` and ``bench``.

Every misuse (a bad option value, a missing file, an unknown model or benchmark, a folder that
is not a saved model) prints one line, ``Error: ...``, on stderr and exits with code 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from typer.core import TyperGroup

# click's ClickException as typer raises it (typer may vendor its own click)
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class _OneLineErrors(TyperGroup):
    """Click usage errors as a single ``Error: ...`` line with their exit code (2)."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except _ClickException as err:
            ctx = getattr(err, "ctx", None)
            where = f"{ctx.command_path}: " if ctx is not None else ""
            message = " ".join(err.format_message().split())
            if message:  # (no arguments at all prints the help and exits 2)
                typer.echo(f"Error: {where}{message}", err=True)
            sys.exit(err.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    help="numpyro_hgf: learned generative priors (flows, HGFs, diffusion, EBMs) for NumPyro.",
    no_args_is_help=True,
    add_completion=False,
)


def _bad(param_hint: str, err: Exception) -> typer.BadParameter:
    """A library ``ValueError``/``TypeError`` as a usage error of ``param_hint`` (exit 2)."""
    return typer.BadParameter(" ".join(str(err).split()), param_hint=param_hint)


@app.callback()
def main(
    compilation_cache: bool = typer.Option(
        True,
        "--compilation-cache/--no-compilation-cache",
        help="Reuse compiled programs across runs (JAX's persistent cache in "
        "~/.cache/numpyro_hgf/jax, or $NUMPYRO_HGF_CACHE_DIR).",
    ),
) -> None:
    """numpyro_hgf command line."""
    if compilation_cache:
        from numpyro_hgf.compilation_cache import enable_compilation_cache

        enable_compilation_cache()


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Folder for the report, PNGs and models."),
    steps: int = typer.Option(
        None, min=1, help="Training steps for the 2-D flow (default 3000, 30 with --quick)."
    ),
    flow: str = typer.Option("spline", help="Flow kind: planar, radial, realnvp, maf or spline."),
    seed: int = typer.Option(0, help="Random seed."),
    quick: bool = typer.Option(
        False, "--quick", help="Tiny budgets: a wiring check in about a minute, not results."
    ),
    skip: list[str] = typer.Option(
        [], "--skip", help="Skip a part (repeatable): hgf, flow, inpaint or nlme."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Hide progress bars."),
) -> None:
    """The main job on shipped data; writes runs/demo/report.md and its PNGs.

    Parts: hgf (oscillation HGF on 8x8 digits: bits/dim, samples),
    flow (a normalizing flow on two_moons), inpaint (masked digits
    reconstructed under the HGF prior by BlackJAX NUTS; needs hgf),
    nlme (theophylline NLME by SVI: table vs FOCE-I, VPC).
    About 5 minutes on 2 CPU cores; --quick for a wiring check.
    """
    from numpyro_hgf.demo import DEMO_PARTS, DemoConfig, run_demo
    from numpyro_hgf.flows import FLOW_KINDS

    if flow not in FLOW_KINDS:
        raise typer.BadParameter(
            f"expected one of {', '.join(FLOW_KINDS)}, got {flow!r}", param_hint="--flow"
        )
    for part in skip:
        if part not in DEMO_PARTS:
            raise typer.BadParameter(
                f"expected one of {', '.join(DEMO_PARTS)}, got {part!r}", param_hint="--skip"
            )
    parts = tuple(p for p in DEMO_PARTS if p not in skip)
    if "inpaint" in parts and "hgf" not in parts:
        raise typer.BadParameter(
            "the inpaint part needs the hgf prior: skip inpaint too, got --skip hgf alone",
            param_hint="--skip",
        )
    options = dict(out=out, flow=flow, seed=seed, progress=False if quiet else None, parts=parts)
    if steps is not None:
        options["steps"] = steps
    config = DemoConfig.quick(**options) if quick else DemoConfig(**options)
    report = run_demo(config)
    typer.echo(report.read_text())
    typer.echo(f"report written to {report}")


TRAIN_DATA = ("digits",)
#: Where ``train`` writes the model inside its run folder (beside checkpoints and PNGs).
RUN_MODEL = "model"


@app.command()
def train(
    model: str = typer.Option(
        ...,
        help="A path's name: flow_matching (alias fm), oscillation, reflection, vp, subvp, ve "
        "(diffusion: vp), or hsm.",
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
    """Train an image model with a UNet; write the model (nh.load(out / "model")), checkpoints
    and PNGs.

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
    from numpyro_hgf.train.images import fit_images, image_models, save_image_grid

    model = {"fm": "flow_matching"}.get(model, model)
    if model not in image_models():
        raise typer.BadParameter(
            f"expected one of fm, {', '.join(image_models())}, got {model!r}",
            param_hint="--model",
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
    options = dict(
        devices=None if n_devices == 1 else n_devices,
        precision=precision,
        checkpoint_dir=out / "checkpoints",
        checkpoint_every=checkpoint_every,
    )
    if model != "hsm":  # the HSM force draws no samples
        options.update(sample_dir=out / "samples", sample_every=sample_every)
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
        nh.save(out / RUN_MODEL, trained, overwrite=True)  # atomic; a rerun replaces it
        grid = trained.sample(jax.random.key(seed + 1), (64,))
        save_image_grid(out / "samples.png", grid, ncols=8, title=f"{data} {model}")
    from numpyro_hgf.plots import plot_loss

    out.mkdir(parents=True, exist_ok=True)
    plot_loss(out / "loss.png", result.history, title=f"{data} {model}")
    typer.echo(f"trained {model} on {data} for {steps} steps; final loss {result.history[-1]:.4f}")
    typer.echo(f"run written to {out}")


def _load_model(model_dir: Path):
    import numpyro_hgf as nh

    if (model_dir / RUN_MODEL / "model.json").is_file():  # a run folder of `train`
        model_dir = model_dir / RUN_MODEL
    try:
        return nh.load(model_dir)
    except (TypeError, ValueError) as err:
        raise _bad("--model", err) from None


def _sample_png(path: Path, samples, title: str) -> Path:
    """2-D samples as a scatter plot, square images as a grid, else the first two coordinates."""
    import math

    import numpy as np

    from numpyro_hgf.train.images import save_image_grid

    x = np.asarray(samples, np.float32)
    event = x.shape[1:]
    size = int(np.prod(event))
    side = math.isqrt(size)
    if size != 2 and (len(event) >= 2 or side * side == size) and size >= 16:
        images = x if len(event) == 3 else x.reshape(x.shape[0], side, side, 1)
        return save_image_grid(path, np.clip(images[:64], -1, 1), title=title)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flat = x.reshape(x.shape[0], -1)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(flat[:, 0], flat[:, 1] if flat.shape[1] > 1 else np.zeros(len(flat)), s=2)
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


@app.command()
def sample(
    model: Path = typer.Option(..., help="A model folder written by nh.save (or a command)."),
    num: int = typer.Option(1000, min=1, help="Number of samples."),
    out: Path = typer.Option(None, help="Output folder (default: <model>/samples)."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Draw samples from a saved model: writes samples.npy and samples.png.

    Example: numpyro-hgf sample --model runs/demo/two_moons-flow --num 5000
    """
    import jax
    import numpy as np

    prior = _load_model(model)
    out = model / "samples" if out is None else out
    out.mkdir(parents=True, exist_ok=True)
    x = np.asarray(prior.sample(jax.random.key(seed), (num,)))
    np.save(out / "samples.npy", x)
    png = _sample_png(out / "samples.png", x, f"{num} samples of {model.name}")
    typer.echo(f"wrote {num} samples of shape {x.shape[1:]} to {out / 'samples.npy'} and {png}")


def _evaluation_data(data: str, num: int, event_shape: tuple, seed: int, standardize: bool):
    """``(x, num_levels, interval)`` for ``evaluate``: a toy2d name, digits or a .npy file."""
    import jax
    import numpy as np

    from numpyro_hgf import datasets

    if data in datasets.TOY2D_NAMES:
        x = datasets.toy2d(data, num, jax.random.key(seed), standardize=standardize)
        return x, None, None
    if data.startswith("digits"):
        split = data.partition(":")[2] or "test"
        if split not in ("train", "test", "both"):
            raise typer.BadParameter(
                f"expected digits, digits:train, digits:test or digits:both, got {data!r}",
                param_hint="--data",
            )
        raw = datasets.digits(split, form="raw").images[:num]
        x = datasets.dequantize(jax.random.key(seed), raw, interval=(-1.0, 1.0))
        if int(np.prod(event_shape)) != 64:
            raise typer.BadParameter(
                f"the model's event shape {event_shape} does not fit 8x8 digits (64 values)",
                param_hint="--data",
            )
        return x.reshape((x.shape[0], *event_shape)), datasets.DIGITS_NUM_LEVELS, (-1.0, 1.0)
    path = Path(data)
    if path.suffix != ".npy":
        raise typer.BadParameter(
            f"expected one of {', '.join(datasets.TOY2D_NAMES)}, digits[:split] or a .npy "
            f"file, got {data!r}",
            param_hint="--data",
        )
    if not path.is_file():
        raise typer.BadParameter(f"no such file: {str(path)!r}", param_hint="--data")
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise _bad("--data", err) from None
    if x.ndim < 2 or tuple(x.shape[1:]) != tuple(event_shape):
        raise typer.BadParameter(
            f"expected an array of shape (n, {', '.join(map(str, event_shape))}) "
            f"to match the model, got {x.shape} in {str(path)!r}",
            param_hint="--data",
        )
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise typer.BadParameter(
            f"expected real numbers, got dtype {x.dtype} in {str(path)!r}", param_hint="--data"
        )
    x = np.asarray(x[:num], np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        raise typer.BadParameter(
            f"expected finite values, got {int(bad.sum())} NaN/inf entries (first at index "
            f"{tuple(int(i) for i in np.argwhere(bad)[0])}) in {str(path)!r}",
            param_hint="--data",
        )
    return x, None, None


@app.command()
def evaluate(
    model: Path = typer.Option(..., help="A model folder written by nh.save (or a command)."),
    data: str = typer.Option(
        ..., help="A toy2d name (two_moons, ...), digits[:train|test|both] or a .npy file."
    ),
    num: int = typer.Option(1000, min=2, help="Data points (and model samples) to use."),
    standardize: bool = typer.Option(True, help="Standardize toy2d data (as the demo trains)."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Log-likelihood, bits/dim and sample metrics (MMD, energy distance) of a saved model.

    Example: numpyro-hgf evaluate --model runs/demo/two_moons-flow --data two_moons
    """
    import jax
    import jax.numpy as jnp

    from numpyro_hgf import metrics

    prior = _load_model(model)
    event_shape = tuple(prior.event_shape)
    x, num_levels, interval = _evaluation_data(data, num, event_shape, seed, standardize)
    num_dims = int(jnp.size(x[0]))
    try:
        log_p = jax.jit(prior.log_prob)(jnp.asarray(x))
    except (TypeError, ValueError) as err:
        raise _bad("--data", err) from None
    ll = float(jnp.mean(log_p))
    bpd = float(jnp.mean(metrics.bits_per_dim(log_p, num_dims, num_levels, interval)))
    samples = prior.sample(jax.random.key(seed + 1), (x.shape[0],))
    flat_x = jnp.reshape(jnp.asarray(x), (x.shape[0], -1))
    flat_s = jnp.reshape(samples, (samples.shape[0], -1))
    mmd = float(metrics.mmd(flat_s, flat_x))
    energy = float(metrics.energy_distance(flat_s, flat_x))
    levels = f", {num_levels} levels" if num_levels else ""
    typer.echo(f"model: {model} ({type(prior).__name__}, event shape {event_shape})")
    typer.echo(f"data: {data}, {x.shape[0]} points")
    typer.echo(f"mean log-likelihood: {ll:.4f} nats")
    typer.echo(f"bits/dim: {bpd:.4f}{levels}")
    typer.echo(f"MMD^2 (Gaussian kernel, median bandwidth) samples vs data: {mmd:.5f}")
    typer.echo(f"energy distance samples vs data: {energy:.5f}")


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _benchmarks() -> dict[str, Path]:
    if not BENCHMARKS.is_dir():
        return {}
    return {p.stem: p for p in sorted(BENCHMARKS.glob("*.py")) if not p.stem.startswith("_")}


@app.command()
def bench(
    name: str = typer.Argument(None, help="Benchmark script name; omit to list them."),
    quick: bool = typer.Option(False, "--quick", help="Pass --quick (a short smoke run)."),
) -> None:
    """Run one of benchmarks/*.py (peers side by side; see docs/benchmarks.md), or list them.

    Example: numpyro-hgf bench flows --quick
    """
    import subprocess

    scripts = _benchmarks()
    if not scripts:
        raise typer.BadParameter(
            f"expected the benchmarks/ folder of a source checkout at {BENCHMARKS}, got none",
            param_hint="NAME",
        )
    if name is None:
        for stem, path in scripts.items():
            text = path.read_text()
            doc = text.split('"""')[1].strip().splitlines()[0] if '"""' in text else ""
            typer.echo(f"{stem:20s} {doc}")
        return
    if name not in scripts:
        raise typer.BadParameter(
            f"expected one of {', '.join(scripts)}, got {name!r}", param_hint="NAME"
        )
    command = [sys.executable, str(scripts[name])]
    if quick:
        if "--quick" not in scripts[name].read_text():
            raise typer.BadParameter(f"{name} has no --quick mode", param_hint="--quick")
        command.append("--quick")
    raise typer.Exit(subprocess.run(command, check=False).returncode)


def reexec_command(argv, environ) -> list[str] | None:
    """The command that restarts ``numpyro-hgf`` with ``PYTHONHASHSEED=0``, or ``None``.

    NumPyro iterates Python sets of site names (``Trace_ELBO`` sums the sites of a ``set``)
    and gathers distribution fields through one, so with Python's per-process hash seed the
    order of floating-point operations changes between runs: the numbers of an SVI fit differ
    in the last bits and JAX's persistent cache never finds the compiled program again.  The
    command therefore runs with a fixed seed unless ``PYTHONHASHSEED`` is already set (or only
    help is asked for).
    """
    args = list(argv[1:])
    if "PYTHONHASHSEED" in environ or not args or {"--help", "-h"} & set(args):
        return None
    return [sys.executable, "-m", "numpyro_hgf.cli", *args]


def run() -> None:
    """The console script: :data:`app` under a fixed hash seed (see :func:`reexec_command`)."""
    command = reexec_command(sys.argv, os.environ)
    if command is not None:
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(command[0], command)
    app(prog_name="numpyro-hgf")


if __name__ == "__main__":
    run()
