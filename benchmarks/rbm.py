"""Bernoulli RBMs: ``numpyro_hgf.train.fit_rbm`` against scikit-learn's ``BernoulliRBM``.

Both fit binarized 8x8 digits (``nh.datasets.digits(form="binary")``, flattened to 64
visible units; 1,437 training / 360 test images) with the same number of hidden units,
learning rate, batch size and epochs.  scikit-learn's ``BernoulliRBM.fit`` is persistent
CD-1 with plain SGD (``θ += lr * (<·>_data - <·>_model) / batch``), so the main
comparison is ``fit_rbm(method="pcd", k=1, optimizer="sgd")`` -- the same algorithm;
``fit_rbm(method="cd")`` is shown too.  (One difference stays: ``fit_rbm`` starts the
visible biases at the data log-odds, scikit-learn at zero; ``--init-visible-bias zero``
removes it.)

Reported, medians over ``--repeats`` seeds, all in this one process:

* **test log-likelihood** (nats per image, higher is better), computed for *both* models
  with this package's code: scikit-learn's ``components_`` / ``intercept_visible_`` /
  ``intercept_hidden_`` are loaded into a ``nh.distributions.BernoulliRBM``.  ``log Z`` is
  exact (enumerating the 2^H hidden states) when ``H <= 20`` and an AIS estimate
  (Salakhutdinov & Murray 2008; ``--ais-chains`` runs x ``--ais-betas`` temperatures,
  data base-rate base model) otherwise -- never pseudo-likelihood.  The independent-
  Bernoulli baseline (visible biases at the data log-odds) is the reference row.
* **fit wall time and process CPU time** of one fit call (``fit_rbm`` includes its JIT
  compilation, reported separately as "compile s" from JAX's own compile events).

Run ``python benchmarks/rbm.py --help``; ``--quick`` is a smoke configuration;
``--out PATH.md`` writes the markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_compile_seconds = [0.0]


def _on_event(event, duration, **_kwargs):
    if event in _COMPILE_EVENTS:
        _compile_seconds[0] += duration


jax.monitoring.register_event_duration_secs_listener(_on_event)


def timed(fn, *args, **kwargs):
    """``(result, wall s, compile s, process CPU s)``."""
    c0, p0, t0 = _compile_seconds[0], time.process_time(), time.perf_counter()
    out = fn(*args, **kwargs)
    jax.block_until_ready(jax.tree.leaves(out))
    return (
        out,
        time.perf_counter() - t0,
        _compile_seconds[0] - c0,
        time.process_time() - p0,
    )


def load_digits():
    import numpyro_hgf as nh

    tr = np.asarray(nh.datasets.digits("train", form="binary").images).reshape(-1, 64)
    te = np.asarray(nh.datasets.digits("test", form="binary").images).reshape(-1, 64)
    return tr.astype(np.float32), te.astype(np.float32)


def baseline_ll(tr, te):
    p = np.clip((tr.sum(0) + 0.5) / (len(tr) + 1), 1e-3, 1 - 1e-3)
    return float(np.mean(te @ np.log(p) + (1 - te) @ np.log1p(-p)))


def test_ll(rbm, tr, te, args, key):
    """Mean test log-likelihood and how log Z was obtained."""
    if rbm.exact_log_normalizer_available:
        return float(jnp.mean(rbm.log_prob(te))), "exact", 0.0
    res = rbm.log_normalizer(
        "ais",
        key=key,
        num_chains=args.ais_chains,
        num_betas=args.ais_betas,
        data=tr,
        return_result=True,
    )
    ll = float(jnp.mean(rbm.with_log_normalizer(res).log_prob(te)))
    return ll, "AIS", float(res.stderr)


def fit_ours(tr, hidden, method, seed, args):
    from numpyro_hgf.train import rbm as train_rbm

    return train_rbm.fit_rbm(
        tr,
        hidden,
        method=method,
        k=1,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        optimizer="sgd",
        init_visible_bias=args.init_visible_bias,
        key=jax.random.key(seed),
        progress=False,
    )


def fit_sklearn(tr, hidden, seed, args):
    from sklearn.neural_network import BernoulliRBM as SkRBM

    model = SkRBM(
        n_components=hidden,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        n_iter=args.epochs,
        random_state=seed,
        verbose=0,
    )
    model.fit(tr)
    return model


def sklearn_to_ours(model):
    from numpyro_hgf.distributions.rbm import BernoulliRBM

    return BernoulliRBM(
        np.asarray(model.components_.T, np.float32),
        np.asarray(model.intercept_visible_, np.float32),
        np.asarray(model.intercept_hidden_, np.float32),
    )


def run(args) -> tuple[str, list[dict]]:
    tr, te = load_digits()
    base = baseline_ll(tr, te)
    rows: list[dict] = []
    for hidden in args.hidden:
        runs: dict[str, list[dict]] = {}
        for rep in range(args.repeats):
            seed = args.seed + rep
            ais_key = jax.random.key(10_000 + seed)
            for name in args.methods:
                if name == "sklearn":
                    model, wall, comp, cpu = timed(fit_sklearn, tr, hidden, seed, args)
                    rbm = sklearn_to_ours(model)
                else:
                    rbm, wall, comp, cpu = timed(fit_ours, tr, hidden, name, seed, args)
                ll, how, se = test_ll(rbm, tr, te, args, ais_key)
                runs.setdefault(name, []).append(
                    dict(ll=ll, how=how, se=se, wall=wall, compile=comp, run=wall - comp, cpu=cpu)
                )
                print(
                    f"  H={hidden} {name:8s} seed={seed}: test LL {ll:8.3f} ({how}"
                    f"{f' ±{se:.3f}' if how == 'AIS' else ''}), fit {wall:6.2f} s "
                    f"(compile {comp:5.2f} s, CPU {cpu:6.2f} s)",
                    file=sys.stderr,
                    flush=True,
                )
        ref_wall = (
            statistics.median(r["wall"] for r in runs["sklearn"]) if "sklearn" in runs else None
        )
        for name, rs in runs.items():
            med = lambda k, rs=rs: statistics.median(r[k] for r in rs)  # noqa: E731
            rows.append(
                dict(
                    hidden=hidden,
                    name=name,
                    ll=med("ll"),
                    how=rs[0]["how"],
                    se=med("se"),
                    wall=med("wall"),
                    compile=med("compile"),
                    cpu=med("cpu"),
                    run=med("run"),
                    wall_ratio=(med("wall") / ref_wall) if ref_wall else None,
                    run_ratio=(med("run") / ref_wall) if ref_wall else None,
                    gain=med("ll") - base,
                )
            )
    label = {
        "sklearn": "scikit-learn `BernoulliRBM` (PCD-1, SGD)",
        "pcd": "`nh.train.fit_rbm(method='pcd')` (PCD-1, SGD)",
        "cd": "`nh.train.fit_rbm(method='cd')` (CD-1, SGD)",
    }
    lines = [
        "| H | model | test log-lik (nats/image) | vs baseline | log Z | fit wall s | "
        "compile s | wall − compile s | CPU s | wall / sklearn | (wall − compile) / sklearn |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| – | independent Bernoulli (data log-odds) | {base:.3f} | 0 | exact | – | – | – | – "
        "| – | – |",
    ]
    for r in rows:
        how = f"AIS (±{r['se']:.3f})" if r["how"] == "AIS" else "exact"
        ratio = f"{r['wall_ratio']:.2f}" if r["wall_ratio"] is not None else "–"
        run_ratio = f"{r['run_ratio']:.2f}" if r["run_ratio"] is not None else "–"
        lines.append(
            f"| {r['hidden']} | {label[r['name']]} | {r['ll']:.3f} | {r['gain']:+.3f} | {how} | "
            f"{r['wall']:.2f} | {r['compile']:.2f} | {r['run']:.2f} | {r['cpu']:.2f} | {ratio} | "
            f"{run_ratio} |"
        )
    header = (
        f"Binarized digits (64 visible; 1,437 train / 360 test), lr={args.lr}, "
        f"batch={args.batch_size}, epochs={args.epochs}, medians over {args.repeats} seed(s); "
        f"AIS: {args.ais_chains} chains x {args.ais_betas} temperatures.  "
        f"jax {jax.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs.\n\n"
        "Command: `.venv/bin/python benchmarks/rbm.py " + " ".join(sys.argv[1:]) + "`\n\n"
    )
    return header + "\n".join(lines) + "\n", rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[16, 64])
    parser.add_argument(
        "--methods", nargs="+", default=["sklearn", "pcd", "cd"], choices=["sklearn", "pcd", "cd"]
    )
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ais-chains", type=int, default=100)
    parser.add_argument("--ais-betas", type=int, default=10_000)
    parser.add_argument("--init-visible-bias", choices=["data", "zero"], default="data")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: H=16 only, 3 epochs, 1 repeat"
    )
    parser.add_argument("--out", default=None, help="write the markdown table to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.hidden, args.epochs, args.repeats, args.ais_betas = [16], 3, 1, 2000
    warnings.filterwarnings("ignore", category=UserWarning)
    os.environ.setdefault("NUMPYRO_HGF_PROGRESS", "0")
    table, _ = run(args)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table)
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
