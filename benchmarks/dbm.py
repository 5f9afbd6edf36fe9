"""Deep Boltzmann machine against an RBM with the same number of hidden units, binarized digits.

Both are fitted on the 1,437 binarized 8x8 training digits (``nh.datasets.digits(form=
"binary")``, 64 visible units) in this one process: ``nh.train.fit_dbm`` (64-16-16: doubled
greedy pre-training, then mean-field + PCD-1) and ``nh.train.fit_rbm`` (PCD-1, 32 hidden
units, the same total).  Reported on the 360 test digits, nats per image:

* the RBM's test log-likelihood with an AIS ``log Z`` (``min(V, H) = 32 > 20``);
* the DBM's exact test log-likelihood (the 64-16-16 machine enumerates 2^16 states for
  ``log Z`` and for each ``log p*(v)``), its mean-field lower bound, and the same two with
  the AIS ``log Z`` (which checks AIS against the exact value);
* fit wall times (including JIT compilation).

It also writes a grid of DBM samples (``--png``).  Run ``python benchmarks/dbm.py --help``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np


def load_digits():
    import numpyro_hgf as nh

    tr = np.asarray(nh.datasets.digits("train", form="binary").images).reshape(-1, 64)
    te = np.asarray(nh.datasets.digits("test", form="binary").images).reshape(-1, 64)
    return tr.astype(np.float32), te.astype(np.float32)


def one_seed(tr, te, seed, args):
    import numpyro_hgf as nh

    common = dict(batch_size=args.batch_size, learning_rate=args.lr, progress=False)
    t0 = time.perf_counter()
    dbm = nh.train.fit_dbm(
        tr, tuple(args.layers), key=jax.random.key(seed), epochs=args.epochs,
        pretrain_epochs=args.pretrain_epochs, **common,
    )  # fmt: skip
    t_dbm = time.perf_counter() - t0
    t0 = time.perf_counter()
    rbm = nh.train.fit_rbm(
        tr, sum(args.layers), method="pcd", key=jax.random.key(seed), epochs=args.epochs, **common
    )
    t_rbm = time.perf_counter() - t0
    ais = dict(num_chains=args.ais_chains, num_betas=args.ais_betas, data=tr)
    key = jax.random.key(10_000 + seed)
    rbm_z = rbm.log_normalizer("ais", key=key, **ais)
    dbm_z_ais = dbm.log_normalizer("ais", key=key, **ais)
    dbm_z = dbm.log_normalizer("exact")
    free = dbm.unnormalized_log_prob(te)
    bound_u = dbm.mean_field_bound(te) + dbm_z
    return dict(
        rbm=float(jnp.mean(rbm.with_log_normalizer(rbm_z).log_prob(te))),
        dbm_exact=float(jnp.mean(free) - dbm_z),
        dbm_ais=float(jnp.mean(free) - dbm_z_ais),
        dbm_bound=float(jnp.mean(bound_u) - dbm_z),
        dbm_bound_ais=float(jnp.mean(bound_u) - dbm_z_ais),
        z_err=float(dbm_z_ais - dbm_z),
        t_dbm=t_dbm,
        t_rbm=t_rbm,
    ), dbm


def save_grid(dbm, path, key):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray(dbm.sample(key, (64,))).reshape(64, 8, 8)
    fig, axes = plt.subplots(8, 8, figsize=(4, 4))
    for ax, img in zip(axes.ravel(), x, strict=True):
        ax.imshow(img, cmap="gray_r", vmin=0, vmax=1)
        ax.axis("off")
    fig.suptitle("DBM 64-16-16 samples (block Gibbs)", fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[16, 16])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ais-chains", type=int, default=100)
    parser.add_argument("--ais-betas", type=int, default=3000)
    parser.add_argument("--png", default="docs/images/dbm_digits_samples.png")
    args = parser.parse_args(argv)
    os.environ.setdefault("NUMPYRO_HGF_PROGRESS", "0")
    tr, te = load_digits()
    runs = []
    for rep in range(args.repeats):
        res, dbm = one_seed(tr, te, rep, args)
        print(res, file=sys.stderr, flush=True)
        runs.append(res)
        if rep == 0 and args.png:
            save_grid(dbm, args.png, jax.random.key(7))
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    layers = "-".join(map(str, [64, *args.layers]))
    print(
        f"Binarized digits, lr={args.lr}, batch={args.batch_size}, epochs={args.epochs} "
        f"(DBM pre-training {args.pretrain_epochs} per module), medians over {args.repeats} "
        f"seeds; AIS {args.ais_chains} chains x {args.ais_betas} temperatures, base-rate base.  "
        f"jax {jax.__version__}, {platform.machine()}, {os.cpu_count()} CPUs.\n\n"
        f"Command: `.venv/bin/python benchmarks/dbm.py {' '.join(sys.argv[1:])}`\n\n"
        "| model | test log-lik (nats/image) | how | fit wall s |\n|---|---|---|---|\n"
        f"| RBM 64-{sum(args.layers)} (`fit_rbm`, PCD-1) | {med['rbm']:.3f} | AIS log Z | "
        f"{med['t_rbm']:.1f} |\n"
        f"| DBM {layers} (`fit_dbm`) | {med['dbm_exact']:.3f} | exact | {med['t_dbm']:.1f} |\n"
        f"| DBM {layers} | {med['dbm_ais']:.3f} | exact log p*, AIS log Z | – |\n"
        f"| DBM {layers} | {med['dbm_bound']:.3f} | mean-field bound, exact log Z | – |\n"
        f"| DBM {layers} | {med['dbm_bound_ais']:.3f} | mean-field bound, AIS log Z | – |\n\n"
        f"AIS log Z - exact log Z of the DBM (median): {med['z_err']:+.3f} nats."
    )


if __name__ == "__main__":
    main()
