"""Objectives of deep Boltzmann machines (Salakhutdinov & Hinton 2009): the greedy
pre-training modules and the joint mean-field + persistent-chain learning rule.

Both are *surrogate losses* whose gradients are the (negated) learning rules; their values
are energy gaps, not likelihoods (monitor ``DeepBoltzmannMachine.mean_field_bound``).

* :func:`scaled_rbm_cd_loss` -- CD-k for an RBM whose hidden input is multiplied by
  ``up_scale`` and whose visible input by ``down_scale``: the RBM with ``up_scale`` tied
  copies of the visible layer and ``down_scale`` of the hidden one.  In a DBM a hidden layer
  gets input from both neighbours; pre-training each module with the input of the layers
  that will have two neighbours doubled (SH09 §3.1, Fig. 2: bottom module ``(2, 1)``, top
  ``(1, 2)``, middle ``(2, 2)``) keeps that input about right once the modules are composed.
  The update is ``ΔW ∝ ⟨v hᵀ⟩_data - ⟨v hᵀ⟩_model`` with ``h`` the conditional means
  ``σ(up_scale v W + b_h)``.
* :func:`dbm_pcd_loss` -- the joint rule (SH09 §2.2, Algorithm 1): the data term uses the
  mean-field posterior ``μ(v)`` (:func:`~numpyro_hgf.nn.deep_boltzmann.dbm_mean_field`), the
  model term persistent block-Gibbs chains (Tieleman 2008); since ``-E`` is linear in the
  params, ``L(θ) = mean E_θ(v, μ) - mean E_θ(x_model)`` (both stopped) has gradient
  ``-(E_data,q[x_{l-1} x_lᵀ] - E_model[x_{l-1} x_lᵀ])`` for ``W_l`` (likewise the biases).

References:
    R. Salakhutdinov and G. E. Hinton, "Deep Boltzmann machines", AISTATS 2009 (SH09).
    T. Tieleman, "Training restricted Boltzmann machines using approximations to the
    likelihood gradient", ICML 2008.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from numpyro_hgf._checks import check_nonnegative_float, check_positive_float, check_positive_int
from numpyro_hgf.nn.deep_boltzmann import dbm_energy, dbm_mean_field
from numpyro_hgf.samplers.block_gibbs import dbm_gibbs_sweep

__all__ = ["scaled_rbm_cd_loss", "dbm_pcd_loss"]


def _rbm_statistics_surrogate(params, v_data, h_data, v_model, h_model):
    """``-(tr Wᵀ(⟨vhᵀ⟩_d - ⟨vhᵀ⟩_m) + b_vᵀ(⟨v⟩_d - ⟨v⟩_m) + b_hᵀ(⟨h⟩_d - ⟨h⟩_m))``."""
    stats = jax.lax.stop_gradient(
        (
            (v_data.T @ h_data) / v_data.shape[0] - (v_model.T @ h_model) / v_model.shape[0],
            jnp.mean(v_data, 0) - jnp.mean(v_model, 0),
            jnp.mean(h_data, 0) - jnp.mean(h_model, 0),
        )
    )
    return -(
        jnp.sum(params["W"] * stats[0])
        + params["b_visible"] @ stats[1]
        + params["b_hidden"] @ stats[2]
    )


def scaled_rbm_cd_loss(up_scale: float = 1.0, down_scale: float = 1.0, k: int = 1):
    """``loss_fn(rbm_params, batch, key)``: CD-k of an RBM with scaled inputs (see the
    module docstring); ``rbm_params = {"W": (V, H), "b_visible": (V,), "b_hidden": (H,)}``,
    ``batch: (n, V)`` values in ``[0, 1]`` (binary data or the means of the layer below).
    With ``up_scale = down_scale = 1`` it is ordinary CD-k (Hinton 2002)."""
    up_scale = check_positive_float("up_scale", up_scale)
    down_scale = check_positive_float("down_scale", down_scale)
    k = check_positive_int("k", k)

    def hidden_probs(p, v):
        return jax.nn.sigmoid(up_scale * (v @ p["W"]) + p["b_hidden"])

    def loss_fn(params, batch, key):
        frozen = jax.lax.stop_gradient(params)
        v_data = jnp.asarray(batch, params["W"].dtype)
        h_data = hidden_probs(frozen, v_data)

        def sweep(carry, kk):
            v, h_probs = carry
            kh, kv = jax.random.split(kk)
            h = jax.random.bernoulli(kh, h_probs).astype(v.dtype)
            logits = down_scale * (h @ frozen["W"].T) + frozen["b_visible"]
            v = jax.random.bernoulli(kv, jax.nn.sigmoid(logits)).astype(v.dtype)
            return (v, hidden_probs(frozen, v)), None

        (v_model, h_model), _ = jax.lax.scan(sweep, (v_data, h_data), jax.random.split(key, k))
        return _rbm_statistics_surrogate(params, v_data, h_data, v_model, h_model)

    return loss_fn


def dbm_pcd_loss(num_mean_field_iters: int = 10, k: int = 1, weight_decay: float = 0.0):
    """``loss_fn(dbm_params, batch, key, chains) -> (loss, new_chains)``: the mean-field
    E-step on the minibatch and ``k`` block-Gibbs sweeps of the persistent ``chains``
    (a tuple ``(v, h¹, ..., h^L)`` of ``(num_chains, n_l)`` states) for the M-step gradient;
    ``weight_decay`` adds ``½ λ Σ_l ||W_l||²``."""
    num_mean_field_iters = check_positive_int("num_mean_field_iters", num_mean_field_iters)
    k = check_positive_int("k", k)
    weight_decay = check_nonnegative_float("weight_decay", weight_decay)

    def loss_fn(params, batch, key, chains):
        frozen = jax.lax.stop_gradient(params)
        v = jnp.asarray(batch, params["weights"][0].dtype)
        mu = jax.lax.stop_gradient(dbm_mean_field(frozen, v, num_mean_field_iters))

        def sweep(x, kk):
            return dbm_gibbs_sweep(frozen, kk, x), None

        chains, _ = jax.lax.scan(sweep, tuple(chains), jax.random.split(key, k))
        chains = jax.lax.stop_gradient(chains)
        loss = jnp.mean(dbm_energy(params, (v, *mu))) - jnp.mean(dbm_energy(params, chains))
        if weight_decay:
            loss = loss + 0.5 * weight_decay * sum(jnp.sum(w**2) for w in params["weights"])
        return loss, chains

    return loss_fn
