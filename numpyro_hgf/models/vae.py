"""Variational autoencoders: an NLME model with a neural structural model (Kingma & Welling 2014).

::

    z_n ~ N(0, I_k),    x_n ~ p(x | dec(z_n))        (Gaussian: mean and log-scale per pixel;
                                                      Bernoulli: logits per pixel;
                                                      categorical: L logits per pixel)
    q(z_n | x_n) = N(mu(x_n), diag sigma(x_n)^2)     (AmortizedNormalGuide, flax encoder)

The decoder is a ``flax.linen`` MLP registered with ``flax_module``; fitting maximises the ELBO
(:func:`fit`, minibatches through a subsampled plate).  :func:`iwae_log_likelihood` is the
importance-weighted bound ``log (1/K) sum_k p(x, z_k) / q(z_k | x)`` (Burda et al. 2016,
eq. 8; ``K = 1`` is the ELBO), computed in chunks so ``K`` can be 5,000.  For the 17-level
digits the Gaussian VAE is fitted to uniformly dequantized data in ``[0, 1)`` and reported in
bits/dim with :func:`numpyro_hgf.metrics.bits_per_dim` (``num_levels=17``).

The ``"categorical"`` likelihood (:class:`DequantizedCategorical`) models the ``L`` grey levels
directly: on dequantized ``x in [0, 1)^D`` it is the piecewise-constant density

    p(x | z) = prod_d L softmax(logits_d(z))[floor(L x_d)],

so ``log p(x | z) = D log L + log P(raw | z)`` exactly, and ELBO/IWAE bounds on ``log p(x)``
are bounds on the discrete ``log P(raw)`` shifted by ``D log L`` -- ``bits_per_dim(lp, D,
num_levels=L)`` of them is the discrete bits/dim, like-for-like with a mixture of categoricals.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import NamedTuple, Unpack

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from numpyro import handlers
from numpyro.contrib.module import flax_module
from numpyro.infer import RenyiELBO

from numpyro_hgf._checks import (
    _describe,
    check_choice,
    check_event_shape_arg,
    check_finite,
    check_hidden_sizes,
    check_key,
    check_nonnegative_float,
    check_path,
    check_positive_int,
    is_concrete,
)
from numpyro_hgf._checks.arrays import check_real_array
from numpyro_hgf.distributions.dequantized import DequantizedCategorical
from numpyro_hgf.guides.amortized import AmortizedNormalGuide
from numpyro_hgf.models.svi import adam_cosine, fit_svi
from numpyro_hgf.nn.mlp import MLP
from numpyro_hgf.train.options import Recipe, TrainKeywords, TrainOptions, resolve_options

__all__ = [
    "VAE",
    "DequantizedCategorical",  # re-exported from numpyro_hgf.distributions
    "model",
    "make_guide",
    "fit",
    "iwae_log_likelihood",
    "plot_latents",
    "plot_reconstructions",
]

LIKELIHOODS = ("gaussian", "bernoulli", "categorical")


class VAE(NamedTuple):
    """A fitted VAE: its architecture and the SVI params (decoder and encoder).

    ``num_levels`` is the number of grey levels of the ``"categorical"`` likelihood (``None``
    for the others)."""

    latent_dim: int
    data_dim: int
    likelihood: str
    hidden: tuple[int, ...]
    params: dict
    num_levels: int | None = None


def _decoder(data_dim, likelihood, hidden, num_levels=None):

    out = {"gaussian": 2 * data_dim, "bernoulli": data_dim}.get(likelihood)
    if likelihood == "categorical":
        out = data_dim * num_levels
    return MLP(hidden, out)


def _likelihood(out, D, likelihood, num_levels=None):
    """``p(x | z)`` from the decoder output ``out: (..., out_dim)``, event shape ``(D,)``."""
    if likelihood == "gaussian":
        mean, log_scale = out[..., :D], jnp.clip(out[..., D:], -7.0, 2.0)
        return dist.Normal(mean, jnp.exp(log_scale)).to_event(1)
    if likelihood == "bernoulli":
        return dist.Bernoulli(logits=out).to_event(1)
    logits = out.reshape(out.shape[:-1] + (D, num_levels))
    return DequantizedCategorical(logits).to_event(1)


def model(
    x,
    latent_dim: int,
    likelihood: str = "gaussian",
    hidden=(64,),
    num_total=None,
    num_levels: int | None = None,
):
    """VAE model on ``x: (b, D)`` (a minibatch of a data set of ``num_total`` rows);
    ``num_levels`` only for ``likelihood="categorical"`` (``x`` dequantized in ``[0, 1)``)."""
    # static options (shapes and choices): checked also when the model is traced
    check_choice("likelihood", likelihood, LIKELIHOODS)
    num_levels = _check_num_levels(likelihood, num_levels)
    latent_dim = check_positive_int("latent_dim", latent_dim)
    if jnp.ndim(x) != 2:
        raise ValueError(f"x: expected an array of shape (b, D), got shape {jnp.shape(x)}")
    b, D = x.shape
    net = flax_module(
        "decoder",
        _decoder(D, likelihood, check_hidden_sizes("hidden", hidden), num_levels),
        jnp.zeros((1, latent_dim)),
    )
    n = b if num_total is None else num_total
    with numpyro.plate("data", n, subsample_size=b):
        z = numpyro.sample("z", dist.Normal(jnp.zeros(latent_dim), 1.0).to_event(1))
        numpyro.sample("x", _likelihood(net(z), D, likelihood, num_levels), obs=x)


def make_guide(latent_dim: int, hidden=(64,)):
    """The amortized Gaussian guide of :func:`model` (encoder ``MLP(hidden, 2 k)``)."""
    latent_dim = check_positive_int("latent_dim", latent_dim)
    hidden = check_hidden_sizes("hidden", hidden)
    return AmortizedNormalGuide(
        model, MLP(hidden, 2 * latent_dim, zero_init_output=True), "z", init_scale=1.0
    )


#: The optimisation ``fit`` recommends.
RECIPE = Recipe(
    steps=5_000, batch_size=128, learning_rate=2e-3, optimizer=adam_cosine(0.05), clip_norm=None
)


def _recipe_with_weight_decay(weight_decay: float) -> Recipe:
    """The recipe with AdamW (decoupled weight decay) in place of Adam."""

    def adamw(lr, steps):
        schedule = optax.cosine_decay_schedule(lr, steps, alpha=0.05)
        return optax.adamw(schedule, weight_decay=weight_decay)

    return Recipe(**{**vars(RECIPE), "optimizer": adamw})


def _check_data(name, x, likelihood, num_levels):
    x = check_real_array(name, x)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected an array of shape (n, D), got shape {x.shape}")
    check_finite(name, x)
    if not is_concrete(x):
        return x
    if likelihood == "bernoulli" and not bool(jnp.all((x == 0) | (x == 1))):
        raise ValueError(
            f"{name}: a Bernoulli likelihood expects binary data (0/1), got other values"
        )
    if likelihood == "categorical" and not bool(jnp.all((x >= 0) & (x < 1))):
        raise ValueError(
            f"{name}: a categorical likelihood expects dequantized data in [0, 1) "
            f"(numpyro_hgf.datasets.dequantize), got values in "
            f"[{float(jnp.min(x)):.4g}, {float(jnp.max(x)):.4g}]"
        )
    return x


def _check_num_levels(likelihood, num_levels):
    if likelihood != "categorical":
        return None
    if num_levels is None:
        raise ValueError(
            "num_levels: the categorical likelihood needs the number of levels, got None"
        )
    if isinstance(num_levels, bool) or not isinstance(num_levels, int | np.integer):
        raise TypeError(f"num_levels: expected an integer >= 2, got {_describe(num_levels)}")
    if num_levels < 2:
        raise ValueError(f"num_levels: expected an integer >= 2, got {num_levels}")
    return int(num_levels)


def fit(
    x,
    *,
    latent_dim: int = 8,
    likelihood: str = "gaussian",
    num_levels: int | None = None,
    hidden=(128, 128),
    weight_decay: float = 0.0,
    particles: int = 1,
    key=None,
    options: TrainOptions | None = None,
    **train_options: Unpack[TrainKeywords],
):
    """Maximise the ELBO on ``x: (n, D)`` (minibatches; the one fit skeleton).

    Args:
        x: ``(n, D)`` training data: real for ``"gaussian"``, 0/1 for ``"bernoulli"``,
            dequantized levels in ``[0, 1)`` for ``"categorical"``.
        latent_dim, hidden: latent dimension ``k`` and the hidden widths of the encoder and
            decoder MLPs.
        likelihood: ``"gaussian"``, ``"bernoulli"`` or ``"categorical"``
            (:class:`DequantizedCategorical`, ``num_levels`` levels per pixel).
        num_levels: ``L >= 2``, only (and required) for ``"categorical"``.
        weight_decay: decoupled weight decay of AdamW (0: plain Adam).
        particles: ``1`` maximises the ELBO (``Trace_ELBO``); ``k > 1`` the IWAE-``k`` bound
            (``RenyiELBO(alpha=0, num_particles=k)``, Burda et al. 2016, eq. 8), ``k`` times the
            cost per step.
        key: ``jax.random`` key (required).
        options, **train_options: how to train (:class:`~numpyro_hgf.train.TrainOptions`).
            Recommended: 5,000 steps of 128 rows, Adam (AdamW with ``weight_decay``) at
            learning rate 2e-3 with cosine decay to 5 % of it, no clipping; validations every
            500 steps.  With ``validation`` rows (``(m, D)``, split off the *training*
            data) the training bound on them (the ELBO averaged over 10 draws per row, or
            IWAE-``particles``; the same draws every time) picks the returned params; with
            ``patience`` the fit also stops early.  The history is
            ``svi_fit.result.validation`` (``(step, -mean bound)`` pairs).

    Returns ``(vae, svi_fit)``.
    """
    key = check_key("key", key)
    check_choice("likelihood", likelihood, LIKELIHOODS)
    num_levels = _check_num_levels(likelihood, num_levels)
    latent_dim = check_positive_int("latent_dim", latent_dim)
    hidden = check_hidden_sizes("hidden", hidden)
    x = _check_data("x", x, likelihood, num_levels)
    particles = check_positive_int("particles", particles)
    weight_decay = check_nonnegative_float("weight_decay", weight_decay)
    kwargs = {
        "latent_dim": latent_dim,
        "likelihood": likelihood,
        "hidden": hidden,
        "num_total": x.shape[0],
        "num_levels": num_levels,
    }
    recipe = RECIPE if not weight_decay else _recipe_with_weight_decay(weight_decay)
    options = resolve_options(options, train_options, recipe)
    if options.validate_every is None:
        options = options.replace(validate_every=500)
    template = VAE(latent_dim, x.shape[1], likelihood, hidden, None, num_levels)
    validation_fn = None
    if options.validation is not None:
        validation = _check_data("validation", options.validation, likelihood, num_levels)
        if validation.shape[1] != x.shape[1]:
            raise ValueError(
                f"validation: expected rows of length {x.shape[1]} like x, "
                f"got shape {validation.shape}"
            )
        options = options.replace(validation=None)
        val_key = jax.random.fold_in(key, 0x7A1)

        def validation_fn(params):
            if particles == 1:
                return -float(jnp.mean(_elbo(template, params, validation, 10, val_key)))
            bound = _iwae(template, params, validation, particles, particles, val_key)
            return -float(jnp.mean(bound))

    res = fit_svi(
        model,
        make_guide(latent_dim, hidden),
        (x,),
        key=key,
        options=options,
        recipe=recipe,
        elbo=None if particles == 1 else RenyiELBO(alpha=0.0, num_particles=particles),
        model_kwargs=kwargs,
        description=f"vae ({likelihood})",
        validation_fn=validation_fn,
    )
    return template._replace(params=res.params), res


def _log_weights(vae: VAE, x, key, k: int):
    """``(k, n)`` importance log-weights ``log p(x, z) - log q(z | x)``, ``z ~ q``."""
    guide = make_guide(vae.latent_dim, vae.hidden)
    kw = {
        "latent_dim": vae.latent_dim,
        "likelihood": vae.likelihood,
        "hidden": vae.hidden,
        "num_levels": vae.num_levels,
    }
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


@functools.partial(jax.jit, static_argnums=(0, 3))
def _elbo(vae_static, params, x, k, key):
    """``(n,)`` ELBO averaged over ``k`` draws ``z ~ q(z | x)``."""
    return jnp.mean(_log_weights(vae_static._replace(params=params), x, key, k), axis=0)


def _check_vae(vae) -> None:
    if not isinstance(vae, VAE):
        raise TypeError(f"vae: expected a fitted VAE (vae.fit), got {type(vae).__name__}")
    if not isinstance(vae.params, Mapping):
        raise ValueError(
            f"vae: expected a fitted VAE with params (vae.fit), got params={vae.params!r}"[:200]
        )


def _check_rows(vae: VAE, x):
    """``x: (n, data_dim)``, valid data of ``vae``'s likelihood."""
    x = _check_data("x", x, vae.likelihood, vae.num_levels)
    if x.shape[1] != vae.data_dim:
        raise ValueError(
            f"x: expected rows of length {vae.data_dim} (the VAE's data_dim), got shape {x.shape}"
        )
    return x


