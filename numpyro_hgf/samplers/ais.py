"""Generic annealed importance sampling (Neal 2001).

Estimates ``log(Z_target / Z_base)`` for two unnormalised densities by moving a set of
independent chains through the geometric path

    p_beta(x) ∝ base(x)^(1 - beta) * target(x)^beta,   0 = beta_0 < beta_1 < ... < beta_K = 1,

with an MCMC kernel that leaves each ``p_beta`` invariant.  Chain ``i`` accumulates the
log importance weight

    log w_i = sum_{k=1}^{K} [log f_{beta_k}(x_{k-1}) - log f_{beta_{k-1}}(x_{k-1})]
            = sum_{k=1}^{K} (beta_k - beta_{k-1}) [log target(x_{k-1}) - log base(x_{k-1})],

where ``x_0`` is an exact draw from the normalised base and ``x_k`` is obtained from
``x_{k-1}`` by one transition at ``beta_k``.  ``E[w] = Z_target / Z_base``, so the
estimate is ``log mean exp(log w)``; it is unbiased for the ratio and (by Jensen) a
stochastic lower bound of its logarithm.

This module is model-agnostic: the RBM (Salakhutdinov & Murray 2008) and the
energy-based model use it with their own base distributions and kernels.

References:
    R. M. Neal, "Annealed importance sampling", Statistics and Computing 11 (2001).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks import check_betas

__all__ = [
    "AISResult",
    "annealed_importance_sampling",
    "log_mean_exp",
    "linear_betas",
    "piecewise_linear_betas",
]


class AISResult(NamedTuple):
    """What :func:`annealed_importance_sampling` returns.

    Attributes:
        log_normalizer_ratio: scalar estimate of ``log(Z_target / Z_base)``
            (``logmeanexp`` of ``log_weights``).
        log_weights: ``(num_chains,)`` per-chain log importance weights.
        samples: ``(num_chains, ...)`` final states of the chains (approximate draws
            from the target; reweight with ``exp(log_weights)`` for unbiased estimates).
        stderr: delta-method standard error of ``log_normalizer_ratio``:
            ``std(w) / (sqrt(n) * mean(w))`` computed stably from the log weights.
    """

    log_normalizer_ratio: jax.Array
    log_weights: jax.Array
    samples: jax.Array
    stderr: jax.Array


def log_mean_exp(log_w: jax.Array, axis: int = 0) -> jax.Array:
    """``log(mean(exp(log_w)))`` along ``axis``, computed stably."""
    n = log_w.shape[axis]
    return jax.scipy.special.logsumexp(log_w, axis=axis) - jnp.log(n)


def linear_betas(num_betas: int) -> jax.Array:
    """``num_betas`` equally spaced inverse temperatures from 0 to 1."""
    return jnp.linspace(0.0, 1.0, num_betas)


def piecewise_linear_betas(
    num_betas: int, knots=(0.0, 0.5, 0.9, 1.0), weights=(500, 4000, 10000)
) -> jax.Array:
    """``num_betas`` inverse temperatures, linear on each ``[knots[i], knots[i+1])`` with a
    share of the points proportional to ``weights[i]``.

    The default is Salakhutdinov & Murray's (2008) RBM schedule (500 steps on [0, 0.5),
    4,000 on [0.5, 0.9), 10,000 on [0.9, 1]), rescaled to ``num_betas`` points.
    """
    if len(knots) != len(weights) + 1:
        raise ValueError(
            f"weights: expected {len(knots) - 1} weights for {len(knots)} knots, got {len(weights)}"
        )
    if num_betas < len(weights) + 1:
        return jnp.linspace(float(knots[0]), float(knots[-1]), max(num_betas, 2))
    total = float(sum(weights))
    counts = [max(1, round((num_betas - 1) * w / total)) for w in weights[:-1]]
    counts.append(num_betas - 1 - sum(counts))
    pieces = [
        np.linspace(lo, hi, n, endpoint=False)
        for lo, hi, n in zip(knots[:-1], knots[1:], counts, strict=True)
    ]
    return jnp.asarray(np.concatenate(pieces + [np.array([knots[-1]])]), jnp.float32)


def annealed_importance_sampling(
    key,
    init_samples,
    log_base: Callable[[jax.Array], jax.Array],
    log_target: Callable[[jax.Array], jax.Array],
    transition: Callable[[jax.Array, jax.Array, jax.Array], jax.Array],
    betas,
    *,
    log_density: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
) -> AISResult:
    """Annealed importance sampling estimate of ``log(Z_target / Z_base)``.

    Args:
        key: ``jax.random`` key (split once per temperature for ``transition``).
        init_samples: ``(num_chains, ...)`` exact draws from the *normalised* base.
        log_base: unnormalised base log density, ``(num_chains, ...) -> (num_chains,)``.
        log_target: unnormalised target log density, same signature.
        transition: ``transition(key, x, beta) -> x``, an MCMC kernel (batched over
            chains) that leaves ``p_beta ∝ base^(1-beta) target^beta`` invariant.
        betas: ``(K,)`` inverse temperatures increasing from 0 to 1 (see
            :func:`linear_betas`; a denser grid near 0 often helps).
        log_density: optional ``log_density(x, beta) -> (num_chains,)``, a path other
            than the geometric one (e.g. interpolating the parameters of an RBM,
            Salakhutdinov & Murray 2008).  It must equal ``log_base`` at ``beta = 0`` and
            ``log_target`` at ``beta = 1`` (not checked); ``transition`` must then leave
            ``exp(log_density(., beta))`` invariant.  The weight increment at step ``k``
            is ``log_density(x_{k-1}, beta_k) - log_density(x_{k-1}, beta_{k-1})``.

    Returns:
        :class:`AISResult`.  If ``log_base`` is normalised, ``log_normalizer_ratio`` is
        an estimate of ``log Z_target`` itself.

    The loop runs in :func:`jax.lax.scan`, so the function can be jitted (with
    ``log_base``/``log_target``/``transition`` closed over).
    """
    betas = jnp.asarray(betas)
    check_betas("betas", betas)
    x0 = jnp.asarray(init_samples)
    if x0.ndim < 1:
        raise ValueError(
            f"init_samples: expected an array of shape (num_chains, ...), got shape {x0.shape}"
        )

    keys = jax.random.split(key, betas.shape[0] - 1)

    if log_density is None:

        def log_ratio(x):  # log target - log base, (num_chains,)
            return log_target(x) - log_base(x)

        lr0 = log_ratio(x0)
        dtype = jnp.result_type(lr0.dtype, jnp.float32)
        betas = betas.astype(dtype)

        def body(carry, inp):
            x, log_w, lr = carry
            k, b_prev, b = inp
            log_w = log_w + (b - b_prev) * lr  # weight update uses x_{k-1}
            x = transition(k, x, b)
            return (x, log_w, log_ratio(x)), None

        init = (x0, jnp.zeros(lr0.shape, dtype), lr0.astype(dtype))
    else:
        ld0 = log_density(x0, betas[0])
        dtype = jnp.result_type(ld0.dtype, jnp.float32)
        betas = betas.astype(dtype)

        def body(carry, inp):
            x, log_w, _ = carry
            k, b_prev, b = inp
            log_w = log_w + (log_density(x, b) - log_density(x, b_prev))
            x = transition(k, x, b)
            return (x, log_w, log_w), None

        init = (x0, jnp.zeros(ld0.shape, dtype), jnp.zeros(ld0.shape, dtype))
    (x, log_w, _), _ = jax.lax.scan(body, init, (keys, betas[:-1], betas[1:]))
    n = log_w.shape[0]
    log_z = log_mean_exp(log_w)
    # delta method: Var(log mean w) ~= Var(w) / (n * mean(w)^2); with normalised weights
    # u = w / mean(w): stderr = std(u) / sqrt(n).
    u = jnp.exp(log_w - (log_z + jnp.log(n)))  # w / sum(w)
    u = u * n  # w / mean(w)
    stderr = jnp.sqrt(jnp.sum((u - 1.0) ** 2) / jnp.maximum(n - 1, 1) / n)
    return AISResult(log_z, log_w, x, stderr)
