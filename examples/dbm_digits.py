"""A deep Boltzmann machine on binarized digits, against an RBM with the same hidden units.

Fits ``nh.train.fit_dbm`` (doubled greedy pre-training, then mean-field + persistent chains;
Salakhutdinov & Hinton 2009) with hidden layers 16-16 and ``nh.train.fit_rbm`` (PCD-1) with
32 hidden units on the 8x8 binarized digits, then reports test log-likelihoods per image:

* the DBM's exact one (its even parity, 64 + 16 units, summed out analytically; the odd
  parity, 16 units, enumerated: 2^16 states) and its mean-field lower bound (SH09 eq. 6);
* the DBM's ``log Z`` by annealed importance sampling next to the exact value;
* the RBM's, with ``log Z`` by AIS (32 hidden units: too many to enumerate cheaply);
* the independent-Bernoulli baseline.

It writes ``dbm_samples.png`` (block-Gibbs samples of the DBM) and ``dbm_digits.md``.

    .venv/bin/python examples/dbm_digits.py --out runs/dbm     # ~30 s on 2 CPU cores
    .venv/bin/python examples/dbm_digits.py --smoke            # a few seconds: tiny settings
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import numpyro_hgf as nh


def bernoulli_baseline(train, test) -> float:
    """Mean test log-likelihood of independent Bernoulli pixels fitted to ``train``."""
    p = np.clip(train.mean(0), 1e-3, 1 - 1e-3)
    return float(np.mean(test @ np.log(p) + (1 - test) @ np.log1p(-p)))


def save_samples(dbm, path: Path, key) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = np.asarray(dbm.sample(key, (36,))).reshape(36, 8, 8)
    fig, axes = plt.subplots(6, 6, figsize=(4, 4))
    for ax, image in zip(axes.ravel(), images, strict=True):
        ax.imshow(image, cmap="gray_r", vmin=0, vmax=1)
        ax.axis("off")
    fig.suptitle("DBM 64-16-16: block-Gibbs samples", fontsize=9)
    fig.savefig(path, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/dbm_digits")
    parser.add_argument(
        "--seed", type=int, default=0, help="key of both fits (as benchmarks/dbm.py)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny settings (a test runs it)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    digits = nh.datasets.digits
    train = np.asarray(digits("train", form="binary").images, np.float32).reshape(-1, 64)
    test = np.asarray(digits("test", form="binary").images, np.float32).reshape(-1, 64)
    epochs, pretrain, ais_betas = (1, 1, 100) if args.smoke else (20, 10, 3000)
    common = dict(batch_size=20, learning_rate=0.05, progress=False)
    key = jax.random.key(args.seed)

    dbm = nh.train.fit_dbm(
        train, (16, 16), epochs=epochs, pretrain_epochs=pretrain, key=key, **common
    )
    rbm = nh.train.fit_rbm(train, 32, method="pcd", epochs=epochs, key=key, **common)

    ais = dict(num_chains=100, num_betas=ais_betas, data=train)
    ais_key = jax.random.key(10_000 + args.seed)
    log_z = float(dbm.log_normalizer("exact"))
    log_z_ais = float(dbm.log_normalizer("ais", key=ais_key, **ais))
    rbm = rbm.with_log_normalizer(rbm.log_normalizer("ais", key=ais_key, **ais))
    rows = [
        ("DBM 64-16-16, exact", float(jnp.mean(dbm.log_prob(test)))),
        ("DBM 64-16-16, mean-field bound", float(jnp.mean(dbm.mean_field_bound(test)))),
        ("RBM 64-32 (PCD-1), AIS log Z", float(jnp.mean(rbm.log_prob(test)))),
        ("independent Bernoulli pixels", bernoulli_baseline(train, test)),
    ]
    lines = [
        "# Binarized digits: test log-likelihood (nats/image)",
        "",
        "| model | test log-lik |",
        "|---|---|",
        *(f"| {name} | {value:.3f} |" for name, value in rows),
        "",
        f"DBM log Z: exact {log_z:.3f}, AIS {log_z_ais:.3f} (100 chains x {ais_betas} "
        f"temperatures; difference {log_z_ais - log_z:+.3f})",
    ]
    (out / "dbm_digits.md").write_text("\n".join(lines) + "\n")
    save_samples(dbm, out / "dbm_samples.png", jax.random.key(7))
    print("\n".join(lines))
    print(f"wrote {out / 'dbm_digits.md'} and {out / 'dbm_samples.png'}")


if __name__ == "__main__":
    main()
