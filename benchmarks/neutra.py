"""Flow guides and NeuTra on NumPyro's dual moon (``examples/neutra.py``), side by side.

The target ``p(x) ~ exp(-U(x))`` on R^2 (log Z = 1.878 by quadrature; a guide on one moon
is bounded by log Z - log 2 = 1.185; P(x0 < 0) = 1/2 by symmetry).  Every method gets the
example's budget: 10,000 SVI steps of Adam 3e-3, then NUTS in the guide's base space
(NeuTra; 4 chains x 2,000 draws after 500 warmup).  Per seed:

* ``nh``: :func:`numpyro_hgf.infer.fit_flow_guide` at its defaults (one BNAF layer of
  (16, 16) blocks, 8 starts, 4 ELBO particles per step) + :func:`neutra_nuts`;
* ``nh 1 start``: the same guide, one start, one particle (plain ``SVI``);
* ``AutoBNAFNormal``: NumPyro's guide (hidden factors 8, 8) with ``SVI`` + NumPyro's
  ``NeuTraReparam`` and ``MCMC(NUTS)``.

ELBO from 10,000 fresh particles; P(x0 < 0) from 20,000 guide draws and from the NUTS
draws; wall times include compilation.

    .venv/bin/python benchmarks/neutra.py            # ~3 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
import optax
from jax.scipy.special import logsumexp
from numpyro.distributions import constraints
from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoBNAFNormal
from numpyro.infer.reparam import NeuTraReparam

from numpyro_hgf.infer import fit_flow_guide, neutra_nuts


class DualMoon(dist.Distribution):
    support = constraints.real_vector

    def __init__(self):
        super().__init__(event_shape=(2,))

    def sample(self, key, sample_shape=()):
        return jnp.zeros(sample_shape + self.event_shape)

    def log_prob(self, x):
        radial = 0.5 * ((jnp.linalg.norm(x, axis=-1) - 2) / 0.4) ** 2
        moons = -0.5 * ((x[..., :1] + jnp.array([-2.0, 2.0])) / 0.6) ** 2
        return -(radial - logsumexp(moons, axis=-1))


def model():
    numpyro.sample("x", DualMoon())


def guide_summary(guide, params, key):
    elbo = -Trace_ELBO(10_000).loss(key, params, model, guide)
    x = guide.sample_posterior(jax.random.fold_in(key, 1), params, sample_shape=(20_000,))["x"]
    return float(elbo), float((x[:, 0] < 0).mean())


def run_nh(seed, args, starts, particles):
    t0 = time.perf_counter()
    fit = fit_flow_guide(
        model, key=seed, num_starts=starts, num_particles=particles, num_steps=args.steps,
        progress=False,
    )  # fmt: skip
    t_fit = time.perf_counter() - t0
    elbo, p_guide = guide_summary(fit.guide, fit.params, jax.random.key(99))
    t0 = time.perf_counter()
    idata = neutra_nuts(
        model, guide_fit=fit, num_warmup=500, num_samples=args.draws, key=seed, progress=False,
        nuts_options={"diagnostics_warn": False},
    )  # fmt: skip
    t_nuts = time.perf_counter() - t0
    p_nuts = float((idata.posterior["x"].values[..., 0] < 0).mean())
    return elbo, p_guide, p_nuts, t_fit, t_nuts


def run_numpyro(seed, args):
    guide = AutoBNAFNormal(model, hidden_factors=[8, 8])
    t0 = time.perf_counter()
    svi = SVI(model, guide, optax.adam(3e-3), Trace_ELBO())
    result = svi.run(jax.random.key(seed), args.steps, progress_bar=False)
    t_fit = time.perf_counter() - t0
    elbo, p_guide = guide_summary(guide, result.params, jax.random.key(99))
    t0 = time.perf_counter()
    neutra = NeuTraReparam(guide, result.params)
    mcmc = MCMC(
        NUTS(neutra.reparam(model)), num_warmup=500, num_samples=args.draws, num_chains=4,
        chain_method="vectorized", progress_bar=False,
    )  # fmt: skip
    mcmc.run(jax.random.key(seed))
    z = mcmc.get_samples()["auto_shared_latent"]
    x = neutra.transform_sample(z)["x"]
    t_nuts = time.perf_counter() - t0
    return elbo, p_guide, float((x[:, 0] < 0).mean()), t_fit, t_nuts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--draws", type=int, default=2_000)
    args = parser.parse_args()
    methods = {
        "nh (8 starts, 4 particles)": lambda s: run_nh(s, args, 8, 4),
        "nh 1 start, 1 particle": lambda s: run_nh(s, args, 1, 1),
        "NumPyro AutoBNAFNormal": lambda s: run_numpyro(s, args),
    }
    print("| method | seed | ELBO | P(x0<0) guide | P(x0<0) NeuTra-NUTS | fit s | NUTS s |")
    print("|---|---|---|---|---|---|---|")
    for name, fn in methods.items():
        for seed in range(args.seeds):
            elbo, pg, pn, tf, tn = fn(seed)
            print(f"| {name} | {seed} | {elbo:.3f} | {pg:.3f} | {pn:.3f} | {tf:.1f} | {tn:.1f} |")


if __name__ == "__main__":
    main()
