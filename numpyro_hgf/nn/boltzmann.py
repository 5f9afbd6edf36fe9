"""Energies of Boltzmann machines: the *field* of the RBM / Boltzmann-machine row.

A Boltzmann machine's learned field is its weights and biases with an energy function; the
functions here are pure and take the params dicts of the distributions:

* restricted (Smolensky 1986; Hinton 2002), ``params = {"W": (V, H), "b_visible": (V,),
  "b_hidden": (H,)}``, visible ``v`` and hidden ``h`` in ``{0, 1}``::

      E(v, h) = -b_vᵀ v - b_hᵀ h - vᵀ W h,
      F(v) = -b_vᵀ v - Σ_j softplus(b_h,j + (vᵀ W)_j)      (free energy, h summed out),

  with the factorised conditionals ``p(h_j = 1 | v) = σ(b_h,j + (vᵀW)_j)`` and
  ``p(v_i = 1 | h) = σ(b_v,i + (W h)_i)``;
* fully visible (Ackley, Hinton & Sejnowski 1985), ``params = {"W": (d, d), "b": (d,)}``,
  spins ``y`` in ``{-1, +1}``, ``W`` symmetric with zero diagonal::

      E(y) = -½ yᵀ W y - bᵀ y.

``log Z`` is exact by enumerating the ``2^k`` states of the smaller layer (``k <= 20``), in
chunks under ``lax.map`` so that memory stays bounded.  The Gibbs sweeps that sample these
models live with the other samplers (:mod:`numpyro_hgf.samplers.block_gibbs`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "EXACT_MAX_UNITS",
    "rbm_free_energy",
    "rbm_hidden_probs",
    "rbm_visible_probs",
    "rbm_log_normalizer_exact",
    "rbm_mean_field_visible",
    "bm_energy",
    "bm_log_normalizer_exact",
    "logsumexp_over_binary_states",
    "log_odds",
    "rbm_pseudo_log_likelihood",
]

#: Largest layer (number of units) whose ``2^k`` states are enumerated for an exact ``log Z``.
EXACT_MAX_UNITS = 20
_CHUNK = 2**14  # states per enumeration chunk (bounded memory: _CHUNK x max(V, H) floats)


# -- restricted Boltzmann machines -------------------------------------------------------------
def rbm_free_energy(params, v):
    """``F(v) = -b_vᵀv - Σ_j softplus(b_h,j + (vᵀW)_j)``; ``v: (..., V) -> (...)``."""
    v = jnp.asarray(v, params["W"].dtype)
    pre = v @ params["W"] + params["b_hidden"]
    return -(v @ params["b_visible"]) - jnp.sum(jax.nn.softplus(pre), axis=-1)


def rbm_hidden_probs(params, v):
    """``p(h = 1 | v) = σ(vW + b_h)``; ``v: (..., V) -> (..., H)``."""
    return jax.nn.sigmoid(jnp.asarray(v, params["W"].dtype) @ params["W"] + params["b_hidden"])


def rbm_visible_probs(params, h):
    """``p(v = 1 | h) = σ(W h + b_v)``; ``h: (..., H) -> (..., V)``."""
    return jax.nn.sigmoid(jnp.asarray(h, params["W"].dtype) @ params["W"].T + params["b_visible"])


def logsumexp_over_binary_states(fn, k: int, *, spins: bool = False, dtype=jnp.float32):
    """``logsumexp`` of ``fn(states)`` over all ``2^k`` binary vectors of length ``k``.

    ``fn: (C, k) -> (C,)`` is evaluated on chunks of at most ``2^14`` states (under
    ``lax.map``), so memory is bounded for ``k`` up to :data:`EXACT_MAX_UNITS`.  States are
    ``{0, 1}`` (or ``{-1, +1}`` with ``spins=True``); differentiable through ``fn``.
    """
    total = 2**k
    chunk = min(total, _CHUNK)
    bits = jnp.arange(k, dtype=jnp.int32)

    def states(start):
        idx = start + jnp.arange(chunk, dtype=jnp.int32)
        s = ((idx[:, None] >> bits) & 1).astype(dtype)
        return 2.0 * s - 1.0 if spins else s

    def chunk_lse(start):
        return jax.scipy.special.logsumexp(fn(states(start)))

    if total == chunk:
        return chunk_lse(jnp.int32(0))
    starts = jnp.arange(0, total, chunk, dtype=jnp.int32)
    return jax.scipy.special.logsumexp(jax.lax.map(chunk_lse, starts))


def rbm_log_normalizer_exact(params):
    """Exact ``log Z`` by enumerating the smaller layer (``min(V, H) <= 20``)."""
    W, b, c = params["W"], params["b_visible"], params["b_hidden"]
    V, H = W.shape
    if min(V, H) > EXACT_MAX_UNITS:
        raise ValueError(
            f"params: exact log Z enumerates 2^min(V, H) states and needs min(V, H) <= "
            f"{EXACT_MAX_UNITS}, got V={V}, H={H}; use method='ais'"
        )
    if H <= V:
        # sum over h of exp(b_hᵀh) prod_i (1 + exp(b_v,i + (W h)_i))
        fn = lambda h: h @ c + jnp.sum(jax.nn.softplus(h @ W.T + b), axis=-1)
        return logsumexp_over_binary_states(fn, H, dtype=W.dtype)
    return logsumexp_over_binary_states(lambda v: -rbm_free_energy(params, v), V, dtype=W.dtype)


def log_odds(p, eps: float = 1e-3):
    """``log(p / (1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]``."""
    p = jnp.clip(p, eps, 1.0 - eps)
    return jnp.log(p) - jnp.log1p(-p)


def rbm_mean_field_visible(params, num_iters: int = 50, damping: float = 0.5):
    """Mean-field visible marginals ``m ≈ E[v]``: damped iterations of
    ``m <- σ(b_v + W σ(b_h + Wᵀ m))`` from ``σ(b_v)``; ``(V,)``."""
    W, b, c = params["W"], params["b_visible"], params["b_hidden"]

    def body(_, m):
        new = jax.nn.sigmoid(b + W @ jax.nn.sigmoid(c + m @ W))
        return damping * m + (1.0 - damping) * new

    return jax.lax.fori_loop(0, num_iters, body, jax.nn.sigmoid(b))


# -- fully visible Boltzmann machines ------------------------------------------------------------
def bm_energy(params, y):
    """``E(y) = -½ yᵀWy - bᵀy``; ``y: (..., d) -> (...)``."""
    W, b = params["W"], params["b"]
    y = jnp.asarray(y, W.dtype)
    return -0.5 * jnp.sum((y @ W) * y, axis=-1) - y @ b


def bm_log_normalizer_exact(params):
    """Exact ``log Z`` by enumerating the ``2^d`` spin states (``d <= 20``)."""
    d = params["W"].shape[0]
    if d > EXACT_MAX_UNITS:
        raise ValueError(
            f"params: exact log Z enumerates 2^d states and needs d <= {EXACT_MAX_UNITS}, "
            f"got d={d}; use method='ais'"
        )
    return logsumexp_over_binary_states(
        lambda y: -bm_energy(params, y), d, spins=True, dtype=params["W"].dtype
    )


def rbm_pseudo_log_likelihood(params, v):
    """``sum_i log p(v_i | v_-i)`` (Besag 1975), the tractable stand-in for ``log p(v)`` when
    ``log Z`` cannot be enumerated: ``log p(v_i | v_-i) = -F(v) - logaddexp(-F(v), -F(v^(i)))``
    with ``v^(i)`` the vector ``v`` with unit ``i`` flipped.  ``v: (..., V) -> (...)``; ``V``
    free energies per row."""
    v = jnp.asarray(v, params["W"].dtype)
    neg_f = -rbm_free_energy(params, v)
    eye = jnp.eye(v.shape[-1], dtype=v.dtype)
    flipped = v[..., None, :] * (1 - eye) + (1 - v[..., None, :]) * eye  # (..., V, V)
    neg_f_flip = -rbm_free_energy(params, flipped)
    return jnp.sum(neg_f[..., None] - jnp.logaddexp(neg_f[..., None], neg_f_flip), axis=-1)
