"""Neural Hamiltonian flow (seed 003) against the foundation flows, same data, same run.

Density estimation on standardized two_moons (``nh.datasets.toy2d("two_moons", n, key,
standardize=True)``).  Every model gets the same training points, the same optimizer (Adam,
cosine decay from ``--lr`` to 0, global gradient-norm clipping at 10), the same batch size
and the same number of optimizer steps:

* **NHF** (:func:`numpyro_hgf.train.hamiltonian_flow.fit_hamiltonian_flow`), trained on the
  seed's ELBO, and once more on the importance-weighted bound with ``--iwae-train-k`` draws
  (``K`` times the work per step; ``--iwae-train-k 0`` skips that row).
  Its marginal likelihood has no closed form: reported are the test ELBO (mean over
  ``--elbo-draws`` momentum draws per point) and the test IWAE-K bound (``--iwae-k``
  draws), both lower bounds on the test log-likelihood.
* **RealNVP, MAF, spline** (``numpyro_hgf.train.fit_flow``): exact test log-likelihood.

Higher is better; the entropy floor (the best achievable expected log-likelihood) is
``-TWO_MOONS_ENTROPY``.  Wall times are of the whole fit (compile included), in this process.

Run ``python benchmarks/hamiltonian_flow.py --help``; ``--quick`` is a smoke run of a few
seconds; ``--out FILE.md`` also writes the markdown table to a file.
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
from numpyro_hgf.train.hamiltonian_flow import fit_hamiltonian_flow


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    jax.block_until_ready(jax.tree.leaves(out.params if hasattr(out, "params") else out))
    return out, time.perf_counter() - t0


def num_params(params) -> int:
    return int(sum(np.size(a) for a in jax.tree.leaves(params)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--n-train", type=int, default=10_000)
    p.add_argument("--n-test", type=int, default=5_000)
    p.add_argument("--hidden", type=str, default="64,64", help="hidden widths (all models)")
    p.add_argument("--flow-layers", type=int, default=4)
    p.add_argument("--nhf-layers", type=int, default=4)
    p.add_argument("--nhf-steps", type=int, default=4, help="leapfrog steps per NHF layer")
    p.add_argument("--dt", type=float, default=0.2)
    p.add_argument(
        "--iwae-train-k",
        type=int,
        default=8,
        help="draws of the IWAE-objective NHF row (costs K x the ELBO row per step; 0 skips it)",
    )
    p.add_argument("--iwae-k", type=int, default=256)
    p.add_argument("--elbo-draws", type=int, default=16)
    p.add_argument("--kinds", type=str, default="realnvp,maf,spline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke run (tiny sizes)")
    p.add_argument("--out", type=str, default=None, help="also write the markdown here")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.batch_size, args.n_train, args.n_test = 20, 64, 500, 200
        args.hidden, args.flow_layers, args.nhf_layers, args.nhf_steps = "8", 2, 1, 2
        args.iwae_k, args.elbo_draws = 8, 2
    args.hidden = tuple(int(h) for h in args.hidden.split(",") if h)
    args.kinds = tuple(k for k in args.kinds.split(",") if k)
    return args


def machine() -> str:
    import numpyro

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPU cores ({cpu}), backend {jax.default_backend()}, "
        f"Python {platform.python_version()}, jax {jax.__version__}, numpyro {numpyro.__version__}"
    )


def run(args, log=print) -> list[dict]:
    root = jax.random.PRNGKey(args.seed)
    k_train, k_test, k_eval = jax.random.split(root, 3)
    train = nh.datasets.toy2d("two_moons", args.n_train, k_train, standardize=True)
    test = nh.datasets.toy2d("two_moons", args.n_test, k_test, standardize=True)
    common = dict(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        progress=False,
    )
    rows = []
    nhf_variants = [("NHF, ELBO objective (seed)", dict(objective="elbo", num_samples=1))]
    if args.iwae_train_k > 0:
        nhf_variants.append(
            (
                f"NHF, IWAE-{args.iwae_train_k} objective",
                dict(objective="iwae", num_samples=args.iwae_train_k),
            )
        )
    for name, opts in nhf_variants:
        model, wall = timed(
            fit_hamiltonian_flow,
            train,
            num_layers=args.nhf_layers,
            num_steps=args.nhf_steps,
            dt=args.dt,
            hidden=args.hidden,
            key=jax.random.fold_in(root, 1),
            **opts,
            **common,
        )
        elbo = float(jnp.mean(model.elbo(test, k_eval, args.elbo_draws)))
        iwae = float(jnp.mean(model.log_prob_iwae(test, k_eval, args.iwae_k)))
        rows.append(
            dict(
                name=name,
                elbo=elbo,
                iwae=iwae,
                exact=None,
                wall=wall,
                params=num_params(model.params),
            )
        )
        log(f"  {name}: test ELBO {elbo:.3f}, IWAE-{args.iwae_k} {iwae:.3f}, {wall:.1f} s")
    for kind in args.kinds:
        flow, wall = timed(
            nh.train.fit_flow,
            kind,
            train,
            num_layers=args.flow_layers,
            hidden=args.hidden,
            key=jax.random.fold_in(root, 2),
            **common,
        )
        exact = float(jax.jit(lambda f, x: jnp.mean(f.log_prob(x)))(flow, test))
        rows.append(
            dict(
                name=kind,
                elbo=None,
                iwae=None,
                exact=exact,
                wall=wall,
                params=num_params(flow.params),
            )
        )
        log(f"  {kind}: exact test log-likelihood {exact:.3f}, {wall:.1f} s")
    return rows


def markdown(args, rows, command: str) -> str:
    floor = getattr(nh.datasets, "TWO_MOONS_ENTROPY", None)
    fmt = lambda v: "" if v is None else f"{v:.3f}"
    best = lambda r: r["exact"] if r["exact"] is not None else r["iwae"]
    out = [
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}",
        "",
        f"Standardized two_moons, {args.n_train} training / {args.n_test} test points; every "
        f"model: {args.steps} Adam steps, batch {args.batch_size}, peak lr {args.lr:g} with "
        f"cosine decay, clip 10, hidden {args.hidden}.  NHF: {args.nhf_layers} Hamiltonian "
        f"layers x {args.nhf_steps} leapfrog steps of dt = {args.dt:g}, momentum encoder "
        f"MLP {args.hidden}; test ELBO over {args.elbo_draws} draws per point, IWAE with "
        f"K = {args.iwae_k}.  Flows: {args.flow_layers} layers (`fit_flow`).  Test "
        "log-likelihoods in nats per point (higher is better)"
        + (f"; entropy floor -{floor:.3f}." if floor else "."),
        "",
        "| model | test ELBO | test IWAE-K | exact test log-lik | gap to floor | params | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gap = "" if floor is None else f"{-best(r) - floor:+.3f}"
        out.append(
            f"| {r['name']} | {fmt(r['elbo'])} | {fmt(r['iwae'])} | {fmt(r['exact'])} | {gap} | "
            f"{r['params']} | {r['wall']:.1f} |"
        )
    out += [
        "",
        "The NHF columns are lower bounds on its test log-likelihood (IWAE-K is the tighter); "
        "the gap column uses IWAE-K for NHF and the exact value for the flows.",
    ]
    return "\n".join(out)


def main(argv=None):
    args = parse_args(argv)
    command = "python benchmarks/hamiltonian_flow.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    print(machine(), flush=True)
    rows = run(args, log=lambda *a: print(*a, flush=True))
    report = markdown(args, rows, command.strip())
    print()
    print(report)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
