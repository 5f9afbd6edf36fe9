"""Digits (8x8, 17 grey levels): test bits/dim of a VP diffusion prior by the PF-ODE.

The diffusion prior (:func:`numpyro_hgf.train.fit_diffusion`, VP SDE, ``TimeMLP`` of ``--hidden``
widths, noise parameterisation) is fitted on ``--train-copies`` uniform dequantizations of the
1,437 training images scaled to ``[-1, 1]`` and scored on the 360 test images
(``--dequant-draws`` dequantizations each): ``log p_eps`` by the PF-ODE with the exact trace
(64 Jacobian-vector products per evaluation, Dopri5 at ``--tol``), bits/dim by the uniform-
dequantization bound :func:`numpyro_hgf.metrics.bits_per_dim`.

In-run baselines come from ``benchmarks/digits_likelihood.py`` (the same data, the same
dequantization and the same bits/dim code): a mixture of 32 independent categoricals fitted by EM
(exact discrete likelihood) and a 10-component full-covariance Gaussian mixture on dequantized
data.  Also writes a sample grid (``--out-dir/digits_samples.png``, PF-ODE samples) and the
trained prior (``--out-dir/prior``, loadable with ``numpyro_hgf.load``; usable as
``examples/diffusion_inpainting.py --prior``).

    nice -n 10 .venv/bin/python benchmarks/diffusion_digits.py          # defaults = the docs
    .venv/bin/python benchmarks/diffusion_digits.py --quick             # smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import numpyro_hgf as nh  # noqa: E402
from numpyro_hgf.odeflow import ODESolver  # noqa: E402
from numpyro_hgf.sde import VPSDE  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits_likelihood import (  # noqa: E402
    categorical_mixture_bpd,
    dequantized,
    gaussian_mixture_bpd,
    logit_split,
    ode_model_bpd,
    raw_digits,
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", default="512,512,512")
    p.add_argument("--train-copies", type=int, default=32)
    p.add_argument("--dequant-draws", type=int, default=2)
    p.add_argument("--tol", type=float, default=1e-5)
    p.add_argument("--eps", type=float, default=1e-5, help="lowest PF-ODE time")
    p.add_argument("--eval-batch", type=int, default=120)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=Path("runs/diffusion_digits"))
    p.add_argument("--skip-baselines", action="store_true")
    p.add_argument(
        "--logit", type=float, default=None, metavar="ALPHA",
        help="fit in the standardised logit coordinates of nh.preprocessing.logit_coordinates",
    )  # fmt: skip
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.hidden, args.train_copies, args.dequant_draws = 50, "32,32", 2, 1
        args.tol = 1e-3
    return args


def sample_grid(path, prior, key, n=64, coords=None):
    x = prior.sample(key, (n,))
    if coords is not None:  # z -> [0, 1) -> [-1, 1]
        x = 2.0 * coords(x) - 1.0
    x = np.asarray(x).reshape(n, 8, 8)
    rows = int(np.sqrt(n))
    fig, axes = plt.subplots(rows, n // rows, figsize=(n // rows, rows))
    for ax, image in zip(axes.ravel(), x, strict=True):
        ax.imshow(np.clip(image, -1, 1), cmap="gray", vmin=-1, vmax=1)
        ax.axis("off")
    fig.suptitle("VP diffusion prior, PF-ODE samples")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None):
    args = parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    key = jax.random.key(args.seed)
    k_train, k_test, k_fit, k_sample = jax.random.split(key, 4)
    train_raw, test_raw = raw_digits("train"), raw_digits("test")
    train_x = dequantized(k_train, train_raw, args.train_copies)
    test_x = dequantized(k_test, test_raw, args.dequant_draws)
    rows = []
    if not args.skip_baselines:
        t0 = time.perf_counter()
        c = categorical_mixture_bpd(train_raw, test_raw, 32, 200, 0.5, args.seed)
        rows.append(("mixture of 32 categoricals (EM)", c, f"{time.perf_counter() - t0:.0f}"))
        t0 = time.perf_counter()
        g = gaussian_mixture_bpd(train_x, test_x, 10, args.seed)
        rows.append(
            ("Gaussian mixture, 10 full (dequantized)", g, f"{time.perf_counter() - t0:.0f}")
        )
        for row in rows:
            print(f"{row[0]}: {row[1]:.3f} bits/dim", flush=True)

    coords = None
    if args.logit is not None:  # the same dequantization, in [0, 1) then logit coordinates
        coords, train01, test01 = logit_split(train_x, test_x, args.logit)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    t0 = time.perf_counter()
    prior = nh.train.fit_diffusion(
        VPSDE(),
        train_x if coords is None else coords.inv(train01),
        hidden=hidden,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        eps=args.eps,
        key=k_fit,
        progress=False,
        trace="exact",
        solver=ODESolver("dopri5", rtol=args.tol, atol=args.tol),
    )
    jax.block_until_ready(prior.params)
    fit_s = time.perf_counter() - t0
    if coords is None:  # a prior on [-1, 1] images, as examples/diffusion_inpainting.py expects
        nh.save(args.out_dir / "prior", prior, overwrite=True)
        bpd, nfe = ode_model_bpd(prior, test_x, args.eval_batch)
        name = "VP diffusion"
    else:
        bpd, nfe = ode_model_bpd(prior, test01, args.eval_batch, coords)
        name = f"VP diffusion (logit coordinates, alpha {args.logit:g})"
    rows.append((f"{name}, PF-ODE exact trace ({nfe:.0f} NFE)", bpd, f"{fit_s:.0f}"))
    print(f"diffusion: {bpd:.3f} bits/dim, NFE {nfe:.0f}, fit {fit_s:.0f} s", flush=True)
    png = sample_grid(args.out_dir / "digits_samples.png", prior, k_sample, coords=coords)

    lines = ["| model | test bits/dim | fit (s) |", "|---|---|---|"]
    lines += [f"| {name} | {value:.3f} | {s} |" for name, value, s in rows]
    lines.append("")
    lines.append(
        f"`python benchmarks/diffusion_digits.py --steps {args.steps} --hidden {args.hidden} "
        f"--lr {args.lr} --train-copies {args.train_copies} --dequant-draws "
        f"{args.dequant_draws} --eps {args.eps} --seed {args.seed}"
        + (f" --logit {args.logit:g}" if coords is not None else "")
        + f"`; {platform.machine()}, "
        f"{os.cpu_count()} CPUs, jax {jax.__version__}; sample grid: {png}"
    )
    table = "\n".join(lines)
    print(table)
    (args.out_dir / "table.md").write_text(table + "\n")
    return table


if __name__ == "__main__":
    main()
