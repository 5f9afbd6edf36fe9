"""Compressed sensing with a generative prior (Bora et al. 2017) on the 8x8 digits.

A WGAN-GP generator ``x = G(z)``, ``z ~ N(0, I_8)``, is trained on the training digits
(flattened to 64-vectors in ``[-1, 1]``; :func:`numpyro_hgf.train.fit_gan`).  A held-out test
digit ``x`` is observed through ``m`` random Gaussian projections with noise,

    y = A x + sigma n,    A_ij ~ N(0, 1 / m),  n ~ N(0, I_m),

for ``m = 16`` and ``m = 32`` (against 64 unknowns), and recovered two ways:

1. **generator prior**: the NumPyro model ``x = prior.latent_model("x")`` (``z ~ N(0, I)`` as
   the site ``x_latent``, ``x = G(z)`` deterministic), ``y ~ N(A x, sigma^2 I)``; the
   posterior of ``z`` by BlackJAX NUTS (:func:`numpyro_hgf.infer.run_nuts`), its push-forward
   mean as the reconstruction;
2. **Gaussian prior**: ``x ~ N(mu, Sigma)`` with the training digits' mean and covariance;
   the posterior is Gaussian in closed form, mean
   ``mu + Sigma A^T (A Sigma A^T + sigma^2 I)^{-1} (y - A mu)``.

3. with ``--with-hgf``, **an oscillation-HGF prior** (``fit_velocity`` on the dequantized
   digits, as ``numpyro-hgf demo``): ``x ~ HGFPrior``, NUTS in its base space.

All see the same ``A``, noise and digits (same seed).  Writes ``compressed_sensing.png``
(rows: truth, then each method's posterior mean for each ``m``) and ``summary.json`` (per-pixel
RMSE of each posterior mean per digit and its mean over digits; the generator's range error
``min_z ||G(z) - x||``, the floor of any recovery with it; NUTS diagnostics; timings).

    python examples/compressed_sensing.py --out runs/cs                   # a few minutes
    python examples/compressed_sensing.py --with-hgf --prior runs/cs/models/generator --out runs/cs
    python examples/compressed_sensing.py --smoke --out /tmp/cs            # a wiring check
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402

import numpyro_hgf as nh  # noqa: E402

FULL = dict(steps=20_000, hidden=(256, 256), num_warmup=500, num_samples=250, num_chains=4,
            num_digits=8, range_steps=1_000, hgf_steps=1_500, hgf_hidden=(128, 128))  # fmt: skip
SMOKE = dict(steps=10, hidden=(8,), num_warmup=5, num_samples=5, num_chains=2, num_digits=1,
             range_steps=2, hgf_steps=5, hgf_hidden=(8,))  # fmt: skip


def gaussian_posterior_mean(mu, cov, A, y, sigma):
    """``E[x | y]`` for ``x ~ N(mu, cov)``, ``y ~ N(A x, sigma^2 I)`` (Woodbury form; ``cov``
    may be singular)."""
    gram = A @ cov @ A.T + sigma**2 * np.eye(A.shape[0])
    return mu + cov @ A.T @ np.linalg.solve(gram, y - A @ mu)


def cs_model(prior, A, y, sigma):
    """``z ~ N(0, I)``, ``x = G(z)`` (site ``x``), ``y ~ N(A x, sigma^2 I)``."""
    x = prior.latent_model("x")
    numpyro.sample("y", dist.Normal(A @ x, sigma).to_event(1), obs=y)


def hgf_model(prior, A, y, sigma):
    """``x ~ HGFPrior`` (``run_nuts`` samples its base, ``x`` = the ODE map), ``y ~ N(A x,
    sigma^2 I)``."""
    x = numpyro.sample("x", prior)
    numpyro.sample("y", dist.Normal(A @ x, sigma).to_event(1), obs=y)


def train_hgf(settings, key, progress):
    """An oscillation HGF on the dequantized training digits (as ``numpyro-hgf demo``), RK4
    with 8 evaluations for NUTS."""
    from numpyro_hgf.samplers.ode import ODESolver

    k_data, k_fit = jax.random.split(key)
    raw = nh.datasets.digits("train", form="raw").images.reshape(-1, 64)
    train = nh.datasets.dequantize(k_data, raw, interval=(-1.0, 1.0))
    prior = nh.train.fit_velocity(
        nh.paths.OscillationPath(), train, hidden=settings["hgf_hidden"],
        steps=settings["hgf_steps"], batch_size=256, learning_rate=2e-3, key=k_fit,
        progress=progress,
    )  # fmt: skip
    return nh.distributions.HGFPrior(
        prior.velocity, prior.params, prior.path, trace="exact", solver=ODESolver("rk4", nfe=8)
    )


def train_prior(train, settings, key, out: Path, progress):
    prior = nh.train.fit_gan(
        train, loss="wgan-gp", latent_dim=8, hidden=settings["hidden"], key=key,
        steps=settings["steps"], learning_rate=3e-4, progress=progress,
    )  # fmt: skip
    nh.save(out / "models" / "generator", prior, overwrite=True)
    return prior


def recover(prior, gaussian, truth, ms, sigma, key, settings, progress, hgf=None):
    """Posterior means of every digit for every ``m``: ``{(method, m): (digits, 64)}``;
    ``gaussian = (mu, cov)`` of the training digits; ``hgf``: an HGF prior, also run."""
    mu, cov = gaussian
    means, diagnostics = {}, {}
    for m in ms:
        k_a, k_n, k_nuts = jax.random.split(jax.random.fold_in(key, m), 3)
        A = np.asarray(jax.random.normal(k_a, (m, 64))) / np.sqrt(m)
        noise = np.asarray(jax.random.normal(k_n, (len(truth), m)))
        gen, gauss, hgf_means, rhat, divergences = [], [], [], [], 0
        for i, x in enumerate(truth):
            y = A @ x + sigma * noise[i]
            gauss.append(gaussian_posterior_mean(mu, cov, A, y, sigma))
            idata = nh.infer.run_nuts(
                cs_model, prior, jnp.asarray(A), jnp.asarray(y), sigma,
                num_warmup=settings["num_warmup"], num_samples=settings["num_samples"],
                num_chains=settings["num_chains"], key=jax.random.fold_in(k_nuts, i),
                progress=progress,
                diagnostics_warn=False,
            )  # fmt: skip
            draws = np.asarray(idata.posterior["x"]).reshape(-1, 64)
            gen.append(draws.mean(0))
            if hgf is not None:
                hgf_idata = nh.infer.run_nuts(
                    hgf_model, hgf, jnp.asarray(A), jnp.asarray(y), sigma,
                    num_warmup=settings["num_warmup"], num_samples=settings["num_samples"],
                    num_chains=settings["num_chains"], key=jax.random.fold_in(k_nuts, i),
                    progress=progress, diagnostics_warn=False,
                )  # fmt: skip
                hgf_means.append(np.asarray(hgf_idata.posterior["x"]).reshape(-1, 64).mean(0))
            diag = nh.infer.diagnostics.sampling_diagnostics(idata)
            rhat.append(diag["r_hat"].get("x_latent", float("nan")))
            divergences += diag["divergences"]
        means[("generator", m)] = np.stack(gen)
        means[("gaussian", m)] = np.stack(gauss)
        if hgf is not None:
            means[("hgf", m)] = np.stack(hgf_means)
        diagnostics[m] = {"max_rhat_per_digit": rhat, "divergences": divergences}
    return means, diagnostics


def range_error(prior, truth, key, steps: int, restarts: int = 16):
    """Per digit, ``min_z ||G(z) - x|| / 8`` (per-pixel RMSE of the best fit in the
    generator's range; Adam from ``restarts`` random ``z``): the floor of any recovery with
    this generator (Bora et al. 2017, representation error)."""
    import optax

    opt = optax.adam(0.05)
    x = jnp.asarray(truth)

    def loss(z):
        return jnp.mean((prior.generate(z) - x[:, None, :]) ** 2, axis=-1)  # (digits, restarts)

    def step(carry, _):
        z, state = carry
        grads = jax.grad(lambda z: jnp.sum(loss(z)))(z)
        updates, state = opt.update(grads, state, z)
        return (optax.apply_updates(z, updates), state), None

    z0 = jax.random.normal(key, (len(truth), restarts, prior.latent_dim))
    (z, _), _ = jax.lax.scan(step, (z0, opt.init(z0)), None, length=steps)
    return np.sqrt(np.asarray(loss(z)).min(axis=1))


def plot(truth, means, ms, path: Path):
    rows = [("truth", truth)] + [
        (f"{method} m={m}", means[(method, m)])
        for m in ms
        for method in ("generator", "gaussian", "hgf")
        if (method, m) in means
    ]
    n = len(truth)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.2 * n, 1.25 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(np.clip(images[c], -1, 1).reshape(8, 8), cmap="gray_r", vmin=-1, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
    fig.suptitle("compressed sensing: posterior means", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/compressed_sensing"))
    p.add_argument("--measurements", type=int, nargs="+", default=[16, 32])
    p.add_argument("--sigma", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prior", type=Path, default=None, help="a saved GeneratorPrior to reuse")
    p.add_argument("--with-hgf", action="store_true", help="also an oscillation-HGF prior")
    p.add_argument("--smoke", action="store_true", help="tiny settings (a wiring check)")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    settings = SMOKE if args.smoke else FULL
    progress = False if args.quiet or args.smoke else None
    args.out.mkdir(parents=True, exist_ok=True)
    key = jax.random.key(args.seed)
    k_fit, k_cs = jax.random.split(key)
    train = nh.datasets.digits("train").images.reshape(-1, 64)
    truth = np.asarray(nh.datasets.digits("test").images.reshape(-1, 64))[: settings["num_digits"]]
    gaussian = (np.asarray(train, np.float64).mean(0), np.cov(np.asarray(train, np.float64).T))
    start = time.perf_counter()
    if args.prior is not None:
        prior = nh.load(args.prior)
    else:
        prior = train_prior(train, settings, k_fit, args.out, progress)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    hgf = train_hgf(settings, jax.random.fold_in(k_fit, 1), progress) if args.with_hgf else None
    hgf_fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    means, diagnostics = recover(
        prior, gaussian, truth, args.measurements, args.sigma, k_cs, settings, progress, hgf
    )
    nuts_seconds = time.perf_counter() - start
    png = plot(truth, means, args.measurements, args.out / "compressed_sensing.png")
    rmse = {
        f"{method} m={m}": np.sqrt(np.mean((v - truth) ** 2, axis=1)).tolist()
        for (method, m), v in means.items()
    }
    floor = range_error(prior, truth, jax.random.fold_in(k_cs, 1), settings["range_steps"])
    rmse["generator range (best z)"] = floor.tolist()
    summary = {
        "rmse_per_digit": rmse,
        "rmse_mean": {k: float(np.mean(v)) for k, v in rmse.items()},
        "nuts": {str(m): d for m, d in diagnostics.items()},
        "seconds": {"fit": fit_seconds, "hgf_fit": hgf_fit_seconds, "nuts": nuts_seconds},
        "settings": {**settings, "sigma": args.sigma, "measurements": args.measurements},
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    for name, value in summary["rmse_mean"].items():
        print(f"{name:16s} RMSE {value:.3f}")
    return png


if __name__ == "__main__":
    main()
