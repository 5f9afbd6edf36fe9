"""Neal's funnel in 100 dimensions: plain NUTS against NeuTra NUTS on flow guides.

The target (Neal 2003): ``v ~ N(0, 3^2)``, ``x_i | v ~ N(0, exp(v / 2)^2)`` for
``i = 1..99``, sampled in its centred form (the geometry a learned preconditioner has to
undo).  The exact transport is ``v = 3 e_0``, ``x_i = exp(3 e_0 / 2) e_i``: an affine
autoregressive map, so an IAF/MAF-type guide can represent it exactly.

Methods, every one with 4 chains x (``--warmup`` + ``--samples``) NUTS draws:

* ``numpyro NUTS``: NumPyro's ``MCMC(NUTS)`` on the centred model (diagonal mass);
* ``nh run_nuts``: :func:`numpyro_hgf.infer.run_nuts`, the same;
* ``numpyro AutoBNAFNormal``: NumPyro's BNAF guide (hidden factors 8, 8), ``--steps`` of
  Adam 3e-3 by ``SVI``, then ``NeuTraReparam`` + ``MCMC(NUTS)``;
* ``nh neutra_nuts (...)``: :func:`numpyro_hgf.infer.fit_flow_guide` (``--starts``
  starts, ``--steps`` steps) with the package's default guide (BNAF) and with NumPyro's
  ``AutoIAFNormal`` as the guide, then :func:`numpyro_hgf.infer.neutra_nuts`.

Reported: gradients per minimum ESS over the 100 coordinates (sampling phase; ``arviz.ess``
bulk), divergences, the posterior mean and sd of ``v`` (truth 0 and 3), the guide's ELBO
(truth: log Z = 0), and wall times including compilation.

    .venv/bin/python benchmarks/funnel.py            # ~15 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import time

import arviz as az
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
import optax
from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoBNAFNormal, AutoIAFNormal
from numpyro.infer.reparam import NeuTraReparam

import numpyro_hgf as nh

DIM = 100


def funnel():
    v = numpyro.sample("v", dist.Normal(0.0, 3.0))
    numpyro.sample("x", dist.Normal(0.0, jnp.exp(v / 2)).expand([DIM - 1]).to_event(1))


def summary(idata_or_samples, n_steps, diverging) -> dict:
    idata = (
        idata_or_samples
        if isinstance(idata_or_samples, az.InferenceData)
        else az.from_dict(posterior=idata_or_samples)
    )
    ess = az.ess(idata, var_names=["v", "x"])
    min_ess = min(float(ess["v"].values.min()), float(ess["x"].values.min()))
    v = idata.posterior["v"].values.ravel()
    return {
        "grads_per_ess": float(n_steps.sum()) / min_ess, "min_ess": min_ess,
        "divergences": int(diverging.sum()), "v_mean": float(v.mean()), "v_sd": float(v.std()),
    }  # fmt: skip


def numpyro_mcmc(model, args, key):
    mcmc = MCMC(
        NUTS(model), num_warmup=args.warmup, num_samples=args.samples, num_chains=4,
        chain_method="vectorized", progress_bar=False,
    )  # fmt: skip
    mcmc.run(key, extra_fields=("num_steps", "diverging"))
    extra = mcmc.get_extra_fields(group_by_chain=True)
    samples = {k: v for k, v in mcmc.get_samples(group_by_chain=True).items() if k in ("v", "x")}
    return summary(samples, extra["num_steps"], extra["diverging"])


def from_idata(idata) -> dict:
    stats = idata.sample_stats
    return summary(idata, stats["n_steps"].values, stats["diverging"].values)


def bnaf_neutra(args, key):
    guide = AutoBNAFNormal(funnel, num_flows=1, hidden_factors=[8, 8])
    svi = SVI(funnel, guide, optax.adam(3e-3), Trace_ELBO())
    start = time.perf_counter()
    result = svi.run(key, args.steps, progress_bar=False)
    fit_s = time.perf_counter() - start
    elbo = -Trace_ELBO(1024).loss(jax.random.fold_in(key, 1), result.params, funnel, guide)
    neutra = NeuTraReparam(guide, result.params)
    out = numpyro_mcmc(neutra.reparam(funnel), args, jax.random.fold_in(key, 2))
    return {**out, "elbo": float(elbo), "fit_s": fit_s}


def nh_neutra(guide, args, key):
    start = time.perf_counter()
    fit = nh.infer.fit_flow_guide(
        funnel, guide=guide, num_starts=args.starts, num_steps=args.steps,
        elbo_particles=1024, key=key, progress=False,
    )  # fmt: skip
    fit_s = time.perf_counter() - start
    idata = nh.infer.neutra_nuts(
        funnel, guide_fit=fit, num_warmup=args.warmup, num_samples=args.samples, num_chains=4,
        key=jax.random.fold_in(key, 2), progress=False,
        nuts_options={"diagnostics_warn": False},
    )  # fmt: skip
    return {**from_idata(idata), "elbo": fit.elbo, "fit_s": fit_s}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--steps", type=int, default=10_000, help="SVI steps of every guide")
    p.add_argument("--starts", type=int, default=1, help="fit_flow_guide starts")
    p.add_argument("--skip", nargs="*", default=(), help="method names to skip")
    p.add_argument("--only", default=None, help="run only the methods whose name has this")
    args = p.parse_args(argv)
    key = jax.random.key(0)
    methods = {
        "numpyro NUTS": lambda: numpyro_mcmc(funnel, args, key),
        "nh run_nuts": lambda: from_idata(
            nh.infer.run_nuts(
                funnel,
                num_warmup=args.warmup,
                num_samples=args.samples,
                num_chains=4,
                key=key,
                progress=False,
                diagnostics_warn=False,
            )  # fmt: skip
        ),
        "numpyro AutoBNAFNormal NeuTra": lambda: bnaf_neutra(args, key),
        "nh neutra_nuts (AutoIAFNormal guide)": lambda: nh_neutra(
            AutoIAFNormal(funnel, num_flows=1, hidden_dims=[200, 200]), args, key
        ),
        "nh neutra_nuts (default guide)": lambda: nh_neutra(None, args, key),
    }
    print(f"Neal's funnel, {DIM}-d; 4 chains x ({args.warmup} + {args.samples}); guides "
          f"{args.steps} SVI steps; {jax.devices()[0].platform}")  # fmt: skip
    print("| method | grads / min-ESS | min-ESS | divergences | v mean | v sd | ELBO | fit s "
          "| total s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for name, method in methods.items():
        if any(s in name for s in args.skip) or (args.only and args.only not in name):
            continue
        start = time.perf_counter()
        r = method()
        total = time.perf_counter() - start
        elbo = f"{r['elbo']:.2f}" if "elbo" in r else "-"
        fit = f"{r['fit_s']:.0f}" if "fit_s" in r else "-"
        print(
            f"| {name} | {r['grads_per_ess']:.0f} | {r['min_ess']:.0f} | {r['divergences']} | "
            f"{r['v_mean']:.2f} | {r['v_sd']:.2f} | {elbo} | {fit} | {total:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
