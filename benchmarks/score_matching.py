"""Score quality of the score-matching objectives on Gaussian mixtures with an analytic score.

For each data set, every method trains the **same score network** (an ``MLP`` ``x -> s(x)``
with ``--hidden`` widths; for HSM it is the force ``F_theta``) for the **same number of
optimizer steps** with the same batch size and optimizer (Adam, cosine decay from ``--lr``,
gradient clipping at 1), on the same training points, through the package's trainers
(:func:`numpyro_hgf.train.score.fit_score`, :func:`numpyro_hgf.train.score.fit_hsm`).  HSM
also trains its velocity predictor (``VelocityMLP`` = ``t * TimeMLP`` of the same widths),
which is part of the method.  Reported: the Fisher divergence

    FD = E_p || s_theta(x) - grad log p(x) ||^2

on ``--n-test`` fresh draws from the mixture (the analytic score is exact), its value
relative to ``E_p ||grad log p||^2`` (0 = perfect, 1 = as bad as ``s = 0``), mean and
standard deviation over ``--seeds`` seeds, and the training wall time of one fit
(compilation included; on a shared machine, read times as rough).

Methods: ESM (KDE target over the whole training set, Scott bandwidth), ISM (exact trace),
SSM (one Rademacher projection), SSM-VR, DSM (``--dsm-sigma``), HSM (leapfrog, ``T =
--hsm-steps * --hsm-step-size``).  Data: ``ring2d`` (six anisotropic Gaussians on a ring,
unequal weights) and ``mix20d`` (five Gaussians in 20 dimensions with diagonal covariances).

Run ``python benchmarks/score_matching.py --help``; ``--quick`` is a smoke run;
``--out PATH.md`` writes the table (and ``PATH.json`` with the raw numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from numpyro_hgf.nn import MLP  # noqa: E402
from numpyro_hgf.objectives import VelocityMLP  # noqa: E402
from numpyro_hgf.train.score import fit_hsm, fit_score  # noqa: E402

METHODS = ("ESM", "ISM", "SSM", "SSM-VR", "DSM", "HSM")


# --------------------------------------------------------------------------------------------
# mixtures with an analytic score
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mixture:
    """``p(x) = sum_k w_k N(x; m_k, diag(s_k^2))`` or with full ``cov_k``."""

    name: str
    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, d)
    covs: np.ndarray  # (K, d, d)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, key, n: int) -> jax.Array:
        k_comp, k_noise = jax.random.split(key)
        comp = jax.random.choice(k_comp, len(self.weights), (n,), p=jnp.asarray(self.weights))
        chol = jnp.linalg.cholesky(jnp.asarray(self.covs))
        z = jax.random.normal(k_noise, (n, self.dim))
        return jnp.asarray(self.means)[comp] + jnp.einsum("nij,nj->ni", chol[comp], z)

    def score(self, x) -> jax.Array:
        """``grad log p(x) = sum_k r_k(x) C_k^{-1} (m_k - x)``, ``r`` the responsibilities."""
        means, covs = jnp.asarray(self.means), jnp.asarray(self.covs)
        prec = jnp.linalg.inv(covs)
        diff = means[None] - x[:, None]  # (n, K, d)
        maha = jnp.einsum("nki,kij,nkj->nk", diff, prec, diff)
        logdet = jnp.linalg.slogdet(covs)[1]
        log_r = jnp.log(jnp.asarray(self.weights)) - 0.5 * (maha + logdet)
        r = jax.nn.softmax(log_r, axis=-1)
        return jnp.einsum("nk,kij,nkj->ni", r, prec, diff)


def ring2d() -> Mixture:
    k = 6
    angles = 2 * np.pi * np.arange(k) / k
    means = 2.0 * np.stack([np.cos(angles), np.sin(angles)], -1)
    covs = []
    for a in angles:  # elongated along the ring's tangent
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        covs.append(rot @ np.diag([0.2**2, 0.5**2]) @ rot.T)
    weights = np.array([3.0, 1.0, 2.0, 1.0, 2.0, 1.0])
    return Mixture("ring2d", weights / weights.sum(), means, np.stack(covs))


def mix20d(dim: int = 20) -> Mixture:
    rng = np.random.default_rng(20)
    k = 5
    means = rng.normal(0.0, 1.0, (k, dim))
    scales = rng.uniform(0.4, 1.0, (k, dim))
    covs = np.stack([np.diag(s**2) for s in scales])
    weights = rng.uniform(0.5, 1.5, k)
    return Mixture(f"mix{dim}d", weights / weights.sum(), means, covs)


DATASETS = {"ring2d": ring2d, "mix20d": mix20d}


# --------------------------------------------------------------------------------------------
# one fit per method
# --------------------------------------------------------------------------------------------


def train(method: str, data, args, key):
    d = data.shape[1]
    net = MLP(hidden=tuple(args.hidden), out_dim=d, activation=jax.nn.silu)
    common = dict(
        key=key,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        progress=False,
    )
    if method == "HSM":
        horizon = args.hsm_steps * args.hsm_step_size
        velocity = VelocityMLP(hidden=tuple(args.hidden), horizon=horizon)
        return fit_hsm(
            data,
            force=net,
            velocity=velocity,
            step_size=args.hsm_step_size,
            num_steps=args.hsm_steps,
            velocity_learning_rate=args.lr * args.hsm_velocity_lr_factor,
            velocity_steps=args.hsm_velocity_steps,
            force_baseline=not args.hsm_no_force_baseline,
            force_gradient=args.hsm_force_gradient,
            **common,
        )
    options = {
        "ESM": ("explicit", {}),
        "ISM": ("implicit", {}),
        "SSM": ("sliced", {"projection": "rademacher"}),
        "SSM-VR": ("sliced", {"projection": "rademacher", "variance_reduction": True}),
        "DSM": ("denoising", {"sigma": args.dsm_sigma}),
    }
    objective, extra = options[method]
    return fit_score(objective, data, network=net, **extra, **common)


def fisher_divergence(model, mixture: Mixture, test) -> tuple[float, float]:
    @jax.jit
    def fd(params, x):
        s = model.score_fn(params, x)
        true = mixture.score(x)
        return jnp.mean(jnp.sum((s - true) ** 2, -1)), jnp.mean(jnp.sum(true**2, -1))

    value, scale = fd(model.params, test)
    return float(value), float(value / scale)


def run(args) -> dict:
    results: dict = {"config": vars(args).copy(), "rows": []}
    results["config"]["platform"] = platform.platform()
    results["config"]["jax"] = jax.__version__
    results["config"]["devices"] = str(jax.devices())
    for name in args.datasets:
        mixture = DATASETS[name]()
        test = mixture.sample(jax.random.key(10_000), args.n_test)
        for method in args.methods:
            fds, rels, times = [], [], []
            for seed in range(args.seeds):
                k_data, k_fit = jax.random.split(jax.random.key(seed))
                data = mixture.sample(k_data, args.n_train)
                t0 = time.perf_counter()
                model = train(method, data, args, k_fit)
                jax.block_until_ready(model.params)
                times.append(time.perf_counter() - t0)
                value, rel = fisher_divergence(model, mixture, test)
                fds.append(value)
                rels.append(rel)
                print(
                    f"{name:7s} {method:7s} seed {seed}: FD {value:.4f} (rel {rel:.4f}) "
                    f"{times[-1]:.1f}s",
                    flush=True,
                )
            results["rows"].append(
                {
                    "dataset": name,
                    "dim": mixture.dim,
                    "method": method,
                    "fd": fds,
                    "relative_fd": rels,
                    "seconds": times,
                }
            )
    return results


def _pm(values, digits=4) -> str:
    mean = float(np.mean(values))
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {float(np.std(values, ddof=1)):.{digits}f}"


def markdown(results: dict) -> str:
    cfg = results["config"]
    lines = [
        "## Score matching: Fisher divergence of the learned score",
        "",
        f"Same score network (MLP {tuple(cfg['hidden'])}, SiLU) and {cfg['steps']} Adam steps "
        f"(batch {cfg['batch_size']}, lr {cfg['lr']} cosine) for every method; "
        f"{cfg['n_train']} training points, FD on {cfg['n_test']} fresh draws, "
        f"mean ± sd over {cfg['seeds']} seed(s).  DSM sigma = {cfg['dsm_sigma']}; "
        f"HSM: T = {cfg['hsm_steps']} x {cfg['hsm_step_size']} leapfrog, velocity t*TimeMLP "
        f"{tuple(cfg['hidden'])}, velocity lr x{cfg['hsm_velocity_lr_factor']}, "
        f"{cfg['hsm_velocity_steps']} velocity step(s) per force step, "
        f"force gradient {cfg['hsm_force_gradient']!r}, "
        f"baseline t F: {not cfg['hsm_no_force_baseline']}.",
        "",
        "| data | d | method | Fisher divergence | relative FD | train s |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['dataset']} | {row['dim']} | {row['method']} | {_pm(row['fd'])} | "
            f"{_pm(row['relative_fd'])} | {np.mean(row['seconds']):.1f} |"
        )
    by = {(r["dataset"], r["method"]): float(np.mean(r["fd"])) for r in results["rows"]}
    ratios = []
    for name in dict.fromkeys(r["dataset"] for r in results["rows"]):
        if (name, "HSM") in by and (name, "DSM") in by:
            ratios.append(
                f"{name}: FD(HSM) / FD(DSM) = {by[(name, 'HSM')] / by[(name, 'DSM')]:.2f}"
            )
    if ratios:
        lines += ["", "; ".join(ratios) + " (below 1: HSM better)."]
    lines += ["", f"Command: `{cfg['command']}`", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (tiny budget)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--dsm-sigma", type=float, default=0.1)
    parser.add_argument("--hsm-step-size", type=float, default=0.05)
    parser.add_argument("--hsm-steps", type=int, default=5)
    parser.add_argument("--hsm-velocity-lr-factor", type=float, default=5.0)
    parser.add_argument("--hsm-velocity-steps", type=int, default=1)
    parser.add_argument(
        "--hsm-no-force-baseline", action="store_true", help="plain V_phi (the paper's form)"
    )
    parser.add_argument(
        "--hsm-force-gradient", default="taylor", choices=("full", "velocity", "taylor")
    )
    parser.add_argument("--out", type=str, default=None, help="write PATH (.md) and PATH.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.seeds, args.n_train, args.n_test = 200, 1, 2000, 2000
        args.hidden = [32, 32]
    args.command = "python benchmarks/score_matching.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    os.environ.setdefault("NUMPYRO_HGF_PROGRESS", "0")
    results = run(args)
    table = markdown(results)
    print()
    print(table)
    if args.out:
        out = Path(args.out)
        md = out if out.suffix == ".md" else out.with_suffix(".md")
        md.parent.mkdir(parents=True, exist_ok=True)
        md.write_text(table)
        md.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str))
        print(f"wrote {md} and {md.with_suffix('.json')}")
    return results


if __name__ == "__main__":
    main()
