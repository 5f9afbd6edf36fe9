"""Gaussian VAE on the 8x8 digits: test IWAE-k bits/dim against in-run baselines.

Data: ``nh.datasets.digits`` grey levels (17), uniformly dequantized to ``[0, 1)``; bits/dim
with ``nh.metrics.bits_per_dim(num_levels=17)`` (an upper bound on the discrete bits/dim).
In-run baselines on the same dequantized data: full-covariance Gaussian (closed-form MLE) and
a Gaussian mixture (scikit-learn ``GaussianMixture``).  Published reference values on this split
(../shared/data/README.md): Gaussian 3.03, GMM 2.71, mixture of categoricals 2.23.

    nice -n 10 .venv/bin/python benchmarks/vae_digits.py [--steps 20000] [--k 5000]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NUMPYRO_HGF_PROGRESS", "0")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import numpyro_hgf as nh  # noqa: E402
from numpyro_hgf.models import vae  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--k", type=int, default=5_000)
    parser.add_argument("--latent-dim", type=int, default=8)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--gmm-components", type=int, default=10)
    parser.add_argument("--out", default="runs/vae_digits")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    key = jax.random.key(0)
    raw_tr = nh.datasets.digits("train", form="raw").images.reshape(-1, 64)
    test = nh.datasets.digits("test", form="raw")
    raw_te = test.images.reshape(-1, 64)
    x_tr = nh.datasets.dequantize(jax.random.fold_in(key, 1), raw_tr)
    x_te = nh.datasets.dequantize(jax.random.fold_in(key, 2), raw_te)

    def bpd(lp):
        return float(jnp.mean(nh.metrics.bits_per_dim(lp, 64, num_levels=17)))

    # in-run baselines
    import numpyro.distributions as dist
    from sklearn.mixture import GaussianMixture

    xt = np.asarray(x_tr, np.float64)
    mean, cov = xt.mean(0), np.cov(xt.T, bias=True)
    lp_gauss = dist.MultivariateNormal(jnp.asarray(mean), jnp.asarray(cov)).log_prob(
        jnp.asarray(x_te, jnp.float32)
    )
    gmm = GaussianMixture(
        args.gmm_components, covariance_type="full", reg_covar=1e-4, random_state=0
    ).fit(xt)
    lp_gmm = gmm.score_samples(np.asarray(x_te, np.float64))
    print(f"baseline full-covariance Gaussian: {bpd(lp_gauss):.3f} bits/dim (published 3.03)")
    print(f"baseline GMM ({args.gmm_components} full): {bpd(lp_gmm):.3f} bits/dim (published 2.71)")

    t0 = time.perf_counter()
    model, fit = vae.fit(
        x_tr,
        latent_dim=args.latent_dim,
        hidden=tuple(args.hidden),
        steps=args.steps,
        batch_size=128,
        learning_rate=2e-3,
        key=jax.random.fold_in(key, 3),
    )
    t1 = time.perf_counter()
    elbo = vae.iwae_log_likelihood(model, x_te, k=1, key=jax.random.fold_in(key, 4))
    iw = vae.iwae_log_likelihood(model, x_te, k=args.k, key=jax.random.fold_in(key, 5))
    t2 = time.perf_counter()
    print(
        f"VAE (latent {args.latent_dim}, hidden {args.hidden}, {args.steps} steps, "
        f"{t1 - t0:.0f} s): test ELBO {bpd(elbo):.3f} bits/dim, IWAE-{args.k} {bpd(iw):.3f} "
        f"bits/dim ({t2 - t1:.0f} s); target < 2.2"
    )
    vae.plot_latents(os.path.join(out, "latent.png"), model, x_te, test.labels)
    vae.plot_reconstructions(os.path.join(out, "reconstructions.png"), model, x_te)
    print(f"wrote {out}/latent.png and {out}/reconstructions.png")


if __name__ == "__main__":
    main()