def iwae_log_likelihood(vae: VAE, x, *, k: int, key, chunk: int = 500, batch: int = 120):
    """Per-datum IWAE-``k`` bound ``(n,)`` (``k = 1``: the ELBO).  Chunks of ``chunk``
    importance samples and ``batch`` data rows keep memory bounded."""
    _check_vae(vae)
    k = check_positive_int("k", k)
    chunk = min(check_positive_int("chunk", chunk), k)
    batch = check_positive_int("batch", batch)
    key = check_key("key", key)
    x = _check_rows(vae, x)
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
    check_path("path", path)
    _check_vae(vae)
    x = _check_rows(vae, x)
    if np.shape(labels) != (x.shape[0],):
        raise ValueError(
            f"labels: expected one label per row of x, shape ({x.shape[0]},), "
            f"got shape {np.shape(labels)}"
        )
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
    """Top row: data; bottom row: decoder means ``E[x | z]`` at the encoder means (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_path("path", path)
    _check_vae(vae)
    x = _check_rows(vae, x)
    num = check_positive_int("num", num)
    if num > x.shape[0]:
        raise ValueError(f"num: expected at most the {x.shape[0]} rows of x, got {num}")
    shape = check_event_shape_arg("shape", shape)
    if math.prod(shape) != vae.data_dim:
        raise ValueError(
            f"shape: expected an image shape of {vae.data_dim} pixels (data_dim), got {shape}"
        )
    x = x[:num]
    loc, _ = make_guide(vae.latent_dim, vae.hidden).encode(vae.params, x)
    dec = _decoder(vae.data_dim, vae.likelihood, vae.hidden, vae.num_levels)
    out = dec.apply({"params": vae.params["decoder$params"]}, loc)
    recon = _likelihood(out, vae.data_dim, vae.likelihood, vae.num_levels).mean
    fig, axes = plt.subplots(2, num, figsize=(num, 2.2), constrained_layout=True)
    for j in range(num):
        for row, img in ((0, x[j]), (1, recon[j])):
            axes[row, j].imshow(np.asarray(img).reshape(shape), cmap="gray_r")
            axes[row, j].axis("off")
    fig.suptitle("data (top) and reconstructions (bottom)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
