"""Probabilistic PCA (Tipping & Bishop 1999).

Generative process with ``theta = (W, mu, sigma^2)``, ``W: (d, k)``::

    z ~ N(0, I_k),   y = W z + mu + eps,   eps ~ N(0, sigma^2 I_d)

Marginal likelihood (closed form): ``p(y | theta) = N(y | mu, C)``, ``C = W W^T + sigma^2 I``.

* :func:`mle` -- the closed-form maximum-likelihood estimate by eigendecomposition of the
  sample covariance ``S`` (Tipping & Bishop 1999, eq. 7-8):
  ``mu = mean(y)``, ``sigma^2 = mean of the d - k smallest eigenvalues``,
  ``W = U_k (L_k - sigma^2 I)^{1/2}``;
* :func:`log_likelihood` -- ``sum_n log N(y_n | mu, C)``;
* :func:`posterior` -- ``p(z | y) = N(M^{-1} W^T (y - mu), sigma^2 M^{-1})``,
  ``M = W^T W + sigma^2 I`` (Tipping & Bishop 1999, eq. 6);
* :func:`model` -- the latent-variable NumPyro model, and :func:`fit_svi`, which maximises its
  ELBO with an :class:`~numpyro_hgf.guides.AmortizedNormalGuide` (a linear encoder is enough:
  the exact posterior mean is linear in ``y``).
"""

from __future__ import annotations

from typing import NamedTuple, Unpack

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.infer import Trace_ELBO

from numpyro_hgf._checks import check_finite, check_positive_int, describe, is_concrete
from numpyro_hgf._checks.arrays import check_real_array
from numpyro_hgf.guides.amortized import AmortizedNormalGuide
from numpyro_hgf.models.svi import adam_cosine
from numpyro_hgf.models.svi import fit_svi as _fit_svi
from numpyro_hgf.nn.mlp import MLP
from numpyro_hgf.train.options import Recipe, TrainKeywords, TrainOptions

__all__ = ["PPCAParams", "mle", "log_likelihood", "posterior", "model", "fit_svi", "RECIPE"]

#: The optimisation ``fit_svi`` recommends for PPCA.
RECIPE = Recipe(
    steps=3_000, batch_size=None, learning_rate=1e-2, optimizer=adam_cosine(0.01), clip_norm=None
)


class PPCAParams(NamedTuple):
    """PPCA parameters: ``W: (d, k)``, ``mu: (d,)``, ``sigma2: ()``."""

    W: jax.Array
    mu: jax.Array
    sigma2: jax.Array


def _check_data(y, latent_dim=None) -> jax.Array:
    y = check_real_array("y", y)
    if y.ndim != 2:
        raise ValueError(f"y: expected an array of shape (n, d), got shape {y.shape}")
    check_finite("y", y)
    if latent_dim is not None:
        k = check_positive_int("latent_dim", latent_dim)
        if k >= y.shape[1]:
            raise ValueError(
                f"latent_dim: expected fewer latent than data dimensions ({y.shape[1]}), got {k}"
            )
    return y


def _check_params(params, y) -> PPCAParams:
    """:class:`PPCAParams` (or a ``(W, mu, sigma2)`` triple) that fit ``y: (n, d)``."""
    if not (isinstance(params, tuple | list) and len(params) == 3):
        raise TypeError(f"params: expected PPCAParams(W, mu, sigma2), got {type(params).__name__}")
    W, mu, sigma2 = (jnp.asarray(a) for a in params)
    d = y.shape[1]
    for name, a, ok in (
        ("W", W, W.ndim == 2 and W.shape[0] == d and W.shape[1] >= 1),
        ("mu", mu, mu.shape == (d,)),
        ("sigma2", sigma2, sigma2.shape == ()),
    ):
        if not ok:
            raise ValueError(
                f"params.{name}: expected the shape of PPCAParams for {d}-dimensional y "
                f"(W (d, k), mu (d,), sigma2 ()), got {describe(a)}"
            )
    if is_concrete(sigma2) and not float(sigma2) > 0:
        raise ValueError(f"params.sigma2: expected a positive noise variance, got {float(sigma2)}")
    return PPCAParams(W, mu, sigma2)


def mle(y, latent_dim: int) -> PPCAParams:
    """Closed-form maximum-likelihood PPCA (Tipping & Bishop 1999, eq. 7-8).

    Args:
        y: ``(n, d)`` data.
        latent_dim: ``k < d``.

    Returns:
        :class:`PPCAParams` with ``W = U_k (L_k - sigma^2 I)^{1/2}`` (the rotation ``R = I``).
    """
    y = _check_data(y, latent_dim)
    k = int(latent_dim)
    mu = jnp.mean(y, axis=0)
    centred = y - mu
    S = centred.T @ centred / y.shape[0]
    evals, evecs = jnp.linalg.eigh(S)
    evals, evecs = evals[::-1], evecs[:, ::-1]
    sigma2 = jnp.mean(evals[k:])
    W = evecs[:, :k] * jnp.sqrt(jnp.maximum(evals[:k] - sigma2, 0.0))
    return PPCAParams(W, mu, sigma2)


