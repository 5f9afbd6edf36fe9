"""Hamiltonian generative flows on 2-D toys: W2 of samples at NFE 1, 10 and adaptive.

Four paths go through the one velocity trainer (:func:`numpyro_hgf.train.fit_velocity`) with
the same network (``TimeMLP`` of ``--hidden`` widths), optimizer, batch size and number of
steps, on the same training points:

* ``fm``: flow matching (CondOT), independent coupling ``v0 = z - x0``;
* ``ot_fm``: flow matching with minibatch-OT coupling (exact assignment inside each batch);
* ``oscillation``: harmonic force ``-omega^2 x``, ``T = pi / (2 omega)``, base ``N(0, I)``;
* ``reflection``: free motion in the box ``[-B, B]^2`` with elastic walls, uniform base.

Each trained prior draws ``--n-eval`` samples by integrating ``dx/dt = V(x, t)`` from the base
back to the data with Euler at NFE 1, Euler at NFE 10, and adaptive Dopri5 (``rtol = atol =
1e-5``; its NFE is reported).  The score is the exact 2-Wasserstein distance
(:func:`numpyro_hgf.metrics.wasserstein2`, Hungarian algorithm) between those samples and
``--n-eval`` fresh data points.  The ``data`` row is W2 between two fresh data samples of the
same size: the finite-sample floor no model can beat at this ``n``.

Run ``python benchmarks/hgf_2d.py --help``; ``--quick`` is a smoke run of a few seconds;
``--out FILE.md`` also writes the markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import numpyro_hgf as nh
from numpyro_hgf.odeflow import ODESolver
from numpyro_hgf.paths import FlowMatchingPath, OscillationPath, ReflectionPath

SOLVERS = {
    "NFE 1 (Euler)": ODESolver("euler", nfe=1),
    "NFE 10 (Euler)": ODESolver("euler", nfe=10),
    "adaptive (Dopri5)": ODESolver("dopri5", rtol=1e-5, atol=1e-5),
}


def make_paths(box: float, reflection_T: float) -> dict:
    """The four paths.  The reflection box ``[-box, box]^2`` must hold the data; its
    ``velocity_std`` scales with the box so that ``x_T`` is uniform to the same accuracy as
    the default ``[-1, 1]`` box with unit velocities (see :class:`ReflectionPath`)."""
    return {
        "fm": FlowMatchingPath(),
        "ot_fm": FlowMatchingPath(minibatch_ot=True),
        "oscillation": OscillationPath(omega=1.0),
        "reflection": ReflectionPath(low=-box, high=box, velocity_std=box, T=reflection_T),
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="eight_gaussians,two_moons")
    p.add_argument("--paths", default="fm,ot_fm,oscillation,reflection")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--hidden", default="128,128,128")
    p.add_argument("--n-train", type=int, default=50_000)
    p.add_argument("--n-eval", type=int, default=2000)
    p.add_argument("--box", type=float, default=5.0, help="reflection box half-width")
    p.add_argument("--reflection-T", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny net, few steps")
    p.add_argument("--out", default=None, help="also write the markdown table here")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.hidden, args.n_train, args.n_eval = 50, "16,16", 2000, 200
    return args


def main(argv=None):
    args = parse_args(argv)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    paths = make_paths(args.box, args.reflection_T)
    names = args.paths.split(",")
    key = jax.random.key(args.seed)
    rows = []  # (dataset, method, {solver: (w2, nfe)}, train seconds)
    for dataset in args.datasets.split(","):
        k_train, k_eval, k_floor, k_fit, k_sample, key = jax.random.split(key, 6)
        train = nh.datasets.toy2d(dataset, args.n_train, k_train)
        reference = np.asarray(nh.datasets.toy2d(dataset, args.n_eval, k_eval))
        floor = nh.metrics.wasserstein2(reference, nh.datasets.toy2d(dataset, args.n_eval, k_floor))
        rows.append((dataset, "data (floor)", {s: (floor, None) for s in SOLVERS}, None))
        print(f"{dataset}: data-vs-data W2 floor at n={args.n_eval}: {floor:.4f}", flush=True)
        for name in names:
            path = paths[name]
            data = train
            if isinstance(path, ReflectionPath):
                inside = jnp.all(jnp.abs(train) < args.box, axis=-1)
                data = train[inside]
            t0 = time.perf_counter()
            prior = nh.train.fit_velocity(
                path, data, hidden=hidden, steps=args.steps, batch_size=args.batch_size,
                learning_rate=args.lr, key=k_fit, progress=False,
            )  # fmt: skip
            jax.block_until_ready(prior.params)
            seconds = time.perf_counter() - t0
            scores = {}
            for label, solver in SOLVERS.items():
                samples, nfe = prior.sample_with_nfe(k_sample, (args.n_eval,), solver=solver)
                samples = np.asarray(samples)
                finite = np.all(np.isfinite(samples))
                w2 = nh.metrics.wasserstein2(samples, reference) if finite else float("nan")
                scores[label] = (w2, int(nfe))
            rows.append((dataset, name, scores, seconds))
            print(
                f"{dataset} {name}: "
                + ", ".join(f"{k} W2={w:.4f} (NFE {n})" for k, (w, n) in scores.items())
                + f"; fit {seconds:.0f} s",
                flush=True,
            )
    table = format_table(rows, args)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


def format_table(rows, args) -> str:
    head = "| data | path | " + " | ".join(SOLVERS) + " | fit (s) |"
    sep = "|" + "---|" * (len(SOLVERS) + 3)
    lines = [head, sep]
    for dataset, name, scores, seconds in rows:
        cells = []
        for w2, nfe in scores.values():
            cells.append(f"{w2:.3f}" + ("" if nfe is None or nfe <= 10 else f" ({nfe} NFE)"))
        fit = "" if seconds is None else f"{seconds:.0f}"
        lines.append(f"| {dataset} | {name} | " + " | ".join(cells) + f" | {fit} |")
    lines.append("")
    lines.append(
        f"`python benchmarks/hgf_2d.py --steps {args.steps} --hidden {args.hidden} "
        f"--batch-size {args.batch_size} --lr {args.lr} --n-train {args.n_train} "
        f"--n-eval {args.n_eval} --seed {args.seed}`; {platform.machine()}, "
        f"{os.cpu_count()} CPUs, jax {jax.__version__}, Python {sys.version.split()[0]}."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
