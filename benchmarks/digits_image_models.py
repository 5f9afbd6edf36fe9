"""Digits (8x8): oscillation HGF vs flow matching vs VP diffusion at NFE 10, 20 and 35, and
the Hamiltonian score discrepancy of an HSM force.

Image models.  The three models are trained by :func:`numpyro_hgf.train.fit_images` on the
1,437 training digits (``[-1, 1]``) with the *same* :class:`~numpyro_hgf.nn.UNet`
(``--channels``), the same number of steps, batch, Adam learning rate (cosine decay), gradient
clipping and EMA.  Oscillation HGF and flow matching learn a velocity (one velocity trainer,
two paths); VP diffusion learns the noise predictor (``fit_diffusion``, ``VPSDE()``).  All three
are sampled with the same ODE solver family: Heun's method (``ODESolver("heun", nfe)``; two
evaluations per step, so NFE 35 is 17 steps = 34 evaluations, the NFE column says which),
on the backward HGF / FM ODE and on the VP probability-flow ODE from ``T = 1`` to ``eps``.
Samples are clipped to ``[-1, 1]`` (every row alike, baselines included).

Metrics against the 360 held-out test digits (``--num-samples`` draws each):
:func:`numpyro_hgf.image_metrics.classifier_frechet_distance` (FID-like: the features of a
small digits MLP classifier trained in this run; not FID) and
:func:`numpyro_hgf.metrics.sliced_wasserstein` (SW2 on the 64 pixels, 256 directions).  The
floor is a held-out-sized subset of the *training* digits scored the same way (what a model that
draws fresh digits from the data distribution would get); the references are samples from the
full-covariance Gaussian fitted to the training digits (a weak generative peer) and Gaussian
noise images ``N(0, 0.5^2)`` (negative control: must be clearly worse).

Hamiltonian score matching.  :func:`numpyro_hgf.train.fit_hsm` learns a force (score) network
(``nh.nn.MLP``, ``--hsm-hidden``) on digits smoothed with Gaussian noise of std ``--sigma``
(the raw digits sit on 17 grey levels and some pixels are always -1, so they have no score; the
smoothed law has one).  Its Hamiltonian score discrepancy
(:func:`numpyro_hgf.metrics.hamiltonian_score_discrepancy`, held-out estimate with standard
error; ``0`` iff the force is the score) is computed on smoothed *test* digits, next to the
same estimate for controls: the zero force, the fitted full-covariance Gaussian's force
``-S^-1 (x - m)``, and the score of the Gaussian kernel density estimate of the training digits
at bandwidth ``sigma`` (the exact score of the smoothed training set, a memorising peer).

    nice -n 10 .venv/bin/python benchmarks/digits_image_models.py --out runs/digits_image_models.md
    .venv/bin/python benchmarks/digits_image_models.py --quick          # smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import numpyro_hgf as nh
from numpyro_hgf.image_metrics import classifier_frechet_distance, train_digits_classifier
from numpyro_hgf.odeflow import ODESolver
from numpyro_hgf.train.images import fit_images, save_image_grid

MODELS = (
    ("oscillation", "oscillation HGF"),
    ("flow_matching", "flow matching"),
    ("diffusion", "VP diffusion (PF-ODE)"),
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1_200, help="training steps of every model")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--ema-decay", type=float, default=0.99)
    p.add_argument("--channels", default="16,32")
    p.add_argument("--nfe", default="10,20,35")
    p.add_argument("--num-samples", type=int, default=360)
    p.add_argument("--classifier-steps", type=int, default=2_000)
    p.add_argument("--sigma", type=float, default=0.1, help="HSM: smoothing noise std")
    p.add_argument("--hsm-hidden", default="256,256")
    p.add_argument("--hsm-steps", type=int, default=15_000)
    p.add_argument("--hsm-step-size", type=float, default=0.02)
    p.add_argument("--hsm-num-steps", type=int, default=5)
    p.add_argument("--hsd-steps", type=int, default=2_000)
    p.add_argument("--skip-image-models", action="store_true", help="only the HSM part")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-dir", type=Path, default=Path("docs/images"))
    p.add_argument("--out", type=Path, default=None, help="write the markdown tables here")
    p.add_argument("--quick", action="store_true", help="smoke run (seconds, meaningless numbers)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.batch_size, args.channels, args.nfe = 3, 16, "8", "2,4"
        args.num_samples, args.classifier_steps = 48, 50
        args.hsm_hidden, args.hsm_steps, args.hsd_steps = "16", 10, 10
    args.channels = tuple(int(c) for c in args.channels.split(","))
    args.nfe = tuple(int(n) for n in args.nfe.split(","))
    args.hsm_hidden = tuple(int(h) for h in args.hsm_hidden.split(","))
    return args


def image_scores(samples, test, classifier, key) -> dict:
    """FID-like distance and SW2 of ``samples: (n, 8, 8[, 1])`` against the test digits."""
    samples = jnp.clip(jnp.asarray(samples).reshape(samples.shape[0], 8, 8), -1.0, 1.0)
    flat = samples.reshape(samples.shape[0], -1)
    return {
        "frechet": classifier_frechet_distance(samples, test, classifier),
        "sliced_w": float(nh.metrics.sliced_wasserstein(flat, test.reshape(-1, 64), key, 256)),
    }


def gaussian_fit(x):
    """Mean and full covariance (with a ``1e-6`` jitter) of ``x: (n, d)``, float64."""
    x = np.asarray(x, np.float64)
    return x.mean(0), np.cov(x, rowvar=False) + 1e-6 * np.eye(x.shape[1])


def kde_score(centers, sigma):
    """Score of ``(1/n) sum_i N(x; c_i, sigma^2 I)``: ``(E_w[c] - x) / sigma^2``."""
    centers = jnp.asarray(centers)

    def score(x):
        d2 = jnp.sum((x[:, None, :] - centers[None]) ** 2, -1)
        w = jax.nn.softmax(-d2 / (2 * sigma**2), axis=-1)
        return (w @ centers - x) / sigma**2

    return score


def run_image_models(args, train, test, classifier, key):
    rows, timings = [], {}
    metric_key = jax.random.fold_in(key, 99)
    n = args.num_samples
    # floor and references
    floor_idx = jax.random.choice(jax.random.fold_in(key, 1), train.shape[0], (n,), replace=False)
    rows.append(
        (
            "training digits (floor)",
            "-",
            "-",
            image_scores(train[floor_idx], test, classifier, metric_key),
        )
    )
    mean, cov = gaussian_fit(train.reshape(train.shape[0], -1))
    gauss = jax.random.multivariate_normal(jax.random.fold_in(key, 2), mean, cov, (n,))
    rows.append(
        (
            "full-covariance Gaussian",
            "-",
            "-",
            image_scores(gauss.astype(jnp.float32), test, classifier, metric_key),
        )
    )
    noise = 0.5 * jax.random.normal(jax.random.fold_in(key, 3), (n, 8, 8))
    rows.append(
        (
            "noise N(0, 0.5^2) (negative control)",
            "-",
            "-",
            image_scores(noise, test, classifier, metric_key),
        )
    )
    for i, (model, label) in enumerate(MODELS):
        t0 = time.perf_counter()
        prior = fit_images(
            model,
            train,
            key=jax.random.fold_in(key, 10 + i),
            channels=args.channels,
            steps=args.steps,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            ema_decay=args.ema_decay,
            progress=False,
        )
        jax.block_until_ready(jax.tree.leaves(prior.params))
        timings[label] = time.perf_counter() - t0
        print(f"{label}: trained in {timings[label]:.0f} s", flush=True)
        sample_key = jax.random.fold_in(key, 20 + i)
        for nfe in args.nfe:
            solver = ODESolver("heun", nfe=nfe)
            t0 = time.perf_counter()
            if model == "diffusion":
                x, used = prior.sample_with_nfe(sample_key, (n,), sampler="ode", solver=solver)
            else:
                x, used = prior.sample_with_nfe(sample_key, (n,), solver=solver)
            x = jax.block_until_ready(x)
            scores = image_scores(x, test, classifier, metric_key)
            print(
                f"  NFE {nfe} ({int(used)} used, {time.perf_counter() - t0:.0f} s): {scores}",
                flush=True,
            )
            rows.append((label, nfe, int(used), scores))
            if nfe == max(args.nfe):
                grid = jnp.clip(x[:64], -1.0, 1.0).reshape(-1, 8, 8, 1)
                path = save_image_grid(
                    args.image_dir / f"digits_{model}.png",
                    grid,
                    ncols=8,
                    title=f"{label}, Heun, {int(used)} NFE",
                )
                print(f"  grid: {path}", flush=True)
    return rows, timings


def run_hsm(args, train, test, key):
    sigma = args.sigma
    k_noise, k_test, k_fit, k_hsd = jax.random.split(key, 4)
    train_flat, test_flat = train.reshape(train.shape[0], -1), test.reshape(test.shape[0], -1)
    copies = 8
    noisy_train = jnp.tile(train_flat, (copies, 1))
    noisy_train = noisy_train + sigma * jax.random.normal(k_noise, noisy_train.shape)
    noisy_test = jnp.tile(test_flat, (4, 1))
    noisy_test = noisy_test + sigma * jax.random.normal(k_test, noisy_test.shape)
    t0 = time.perf_counter()
    force = fit_hsm_force(args, noisy_train, k_fit)
    fit_s = time.perf_counter() - t0
    print(f"HSM force trained in {fit_s:.0f} s", flush=True)
    mean, cov = gaussian_fit(noisy_train)
    prec = jnp.asarray(np.linalg.inv(cov), jnp.float32)
    mean = jnp.asarray(mean, jnp.float32)
    forces = [
        (f"HSM force (MLP {args.hsm_hidden}, {args.hsm_steps} steps)", force),
        ("zero force (negative control)", lambda x: jnp.zeros_like(x)),
        ("full-covariance Gaussian fit", lambda x: -(x - mean) @ prec),
        ("KDE of the training digits (exact smoothed-train score)", kde_score(train_flat, sigma)),
    ]
    rows = []
    for label, f in forces:
        t0 = time.perf_counter()
        r = nh.metrics.hamiltonian_score_discrepancy(
            f,
            noisy_test,
            key=k_hsd,
            step_size=args.hsm_step_size,
            num_steps=args.hsm_num_steps,
            hidden=(256, 256),
            steps=args.hsd_steps,
            progress=False,
        )
        print(
            f"HSD {label}: {r.value:.4g} +- {r.stderr:.2g} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        rows.append((label, r))
    return rows, fit_s, noisy_test.shape[0]


def fit_hsm_force(args, data, key):
    force_net = nh.nn.MLP(hidden=args.hsm_hidden, out_dim=data.shape[1])
    return nh.train.fit_hsm(
        data,
        force=force_net,
        key=key,
        step_size=args.hsm_step_size,
        num_steps=args.hsm_num_steps,
        steps=args.hsm_steps,
        batch_size=256,
        velocity_hidden=(256, 256),
        progress=False,
    )


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    key = jax.random.key(args.seed)
    train = nh.datasets.digits("train").images
    test = nh.datasets.digits("test").images
    classifier = train_digits_classifier(
        jax.random.fold_in(key, 0), steps=args.classifier_steps, progress=False
    )
    print(f"classifier test accuracy {classifier.test_accuracy:.3f}", flush=True)
    rows, timings = [], {}
    if not args.skip_image_models:
        rows, timings = run_image_models(args, train, test, classifier, jax.random.fold_in(key, 1))
    hsd_rows, hsm_s, n_hsd = run_hsm(args, train, test, jax.random.fold_in(key, 2))
    total = time.perf_counter() - start

    lines = [
        "| samples | NFE asked | NFE used | classifier-Fréchet (FID-like) | sliced W2 |",
        "|---|---|---|---|---|",
    ]
    for label, nfe, used, s in rows:
        lines.append(f"| {label} | {nfe} | {used} | {s['frechet']:.2f} | {s['sliced_w']:.4f} |")
    lines += [
        "",
        "| force | HSD (held-out) | std. error | plug-in E‖V‖² (biased up) |",
        "|---|---|---|---|",
    ]
    for label, r in hsd_rows:
        lines.append(f"| {label} | {r.value:.4g} | {r.stderr:.2g} | {r.plugin:.4g} |")
    fit = ", ".join(f"{label} {s:.0f} s" for label, s in timings.items())
    lines += [
        "",
        f"UNet channels {args.channels}, {args.steps} steps, batch {args.batch_size}, Adam "
        f"{args.lr} (cosine), EMA {args.ema_decay}, clip 1.0; training {fit}.  Classifier "
        f"test accuracy {classifier.test_accuracy:.3f}; {args.num_samples} samples per row, "
        f"against the 360 test digits.  HSM: T = {args.hsm_num_steps} x {args.hsm_step_size}, "
        f"sigma {args.sigma}, {args.hsm_steps} steps ({hsm_s:.0f} s); HSD on {n_hsd} smoothed "
        f"test digits (half held out), V trained {args.hsd_steps} steps.  Total {total:.0f} s; "
        f"{platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__}.",
    ]
    table = "\n".join(lines)
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")
    return rows, hsd_rows


if __name__ == "__main__":
    main()
