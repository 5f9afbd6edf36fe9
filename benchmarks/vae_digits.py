"""VAE on the 8x8 digits: test ELBO and IWAE-k bits/dim against in-run baselines.

Data: ``nh.datasets.digits`` grey levels (17) of the fixed split (1,437 training, 360 test
images), uniformly dequantized to ``[0, 1)``; bits/dim with
``nh.metrics.bits_per_dim(lp, 64, num_levels=17)``.

* The VAE (default ``--likelihood categorical``) has the decoder likelihood
  ``nh.distributions.DequantizedCategorical``: 17 logits per pixel, the piecewise-constant density
  ``p(x | z) = prod_d 17 softmax(logits_d(z))[floor(17 x_d)]`` on the dequantized data, so its
  ELBO / IWAE bounds are bounds on the discrete log-likelihood (``lp - 64 log 17``), like the
  mixture of categoricals.  ``--likelihood gaussian`` is the Gaussian decoder.
* Objective: the IWAE-``--particles`` bound (``vae.fit(particles=8)``; 1 is the ELBO).
* Overfitting control: ``--val-fraction`` of the *training* images (a fixed permutation) are
  held out; the fit keeps the params with the best validation ELBO (checked every
  ``--validate-every`` steps); AdamW weight decay ``--weight-decay``.  The test set is only
  scored, never used for a choice.
* In-run baselines on the same split: full-covariance Gaussian (closed-form MLE) and a Gaussian
  mixture (scikit-learn ``GaussianMixture``) on the same dequantized data, and a mixture of 32
  independent categoricals by EM on the raw levels (``benchmarks/digits_likelihood.py``).
  Reference values (../shared/data/README.md): Gaussian 3.03, GMM 2.71, categoricals 2.23.

    nice -n 10 .venv/bin/python benchmarks/vae_digits.py            # about 8 min, 2 CPU cores
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMPYRO_HGF_PROGRESS", "0")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import numpyro_hgf as nh  # noqa: E402
from numpyro_hgf.models import vae  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits_likelihood import categorical_mixture_bpd  # noqa: E402

D, LEVELS = 64, nh.datasets.DIGITS_NUM_LEVELS


def bpd(lp) -> float:
    return float(jnp.mean(nh.metrics.bits_per_dim(jnp.asarray(lp), D, num_levels=LEVELS)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--likelihood", choices=("categorical", "gaussian"), default="categorical")
    parser.add_argument("--steps", type=int, default=2_000)
    parser.add_argument("--particles", type=int, default=8)
    parser.add_argument("--k", type=int, default=5_000)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--validate-every", type=int, default=100)
    parser.add_argument("--gmm-components", type=int, default=10)
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/vae_digits")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    key = jax.random.key(args.seed)
    raw_tr = np.asarray(nh.datasets.digits("train", form="raw").images).reshape(-1, D)
    test = nh.datasets.digits("test", form="raw")
    raw_te = np.asarray(test.images).reshape(-1, D)
    x_tr_all = nh.datasets.dequantize(jax.random.fold_in(key, 1), raw_tr)
    x_te = nh.datasets.dequantize(jax.random.fold_in(key, 2), raw_te)
    rows = []

    if not args.skip_baselines:
        import numpyro.distributions as dist
        from sklearn.mixture import GaussianMixture

        t0 = time.perf_counter()
        xt = np.asarray(x_tr_all, np.float64)
        mean, cov = xt.mean(0), np.cov(xt.T, bias=True)
        with jax.enable_x64(True):
            lp_gauss = dist.MultivariateNormal(jnp.asarray(mean), jnp.asarray(cov)).log_prob(
                jnp.asarray(np.asarray(x_te, np.float64))
            )
            rows.append(("full-covariance Gaussian (published 3.03)", bpd(lp_gauss), ""))
        gmm = GaussianMixture(
            args.gmm_components, covariance_type="full", reg_covar=1e-4, random_state=args.seed
        ).fit(xt)
        lp_gmm = gmm.score_samples(np.asarray(x_te, np.float64))
        rows.append(
            (
                f"GMM, {args.gmm_components} full components (published 2.71)",
                bpd(lp_gmm),
                f"{time.perf_counter() - t0:.0f}",
            )
        )
        t0 = time.perf_counter()
        cat = categorical_mixture_bpd(raw_tr, raw_te, 32, 200, 0.5, args.seed)
        rows.append(
            (
                "mixture of 32 categoricals, EM (published 2.23)",
                cat,
                f"{time.perf_counter() - t0:.0f}",
            )
        )
        for name, value, _ in rows:
            print(f"baseline {name}: {value:.3f} bits/dim", flush=True)

    # validation split of the training images (fixed permutation); the test set is only scored
    perm = np.random.default_rng(args.seed).permutation(raw_tr.shape[0])
    num_val = int(round(args.val_fraction * raw_tr.shape[0]))
    x_val = x_tr_all[perm[:num_val]] if num_val else None
    x_fit = x_tr_all[perm[num_val:]]

    t0 = time.perf_counter()
    model, fit = vae.fit(
        x_fit,
        latent_dim=args.latent_dim,
        likelihood=args.likelihood,
        num_levels=LEVELS if args.likelihood == "categorical" else None,
        hidden=tuple(args.hidden),
        steps=args.steps,
        batch_size=128,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        particles=args.particles,
        validation=x_val,
        validate_every=args.validate_every,
        key=jax.random.fold_in(key, 3),
    )
    t1 = time.perf_counter()
    best = ""
    if fit.result.validation:
        steps, values = zip(*fit.result.validation, strict=True)
        i = int(np.argmin(values))
        best = f", best validation step {steps[i]} ({bpd(-values[i]):.3f} bits/dim)"
    elbo = vae.iwae_log_likelihood(model, x_te, k=1, key=jax.random.fold_in(key, 4))
    iw = jax.block_until_ready(
        vae.iwae_log_likelihood(model, x_te, k=args.k, key=jax.random.fold_in(key, 5))
    )
    t2 = time.perf_counter()
    print(
        f"VAE {args.likelihood}: latent {args.latent_dim}, hidden {args.hidden}, "
        f"IWAE-{args.particles} objective, {args.steps} steps, {x_fit.shape[0]} training / "
        f"{num_val} validation images{best}"
    )
    rows.append((f"VAE ({args.likelihood} decoder): test ELBO", bpd(elbo), f"{t1 - t0:.0f}"))
    rows.append(
        (
            f"VAE ({args.likelihood} decoder): test IWAE-{args.k}",
            bpd(iw),
            f"{t2 - t1:.0f} (scoring)",
        )
    )
    if args.likelihood == "categorical":
        # the discrete log-likelihood bound: log P(raw) >= IWAE - 64 log 17 (exact shift)
        disc = nh.metrics.bits_per_dim(iw - D * math.log(LEVELS), D)
        print(f"discrete bits/dim of the same IWAE bound: {float(jnp.mean(disc)):.4f}")

    print()
    print("| model | test bits/dim | seconds |")
    print("|---|---|---|")
    for name, value, sec in rows:
        print(f"| {name} | {value:.3f} | {sec} |")
    print()
    print(
        f"`{' '.join(['python', *sys.argv])}`; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"jax {jax.__version__}, Python {platform.python_version()}; target < 2.2"
    )
    vae.plot_latents(os.path.join(out, "latent.png"), model, x_te, test.labels)
    vae.plot_reconstructions(os.path.join(out, "reconstructions.png"), model, x_te)
    print(f"wrote {out}/latent.png and {out}/reconstructions.png")


if __name__ == "__main__":
    main()
