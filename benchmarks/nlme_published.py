"""Orange and Indometh (Pinheiro & Bates 2000) against nlme's published fits, side by side.

For each model: nlme's printed estimates and log-likelihood; the package's likelihood at
nlme's estimates (Laplace and FOCE-I); our fit (``fit_laplace``, float64, SciPy L-BFGS) with
its wall time (median of ``--repeats``, compilation included in the first); and an
importance-sampled marginal likelihood (Student-t(5) proposals at the Laplace modes, 100,000
draws per subject, 3 keys) at both points.

    .venv/bin/python benchmarks/nlme_published.py            # ~1 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from numpyro_hgf.models import growth, nlme  # noqa: E402


def importance(model, params, data, keys):
    _, per = nlme.laplace_log_likelihood(model, params, data, method="laplace")
    cov = 1.5**2 * jnp.linalg.inv(per.precision)
    est = [
        float(
            nlme.importance_log_likelihood(
                model, params, data, per.mode, cov, num_samples=100_000, key=k, df=5
            )[0]
        )
        for k in keys
    ]
    return float(np.mean(est)), float(np.std(est))


def flat(model, params) -> dict:
    out = {k: float(v) for k, v in params["theta"].items()}
    for name, sd in zip(model.eta_names, np.exp(params["log_omega_sd"]), strict=True):
        out[f"sd({name})"] = float(sd)
    out["sigma"] = math.exp(float(params["log_sigma_add"]))
    return out


def one(name, method, repeats):
    model, init = getattr(growth, f"{name}_model")()
    data = getattr(growth, f"{name}_data")().astype(jnp.float64)
    pub = getattr(growth, f"{name.upper()}_NLME")
    ref = model.init_params(pub["theta"], omega_sd=pub["omega_sd"], sigma_add=pub["sigma"])
    ref = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), ref)
    times, fit = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit = nlme.fit_laplace(model, data, init, method=method, progress=False)
        times.append(time.perf_counter() - t0)
    keys = jax.random.split(jax.random.key(0), 3)
    at_ref = {
        m: float(nlme.laplace_log_likelihood(model, ref, data, method=m)[0])
        for m in ("laplace", "focei")
    }
    is_ref, is_ours = importance(model, ref, data, keys), importance(model, fit.params, data, keys)
    ours, theirs = flat(model, fit.params), flat(model, ref)
    median = statistics.median(times)
    print(f"\n{name} ({method}); fit wall s: first {times[0]:.1f}, median {median:.1f}")
    print("| quantity | nlme (published) | numpyro_hgf | relative difference |")
    print("|---|---|---|---|")
    for k, v in theirs.items():
        print(f"| {k} | {v:.5g} | {ours[k]:.5g} | {ours[k] / v - 1:+.2%} |")
    print(f"| log-likelihood | {pub['log_likelihood']} | {fit.log_likelihood:.4f} | |")
    print(f"| our Laplace / FOCE-I at nlme's estimates | | {at_ref['laplace']:.4f} / "
          f"{at_ref['focei']:.4f} | |")  # fmt: skip
    print(f"| importance-sampled log p(y) at the point | {is_ref[0]:.4f} +- {is_ref[1]:.4f} | "
          f"{is_ours[0]:.4f} +- {is_ours[1]:.4f} | |")  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("NUMPYRO_HGF_PROGRESS", "0")
    print(f"jax {jax.__version__}, {os.cpu_count()} CPUs")
    one("orange", "laplace", args.repeats)
    one("indometh", "focei", args.repeats)


if __name__ == "__main__":
    main()
