"""Contrastive divergence (Hinton 2002) for restricted Boltzmann machines.

The log-likelihood gradient of an RBM with free energy ``F`` is

    ∇_θ log p(v) = -∇_θ F(v) + E_{v' ~ p}[∇_θ F(v')],

and CD-k replaces the intractable model expectation by ``v'`` = the end of a ``k``-step
block-Gibbs chain started at the data (persistent CD, Tieleman 2008: started at the
previous step's chains).  Written as a *surrogate loss* whose gradient is the (negated)
CD gradient,

    L(θ) = mean F_θ(v_data) - mean F_θ(stop_gradient(v_model)),

any optax optimizer on the :class:`~numpyro_hgf.train.Trainer` core performs CD learning.
The hidden units enter through ``∂F/∂θ`` analytically (their conditional expectations,
the Rao-Blackwellised statistics ``σ(vW + b_h)``), as in Hinton's update rule.  The value of
``L`` is a free-energy gap, not a log-likelihood; monitor likelihood with
``BernoulliRBM.log_prob`` (exact or AIS) instead.

References:
    G. E. Hinton, "Training products of experts by minimizing contrastive divergence",
    Neural Computation 14(8), 2002.  T. Tieleman, "Training restricted Boltzmann machines
    using approximations to the likelihood gradient", ICML 2008.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from numpyro_hgf._checks import (
    check_event_shape,
    check_key,
    check_nonnegative_float,
    check_positive_int,
)
from numpyro_hgf.nn.boltzmann import rbm_free_energy
from numpyro_hgf.samplers.block_gibbs import rbm_gibbs_sweep

__all__ = ["contrastive_divergence", "rbm_cd_loss", "rbm_pcd_loss"]


def contrastive_divergence(rbm_params, v_data, key, k: int = 1, v_init=None):
    """CD-k surrogate loss and negative samples.

    Args:
        rbm_params: ``{"W": (V, H), "b_visible": (V,), "b_hidden": (H,)}``
            (``BernoulliRBM.params``; an RBM itself is accepted too).
        v_data: ``(batch, V)`` binary data.
        key: ``jax.random`` key for the Gibbs chain.
        k: number of block-Gibbs sweeps (static positive int).
        v_init: ``(num_chains, V)`` chain starts for the negative phase; default
            ``v_data`` (CD-k).  Pass the previous negative samples for persistent CD.

    Returns:
        ``(loss, v_model)``: the scalar surrogate ``mean F(v_data) - mean F(v_model)``
        (its gradient w.r.t. ``rbm_params`` is minus the CD-k estimate of the
        log-likelihood gradient) and the ``(num_chains, V)`` negative samples (gradients
        stopped).
    """
    k = check_positive_int("k", k)
    if hasattr(rbm_params, "params") and not isinstance(rbm_params, dict):
        rbm_params = rbm_params.params  # a BernoulliRBM
    num_visible = jnp.shape(rbm_params["W"])[-2]
    check_event_shape("v_data", v_data, (num_visible,))
    if v_init is not None:
        check_event_shape("v_init", v_init, (num_visible,))
    check_key("key", key)
    v_data = jnp.asarray(v_data, rbm_params["W"].dtype)
    v = v_data if v_init is None else jnp.asarray(v_init, rbm_params["W"].dtype)
    v = jax.lax.stop_gradient(v)
    frozen = jax.lax.stop_gradient(rbm_params)

    def sweep(v, kk):
        return rbm_gibbs_sweep(frozen, kk, v), None

    v_model, _ = jax.lax.scan(sweep, v, jax.random.split(key, k))
    v_model = jax.lax.stop_gradient(v_model)
    loss = jnp.mean(rbm_free_energy(rbm_params, v_data)) - jnp.mean(
        rbm_free_energy(rbm_params, v_model)
    )
    return loss, v_model


def _weight_decay_term(rbm_params, weight_decay: float):
    if not weight_decay:
        return 0.0
    return 0.5 * weight_decay * jnp.sum(rbm_params["W"] ** 2)


def rbm_cd_loss(k: int = 1, weight_decay: float = 0.0):
    """``loss_fn(rbm_params, batch, key)`` for CD-k on the trainer core."""
    k = check_positive_int("k", k)
    weight_decay = check_nonnegative_float("weight_decay", weight_decay)

    def loss_fn(params, batch, key):
        loss, _ = contrastive_divergence(params, batch, key, k=k)
        return loss + _weight_decay_term(params, weight_decay)

    return loss_fn


def rbm_pcd_loss(k: int = 1, weight_decay: float = 0.0):
    """``loss_fn(rbm_params, batch, key, chains) -> (loss, new_chains)`` for persistent CD-k
    (Tieleman 2008): the negative phase continues the persistent ``chains``."""
    k = check_positive_int("k", k)
    weight_decay = check_nonnegative_float("weight_decay", weight_decay)

    def loss_fn(params, batch, key, chains):
        loss, v_model = contrastive_divergence(params, batch, key, k=k, v_init=chains)
        return loss + _weight_decay_term(params, weight_decay), jax.lax.stop_gradient(v_model)

    return loss_fn
