"""Is a diffusion prior's ODE map a bijection at a given solver?  Round trips on the digits.

Trains a VP ``DiffusionPrior`` on the 64-pixel digits (``fit_diffusion``, MLP 128x128,
``--steps``), draws ``z`` from its base, maps ``x = T(z)`` (the probability-flow ODE from
``t = 1`` to ``eps``) and back, and reports per solver: the median relative round-trip error
``|T^{-1}(T(z)) - z| / |z|``, the distance of ``x`` to an accurate solve (Tsit5 at 1e-7),
the median gap between ``log_prob(x)`` (the backward solve with the exact trace) and the
pushforward density ``log N(z) - log|det dT/dz|``, and the fraction of pixels outside
``[-1.5, 1.5]`` (the data lie in ``[-1, 1]``).  Base-space and x-space posteriors are
posteriors of the same prior only where these are small.

    .venv/bin/python benchmarks/diffusion_map.py     # ~2 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp

import numpyro_hgf as nh
from numpyro_hgf.samplers.ode import ODESolver

SOLVERS = [
    ODESolver("rk4", nfe=8),
    ODESolver("rk4", nfe=32),
    ODESolver("rk4", nfe=8, spacing="log"),
    ODESolver("rk4", nfe=16, spacing="log"),
    ODESolver("rk4", nfe=32, spacing="log"),
    ODESolver("heun", nfe=8, spacing="log"),
    ODESolver("tsit5"),
    ODESolver("tsit5", spacing="log"),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--num", type=int, default=256)
    args = parser.parse_args(argv)
    os.environ.setdefault("NUMPYRO_HGF_PROGRESS", "0")
    images = nh.datasets.digits("train", form="scaled").images.reshape(-1, 64)
    prior = nh.train.fit_diffusion(
        nh.paths.VPSDE(), images, hidden=(128, 128), steps=args.steps, key=jax.random.key(0),
        progress=False, trace="exact",
    )  # fmt: skip
    z = prior.base.sample(jax.random.key(1), (args.num,))
    accurate = prior.with_solver(ODESolver("tsit5", rtol=1e-7, atol=1e-7)).map_forward(z)
    print(f"VP DiffusionPrior, {args.steps} steps, eps {prior.t1}; {args.num} draws")
    print("| solver | NFE | spacing | round trip | x vs accurate | log_prob - pushforward | "
          "pixels outside [-1.5, 1.5] |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for solver in SOLVERS:
        p = prior.with_solver(solver)
        x = p.map_forward(z)
        rel = lambda a, b: float(
            jnp.median(jnp.linalg.norm(a - b, axis=-1) / jnp.linalg.norm(b, axis=-1))
        )
        gap = jnp.median(jnp.abs(p.log_prob(x) - (p.base.log_prob(z) - p.map_log_abs_det(x))))
        nfe = "adaptive" if solver.adaptive else solver.nfe
        print(
            f"| {solver.name} | {nfe} | {solver.spacing} | {rel(p.map_inverse(x), z):.3g} | "
            f"{rel(x, accurate):.3g} | {float(gap):.3g} | {float(jnp.mean(jnp.abs(x) > 1.5)):.3f} |"
        )


if __name__ == "__main__":
    main()
