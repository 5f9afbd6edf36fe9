"""Mode coverage and sample quality of NS-GAN, WGAN and WGAN-GP on eight_gaussians.

Each game trains the **same generator** (an ``MLP`` ``z -> x``, ``z ~ N(0, I_2)``, widths
``--hidden``) against the same critic architecture for the **same number of generator
updates** (``--generator-steps``; the Wasserstein games make ``n_critic = 5`` critic updates
per generator update, NS-GAN one), through :func:`numpyro_hgf.train.fit_gan`, on the same
training points, with each game's recipe optimiser (Adam(b1 = 0.5) for NS, RMSProp for WGAN,
Adam(b1 = 0, b2 = 0.9) for WGAN-GP) at the learning rate ``--lr`` (one rate for all, larger
than the papers' so that a few minutes of CPU suffice).  Optionally flow matching
(``--with-fm``: :func:`numpyro_hgf.train.fit_velocity` on ``FlowMatchingPath``, a
``TimeMLP`` of the same widths, the same number of steps) as a non-adversarial reference.

Reported per game, mean over ``--seeds``:

* **modes**: how many of the 8 modes hold at least ``--min-share`` of the samples (a sample
  belongs to a mode if it is within 3 sd of its centre, sd = 0.5 / 1.414);
* **quality**: the fraction of samples within 3 sd of some centre (a perfect sampler:
  ``P(chi2_2 < 9) = 0.989``);
* **W2 excess**: exact ``W_2`` (:func:`numpyro_hgf.metrics.wasserstein2`, 2,000 points)
  between samples and fresh data, minus ``W_2`` between two fresh data sets of the same
  size (the finite-sample floor);
* the training wall time of one fit (compilation included; on a shared machine, rough).

Run ``python benchmarks/gan.py --help``; ``--quick`` is a smoke run; ``--out PATH.md`` writes
the table (and ``PATH.json`` with the raw numbers).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpyro_hgf as nh  # noqa: E402

S = 1.0 / math.sqrt(2.0)
CENTERS = (
    4.0 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (S, S), (S, -S), (-S, S), (-S, -S)]) / 1.414
)
SD = 0.5 / 1.414
GAMES = ("ns", "wgan", "wgan-gp")


def mode_statistics(x, min_share: float):
    """``(modes covered, fraction of high-quality samples)`` of ``x: (n, 2)``."""
    x = np.asarray(x, np.float64)
    dist = np.linalg.norm(x[:, None, :] - CENTERS[None], axis=-1)  # (n, 8)
    nearest = dist.argmin(1)
    good = dist.min(1) < 3 * SD
    counts = np.bincount(nearest[good], minlength=8)
    return int(np.sum(counts >= min_share * len(x))), float(good.mean())


def fit(game, data, key, args):
    if game == "fm":
        prior = nh.train.fit_velocity(
            nh.paths.FlowMatchingPath(), data, key=key, hidden=args.hidden,
            steps=args.generator_steps, learning_rate=args.lr, batch_size=args.batch_size,
            progress=False,
        )  # fmt: skip
        return prior
    n_critic = 1 if game == "ns" else 5
    return nh.train.fit_gan(
        data, loss=game, key=key, latent_dim=2, hidden=args.hidden, n_critic=n_critic,
        steps=args.generator_steps * n_critic, learning_rate=args.lr,
        batch_size=args.batch_size, progress=False,
    )  # fmt: skip


def run(args):
    games = list(GAMES) + (["fm"] if args.with_fm else [])
    rows = {g: [] for g in games}
    for seed in range(args.seeds):
        k_data, k_fit, k_eval, k_ref, k_ref2 = jax.random.split(jax.random.key(seed), 5)
        data = nh.datasets.toy2d("eight_gaussians", args.n_train, k_data)
        ref = nh.datasets.toy2d("eight_gaussians", args.n_eval, k_ref)
        floor = nh.metrics.wasserstein2(
            ref, nh.datasets.toy2d("eight_gaussians", args.n_eval, k_ref2)
        )
        for game in games:
            start = time.perf_counter()
            prior = fit(game, data, k_fit, args)
            samples = jax.block_until_ready(prior.sample(k_eval, (args.n_eval,)))
            seconds = time.perf_counter() - start
            modes, quality = mode_statistics(samples, args.min_share)
            w2 = nh.metrics.wasserstein2(samples, ref)
            rows[game].append(
                dict(seed=seed, modes=modes, quality=quality, w2_excess=w2 - floor, seconds=seconds)
            )
            print(f"seed {seed} {game:8s} modes {modes}/8 quality {quality:.3f} "
                  f"W2-floor {w2 - floor:.3f} ({seconds:.0f} s)", flush=True)  # fmt: skip
    return rows


def table(rows) -> str:
    lines = [
        "| game | modes (per seed) | quality | W2 - floor | fit s |",
        "|---|---|---|---|---|",
    ]
    for game, runs in rows.items():
        modes = "/".join(str(r["modes"]) for r in runs)
        q = np.mean([r["quality"] for r in runs])
        w = np.mean([r["w2_excess"] for r in runs])
        t = np.median([r["seconds"] for r in runs])
        lines.append(f"| {game} | {modes} | {q:.3f} | {w:.3f} | {t:.0f} |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--generator-steps", type=int, default=2_000)
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--n-train", type=int, default=20_000)
    p.add_argument("--n-eval", type=int, default=2_000)
    p.add_argument("--min-share", type=float, default=0.02)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--with-fm", action="store_true")
    p.add_argument("--quick", action="store_true", help="a smoke run")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    args.hidden = tuple(args.hidden)
    if args.quick:
        args.generator_steps, args.seeds, args.n_eval, args.hidden = 50, 1, 200, (16,)
    return args


def main(argv=None):
    args = parse_args(argv)
    rows = run(args)
    text = table(rows)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
        args.out.with_suffix(".json").write_text(
            json.dumps(
                {
                    "args": vars(args) | {"out": str(args.out), "hidden": list(args.hidden)},
                    "rows": rows,
                },
                indent=1,
            )
        )
    return rows


if __name__ == "__main__":
    main()
