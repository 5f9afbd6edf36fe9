"""Likelihood objectives: the *maximum-likelihood* rows of the design table.

* :func:`negative_log_likelihood` -- the empirical NLL ``-(1/n) sum_i log p_theta(x_i)`` of any
  model with ``with_params(params).log_prob`` (normalizing flows by the change of variables,
  continuous flows by the instantaneous change of variables -- FFJORD);
* :func:`hamiltonian_flow_loss` -- the negative ELBO (or IWAE bound; Burda et al. 2016) of a
  neural Hamiltonian flow's position marginal;
* :func:`bits_per_dim` -- a log-likelihood in nats as bits per dimension, with the uniform
  dequantization bound for discrete data (Theis et al. 2016).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks import check_choice, check_interval, check_positive_int, describe

__all__ = ["negative_log_likelihood", "hamiltonian_flow_loss", "bits_per_dim", "LIKELIHOOD_BOUNDS"]

#: The bounds a neural Hamiltonian flow can be trained on.
LIKELIHOOD_BOUNDS = ("elbo", "iwae")


def negative_log_likelihood(model, params, x):
    """Mean negative log-likelihood of ``x: (n, *event_shape)`` under ``model.with_params(params)``.

    ``model`` is any distribution with ``with_params`` (a ``NormalizingFlow``, a
    ``ContinuousFlow``); the result is differentiable in ``params``.
    """
    if not hasattr(model, "with_params"):
        raise TypeError(
            f"model: expected a distribution with with_params (a NormalizingFlow, a "
            f"ContinuousFlow), got {type(model).__name__}"
        )
    return -jnp.mean(model.with_params(params).log_prob(x))


def hamiltonian_flow_loss(model, params, q, key, *, num_samples: int = 1, objective="elbo"):
    """Negative mean bound of ``q: (n, dim)`` under ``model.with_params(params)``.

    ``objective="elbo"``: ``-mean ELBO`` (``num_samples`` draws averaged);
    ``"iwae"``: ``-mean IWAE_{num_samples}``.
    """
    check_choice("objective", objective, LIKELIHOOD_BOUNDS)
    nhf = model.with_params(params)
    if objective == "iwae":
        return -jnp.mean(nhf.log_prob_iwae(q, key, num_samples))
    return -jnp.mean(nhf.elbo(q, key, num_samples))


def bits_per_dim(log_prob, num_dims: int, num_levels: int | None = None, interval=None):
    """Bits per dimension from a log-likelihood in nats.

    * ``num_levels=None``: ``log_prob`` is used as is, ``bpd = -log_prob / (D log 2)`` -- right
      for a log-probability *mass* of discrete data (RBM, categoricals), or to report a
      continuous density in bits/dim.
    * ``num_levels=L``: ``log_prob = log p(x)`` is a continuous density of dequantized data
      ``x = low + (high - low) (raw + u) / L``, ``u ~ U[0, 1)^D``
      (:func:`numpyro_hgf.datasets.dequantize` with the same ``interval``).  Each discrete
      value owns a cell of width ``scale = (high - low) / L`` per dimension, so (Jensen's
      inequality; Theis et al. 2016)::

          log P(raw) >= E_u[log p(x)] + D log(scale)

          bpd = -(log p(x) + D log(scale)) / (D log 2)

      e.g. data in ``[-1, 1]`` from 17 levels: ``x = 2 (raw + u) / 17 - 1``,
      ``log P(raw) ~ log p(x) + D log(2 / 17)``.  The uniform density on ``[-1, 1]^D``
      (``log p = -D log 2``) gives ``bpd = log2(17) = 4.087``.  Averaging this over ``u`` and
      over data gives an upper bound on the discrete bits/dim.

    Args:
      log_prob: log-likelihood in nats per example, summed over its ``D`` dimensions; any shape
        (a scalar, or ``(batch,)``; average the result yourself).
      num_dims: ``D``, the number of dimensions per example (64 for 8x8 digits).
      num_levels: number of discrete levels ``L`` of the data, or ``None`` (see above).
      interval: ``(low, high)`` of the continuous data; only with ``num_levels``; default
        ``(0, 1)``.

    Returns:
      Array of the shape of ``log_prob``: bits per dimension.
    """
    num_dims = check_positive_int("num_dims", num_dims)
    dtype = getattr(log_prob, "dtype", None)
    if dtype is None:
        dtype = np.asarray(log_prob).dtype
    if not np.issubdtype(dtype, np.number) or dtype == np.bool_:
        raise TypeError(f"log_prob: expected a numeric array, got {describe(log_prob)}")
    log_prob = jnp.asarray(log_prob)
    if not jnp.issubdtype(log_prob.dtype, jnp.number) or log_prob.dtype == jnp.bool_:
        raise TypeError(f"log_prob: expected a numeric array, got {describe(log_prob)}")
    if not jnp.issubdtype(log_prob.dtype, jnp.floating):
        log_prob = log_prob.astype(jnp.float32)
    if num_levels is None:
        if interval is not None:
            raise ValueError(
                f"interval: only meaningful together with num_levels, got interval={interval!r} "
                "and num_levels=None"
            )
        log_scale = 0.0
    else:
        num_levels = check_positive_int("num_levels", num_levels)
        low, high = (0.0, 1.0) if interval is None else check_interval("interval", interval)
        log_scale = math.log((high - low) / num_levels)
    return -(log_prob + num_dims * log_scale) / (num_dims * math.log(2.0))
