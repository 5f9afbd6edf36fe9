"""Posterior sampling with a learned prior: NUTS in the prior's base space against NUTS on x.

The demo's inpainting task (issue 17): a learned prior on the 64 digit pixels (``--prior``:
the oscillation HGF ``hgf``, a VP ``diffusion`` prior or a RealNVP normalizing ``flow``), a
NumPyro model ``x ~ prior``, ``y ~ N(x, sigma_y^2)`` on half of the pixels, sampled by
:func:`numpyro_hgf.infer.run_nuts` twice with the same key and settings:

* ``base``: ``base_space=True`` (the default): ``z ~ base``, ``x = T(z)`` a deterministic site,
  the same likelihood on ``x``; exact by the change of variables, no trace;
* ``x``: ``base_space=False``: NUTS on ``x`` with the exact ``log_prob`` (for the ODE priors
  the exact-trace ODE density; for the flow its closed-form log-determinant).

The ODE priors use RK4 with ``--nfe`` evaluations.  Reported: wall time of a second
call (compiled programs reused; new key), microseconds per gradient, gradients per minimum
ESS, min-ESS/s over the 64 pixels (``arviz.ess``), and the agreement of the two posteriors:
median |mean difference| in posterior sd and an MMD permutation test on the draws.

    .venv/bin/python benchmarks/base_space.py                     # ~7 min on 2 CPU cores
    .venv/bin/python benchmarks/base_space.py --prior diffusion
    .venv/bin/python benchmarks/base_space.py --prior flow
"""

from __future__ import annotations

import argparse
import time

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np

import numpyro_hgf as nh
from numpyro_hgf.demo import inpainting_model
from numpyro_hgf.distributions import HGFPrior
from numpyro_hgf.samplers.ode import ODESolver


def train_prior(kind: str, steps: int, nfe: int, key, spacing: str = "uniform"):
    """The ``kind`` prior fitted to the training digits (scaled to [-1, 1])."""
    images = nh.datasets.digits("train", form="scaled").images.reshape(-1, 64)
    solver = ODESolver("rk4", nfe=nfe, spacing=spacing)
    if kind == "hgf":
        trained = nh.train.fit_velocity(
            nh.paths.OscillationPath(), images, hidden=(128, 128), steps=steps, key=key,
            progress=False,
        )  # fmt: skip
        return HGFPrior(
            trained.velocity, trained.params, trained.path, trace="exact", solver=solver
        )
    if kind == "diffusion":
        return nh.train.fit_diffusion(
            nh.paths.VPSDE(), images, hidden=(128, 128), steps=steps, key=key, progress=False,
            trace="exact", solver=solver, sample_solver=solver,
        )  # fmt: skip
    return nh.train.fit_flow(
        "realnvp", images, num_layers=4, hidden=(128, 128), steps=steps, key=key, progress=False
    )


def mmd_permutation_p(a, b, num_permutations: int, key) -> float:
    joint = jnp.concatenate([a, b])
    observed = float(nh.metrics.mmd(a, b))
    n = a.shape[0]

    def one(k):
        perm = jax.random.permutation(k, joint.shape[0])
        return nh.metrics.mmd(joint[perm[:n]], joint[perm[n:]])

    null = np.asarray(jax.lax.map(one, jax.random.split(key, num_permutations)))
    return float((1 + np.sum(null >= observed)) / (1 + num_permutations))


def run(prior, y, mask, sigma_y, base_space: bool, args, key):
    kw = dict(
        num_warmup=args.warmup, num_samples=args.samples, num_chains=args.chains,
        progress=False, base_space=base_space, diagnostics_warn=False,
    )  # fmt: skip
    nh.infer.run_nuts(inpainting_model, prior, y, mask, sigma_y, key=key, **kw)  # compile
    start = time.perf_counter()
    idata = nh.infer.run_nuts(
        inpainting_model, prior, y, mask, sigma_y, key=jax.random.fold_in(key, 1), **kw
    )
    wall = time.perf_counter() - start
    x = idata.posterior["x"].values
    ess = float(az.ess(idata, var_names=["x"])["x"].values.min())
    grads = float(idata.sample_stats["n_steps"].values.sum())
    total = grads * (args.warmup + args.samples) / args.samples  # warmup costs about alike
    return {
        "wall": wall, "us_per_grad": 1e6 * wall / total, "grads_per_ess": grads / ess,
        "ess_per_s": ess / wall, "x": x.reshape(-1, 64),
    }  # fmt: skip


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prior", choices=("hgf", "diffusion", "flow"), default="hgf")
    p.add_argument(
        "--train-steps", type=int, default=None, help="default: 20000 for diffusion, else 1500"
    )
    p.add_argument(
        "--spacing", choices=("uniform", "log"), default="uniform", help="ODE step spacing"
    )
    p.add_argument("--nfe", type=int, default=8)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--permutations", type=int, default=200)
    args = p.parse_args(argv)
    k_train, k_mask, k_noise, k_nuts, k_perm = jax.random.split(jax.random.key(0), 5)
    steps = args.train_steps or (20_000 if args.prior == "diffusion" else 1500)
    prior = train_prior(args.prior, steps, args.nfe, k_train, args.spacing)
    truth = nh.datasets.digits("test", form="scaled").images.reshape(-1, 64)[7]
    mask = jax.random.uniform(k_mask, (64,)) < 0.5
    sigma_y = 0.3
    y = jnp.where(mask, truth + sigma_y * jax.random.normal(k_noise, (64,)), 0.0)
    base = run(prior, y, mask, sigma_y, True, args, k_nuts)
    xs = run(prior, y, mask, sigma_y, False, args, k_nuts)
    sd = np.sqrt(0.5 * (base["x"].var(0) + xs["x"].var(0)))
    mean_diff = float(np.median(np.abs(base["x"].mean(0) - xs["x"].mean(0)) / sd))
    thin = slice(None, None, max(1, base["x"].shape[0] // 500))
    p_mmd = mmd_permutation_p(
        jnp.asarray(base["x"][thin]), jnp.asarray(xs["x"][thin]), args.permutations, k_perm
    )
    solver = "" if args.prior == "flow" else f", RK4 nfe {args.nfe} ({args.spacing})"
    print(f"inpainting, 64-d digits, {type(prior).__name__}{solver}, {args.chains} "
          f"chains x ({args.warmup} + {args.samples}); {jax.devices()[0].platform}")  # fmt: skip
    print("| space | wall s | us/grad | grads/min-ESS | min-ESS/s |")
    print("|---|---|---|---|---|")
    for name, r in (("base (default)", base), ("x, exact log_prob", xs)):
        print(
            f"| {name} | {r['wall']:.1f} | {r['us_per_grad']:.0f} | "
            f"{r['grads_per_ess']:.1f} | {r['ess_per_s']:.2f} |"
        )
    print(f"min-ESS/s ratio base / x: {base['ess_per_s'] / xs['ess_per_s']:.1f}")
    print(f"median |mean difference| / posterior sd: {mean_diff:.3f}; MMD permutation p: "
          f"{p_mmd:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
