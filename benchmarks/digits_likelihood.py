"""Digits (8x8, 17 grey levels): test bits/dim of ODE models against classical baselines.

All models are fitted on the 1,437 training images of :func:`numpyro_hgf.datasets.digits`
and scored on the 360 test images, in this run:

* **Baselines** (discrete or dequantized, as in ``../shared/data/README.md``): the uniform
  density (``log2 17 = 4.087``), a full-covariance Gaussian and a Gaussian mixture
  (scikit-learn ``GaussianMixture``) on uniformly dequantized data, and a mixture of
  independent categoricals fitted by EM (exact discrete likelihood).
* **ODE models** trained by the one velocity trainer (:func:`numpyro_hgf.train.fit_velocity`)
  with a ``TimeMLP`` on dequantized data scaled to ``[-1, 1]``: flow matching (CondOT) and the
  oscillation HGF.  Their test log-likelihood is the instantaneous change of variables with
  the exact trace (64 Jacobian-vector products per evaluation;
  :func:`numpyro_hgf.odeflow.ode_log_prob`), Dopri5 at ``rtol = atol = --tol``, averaged over
  ``--dequant-draws`` dequantizations of each test image; bits/dim by
  :func:`numpyro_hgf.metrics.bits_per_dim` (uniform-dequantization bound).

Run ``python benchmarks/digits_likelihood.py --help``; ``--quick`` is a smoke run.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import numpyro_hgf as nh
from numpyro_hgf.odeflow import ODESolver
from numpyro_hgf.paths import FlowMatchingPath, OscillationPath

LEVELS = nh.datasets.DIGITS_NUM_LEVELS
D = 64
INTERVAL = (-1.0, 1.0)


def raw_digits(split: str) -> np.ndarray:
    return np.asarray(nh.datasets.digits(split, form="raw").images).reshape(-1, D)


def dequantized(key, raw, copies: int) -> jax.Array:
    keys = jax.random.split(key, copies)
    return jnp.concatenate(
        [nh.datasets.dequantize(k, raw, LEVELS, interval=INTERVAL) for k in keys]
    )


def bpd_from_density(log_density: np.ndarray, interval=INTERVAL) -> float:
    return float(np.mean(nh.metrics.bits_per_dim(jnp.asarray(log_density), D, LEVELS, interval)))


# ---------------------------------------------------------------------------- baselines


def categorical_mixture_bpd(train, test, components: int, iters: int, alpha: float, seed: int):
    """EM for a mixture of independent categoricals, Dirichlet(alpha) smoothing."""
    rng = np.random.default_rng(seed)
    onehot = np.eye(LEVELS)[train.astype(int)]  # (n, D, L)
    resp = rng.dirichlet(np.ones(components), size=train.shape[0])  # (n, K)
    for _ in range(iters):
        weights = np.maximum(resp.mean(0), 1e-12)
        counts = np.einsum("nk,ndl->kdl", resp, onehot) + alpha
        log_theta = np.log(counts / counts.sum(-1, keepdims=True))  # (K, D, L)
        loglik = np.einsum("ndl,kdl->nk", onehot, log_theta) + np.log(weights)
        resp = np.exp(loglik - loglik.max(1, keepdims=True))
        resp /= resp.sum(1, keepdims=True)
    test_onehot = np.eye(LEVELS)[test.astype(int)]
    loglik = np.einsum("ndl,kdl->nk", test_onehot, log_theta) + np.log(weights)
    m = loglik.max(1, keepdims=True)
    log_p = m[:, 0] + np.log(np.exp(loglik - m).sum(1))
    return float(np.mean(-log_p / (D * math.log(2))))


def gaussian_mixture_bpd(train_x, test_x, components: int, seed: int):
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(components, covariance_type="full", reg_covar=1e-4, random_state=seed)
    gm.fit(np.asarray(train_x, np.float64))
    return bpd_from_density(gm.score_samples(np.asarray(test_x, np.float64)))


def baselines(train_raw, test_raw, train_x, test_x, seed: int) -> list[tuple]:
    """``(name, bits/dim, fit seconds)`` rows of the uniform density, a full-covariance
    Gaussian, a 10-component Gaussian mixture and a mixture of 32 categoricals."""
    rows = [("uniform on [-1, 1]^64", math.log2(LEVELS), "")]
    fits = (
        ("full-covariance Gaussian (dequantized)", lambda: gaussian_mixture_bpd(
            train_x, test_x, 1, seed)),
        ("Gaussian mixture, 10 full (dequantized)", lambda: gaussian_mixture_bpd(
            train_x, test_x, 10, seed)),
        ("mixture of 32 categoricals (EM)", lambda: categorical_mixture_bpd(
            train_raw, test_raw, 32, 200, 0.5, seed)),
    )  # fmt: skip
    for name, fit in fits:
        t0 = time.perf_counter()
        value = fit()
        rows.append((name, value, f"{time.perf_counter() - t0:.0f}"))
    return rows


def logit_split(train_x, test_x, alpha: float):
    """``(coords, train01, test01)``: the same dequantized data moved from ``[-1, 1)`` to
    ``[0, 1)`` (kept below 1 in float32) and the transform ``z -> x`` of
    :func:`numpyro_hgf.preprocessing.logit_coordinates` fitted to the training part."""
    train01, test01 = (jnp.minimum(0.5 * (x + 1.0), 1.0 - 2**-24) for x in (train_x, test_x))
    return nh.preprocessing.logit_coordinates(train01, alpha=alpha), train01, test01


# ---------------------------------------------------------------------------- ODE models


def ode_model_bpd(prior, test_x, batch: int, coords=None) -> tuple[float, float]:
    """Mean test bits/dim and mean NFE, exact trace, in batches; with ``coords`` (the
    transform ``z -> x`` of :func:`numpyro_hgf.preprocessing.logit_coordinates`) the prior
    is a density of ``z = coords.inv(x)``, ``test_x`` in ``[0, 1)``, and ``log p(x) =
    log p(z) - log|dx/dz|``."""
    log_probs, nfes = [], []
    for i in range(0, test_x.shape[0], batch):
        x = test_x[i : i + batch]
        if coords is None:
            lp, nfe = prior.log_prob_with_nfe(x)
        else:
            z = coords.inv(x)
            lp, nfe = prior.log_prob_with_nfe(z)
            lp = lp - jnp.sum(coords.log_abs_det_jacobian(z, x), axis=-1)
        log_probs.append(np.asarray(lp))
        nfes.append(float(nfe))
    interval = INTERVAL if coords is None else (0.0, 1.0)
    return bpd_from_density(np.concatenate(log_probs), interval), float(np.mean(nfes))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--paths", default="fm,oscillation")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", default="512,512,512")
    p.add_argument("--train-copies", type=int, default=32, help="dequantized copies")
    p.add_argument("--dequant-draws", type=int, default=2, help="per test image")
    p.add_argument("--tol", type=float, default=1e-5)
    p.add_argument("--eval-batch", type=int, default=120)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--logit", type=float, default=None, metavar="ALPHA",
        help="fit the ODE models in standardised logit coordinates with this alpha",
    )  # fmt: skip
    p.add_argument("--skip-baselines", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.hidden, args.train_copies, args.dequant_draws = 50, "32,32", 2, 1
    return args


def main(argv=None):
    args = parse_args(argv)
    key = jax.random.key(args.seed)
    train_raw, test_raw = raw_digits("train"), raw_digits("test")
    k_train, k_test, k_fit = jax.random.split(key, 3)
    train_x = dequantized(k_train, train_raw, args.train_copies)
    test_x = dequantized(k_test, test_raw, args.dequant_draws)
    coords = train01 = test01 = None
    if args.logit is not None:
        coords, train01, test01 = logit_split(train_x, test_x, args.logit)
    rows = [] if args.skip_baselines else baselines(train_raw, test_raw, train_x, test_x, args.seed)
    for row in rows:
        print(f"{row[0]}: {row[1]:.3f} bits/dim", flush=True)

    hidden = tuple(int(h) for h in args.hidden.split(","))
    paths = {"fm": FlowMatchingPath(), "oscillation": OscillationPath(omega=1.0)}
    solver = ODESolver("dopri5", rtol=args.tol, atol=args.tol)
    for name in args.paths.split(","):
        t0 = time.perf_counter()
        fit_x = train_x if coords is None else coords.inv(train01)
        prior = nh.train.fit_velocity(
            paths[name], fit_x, hidden=hidden, steps=args.steps, batch_size=args.batch_size,
            learning_rate=args.lr, key=k_fit, progress=False, trace="exact", solver=solver,
        )  # fmt: skip
        jax.block_until_ready(prior.params)
        fit_s = time.perf_counter() - t0
        if coords is None:
            bpd, nfe = ode_model_bpd(prior, test_x, args.eval_batch)
        else:
            bpd, nfe = ode_model_bpd(prior, test01, args.eval_batch, coords)
            name = f"{name} (logit coordinates, alpha {args.logit:g})"
        rows.append((f"{name} ODE, exact trace ({nfe:.0f} NFE)", bpd, f"{fit_s:.0f}"))
        print(f"{name}: {bpd:.3f} bits/dim, NFE {nfe:.0f}, fit {fit_s:.0f} s", flush=True)

    lines = ["| model | test bits/dim | fit (s) |", "|---|---|---|"]
    lines += [f"| {name} | {bpd:.3f} | {s} |" for name, bpd, s in rows]
    lines.append("")
    lines.append(
        f"`python benchmarks/digits_likelihood.py --steps {args.steps} --hidden {args.hidden} "
        f"--lr {args.lr} --train-copies {args.train_copies} --dequant-draws "
        f"{args.dequant_draws} --tol {args.tol} --seed {args.seed}"
        + (f" --logit {args.logit:g}" if coords is not None else "")
        + f"`; {platform.machine()}, "
        f"{os.cpu_count()} CPUs, jax {jax.__version__}, Python {sys.version.split()[0]}."
    )
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
