"""``DeepBeliefNet``: an RBM on top of a directed sigmoid belief net (Hinton, Osindero & Teh 2006).

Layers ``x_0 = v, x_1, ..., x_L`` (``L >= 2``), ``params = {"weights": (W_1, ..., W_L),
"biases": (b_0, ..., b_L)}`` as for the deep Boltzmann machine
(:mod:`numpyro_hgf.nn.deep_boltzmann`), but only the top two layers are undirected:

    p(x_{L-1}, x_L) = RBM(W_L, b_{L-1}, b_L),
    p(x_{l-1} = 1 | x_l) = σ(b_{l-1} + x_l W_lᵀ)     (l = L-1, ..., 1),

so :meth:`DeepBeliefNet.sample` runs a block-Gibbs chain of the top RBM and then one
ancestral down-pass.  It is what greedy layer-wise training of a stack of RBMs yields
(:func:`numpyro_hgf.train.dbm.pretrain_dbn`; each RBM's visible biases become the generative
biases of its layer), and the pre-training stage of :func:`numpyro_hgf.train.fit_dbm`.

``log p(v) = log Σ_{x_1..x_{L-1}} p(x_{L-1}) Π_l p(x_{l-1} | x_l)`` is exact by enumeration
when ``n_1 + ... + n_{L-1} <= 20`` (the top RBM's marginal ``p(x_{L-1}) = exp(-F(x_{L-1})) /
Z`` with ``Z`` enumerated too); otherwise :meth:`log_prob` raises.

References:
    G. E. Hinton, S. Osindero and Y.-W. Teh, "A fast learning algorithm for deep belief nets",
    Neural Computation 18 (2006).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Distribution, constraints
from numpyro.distributions.util import validate_sample

from numpyro_hgf._checks import check_binary, check_event_shape, check_key, check_positive_int
from numpyro_hgf.distributions.deep_boltzmann import check_layer_params, each_of
from numpyro_hgf.flows._batched_params import (
    map_over_param_batch,
    register_param_batch,
    sample_over_param_batch,
)
from numpyro_hgf.nn.boltzmann import (
    EXACT_MAX_UNITS,
    logsumexp_over_binary_states,
    rbm_free_energy,
    rbm_log_normalizer_exact,
)
from numpyro_hgf.samplers.block_gibbs import rbm_gibbs_sweep

__all__ = ["DeepBeliefNet", "dbn_log_prob_exact", "dbn_top_rbm_params"]


def dbn_top_rbm_params(params) -> dict:
    """The top RBM ``{"W": W_L, "b_visible": b_{L-1}, "b_hidden": b_L}``."""
    return {
        "W": params["weights"][-1],
        "b_visible": params["biases"][-2],
        "b_hidden": params["biases"][-1],
    }


def _bernoulli_log_prob(x, logits):
    return jnp.sum(x * logits - jax.nn.softplus(logits), axis=-1)


def dbn_log_prob_exact(params, v):
    """Exact ``log p(v)`` enumerating the layers ``1..L-1`` jointly; ``v: (..., V) -> (...)``."""
    W, b = params["weights"], params["biases"]
    sizes = [int(x.shape[0]) for x in b]
    mid = sizes[1:-1]
    k = sum(mid)
    offsets = np.cumsum([0, *mid])
    top = dbn_top_rbm_params(params)
    log_z_top = rbm_log_normalizer_exact(top)

    def per_row(row):
        def fn(states):  # (C, k): the layers 1..L-1
            layers = [row] + [states[:, offsets[i] : offsets[i + 1]] for i in range(len(mid))]
            out = -rbm_free_energy(top, layers[-1]) - log_z_top
            for i in range(1, len(layers)):  # log p(x_{i-1} | x_i)
                out = out + _bernoulli_log_prob(layers[i - 1], b[i - 1] + layers[i] @ W[i - 1].T)
            return out

        return logsumexp_over_binary_states(fn, k, dtype=W[0].dtype)

    v = jnp.asarray(v, W[0].dtype)
    return jax.vmap(per_row)(v.reshape(-1, sizes[0])).reshape(v.shape[:-1])


@functools.partial(jax.jit, static_argnames=("num_chains",))
def _sample(params, key, num_steps, num_chains: int):
    W, b = params["weights"], params["biases"]
    top = dbn_top_rbm_params(params)
    keys = jax.random.split(key, len(W) + 1)
    x = jax.random.bernoulli(keys[0], jax.nn.sigmoid(b[-2]), (num_chains, b[-2].shape[0]))
    x = jax.lax.fori_loop(
        0,
        num_steps,
        lambda i, x: rbm_gibbs_sweep(top, jax.random.fold_in(keys[1], i), x),
        x.astype(W[0].dtype),
    )
    for i in range(len(W) - 1, 0, -1):  # down-pass x_{i-1} | x_i
        probs = jax.nn.sigmoid(b[i - 1] + x @ W[i - 1].T)
        x = jax.random.bernoulli(keys[i + 1], probs).astype(W[0].dtype)
    return x


_exact = jax.jit(dbn_log_prob_exact)


@register_param_batch
class DeepBeliefNet(Distribution):
    """Deep belief net over binary ``v ∈ {0,1}^V`` (Hinton, Osindero & Teh 2006).

    Args:
        weights: ``(W_1, ..., W_L)``, ``L >= 2``, ``W_l: (n_{l-1}, n_l)``.
        biases: ``(b_0, ..., b_L)`` (default zeros): ``b_0..b_{L-2}`` generative biases,
            ``b_{L-1}, b_L`` the top RBM's.
        num_gibbs_steps: sweeps of the top RBM's chain in :meth:`sample` (static aux field).
        validate_args: NumPyro's argument validation.

    Shapes: ``event_shape = (V,)``, ``batch_shape = ()``; ``sample(key, sample_shape) ->
    (*sample_shape, V)``; ``log_prob(v: (..., V)) -> (...)`` (exact; needs
    ``n_1 + ... + n_{L-1} <= 20``).
    """

    arg_constraints = {
        "weights": each_of(constraints.real_matrix),
        "biases": each_of(constraints.real_vector),
    }
    support = constraints.independent(constraints.boolean, 1)
    pytree_data_fields = ("weights", "biases")
    pytree_aux_fields = ("num_gibbs_steps",)

    def __init__(self, weights, biases=None, *, num_gibbs_steps: int = 1000, validate_args=None):
        self.weights, self.biases = check_layer_params(weights, biases, min_hidden_layers=2)
        self.num_gibbs_steps = check_positive_int("num_gibbs_steps", num_gibbs_steps)
        V = self.biases[0].shape[0]
        super().__init__(batch_shape=(), event_shape=(V,), validate_args=validate_args)

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return tuple(int(b.shape[-1]) for b in self.biases)

    @property
    def param_batch_shape(self) -> tuple[int, ...]:
        """Leading dims of the weights beyond ``(n_l, n_{l+1})`` (``()`` for one net)."""
        return tuple(jnp.shape(self.weights[0])[:-2])

    @property
    def params(self) -> dict:
        """``{"weights": (W_1, ..., W_L), "biases": (b_0, ..., b_L)}``."""
        return {"weights": self.weights, "biases": self.biases}

    @property
    def exact_log_prob_available(self) -> bool:
        """Whether the layers ``1..L-1`` have at most 20 units together."""
        return sum(self.layer_sizes[1:-1]) <= EXACT_MAX_UNITS

    def sample(self, key, sample_shape=()):
        """Top-RBM Gibbs chains (:attr:`num_gibbs_steps` sweeps from ``Bernoulli(σ(b_{L-1}))``),
        then the ancestral down-pass; float 0/1."""
        sample_shape = tuple(sample_shape)
        check_key("key", key)
        if self.param_batch_shape:
            sample = type(self).sample
            return sample_over_param_batch(self, self.param_batch_shape, sample, key, sample_shape)
        n = int(np.prod(sample_shape, dtype=np.int64))
        v = _sample(self.params, key, jnp.int32(self.num_gibbs_steps), num_chains=max(n, 1))[:n]
        return v.reshape(sample_shape + self.event_shape)

    @validate_sample
    def log_prob(self, value):
        """Exact ``log p(v)`` (see the module docstring); ``value: (..., V) -> (...)``."""
        if self.param_batch_shape:  # stacked nets: (..., *B, V) -> (..., *B)
            batch, log_prob = self.param_batch_shape, type(self).log_prob
            return map_over_param_batch(self, batch, log_prob, value, 1)
        check_event_shape("value", value, self.event_shape)
        check_binary("value", value)
        if not self.exact_log_prob_available:
            raise ValueError(
                f"log_prob: the layers below the top of {self.layer_sizes} have "
                f"{sum(self.layer_sizes[1:-1])} units, more than the {EXACT_MAX_UNITS} an exact "
                "sum can enumerate"
            )
        return _exact(self.params, value)

    def __repr__(self) -> str:
        return (
            f"DeepBeliefNet(layer_sizes={self.layer_sizes}, num_gibbs_steps={self.num_gibbs_steps})"
        )