def log_likelihood(params: PPCAParams, y) -> jax.Array:
    """``sum_n log N(y_n | mu, W W^T + sigma^2 I)`` for ``y: (n, d)`` (a scalar)."""
    y = _check_data(y)
    W, mu, sigma2 = _check_params(params, y)
    C = W @ W.T + sigma2 * jnp.eye(W.shape[0], dtype=W.dtype)
    return jnp.sum(dist.MultivariateNormal(mu, C).log_prob(y))


def posterior(params: PPCAParams, y) -> tuple[jax.Array, jax.Array]:
    """Exact posterior ``p(z | y)`` (Tipping & Bishop 1999, eq. 6).

    Returns ``(mean, cov)``: ``mean: (n, k)``, ``cov: (k, k)`` (the same for every datum).
    """
    y = _check_data(y)
    W, mu, sigma2 = _check_params(params, y)
    M = W.T @ W + sigma2 * jnp.eye(W.shape[1], dtype=W.dtype)
    mean = jnp.linalg.solve(M, W.T @ (y - mu).T).T
    return mean, sigma2 * jnp.linalg.inv(M)


def model(y, latent_dim: int, num_total: int | None = None, init: PPCAParams | None = None):
    """PPCA as a NumPyro model with ``W``, ``mu``, ``sigma`` as ``numpyro.param`` sites.

    Args:
        y: ``(b, d)`` observed rows (a minibatch when ``num_total`` is larger).
        latent_dim: ``k``.
        num_total: size of the full data set (the plate scales the likelihood by
            ``num_total / b``); ``None`` means ``b``.
        init: initial params (default: small random ``W``, ``mu = 0``, ``sigma = 1``).
    """
    b, d = y.shape
    k = check_positive_int("latent_dim", latent_dim)  # static (a shape), also under tracing
    if num_total is not None and check_positive_int("num_total", num_total) < b:
        raise ValueError(f"num_total: expected at least the {b} rows of y, got {num_total}")
    if init is None:
        W0 = 0.1 * jax.random.normal(jax.random.key(0), (d, k), y.dtype)
        mu0, s0 = jnp.zeros(d, y.dtype), jnp.ones((), y.dtype)
    else:
        W0, mu0, s0 = init.W, init.mu, jnp.sqrt(init.sigma2)
    W = numpyro.param("W", W0)
    mu = numpyro.param("mu", mu0)
    sigma = numpyro.param("sigma", s0, constraint=constraints.positive)
    n = b if num_total is None else num_total
    with numpyro.plate("data", n, subsample_size=b):
        z = numpyro.sample("z", dist.Normal(jnp.zeros(k, y.dtype), 1.0).to_event(1))
        numpyro.sample("y", dist.Normal(z @ W.T + mu, sigma).to_event(1), obs=y)


def fit_svi(
    y,
    latent_dim: int,
    *,
    num_particles: int = 1,
    key=None,
    options: TrainOptions | None = None,
    **train_options: Unpack[TrainKeywords],
):
    """Fit PPCA by maximising the ELBO of :func:`model` with an amortized linear encoder.

    The encoder is a single dense layer (``nh.nn.MLP(hidden=(), out_dim=2k)``), the exact
    posterior family here.

    Args:
        y: ``(n, D)`` data; latent_dim: ``k``.
        num_particles: ELBO particles per step.
        key: ``jax.random`` key (required).
        options, **train_options: how to train (:class:`~numpyro_hgf.train.TrainOptions`).
            Recommended: 3,000 full-batch Adam steps at learning rate 1e-2, cosine decay to
            1 % of it.  With a ``batch_size`` the model scales the likelihood to all rows.

    Returns:
        ``(params, fit)``: :class:`PPCAParams` and the :class:`~numpyro_hgf.models.svi.SVIFit`
        (its ``params`` also hold the encoder, ``"amortized_encoder$params"``).
    """
    y = _check_data(y, latent_dim)
    k = int(latent_dim)
    num_particles = check_positive_int("num_particles", num_particles)
    guide = AmortizedNormalGuide(model, MLP((), 2 * k), "z")
    fit = _fit_svi(
        model,
        guide,
        (y,),
        key=key,
        options=options,
        recipe=RECIPE,
        elbo=Trace_ELBO(num_particles),
        model_kwargs={"latent_dim": k, "num_total": y.shape[0]},
        description="ppca svi",
        **train_options,
    )
    p = fit.params
    return PPCAParams(p["W"], p["mu"], p["sigma"] ** 2), fit
