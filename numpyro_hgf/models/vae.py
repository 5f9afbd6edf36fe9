"""Variational autoencoders: an NLME model with a neural structural model (seed 004, "VAEs").

::

    z_n ~ N(0, I_k),    x_n ~ p(x | dec(z_n))        (Gaussian: mean and log-scale per pixel;
                                                      Bernoulli: logits per pixel)
    q(z_n | x_n) = N(mu(x_n), diag sigma(x_n)^2)     (AmortizedNormalGuide, flax encoder)

The decoder is a ``flax.linen`` MLP registered with ``flax_module``; fitting maximises the ELBO
(:func:`fit`, minibatches through a subsampled plate).  :func:`iwae_log_likelihood` is the
importance-weighted bound ``log (1/K) sum_k p(x, z_k) / q(z_k | x)`` (Burda et al. 2016,
eq. 8; ``K = 1`` is the ELBO), computed in chunks so ``K`` can be 5,000.  For the 17-level
digits the Gaussian VAE is fitted to uniformly dequantized data in ``[0, 1)`` and reported in
bits/dim with :func:`numpyro_hgf.metrics.bits_per_dim` (``num_levels=17``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.contrib.module import flax_module

from numpyro_hgf._checks import check_choice, check_finite, check_hidden_sizes, check_positive_int

__all__ = [
    "VAE",
    "model",
    "make_guide",
    "fit",
    "iwae_log_likelihood",
    "plot_latents",
    "plot_reconstructions",
]

LIKELIHOODS = ("gaussian", "bernoulli")


class VAE(NamedTuple):
    """A fitted VAE: its architecture and the SVI params (decoder and encoder)."""

    latent_dim: int
    data_dim: int
    likelihood: str
    hidden: tuple[int, ...]
    params: dict


def _decoder(data_dim, likelihood, hidden):
    from numpyro_hgf.nn import MLP

    out = 2 * data_dim if likelihood == "gaussian" else data_dim
    return MLP(hidden, out)


def model(x, latent_dim: int, likelihood: str = "gaussian", hidden=(64,), num_total=None):
    """VAE model on ``x: (b, D)`` (a minibatch of a data set of ``num_total`` rows)."""
    b, D = x.shape
    net = flax_module("decoder", _decoder(D, likelihood, tuple(hidden)), jnp.zeros((1, latent_dim)))
    n = b if num_total is None else num_total
    with numpyro.plate("data", n, subsample_size=b):
        z = numpyro.sample("z", dist.Normal(jnp.zeros(latent_dim), 1.0).to_event(1))
        out = net(z)
        if likelihood == "gaussian":
            mean, log_scale = out[..., :D], jnp.clip(out[..., D:], -7.0, 2.0)
            px = dist.Normal(mean, jnp.exp(log_scale)).to_event(1)
        else:
            px = dist.Bernoulli(logits=out).to_event(1)
        numpyro.sample("x", px, obs=x)


def make_guide(latent_dim: int, hidden=(64,)):
    """The amortized Gaussian guide of :func:`model` (encoder ``MLP(hidden, 2 k)``)."""
    from numpyro_hgf.guides import AmortizedNormalGuide
    from numpyro_hgf.nn import MLP

    return AmortizedNormalGuide(
        model, MLP(tuple(hidden), 2 * latent_dim, zero_init_output=True), "z", init_scale=1.0
    )


def fit(
    x,
    *,
    latent_dim: int = 8,
    likelihood: str = "gaussian",
    hidden=(128, 128),
    steps: int = 5_000,
    batch_size: int = 128,
    learning_rate: float = 2e-3,
    key,
    progress: bool | None = None,
):
    """Maximise the ELBO on ``x: (n, D)`` (Adam with cosine decay, minibatches).

    Returns ``(vae, svi_fit)``.
    """
    import optax

    from numpyro_hgf.models.svi import fit_svi

    check_choice("likelihood", likelihood, LIKELIHOODS)
    latent_dim = check_positive_int("latent_dim", latent_dim)
    hidden = check_hidden_sizes("hidden", hidden)
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x: expected an array of shape (n, D), got shape {x.shape}")
    check_finite("x", x)
    if likelihood == "bernoulli" and not bool(jnp.all((x == 0) | (x == 1))):
        raise ValueError("x: a Bernoulli likelihood expects binary data (0/1), got other values")
    kwargs = {
        "latent_dim": latent_dim,
        "likelihood": likelihood,
        "hidden": hidden,
        "num_total": x.shape[0],
    }
    res = fit_svi(
        model,
        make_guide(latent_dim, hidden),
        (x,),
        steps=steps,
        key=key,
        optimizer=optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=0.05)),
        batch_size=min(batch_size, x.shape[0]),
        model_kwargs=kwargs,
        progress=progress,
        description=f"vae ({likelihood})",
    )
    return VAE(latent_dim, x.shape[1], likelihood, hidden, res.params), res


def _log_weights(vae: VAE, x, key, k: int):
    """``(k, n)`` importance log-weights ``log p(x, z) - log q(z | x)``, ``z ~ q``."""
    guide = make_guide(vae.latent_dim, vae.hidden)
    kw = {"latent_dim": vae.latent_dim, "likelihood": vae.likelihood, "hidden": vae.hidden}
    loc, scale = guide.encode(vae.params, x)
    q = dist.Normal(loc, scale).to_event(1)
    z = q.sample(key, (k,))
    cond = handlers.substitute(model, data=vae.params)

    def log_joint(zk):
        tr = handlers.trace(handlers.condition(cond, data={"z": zk})).get_trace(x, **kw)
        return sum(s["fn"].log_prob(s["value"]) for s in tr.values() if s["type"] == "sample")

    return jax.vmap(log_joint)(z) - q.log_prob(z)


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _iwae(vae_static, params, x, k, chunk, key):
    vae = vae_static._replace(params=params)
    num_chunks = -(-k // chunk)
    keys = jax.random.split(key, num_chunks)
    lw = jax.lax.map(lambda kk: _log_weights(vae, x, kk, chunk), keys)  # (chunks, chunk, n)
    lw = lw.reshape(-1, x.shape[0])[:k]
    return jax.scipy.special.logsumexp(lw, axis=0) - jnp.log(k)


def iwae_log_likelihood(vae: VAE, x, *, k: int, key, chunk: int = 500, batch: int = 120):
    """Per-datum IWAE-``k`` bound ``(n,)`` (``k = 1``: the ELBO).  Chunks of ``chunk``
    importance samples and ``batch`` data rows keep memory bounded."""
    k = check_positive_int("k", k)
    chunk = min(check_positive_int("chunk", chunk), k)
    x = jnp.asarray(x)
    static = vae._replace(params=None)
    out = []
    for i, start in enumerate(range(0, x.shape[0], batch)):
        out.append(
            _iwae(
                static, vae.params, x[start : start + batch], k, chunk, jax.random.fold_in(key, i)
            )
        )
    return jnp.concatenate(out)


def plot_latents(path, vae: VAE, x, labels):
    """Scatter of the encoder means (first two latent dimensions), coloured by label (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loc, _ = make_guide(vae.latent_dim, vae.hidden).encode(vae.params, x)
    loc = np.asarray(loc)
    fig, ax = plt.subplots(figsize=(5, 5), constrained_layout=True)
    sc = ax.scatter(
        loc[:, 0], loc[:, 1 if loc.shape[1] > 1 else 0], c=np.asarray(labels), cmap="tab10", s=6
    )
    fig.colorbar(sc, ax=ax, label="digit")
    ax.set_title("VAE latent space (encoder means)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_reconstructions(path, vae: VAE, x, *, shape=(8, 8), num: int = 10):
    """Top row: data; bottom row: decoder means at the encoder means (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = jnp.asarray(x)[:num]
    loc, _ = make_guide(vae.latent_dim, vae.hidden).encode(vae.params, x)
    dec = _decoder(vae.data_dim, vae.likelihood, vae.hidden)
    out = dec.apply({"params": vae.params["decoder$params"]}, loc)
    recon = out[..., : vae.data_dim]
    if vae.likelihood == "bernoulli":
        recon = jax.nn.sigmoid(recon)
    fig, axes = plt.subplots(2, num, figsize=(num, 2.2), constrained_layout=True)
    for j in range(num):
        for row, img in ((0, x[j]), (1, recon[j])):
            axes[row, j].imshow(np.asarray(img).reshape(shape), cmap="gray_r")
            axes[row, j].axis("off")
    fig.suptitle("data (top) and reconstructions (bottom)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
