"""Digits (8x8): classifier-Fréchet of GAN generators at NFE 1 against flow matching at NFE
1, 10 and 35.

A generator draws an image with one network evaluation, ``x = G(z)`` (NFE 1); a flow-matching
model integrates its velocity ODE.  This benchmark puts both on the same scale.

Models, all on the 1,437 training digits flattened to 64-vectors in ``[-1, 1]``:

* **WGAN-GP** and **NS-GAN** (:func:`numpyro_hgf.train.fit_gan`): generator ``MLP``
  (``--gan-hidden``, 256x256) from an 8-d latent, critic ``MLP`` of the same widths, the set-up
  of ``examples/compressed_sensing.py`` (WGAN-GP: ``--gan-steps`` critic steps with
  ``n_critic = 5``, Adam(b1 = 0, b2 = 0.9), lambda = 10).  NS-GAN makes the *same number of
  generator updates* (``--gan-steps // 5`` steps with ``n_critic = 1``, Adam(b1 = 0.5)).  Both
  at learning rate ``--gan-lr``.  Samples: ``prior.sample`` (NFE 1).
* **flow matching** (:func:`numpyro_hgf.train.fit_velocity` on ``FlowMatchingPath``, a
  ``TimeMLP`` of widths ``--fm-hidden``; the package's recipe otherwise: Adam with cosine decay,
  clipping 1, EMA 0.999).  An MLP velocity, not the UNet of
  ``benchmarks/digits_image_models.py``: its 1,200-step UNet fit takes ~250 s per model on
  2 CPU cores, too slow for three seeds of every model here.  Sampled at NFE 1 with Euler's
  method (one step, one evaluation: the straight-line jump ``x1 = x0 + v(x0, 0)``) and at
  NFE 10 and 35 with Heun's method (``ODESolver("heun", nfe)``, two evaluations per step: 35
  asked = 34 used), as in ``digits_image_models.py``.

Scores, as in ``digits_image_models.py`` (its ``image_scores`` and ``gaussian_fit`` are
imported): ``--num-samples`` draws per row, clipped to ``[-1, 1]``, against the 360 held-out
test digits; :func:`numpyro_hgf.image_metrics.classifier_frechet_distance` (FID-like, in the
features of a digits MLP classifier trained once in this run; not FID) and sliced W2 on the 64
pixels.  The floor is a held-out-sized subset of the training digits; the references are the
full-covariance Gaussian fitted to the training digits and Gaussian noise ``N(0, 0.5^2)``
(negative control).  Every row is repeated for ``--seeds`` seeds (fit, sample and subset keys
from the seed; the classifier is the same); the table gives the median and the per-seed values.

    nice -n 10 .venv/bin/python benchmarks/gan_digits.py --out runs/gan_digits.md
    .venv/bin/python benchmarks/gan_digits.py --quick          # smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from digits_image_models import gaussian_fit, image_scores  # noqa: E402

import numpyro_hgf as nh  # noqa: E402
from numpyro_hgf.image_metrics import train_digits_classifier  # noqa: E402
from numpyro_hgf.odeflow import ODESolver  # noqa: E402

# (solver name, NFE asked) of the flow-matching rows
FM_SOLVERS = (("euler", 1), ("heun", 10), ("heun", 35))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gan-steps", type=int, default=20_000, help="WGAN-GP critic steps")
    p.add_argument("--gan-hidden", default="256,256")
    p.add_argument("--gan-lr", type=float, default=3e-4)
    p.add_argument("--latent-dim", type=int, default=8)
    p.add_argument("--no-ns", action="store_true", help="skip NS-GAN")
    p.add_argument("--fm-steps", type=int, default=10_000)
    p.add_argument("--fm-hidden", default="256,256")
    p.add_argument("--fm-lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--num-samples", type=int, default=360)
    p.add_argument("--classifier-steps", type=int, default=2_000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--image-dir", type=Path, default=None, help="write sample grids (seed 0)")
    p.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    p.add_argument("--quick", action="store_true", help="smoke run (seconds, meaningless numbers)")
    args = p.parse_args(argv)
    if args.quick:
        args.gan_steps, args.fm_steps, args.gan_hidden, args.fm_hidden = 20, 10, "16", "16"
        args.num_samples, args.classifier_steps, args.seeds = 48, 50, 1
    args.gan_hidden = tuple(int(h) for h in args.gan_hidden.split(","))
    args.fm_hidden = tuple(int(h) for h in args.fm_hidden.split(","))
    return args


def timed(fn):
    """``(fn(), seconds)``, waiting for every array of the result."""
    t0 = time.perf_counter()
    out = fn()
    jax.block_until_ready(jax.tree.leaves(out))
    return out, time.perf_counter() - t0


def fit_generator(loss, train, key, args):
    n_critic = 5 if loss == "wgan-gp" else 1
    steps = args.gan_steps if loss == "wgan-gp" else args.gan_steps // 5
    return nh.train.fit_gan(
        train, loss=loss, latent_dim=args.latent_dim, hidden=args.gan_hidden,
        n_critic=n_critic, steps=steps, learning_rate=args.gan_lr,
        batch_size=args.batch_size, key=key, progress=False,
    )  # fmt: skip


def fit_flow_matching(train, key, args):
    return nh.train.fit_velocity(
        nh.paths.FlowMatchingPath(), train, hidden=args.fm_hidden, steps=args.fm_steps,
        batch_size=args.batch_size, learning_rate=args.fm_lr, key=key, progress=False,
    )  # fmt: skip


def save_grid(args, name, x, title):
    if args.image_dir is None:
        return
    from numpyro_hgf.train.images import save_image_grid

    grid = np.clip(np.asarray(x[:64]), -1.0, 1.0).reshape(-1, 8, 8, 1)
    path = save_image_grid(args.image_dir / f"gan_digits_{name}.png", grid, ncols=8, title=title)
    print(f"  grid: {path}", flush=True)


def run_seed(seed, args, train, test, classifier):
    """``{(row label, solver, NFE asked): (NFE used, scores)}`` and fit times of one seed."""
    key = jax.random.key(1_000 + seed)
    metric_key = jax.random.fold_in(key, 99)
    n = args.num_samples
    rows, fit_s = {}, {}

    def score(label, solver, nfe, used, x):
        s = image_scores(x, test, classifier, metric_key)
        rows[(label, solver, nfe)] = (used, s)
        print(f"seed {seed} {label} {solver} NFE {nfe} ({used} used): "
              f"Fréchet {s['frechet']:.2f} SW2 {s['sliced_w']:.4f}", flush=True)  # fmt: skip

    idx = jax.random.choice(jax.random.fold_in(key, 1), train.shape[0], (n,), replace=False)
    score("training digits (floor)", "-", "-", "-", train[idx])
    mean, cov = gaussian_fit(train)
    gauss = jax.random.multivariate_normal(jax.random.fold_in(key, 2), mean, cov, (n,))
    score("full-covariance Gaussian", "-", "-", "-", gauss.astype(np.float32))
    noise = 0.5 * jax.random.normal(jax.random.fold_in(key, 3), (n, 64))
    score("noise N(0, 0.5^2) (negative control)", "-", "-", "-", noise)

    games = ("wgan-gp",) if args.no_ns else ("wgan-gp", "ns")
    for i, loss in enumerate(games):
        label = {"wgan-gp": "WGAN-GP generator", "ns": "NS-GAN generator"}[loss]
        prior, fit_s[label] = timed(
            lambda loss=loss, i=i: fit_generator(loss, train, jax.random.fold_in(key, 10 + i), args)
        )
        print(f"seed {seed} {label}: trained in {fit_s[label]:.0f} s", flush=True)
        x = prior.sample(jax.random.fold_in(key, 20 + i), (n,))
        score(label, "G(z)", 1, 1, x)
        if seed == 0:
            save_grid(args, loss.replace("-", ""), x, f"{label}, NFE 1")

    label = "flow matching (TimeMLP)"
    prior, fit_s[label] = timed(lambda: fit_flow_matching(train, jax.random.fold_in(key, 30), args))
    print(f"seed {seed} {label}: trained in {fit_s[label]:.0f} s", flush=True)
    for solver, nfe in FM_SOLVERS:
        x, used = prior.sample_with_nfe(
            jax.random.fold_in(key, 40), (n,), solver=ODESolver(solver, nfe=nfe)
        )
        score(label, solver, nfe, int(used), x)
        if seed == 0:
            save_grid(args, f"fm_nfe{nfe}", x, f"flow matching, {solver}, {int(used)} NFE")
    return rows, fit_s


def table(per_seed, fits, args, classifier, total) -> str:
    lines = [
        "| samples | solver | NFE asked | NFE used | classifier-Fréchet, median "
        "(per seed) | sliced W2, median (per seed) |",
        "|---|---|---|---|---|---|",
    ]
    for k in per_seed[0]:
        label, solver, nfe = k
        used = per_seed[0][k][0]
        cells = []
        for metric, fmt in (("frechet", "{:.2f}"), ("sliced_w", "{:.4f}")):
            vals = [rows[k][1][metric] for rows in per_seed]
            each = " / ".join(fmt.format(v) for v in vals)
            cells.append(f"{fmt.format(float(np.median(vals)))} ({each})")
        lines.append(f"| {label} | {solver} | {nfe} | {used} | {cells[0]} | {cells[1]} |")
    fit = ", ".join(
        f"{label} {np.median([f[label] for f in fits]):.0f} s" for label in fits[0]
    )  # fmt: skip
    lines += [
        "",
        f"{len(per_seed)} seed(s); {args.num_samples} samples per row against the 360 test "
        f"digits; classifier test accuracy {classifier.test_accuracy:.3f} (one classifier). "
        f"GANs: MLP {args.gan_hidden} generator and critic, latent {args.latent_dim}, "
        f"WGAN-GP {args.gan_steps} critic steps (n_critic 5), NS-GAN {args.gan_steps // 5} "
        f"steps (n_critic 1), lr {args.gan_lr}, batch {args.batch_size}. Flow matching: "
        f"TimeMLP {args.fm_hidden}, {args.fm_steps} steps, lr {args.fm_lr} (cosine), EMA "
        f"0.999, batch {args.batch_size}. Median fit time: {fit}. Total {total:.0f} s; "
        f"{platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__}.",
    ]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    train = nh.datasets.digits("train").images.reshape(-1, 64)
    test = nh.datasets.digits("test").images
    classifier = train_digits_classifier(
        jax.random.key(0), steps=args.classifier_steps, progress=False
    )
    print(f"classifier test accuracy {classifier.test_accuracy:.3f}", flush=True)
    per_seed, fits = [], []
    for seed in range(args.seeds):
        rows, fit_s = run_seed(seed, args, train, test, classifier)
        per_seed.append(rows)
        fits.append(fit_s)
    text = table(per_seed, fits, args, classifier, time.perf_counter() - start)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return per_seed


if __name__ == "__main__":
    main()
