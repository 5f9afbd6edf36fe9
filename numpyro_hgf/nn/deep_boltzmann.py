"""Energies of deep Boltzmann machines: the *field* of the DBM / DBN row.

A deep Boltzmann machine (Salakhutdinov & Hinton 2009) is a chain of binary layers
``x_0 = v ∈ {0,1}^V, x_1 = h¹ ∈ {0,1}^{H_1}, ..., x_L = h^L`` (``L >= 2`` hidden layers) with
undirected weights between neighbours only.  ``params = {"weights": (W_1, ..., W_L),
"biases": (b_0, ..., b_L)}`` with ``W_l: (n_{l-1}, n_l)`` and ``b_l: (n_l,)``; the energy is

    E(x) = -Σ_{l=0}^{L} b_lᵀ x_l - Σ_{l=1}^{L} x_{l-1}ᵀ W_l x_l                    (SH09 eq. 1)

and every layer depends on its two neighbours only,

    p(x_l = 1 | x_{l-1}, x_{l+1}) = σ(b_l + x_{l-1} W_l + x_{l+1} W_{l+1}ᵀ)          (SH09 eq. 2-4)

(the missing neighbour of ``x_0`` and ``x_L`` drops out), so the even layers are conditionally
independent given the odd ones and vice versa: block Gibbs alternates the two parities
(:func:`numpyro_hgf.samplers.block_gibbs.dbm_gibbs_sweep`).  Summing one parity out is
analytic:

    log Σ_{x_odd} exp(-E(x)) = Σ_{l even} b_lᵀ x_l + Σ_{l odd} Σ_j softplus(a_{l,j}),
    a_l = b_l + x_{l-1} W_l + x_{l+1} W_{l+1}ᵀ,

which gives the exact ``log Z`` by enumerating the parity with fewer units (at most
``EXACT_MAX_UNITS = 20``), and the exact unnormalised ``log p*(v) = log Σ_h exp(-E(v, h))`` by
the same enumeration on the chain of hidden layers (whose first bias is ``b_1 + v W_1``).

The **mean-field** posterior ``q(h) = Π_l Π_j Bernoulli(μ_{l,j})`` maximises the variational
lower bound (SH09 eq. 6)

    log p(v) >= -E(v, μ) + Σ_{l>=1} H(μ_l) - log Z,
    H(μ) = -Σ_j [μ_j log μ_j + (1 - μ_j) log(1 - μ_j)],

(``-E`` is multilinear in the layers, so ``E_q[-E(v, h)] = -E(v, μ)``) at the fixed point
``μ_l = σ(b_l + μ_{l-1} W_l + μ_{l+1} W_{l+1}ᵀ)`` (SH09 eq. 7; ``μ_0 = v``).  Updating all odd
layers and then all even ones is exact block coordinate ascent on the bound, so every sweep
raises it.  The start is a bottom-up pass with doubled weights into layers that have two
neighbours (the recognition pass of the pre-trained model, SH09 §3.1).

References:
    R. Salakhutdinov and G. E. Hinton, "Deep Boltzmann machines", AISTATS 2009 (SH09).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from numpyro_hgf.nn.boltzmann import EXACT_MAX_UNITS, logsumexp_over_binary_states

__all__ = [
    "dbm_layer_sizes",
    "dbm_energy",
    "dbm_layer_logits",
    "dbm_log_marginal_of_parity",
    "dbm_chain_log_partition",
    "dbm_log_normalizer_exact",
    "dbm_unnormalized_log_prob",
    "dbm_enumerated_units",
    "dbm_mean_field",
    "dbm_mean_field_bound_unnormalized",
    "dbm_interpolated_params",
    "binary_entropy",
]


def dbm_layer_sizes(params) -> tuple[int, ...]:
    """``(n_0, n_1, ..., n_L)``: the number of units per layer (``n_0 = V``)."""
    return tuple(int(b.shape[-1]) for b in params["biases"])


def dbm_energy(params, layers):
    """``E(x) = -Σ b_lᵀx_l - Σ x_{l-1}ᵀ W_l x_l``; ``layers[l]: (..., n_l) -> (...)``."""
    W, b = params["weights"], params["biases"]
    dtype = W[0].dtype
    x = [jnp.asarray(layer, dtype) for layer in layers]
    out = sum(x[i] @ b[i] for i in range(len(b)))
    return -(out + sum(jnp.sum((x[i - 1] @ W[i - 1]) * x[i], axis=-1) for i in range(1, len(b))))


def dbm_layer_logits(params, layers, layer: int):
    """``b_l + x_{l-1} W_l + x_{l+1} W_{l+1}ᵀ`` for ``l = layer`` (the log-odds of
    ``p(x_l = 1 | neighbours)``).  Only ``layers[l - 1]`` and ``layers[l + 1]`` are read
    (the others may be ``None``)."""
    W, b = params["weights"], params["biases"]
    out = b[layer]
    if layer > 0:
        out = out + jnp.asarray(layers[layer - 1], W[0].dtype) @ W[layer - 1]
    if layer < len(b) - 1:
        out = out + jnp.asarray(layers[layer + 1], W[0].dtype) @ W[layer].T
    return out


def dbm_log_marginal_of_parity(params, layers, parity: int):
    """``log Σ exp(-E(x))`` over the layers of parity ``1 - parity``, the layers of parity
    ``parity`` fixed to ``layers[l]`` (others may be ``None``); ``-> (...)``."""
    b = params["biases"]
    out = 0.0
    for i in range(len(b)):
        if i % 2 == parity:
            out = out + jnp.asarray(layers[i], b[0].dtype) @ b[i]
        else:
            out = out + jnp.sum(jax.nn.softplus(dbm_layer_logits(params, layers, i)), axis=-1)
    return out


def dbm_enumerated_units(sizes) -> tuple[int, int]:
    """``(parity, k)``: the parity whose layers are enumerated for the chain's partition
    function and its number of units ``k`` (the smaller of the two parities)."""
    even, odd = sum(sizes[0::2]), sum(sizes[1::2])
    return (0, even) if even <= odd else (1, odd)


def dbm_chain_log_partition(params):
    """``log Σ_x exp(-E(x))`` over all layers, enumerating the parity with fewer units and
    summing the other out analytically (``k <= 20`` units enumerated; scalar)."""
    sizes = dbm_layer_sizes(params)
    parity, k = dbm_enumerated_units(sizes)
    if k > EXACT_MAX_UNITS:
        raise ValueError(
            f"params: exact log Z enumerates 2^k states of the smaller parity of layers "
            f"and needs k <= {EXACT_MAX_UNITS}, got layer sizes {sizes} (k={k}); use AIS"
        )
    idx = [i for i in range(len(sizes)) if i % 2 == parity]
    offsets = [sum(sizes[j] for j in idx[:n]) for n in range(len(idx) + 1)]

    def fn(states):  # (C, k) -> (C,)
        layers = [None] * len(sizes)
        for n, i in enumerate(idx):
            layers[i] = states[:, offsets[n] : offsets[n + 1]]
        return dbm_log_marginal_of_parity(params, layers, parity)

    return logsumexp_over_binary_states(fn, k, dtype=params["weights"][0].dtype)


def dbm_log_normalizer_exact(params):
    """Exact ``log Z`` of the DBM (see :func:`dbm_chain_log_partition`)."""
    return dbm_chain_log_partition(params)


def _hidden_chain(params, v):
    """The chain of hidden layers given one visible vector ``v: (V,)``."""
    W, b = params["weights"], params["biases"]
    return {"weights": tuple(W[1:]), "biases": (b[1] + v @ W[0],) + tuple(b[2:])}


def dbm_unnormalized_log_prob(params, v):
    """``log p*(v) = log Σ_h exp(-E(v, h)) = b_0ᵀv + log Z(hidden chain | v)``; exact by
    enumerating the smaller parity of the hidden layers; ``v: (..., V) -> (...)``."""
    W, b = params["weights"], params["biases"]
    v = jnp.asarray(v, W[0].dtype)
    flat = v.reshape(-1, v.shape[-1])
    per_row = jax.vmap(lambda row: row @ b[0] + dbm_chain_log_partition(_hidden_chain(params, row)))
    return per_row(flat).reshape(v.shape[:-1])


def binary_entropy(mu):
    """``-Σ_j [μ_j log μ_j + (1 - μ_j) log(1 - μ_j)]`` over the last axis (``0 log 0 = 0``)."""
    return -jnp.sum(jax.scipy.special.xlogy(mu, mu) + jax.scipy.special.xlogy(1 - mu, 1 - mu), -1)


def dbm_mean_field(params, v, num_iters: int = 30):
    """Mean-field posterior means ``(μ_1, ..., μ_L)``, ``μ_l: (..., n_l)``, for ``v: (..., V)``.

    Start: the bottom-up pass ``μ_l = σ(b_l + m_l μ_{l-1} W_l)`` with ``m_l = 2`` for layers
    with two neighbours and ``1`` for the top one; then ``num_iters`` sweeps of the fixed
    point ``μ_l = σ(b_l + μ_{l-1} W_l + μ_{l+1} W_{l+1}ᵀ)``, odd layers first, then even
    (block coordinate ascent on the bound: it never decreases).
    """
    W, b = params["weights"], params["biases"]
    v = jnp.asarray(v, W[0].dtype)
    L = len(W)
    mu = [v]
    for i in range(1, L + 1):
        scale = 2.0 if i < L else 1.0
        mu.append(jax.nn.sigmoid(b[i] + scale * (mu[i - 1] @ W[i - 1])))

    def sweep(_, hidden):
        layers = [v, *hidden]
        for parity in (1, 0):
            for i in range(1, L + 1):
                if i % 2 == parity:
                    layers[i] = jax.nn.sigmoid(dbm_layer_logits(params, layers, i))
        return tuple(layers[1:])

    return jax.lax.fori_loop(0, num_iters, sweep, tuple(mu[1:]))


def dbm_mean_field_bound_unnormalized(params, v, mu):
    """``-E(v, μ) + Σ_l H(μ_l)``: the mean-field bound on ``log p*(v)`` (add ``-log Z`` for
    the bound on ``log p(v)``); ``v: (..., V)``, ``mu[l-1]: (..., n_l) -> (...)``."""
    return -dbm_energy(params, (v, *mu)) + sum(binary_entropy(m) for m in mu)


def dbm_interpolated_params(params, base_biases, beta):
    """The AIS path of Salakhutdinov & Hinton (2009, §3.2 / SM08): weights ``β W_l`` and
    biases ``(1 - β) a_l + β b_l`` between the independent-units base (``W = 0``, biases
    ``base_biases = (a_0, ..., a_L)``) at ``β = 0`` and the DBM at ``β = 1``."""
    return {
        "weights": tuple(beta * w for w in params["weights"]),
        "biases": tuple(
            (1.0 - beta) * a + beta * b for a, b in zip(base_biases, params["biases"], strict=True)
        ),
    }
