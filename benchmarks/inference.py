"""Inference cost of ``nh.infer.run_nuts`` and force-field HMC against NumPyro and BlackJAX.

For each target the same posterior is sampled by

* ``run_nuts``      -- :func:`numpyro_hgf.infer.run_nuts` on the NumPyro model;
* ``numpyro``       -- ``numpyro.infer.MCMC(NUTS(model), chain_method="vectorized")``;
* ``blackjax``      -- raw BlackJAX written by hand on the exact log density:
  ``jax.vmap`` over chains of ``blackjax.window_adaptation(blackjax.nuts, ...)`` followed by
  ``blackjax.nuts`` steps in a ``lax.scan``, all in one ``jax.jit``, keeping per draw what
  ``run_nuts`` returns in ``sample_stats`` (divergence, acceptance rate, leapfrog steps,
  energy, log density, tree depth) -- the peer of the ratios;
* ``blackjax_min``  -- the same loop keeping only positions and leapfrog steps (less than any
  usable diagnostics; shown so the cost of the diagnostics themselves is visible);
* ``ff_hmc``        -- :func:`numpyro_hgf.infer.force_field_hmc` with the force
  ``jax.grad(log p)`` and the Metropolis step, using the step size and mass matrix that the
  raw BlackJAX warmup adapted, ``L`` = the median number of NUTS leapfrog steps per draw;
* ``blackjax_hmc``  -- ``blackjax.hmc`` with exactly the same settings (the peer of
  ``ff_hmc``).

All use ``--chains`` vectorised chains, ``--warmup`` adaptation steps (Stan's windowed
adaptation, diagonal mass matrix, target acceptance 0.8) and ``--samples`` kept draws.

Reported per target and sampler (medians over ``--repeats`` runs with new keys, after one
compile-warming run with the same shapes):

* ``grad/ESS``: gradient evaluations of the sampling phase (all chains) per effective sample
  of ``x_i^2`` (``arviz.ess`` on the squared latent values; median and worst coordinate);
* ``us/grad``: wall time of a whole call (warmup + sampling) divided by all of its gradient
  evaluations (warmup + sampling, all chains); ``ff_hmc`` / ``blackjax_hmc`` time the sampling
  phase only (no warmup of their own);
* ``us/executed grad``: the same wall time over the gradients the vectorised chains
  *execute*: within a transition every chain steps in lockstep until the longest trajectory
  of the batch ends, so a call executes ``chains * sum_t max_c n[c, t]`` gradients; the
  ``lockstep waste`` (executed / useful) is a property of the random trajectory lengths of
  the run (1.0-2.1 on N(0, I_100)), not of the code, and it dominates the spread of
  ``us/grad`` between calls; ``us/executed grad`` removes it and isolates the cost of the
  sampler's code;
* with ``--best-of k``, every sampler but NumPyro is called ``k`` times per repeat with the
  same key (the same computation) and the fastest call counts, which filters transient
  stalls of a shared machine the way ``timeit`` does;
* the ratio of ``us/grad`` (and of ``us/executed grad``) to raw BlackJAX (NUTS rows) or
  ``blackjax.hmc`` (HMC rows), taken within each repeat (the samplers of a repeat run back
  to back, in reverse order on odd repeats) and reported as the median and range over
  repeats.

Fixed overhead per call: a second call with the same shapes and ``num_warmup = num_samples =
--tiny`` (compiled code reused), for ``run_nuts``, for ``MCMC.run`` on the same ``MCMC``
object, and for a new ``MCMC`` object per call (the usual pattern in user code).

Targets: ``gauss100`` = N(0, I_100); ``funnel`` = Neal's funnel in 10 dimensions,
**non-centred** (``v ~ N(0, 3^2)``, ``z ~ N(0, I_9)``, ``x = z exp(v / 2)`` deterministic;
statistics on ``(v, z)``); ``eight_schools`` = the non-centred eight-schools model (statistics
on ``mu``, ``tau``, ``eta``).

Run ``python benchmarks/inference.py --help``; ``--quick`` is a smoke run; ``--out PATH.md``
writes the tables (and ``PATH.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import arviz as az  # noqa: E402
import blackjax  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from jax.scipy import stats as jst  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

import numpyro_hgf as nh  # noqa: E402

Y8 = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], np.float32)
S8 = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], np.float32)


# -- targets: a NumPyro model, the same log density by hand on R^d, and the statistic map -----
def gauss_model(d=100):
    numpyro.sample("x", dist.Normal(0.0, 1.0).expand([d]).to_event(1))


def gauss_logdensity(x):
    return -0.5 * jnp.sum(x**2)


def funnel_model(d=10):
    v = numpyro.sample("v", dist.Normal(0.0, 3.0))
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([d - 1]).to_event(1))
    numpyro.deterministic("x", z * jnp.exp(v / 2))


def funnel_logdensity(q):
    return jst.norm.logpdf(q[0], 0.0, 3.0) + jnp.sum(jst.norm.logpdf(q[1:]))


def eight_schools(sigma=S8, y=Y8):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("J", sigma.shape[0]):
        eta = numpyro.sample("eta", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", mu + tau * eta)
        numpyro.sample("obs", dist.Normal(theta, sigma), obs=y)


def eight_logdensity(q):
    """Unconstrained ``q = (mu, log tau, eta_1..8)``, with the log-Jacobian ``log tau``."""
    mu, log_tau, eta = q[0], q[1], q[2:]
    tau = jnp.exp(log_tau)
    return (
        jst.norm.logpdf(mu, 0.0, 5.0)
        + jst.cauchy.logpdf(tau, 0.0, 5.0)
        + jnp.log(2.0)
        + log_tau
        + jnp.sum(jst.norm.logpdf(eta))
        + jnp.sum(jst.norm.logpdf(Y8, mu + tau * eta, S8))
    )


TARGETS = {
    # name: (model, hand-written log density, dim, sites in flat order, unconstrained->stat)
    "gauss100": (gauss_model, gauss_logdensity, 100, ("x",), lambda q: q),
    "funnel": (funnel_model, funnel_logdensity, 10, ("v", "z"), lambda q: q),
    "eight_schools": (
        eight_schools,
        eight_logdensity,
        10,
        ("mu", "tau", "eta"),
        lambda q: q.at[..., 1].set(jnp.exp(q[..., 1])),
    ),
}


def flat_posterior(posterior, sites):
    """``(chain, draw, d)`` from the named sites of a posterior dict / dataset."""
    parts = []
    for name in sites:
        a = np.asarray(posterior[name])
        parts.append(a.reshape(a.shape[:2] + (-1,)))
    return np.concatenate(parts, axis=-1)


def ess_sq(draws):
    """ESS of ``x_i^2`` per coordinate (``draws: (chain, draw, d)``), by ``arviz.ess``."""
    ds = az.convert_to_dataset({"q": np.asarray(draws, np.float64) ** 2})
    return np.asarray(az.ess(ds)["q"].values)


# -- the samplers ---------------------------------------------------------------------------
def run_ours(name, key, warmup, samples, chains):
    model, _, _, sites, _ = TARGETS[name]
    t0 = time.perf_counter()
    idata = nh.infer.run_nuts(
        model,
        num_warmup=warmup,
        num_samples=samples,
        num_chains=chains,
        key=key,
        progress=False,
    )
    wall = time.perf_counter() - t0
    grads = int(idata.sample_stats["n_steps"].values.sum())
    steps = (idata.warmup_sample_stats["n_steps"].values, idata.sample_stats["n_steps"].values)
    return {
        "wall": wall,
        "grads_sampling": grads,
        "grads_total": grads + int(idata.attrs["warmup_n_steps"]),
        "grads_executed": executed(*steps),
        "draws": flat_posterior(idata.posterior, sites),
    }


def executed(*steps):
    """Gradient evaluations the vectorised chains execute: in every transition all chains
    step in lockstep until the longest trajectory ends, so ``chains * sum_t max_c n[c, t]``
    over ``(chain, transition)`` step counts."""
    return int(sum(n.shape[0] * np.asarray(n).max(axis=0).sum() for n in steps))


def numpyro_mcmc(name, warmup, samples, chains):
    model = TARGETS[name][0]
    kernel = NUTS(model, target_accept_prob=0.8)
    return MCMC(
        kernel,
        num_warmup=warmup,
        num_samples=samples,
        num_chains=chains,
        chain_method="vectorized",
        progress_bar=False,
    )


def numpyro_fixed(name, tiny, chains):
    """NumPyro's per-call overhead on this target: the faster of two calls of ``MCMC.run``
    on one ``MCMC`` object with ``num_warmup = num_samples = tiny`` (NumPyro recompiles its
    sampling loop on every call, so this is mostly compilation)."""
    mcmc = numpyro_mcmc(name, tiny, tiny, chains)
    times = []
    for r in range(2):
        t0 = time.perf_counter()
        mcmc.run(jax.random.key(50 + r))
        jax.block_until_ready(mcmc.get_samples())
        times.append(time.perf_counter() - t0)
    return min(times)


def run_numpyro(name, key, warmup, samples, chains, fixed):
    """``MCMC.warmup(collect_warmup=True)`` then ``MCMC.run`` (to count the warmup
    gradients); ``us/grad`` uses the time of both calls minus twice NumPyro's per-call
    overhead ``fixed``; ``wall`` is the time of both calls."""
    sites = TARGETS[name][3]
    mcmc = numpyro_mcmc(name, warmup, samples, chains)
    k_warm, k_run = jax.random.split(key)
    t0 = time.perf_counter()
    mcmc.warmup(k_warm, collect_warmup=True, extra_fields=("num_steps",))
    warm_steps = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["num_steps"])
    mcmc.run(k_run, extra_fields=("num_steps",))
    samples_ = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples_)
    wall = time.perf_counter() - t0
    steps = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["num_steps"])
    grads = int(steps.sum())
    return {
        "wall": wall,
        "compute": max(wall - 2 * fixed, 1e-9),
        "grads_sampling": grads,
        "grads_total": grads + int(warm_steps.sum()),
        "grads_executed": executed(warm_steps, steps),
        "draws": flat_posterior(samples_, sites),
    }


_RAW = {}


def raw_blackjax_fn(name, warmup, samples, chains, diagnostics=True):
    """Raw BlackJAX NUTS; ``diagnostics``: collect per draw what ``run_nuts`` returns
    (divergence, acceptance, leapfrog steps, energy, log density, tree depth), else only the
    position and the leapfrog steps (the least any loop can keep)."""
    cache_key = (name, warmup, samples, chains, diagnostics)
    if cache_key in _RAW:
        return _RAW[cache_key]
    _, logdensity, dim, _, to_stat = TARGETS[name]

    def one_chain(key):
        k_init, k_warm, k_run = jax.random.split(key, 3)
        x0 = jax.random.uniform(k_init, (dim,), minval=-2.0, maxval=2.0)
        adaptation = blackjax.window_adaptation(
            blackjax.nuts, logdensity, target_acceptance_rate=0.8
        )
        (state, params), info = adaptation.run(k_warm, x0, num_steps=warmup)
        step = blackjax.nuts(logdensity, **params).step

        def body(s, k):
            s, i = step(k, s)
            if not diagnostics:
                return s, (s.position, i.num_integration_steps, None)
            stats = {
                "diverging": i.is_divergent,
                "acceptance_rate": i.acceptance_rate,
                "energy": i.energy,
                "lp": s.logdensity,
                "tree_depth": i.num_trajectory_expansions,
            }
            return s, (s.position, i.num_integration_steps, stats)

        _, (xs, n, stats) = jax.lax.scan(body, state, jax.random.split(k_run, samples))
        warm = info.info.num_integration_steps  # (warmup,) per chain
        adapted = (params["step_size"], params["inverse_mass_matrix"], state)
        return to_stat(xs), n, warm, adapted, stats  # returned, so XLA keeps computing them

    fn = jax.jit(lambda key: jax.vmap(one_chain)(jax.random.split(key, chains)))
    _RAW[cache_key] = fn
    return fn


def run_blackjax(name, key, warmup, samples, chains, diagnostics=True):
    fn = raw_blackjax_fn(name, warmup, samples, chains, diagnostics)
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(key))
    wall = time.perf_counter() - t0
    xs, n, warm, (step, imm, state), _ = out
    return {
        "wall": wall,
        "grads_sampling": int(np.asarray(n).sum()),
        "grads_total": int(np.asarray(n).sum() + np.asarray(warm).sum()),
        "grads_executed": executed(np.asarray(warm), np.asarray(n)),
        "draws": np.asarray(xs),
        "adapted": (step, imm, state.position, int(np.median(np.asarray(n)))),
    }


_HMC = {}


def run_static_hmc(which, name, key, adapted, samples):
    """``ff_hmc`` (force = grad log p, Metropolis on log p) or ``blackjax.hmc`` with the
    step size, mass matrix and start of the raw BlackJAX warmup; ``L`` leapfrog steps."""
    step, imm, x0, num_steps = adapted
    _, logdensity, _, _, to_stat = TARGETS[name]
    cache_key = (which, name, num_steps, samples, x0.shape)
    if cache_key not in _HMC:

        def one_chain(key, h, m, x):
            if which == "ff_hmc":
                alg = nh.infer.force_field_hmc(
                    jax.grad(logdensity),
                    logdensity,
                    step_size=h,
                    num_integration_steps=num_steps,
                    inverse_mass_matrix=m,
                )
            else:
                alg = blackjax.hmc(
                    logdensity, step_size=h, inverse_mass_matrix=m, num_integration_steps=num_steps
                )

            def body(s, k):
                s, i = alg.step(k, s)
                return s, (s.position, i.acceptance_rate)

            _, (xs, acc) = jax.lax.scan(body, alg.init(x), jax.random.split(key, samples))
            return to_stat(xs), acc

        _HMC[cache_key] = jax.jit(
            lambda key, h, m, x: jax.vmap(one_chain)(jax.random.split(key, x.shape[0]), h, m, x)
        )
    fn = _HMC[cache_key]
    t0 = time.perf_counter()
    xs, acc = jax.block_until_ready(fn(key, step, imm, x0))
    wall = time.perf_counter() - t0
    grads = x0.shape[0] * samples * num_steps
    return {
        "wall": wall,
        "grads_sampling": grads,
        "grads_total": grads,
        "grads_executed": grads,
        "draws": np.asarray(xs),
        "acceptance": float(np.mean(acc)),
        "L": num_steps,
    }


# -- fixed overhead -------------------------------------------------------------------------
def fixed_overhead(name, tiny, chains, repeats):
    """Seconds of a call with ``num_warmup = num_samples = tiny`` after a first call with
    the same shapes: ``run_nuts`` (median of ``repeats``), NumPyro ``MCMC.run`` on one
    object and a new ``MCMC`` object per call (best of two each: every NumPyro call
    recompiles, so repeating it costs minutes on a loaded machine)."""
    model = TARGETS[name][0]
    kw = dict(num_warmup=tiny, num_samples=tiny, num_chains=chains, progress=False)
    nh.infer.run_nuts(model, key=jax.random.key(0), **kw)  # compile
    ours = []
    for r in range(repeats):
        t0 = time.perf_counter()
        nh.infer.run_nuts(model, key=jax.random.key(100 + r), **kw)
        ours.append(time.perf_counter() - t0)
    fresh = []
    for r in range(2):
        t0 = time.perf_counter()
        mcmc = numpyro_mcmc(name, tiny, tiny, chains)
        mcmc.run(jax.random.key(200 + r))
        jax.block_until_ready(mcmc.get_samples())
        fresh.append(time.perf_counter() - t0)
    return {
        "run_nuts": float(np.median(ours)),
        "numpyro_same_object": numpyro_fixed(name, tiny, chains),
        "numpyro_new_object": min(fresh),
    }


# -- driver ---------------------------------------------------------------------------------
def wall_of(run):
    return run["wall"]


def bench_target(name, args):
    print(f"[{name}]", flush=True)
    runs = {
        k: [] for k in ("run_nuts", "numpyro", "blackjax", "blackjax_min", "ff_hmc", "blackjax_hmc")
    }
    w, n, c = args.warmup, args.samples, args.chains
    # compile-warming calls with the same shapes
    run_ours(name, jax.random.key(999), w, n, c)
    fixed = numpyro_fixed(name, args.tiny, c)
    warm_bj = run_blackjax(name, jax.random.key(999), w, n, c)
    run_blackjax(name, jax.random.key(999), w, n, c, diagnostics=False)
    for which in ("ff_hmc", "blackjax_hmc"):
        run_static_hmc(which, name, jax.random.key(999), warm_bj["adapted"], n)
    for r in range(args.repeats):
        key = jax.random.key(r)
        nuts = {
            "run_nuts": lambda k=key: run_ours(name, k, w, n, c),
            "numpyro": lambda k=key: run_numpyro(name, k, w, n, c, fixed),
            "blackjax": lambda k=key: run_blackjax(name, k, w, n, c),
            "blackjax_min": lambda k=key: run_blackjax(name, k, w, n, c, diagnostics=False),
        }
        # ABBA: odd repeats run the samplers in reverse order, so that no sampler always
        # follows the same neighbour (NumPyro's compilation, say) within the pairs
        order = list(nuts) if r % 2 == 0 else list(reversed(nuts))
        for sampler in order:
            # the fast samplers: best of --best-of calls with the same key (the same
            # computation, so the minimum filters transient stalls of the machine, as
            # timeit does); NumPyro recompiles on every call and runs once
            calls = 1 if sampler == "numpyro" else args.best_of
            runs[sampler].append(min((nuts[sampler]() for _ in range(calls)), key=wall_of))
        adapted = runs["blackjax"][-1]["adapted"]
        hmc = ("ff_hmc", "blackjax_hmc") if r % 2 == 0 else ("blackjax_hmc", "ff_hmc")
        for which in hmc:
            runs[which].append(
                min(
                    (run_static_hmc(which, name, key, adapted, n) for _ in range(args.best_of)),
                    key=wall_of,
                )
            )
    rows = {}
    for sampler, rs in runs.items():
        ess = [ess_sq(r["draws"]) for r in rs]
        rows[sampler] = {
            "grad_per_ess_median": float(
                np.median(
                    [r["grads_sampling"] / np.median(e) for r, e in zip(rs, ess, strict=True)]
                )
            ),
            "grad_per_ess_worst": float(
                np.median([r["grads_sampling"] / np.min(e) for r, e in zip(rs, ess, strict=True)])
            ),
            "us_per_grad": float(
                np.median([1e6 * r.get("compute", r["wall"]) / r["grads_total"] for r in rs])
            ),
            "us_per_executed_grad": float(
                np.median([1e6 * r.get("compute", r["wall"]) / r["grads_executed"] for r in rs])
            ),
            "lockstep_waste": float(
                np.median([r["grads_executed"] / r["grads_total"] for r in rs])
            ),
            "wall": float(np.median([r["wall"] for r in rs])),
            "grads_total": float(np.median([r["grads_total"] for r in rs])),
        }
    rows["numpyro"]["fixed_per_call"] = fixed
    for sampler, rs in runs.items():
        if "L" not in rs[0]:
            continue
        rows[sampler]["L"] = rs[0]["L"]
        rows[sampler]["acceptance"] = float(np.median([r["acceptance"] for r in rs]))

    def us_per_grad(r, grads="grads_total"):
        return r.get("compute", r["wall"]) / r[grads]

    # paired ratios: each repeat runs every sampler back to back, so the ratio within a
    # repeat cancels slow drifts of a shared machine; the median over repeats is reported
    for peer, samplers in (
        ("blackjax", ("run_nuts", "numpyro", "blackjax", "blackjax_min")),
        ("blackjax_hmc", ("ff_hmc", "blackjax_hmc")),
    ):
        for sampler in samplers:
            for grads, name in (("grads_total", "ratio"), ("grads_executed", "ratio_executed")):
                ratios = [
                    us_per_grad(a, grads) / us_per_grad(b, grads)
                    for a, b in zip(runs[sampler], runs[peer], strict=True)
                ]
                rows[sampler][name] = float(np.median(ratios))
                rows[sampler][name + "_range"] = (float(np.min(ratios)), float(np.max(ratios)))
    for sampler, row in rows.items():
        shown = {k: v for k, v in row.items() if not isinstance(v, tuple)}
        print(f"  {sampler:13s} " + " ".join(f"{k}={v:.4g}" for k, v in shown.items()), flush=True)
    return rows


def table(results, overhead, args):
    lines = [
        f"{args.chains} chains, {args.warmup} warmup, {args.samples} draws; medians of "
        f"{args.repeats} repeats (best of {args.best_of} calls per sampler but NumPyro); "
        f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, jax {jax.__version__}, numpyro {numpyro.__version__}, "
        f"blackjax {blackjax.__version__}.",
        "",
        "| target | sampler | grad/ESS(x^2) median coord | worst coord | us/grad | "
        "ratio to peer (range) | us/executed grad | ratio to peer (range) | lockstep waste "
        "| wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    names = {
        "run_nuts": "`run_nuts`",
        "numpyro": "NumPyro `MCMC(NUTS)`",
        "blackjax": "raw BlackJAX NUTS (same diagnostics as `run_nuts`)",
        "blackjax_min": "raw BlackJAX NUTS (positions and step counts only)",
        "ff_hmc": "`force_field_hmc` (F = grad log p, L = {L})",
        "blackjax_hmc": "`blackjax.hmc` (L = {L})",
    }
    for target, rows in results.items():
        for sampler, row in rows.items():
            label = names[sampler].format(L=row.get("L", ""))
            lines.append(
                f"| {target} | {label} | {row['grad_per_ess_median']:.1f} | "
                f"{row['grad_per_ess_worst']:.1f} | {row['us_per_grad']:.2f} | "
                f"{row['ratio']:.2f} ({row['ratio_range'][0]:.2f}-{row['ratio_range'][1]:.2f}) | "
                f"{row['us_per_executed_grad']:.2f} | {row['ratio_executed']:.2f} "
                f"({row['ratio_executed_range'][0]:.2f}-{row['ratio_executed_range'][1]:.2f}) | "
                f"{row['lockstep_waste']:.2f} | {row['wall']:.2f} |"
            )
    lines += [
        "",
        f"Fixed overhead per call ({overhead['target']}, num_warmup = num_samples = "
        f"{args.tiny}, second call with the same shapes, median of {args.repeats}):",
        "",
        "| call | seconds |",
        "|---|---|",
        f"| `run_nuts` | {overhead['run_nuts']:.3f} |",
        f"| NumPyro `MCMC.run`, same `MCMC` object | {overhead['numpyro_same_object']:.3f} |",
        f"| NumPyro `MCMC(...).run`, new object per call | {overhead['numpyro_new_object']:.3f} |",
    ]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", default="gauss100,funnel,eight_schools")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--best-of", type=int, default=1,
        help="calls per sampler and repeat (same key); the fastest counts",
    )  # fmt: skip
    p.add_argument("--tiny", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="smoke run (tiny sizes)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.samples, args.repeats, args.targets = 100, 100, 1, "eight_schools"
    results = {t: bench_target(t, args) for t in args.targets.split(",")}
    target = args.targets.split(",")[-1]
    overhead = dict(fixed_overhead(target, args.tiny, args.chains, max(3, args.repeats)))
    overhead["target"] = target
    text = table(results, overhead, args)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        args.out.with_suffix(".json").write_text(
            json.dumps({"results": results, "overhead": overhead, "args": vars(args)}, default=str)
        )


if __name__ == "__main__":
    main()
