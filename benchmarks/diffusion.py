"""Diffusion priors against flow matching and the oscillation HGF on 2-D toys: MMD and W2.

Three generative models are trained with the same network (``TimeMLP`` of ``--hidden`` widths),
optimizer (Adam, cosine decay from ``--lr``, clipping at 1, EMA 0.999), batch size and number of
steps, on the same training points:

* ``diffusion (VP)``: :func:`numpyro_hgf.train.fit_diffusion` (denoising score matching, noise
  parameterisation, ``t ~ U[1e-5, 1]``);
* ``flow matching``: :func:`numpyro_hgf.train.fit_velocity` with ``FlowMatchingPath``;
* ``oscillation HGF``: ``fit_velocity`` with ``OscillationPath(omega=1)``.

Each trained prior draws ``--n-eval`` samples: every model by its ODE (adaptive Dopri5,
``rtol = atol = 1e-5``, NFE reported) and by Euler with ``--fixed-nfe`` evaluations; the
diffusion prior also by its stochastic samplers (reverse SDE and predictor--corrector with the
same ``--fixed-nfe`` score evaluations).  Scores against ``--n-eval`` fresh data points:
squared MMD (:func:`numpyro_hgf.metrics.mmd`, RBF kernel, median bandwidth, unbiased) and the
exact 2-Wasserstein distance (:func:`numpyro_hgf.metrics.wasserstein2`, Hungarian algorithm).
The ``data`` row compares two fresh data samples of the same size: the finite-sample floor.
Every number is the median over ``--seeds`` training seeds.

    nice -n 10 .venv/bin/python benchmarks/diffusion.py            # defaults = docs/benchmarks.md
    .venv/bin/python benchmarks/diffusion.py --quick                # smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import numpy as np

import numpyro_hgf as nh
from numpyro_hgf.odeflow import ODESolver
from numpyro_hgf.paths import FlowMatchingPath, OscillationPath
from numpyro_hgf.sde import VPSDE


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="eight_gaussians,two_moons")
    p.add_argument("--hidden", default="64,64")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--n-train", type=int, default=20_000)
    p.add_argument("--n-eval", type=int, default=2000)
    p.add_argument("--fixed-nfe", type=int, default=100)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None, help="also write the markdown table here")
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.hidden, args.steps, args.n_eval, args.seeds = (
            "eight_gaussians",
            "16",
            50,
            200,
            1,
        )
        args.n_train, args.fixed_nfe = 2000, 10
    return args


def train(name, data, hidden, args, key):
    common = dict(
        hidden=hidden,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        key=key,
        progress=False,
    )
    if name == "diffusion (VP)":
        return nh.train.fit_diffusion(VPSDE(), data, **common)
    path = FlowMatchingPath() if name == "flow matching" else OscillationPath(omega=1.0)
    return nh.train.fit_velocity(path, data, **common)


def samplers(name, fixed_nfe):
    out = {
        "ODE adaptive (Dopri5)": dict(solver=ODESolver("dopri5", rtol=1e-5, atol=1e-5)),
        f"ODE Euler, NFE {fixed_nfe}": dict(solver=ODESolver("euler", nfe=fixed_nfe)),
    }
    if name == "diffusion (VP)":
        out = {k: dict(sampler="ode", **v) for k, v in out.items()}
        out[f"reverse SDE, NFE {fixed_nfe}"] = dict(sampler="reverse_sde", nfe=fixed_nfe)
        out[f"PC (1 corrector), NFE {fixed_nfe}"] = dict(sampler="pc", nfe=fixed_nfe)
    return out


def main(argv=None):
    args = parse_args(argv)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    models = ("diffusion (VP)", "flow matching", "oscillation HGF")
    rows: dict[tuple, list] = {}
    t_start = time.time()
    for dataset in args.datasets.split(","):
        for seed in range(args.seeds):
            key = jax.random.key(seed)
            k_train, k_eval, k_ref, k_model, k_sample = jax.random.split(key, 5)
            train_data = nh.datasets.toy2d(dataset, args.n_train, k_train)
            eval_data = nh.datasets.toy2d(dataset, args.n_eval, k_eval)
            ref = nh.datasets.toy2d(dataset, args.n_eval, k_ref)
            rows.setdefault((dataset, "data", "fresh data sample"), []).append(
                (float(nh.metrics.mmd(ref, eval_data)), nh.metrics.wasserstein2(ref, eval_data), 0)
            )
            for name in models:
                t0 = time.time()
                prior = train(name, train_data, hidden, args, k_model)
                train_s = time.time() - t0
                for label, kw in samplers(name, args.fixed_nfe).items():
                    x, nfe = prior.sample_with_nfe(k_sample, (args.n_eval,), **kw)
                    x = np.asarray(x)
                    mmd = float(nh.metrics.mmd(x, eval_data))
                    w2 = nh.metrics.wasserstein2(x, eval_data)
                    rows.setdefault((dataset, name, label), []).append((mmd, w2, int(nfe)))
                    print(
                        f"{dataset:16s} seed {seed} {name:16s} {label:28s} "
                        f"MMD^2 {mmd:.5f}  W2 {w2:.4f}  NFE {int(nfe)}  train {train_s:.0f}s",
                        flush=True,
                    )
    lines = [
        f"Config: hidden={hidden}, steps={args.steps}, batch={args.batch_size}, lr={args.lr}, "
        f"n_train={args.n_train}, n_eval={args.n_eval}, seeds={args.seeds} (medians); "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__}; total {time.time() - t_start:.0f} s",
        "",
        "| dataset | model | sampler | MMD^2 (x1e-3) | W2 | NFE |",
        "|---|---|---|---|---|---|",
    ]
    for (dataset, name, label), values in rows.items():
        arr = np.asarray(values, float)
        mmd, w2, nfe = np.median(arr, axis=0)
        lines.append(
            f"| {dataset} | {name} | {label} | {1e3 * mmd:.2f} | {w2:.3f} | "
            f"{'-' if name == 'data' else int(round(nfe))} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    return table


if __name__ == "__main__":
    main()
