"""``BernoulliRBM``: a restricted Boltzmann machine over binary vectors as a NumPyro distribution.

Row "RBM / Boltzmann machine" of the package's table: learned field = weights and biases,
path = a block-Gibbs chain, objective = contrastive divergence
(:func:`numpyro_hgf.objectives.contrastive.contrastive_divergence`).

An RBM with visible ``v ∈ {0,1}^V`` and hidden ``h ∈ {0,1}^H`` units has energy

    E(v, h) = -b_vᵀ v - b_hᵀ h - vᵀ W h,     p(v, h) = exp(-E(v, h)) / Z,

both conditionals factorise (``p(h_j = 1 | v) = σ(b_h,j + (vᵀW)_j)``,
``p(v_i = 1 | h) = σ(b_v,i + (W h)_i)``), and summing out ``h`` gives the free energy

    F(v) = -b_vᵀ v - Σ_j softplus(b_h,j + (vᵀ W)_j),     p(v) = exp(-F(v)) / Z.

``log Z`` is computed *exactly* by enumerating the ``2^k`` states of the smaller layer
when ``k = min(V, H) <= 20`` (in chunks under ``lax.map``, so memory stays bounded), and
otherwise estimated by annealed importance sampling (Salakhutdinov & Murray 2008) with the
generic driver :func:`numpyro_hgf.samplers.ais.annealed_importance_sampling`.

The pure functions (``rbm_*``) take ``params = {"W": (V, H), "b_visible": (V,),
"b_hidden": (H,)}``; the class wraps them as a NumPyro distribution.

References:
    P. Smolensky (1986); G. E. Hinton, "Training products of experts by minimizing
    contrastive divergence", Neural Computation 14 (2002); R. Salakhutdinov and I. Murray,
    "On the quantitative analysis of deep belief networks", ICML 2008.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from numpyro.distributions import constraints

from numpyro_hgf._checks import (
    check_binary,
    check_finite,
    check_positive_int,
)
from numpyro_hgf.distributions.unnormalized import LayeredMachine, UnnormalizedDistribution
from numpyro_hgf.flows._batched_params import register_param_batch
from numpyro_hgf.io import register_model
from numpyro_hgf.nn.boltzmann import (  # noqa: F401  (rbm_hidden_probs, ...: their place before 0.2)
    EXACT_MAX_UNITS,
    log_odds,
    logsumexp_over_binary_states,
    rbm_free_energy,
    rbm_hidden_probs,
    rbm_log_normalizer_exact,
    rbm_mean_field_visible,
    rbm_visible_probs,
)
from numpyro_hgf.samplers.ais import AISResult, annealed_importance_sampling
from numpyro_hgf.samplers.block_gibbs import rbm_gibbs_sweep  # noqa: F401

__all__ = ["BernoulliRBM", "rbm_log_normalizer_ais"]


def rbm_log_normalizer_ais(params, key, base_visible_bias, betas, num_chains: int) -> AISResult:
    """AIS estimate of ``log Z`` (Salakhutdinov & Murray 2008).

    Base: the RBM with ``W = 0``, ``b_h = 0`` and visible biases ``base_visible_bias``
    (``None``: the log-odds of the mean-field visible marginals)
    (independent Bernoulli visibles, ``log Z_A = H log 2 + Σ_i softplus(b_A,i)``, drawn
    exactly).  Intermediate distributions interpolate the parameters,
    ``p_β ∝ RBM(βW, (1-β) b_A + β b_v, β b_h)`` -- the marginal of the geometric path on
    the joint ``(v, h)``; the weights use the marginals ``p*_β(v)`` (hidden units summed
    out), and the transitions are block-Gibbs sweeps of ``p_β``.

    Returns an :class:`~numpyro_hgf.samplers.ais.AISResult` whose ``log_normalizer_ratio`` is the
    estimate of ``log Z`` itself (the base normaliser added back).
    """
    W, b, c = params["W"], params["b_visible"], params["b_hidden"]
    V, H = W.shape
    if base_visible_bias is None:
        base_visible_bias = log_odds(rbm_mean_field_visible(params))
    b_a = jnp.asarray(base_visible_bias, W.dtype)
    log_z_base = H * math.log(2.0) + jnp.sum(jax.nn.softplus(b_a))

    def log_density(v, beta):
        vis = (1.0 - beta) * b_a + beta * b
        return v @ vis + jnp.sum(jax.nn.softplus(beta * (v @ W + c)), axis=-1)

    def transition(key, v, beta):
        kh, kv = jax.random.split(key)
        h = jax.random.bernoulli(kh, jax.nn.sigmoid(beta * (v @ W + c))).astype(W.dtype)
        logits = (1.0 - beta) * b_a + beta * (b + h @ W.T)
        return jax.random.bernoulli(kv, jax.nn.sigmoid(logits)).astype(W.dtype)

    k0, k1 = jax.random.split(key)
    v0 = jax.random.bernoulli(k0, jax.nn.sigmoid(b_a), (num_chains, V)).astype(W.dtype)
    res = annealed_importance_sampling(
        k1,
        v0,
        lambda v: log_density(v, 0.0),
        lambda v: -rbm_free_energy(params, v),
        transition,
        betas,
        log_density=log_density,
    )
    return res._replace(log_normalizer_ratio=res.log_normalizer_ratio + log_z_base)


_exact_log_z = jax.jit(rbm_log_normalizer_exact)
_ais_log_z = jax.jit(rbm_log_normalizer_ais, static_argnames=("num_chains",))


@functools.partial(jax.jit, static_argnames=("num_chains",))
def _sample_chains(params, key, num_steps, num_chains: int):
    # start at Bernoulli(σ(b_v)); the number of sweeps is a traced loop bound, so one
    # compiled function serves any num_gibbs_steps
    k0, k1 = jax.random.split(key)
    b = params["b_visible"]
    v0 = jax.random.bernoulli(k0, jax.nn.sigmoid(b), (num_chains, b.shape[0])).astype(b.dtype)
    return jax.lax.fori_loop(
        0,
        num_steps,
        lambda i, v: rbm_gibbs_sweep(params, jax.random.fold_in(k1, i), v),
        v0,
    )


_free_energy = jax.jit(rbm_free_energy)


# --------------------------------------------------------------------------------------------
# the distribution
# --------------------------------------------------------------------------------------------


@register_model("bernoulli_rbm")
@register_param_batch
class BernoulliRBM(LayeredMachine):
    """Restricted Boltzmann machine over binary visible vectors ``v ∈ {0,1}^V``.

    Args:
        W: ``(V, H)`` weights.
        b_visible: ``(V,)`` visible biases (default zeros).
        b_hidden: ``(H,)`` hidden biases (default zeros).
        num_gibbs_steps: block-Gibbs sweeps used by :meth:`sample` (default 1000): each
            sample is the end of an independent chain started from
            ``Bernoulli(σ(b_visible))`` after ``num_gibbs_steps`` sweeps
            ``h ~ p(h | v), v ~ p(v | h)``.  Static (aux) field; set it here.
        log_normalizer: a known or estimated ``log Z`` to use in :meth:`log_prob`
            (see :meth:`with_log_normalizer`).
        validate_args: NumPyro's argument validation.

    Shapes: ``event_shape = (V,)``, ``batch_shape = ()``;
    ``sample(key, sample_shape) -> (*sample_shape, V)`` float 0/1;
    ``log_prob(v: (..., V)) -> (...)``.

    ``log_prob(v) = -F(v) - log Z``.  ``log Z`` is (in order) the value attached with
    :meth:`with_log_normalizer`, else computed exactly when ``min(V, H) <= 20`` (by
    enumerating the smaller layer; jit-safe), else :meth:`log_prob` raises a
    ``ValueError`` asking for ``rbm.with_log_normalizer(rbm.log_normalizer(method="ais",
    key=key))``.  :meth:`unnormalized_log_prob` is ``-F(v)`` (known up to the constant
    ``log Z``).  Non-binary values are a ``ValueError`` naming ``value``.

    The weights and biases (and an attached ``log Z``) are pytree data: the RBM passes
    through ``jit``/``vmap``/``grad``; :attr:`params` / :meth:`with_params` are the seam
    trainers differentiate through.  Stacked params ``W: (*B, V, H)`` (``scan``) are a batch
    of RBMs (``param_batch_shape = B``).  Samples are not reparameterized
    (``has_rsample`` is ``False``: Gibbs draws are discrete).
    """

    arg_constraints = {
        "W": constraints.real_matrix,
        "b_visible": constraints.real_vector,
        "b_hidden": constraints.real_vector,
    }
    support = constraints.independent(constraints.boolean, 1)
    pytree_data_fields = ("W", "b_visible", "b_hidden", "log_z")
    param_fields = (
        "W",
        "b_visible",
        "b_hidden",
    )  # params: ``{"W": (V, H), "b_visible": (V,), "b_hidden": (H,)}``
    params = property(UnnormalizedDistribution._field_params)
    value_check = staticmethod(check_binary)
    pytree_aux_fields = ("num_gibbs_steps",)
    exact_log_z_fn = staticmethod(_exact_log_z)
    ais_log_z_fn = staticmethod(_ais_log_z)

    def __init__(
        self,
        W,
        b_visible=None,
        b_hidden=None,
        *,
        num_gibbs_steps: int = 1000,
        log_normalizer=None,
        validate_args=None,
    ):
        W = self._float_weights(W)
        if W.ndim != 2:
            raise ValueError(f"W: expected a (V, H) matrix, got an array of shape {W.shape}")
        V, H = W.shape
        if V == 0 or H == 0:
            raise ValueError(f"W: expected at least one visible and one hidden unit, got {W.shape}")
        b_visible = self._bias("b_visible", b_visible, V, W.dtype)
        b_hidden = self._bias("b_hidden", b_hidden, H, W.dtype)
        if b_visible.shape != (V,):
            raise ValueError(
                f"b_visible: expected shape ({V},) to match W {W.shape}, got {b_visible.shape}"
            )
        if b_hidden.shape != (H,):
            raise ValueError(
                f"b_hidden: expected shape ({H},) to match W {W.shape}, got {b_hidden.shape}"
            )
        for name, x in (("W", W), ("b_visible", b_visible), ("b_hidden", b_hidden)):
            check_finite(name, x)
        self.W, self.b_visible, self.b_hidden = W, b_visible, b_hidden
        self._init_gibbs_model(V, num_gibbs_steps, log_normalizer, W.dtype, validate_args)

    # -- params -------------------------------------------------------------------------
    @property
    def num_visible(self) -> int:
        return int(self.W.shape[-2])

    @property
    def num_hidden(self) -> int:
        return int(self.W.shape[-1])

    def with_params(self, params) -> BernoulliRBM:
        """A new RBM with ``params`` (a dict like :attr:`params`); differentiable in
        ``params``.  An attached ``log Z`` is kept (see
        :mod:`numpyro_hgf.distributions.unnormalized`)."""
        missing = {"W", "b_visible", "b_hidden"} - set(params)
        if missing:
            raise ValueError(
                f"params: expected keys ['W', 'b_visible', 'b_hidden'], got {sorted(params)}"
            )
        return self._replace_data(
            W=params["W"], b_visible=params["b_visible"], b_hidden=params["b_hidden"]
        )

    # -- densities -----------------------------------------------------------------------
    def energy(self, value):
        """The free energy ``F(v)`` (hidden units summed out); ``value: (..., V) -> (...)``."""
        self._check_value(value)
        return _free_energy(self.params, value)

    free_energy = energy

    @property
    def exact_log_normalizer_available(self) -> bool:
        """Whether ``log Z`` can be enumerated (``min(V, H) <= 20``)."""
        return min(self.num_visible, self.num_hidden) <= EXACT_MAX_UNITS

    def _missing_normalizer_hint(self) -> str:
        return (
            f"with V={self.num_visible} visible and H={self.num_hidden} hidden units it cannot "
            f"be enumerated (min(V, H) > {EXACT_MAX_UNITS}); estimate it by AIS and attach it "
            "first: rbm = rbm.with_log_normalizer(rbm.log_normalizer(method='ais', key=key))"
        )

    def _exact_size_error(self) -> str | None:
        if self.exact_log_normalizer_available:
            return None
        return (
            f"enumerates 2^min(V, H) states and needs min(V, H) <= {EXACT_MAX_UNITS}, got "
            f"V={self.num_visible}, H={self.num_hidden}"
        )

    @property
    def weight_dtype(self):
        return self.W.dtype

    # -- sampling ------------------------------------------------------------------------
    def gibbs_step(self, key, v):
        """One block-Gibbs sweep ``h ~ p(h | v)``, ``v ~ p(v | h)``; ``v: (..., V)``."""
        return rbm_gibbs_sweep(self.params, key, v)

    def sample(self, key, sample_shape=()):
        """Independent Gibbs chains: start ``v ~ Bernoulli(σ(b_visible))``, run
        :attr:`num_gibbs_steps` block sweeps, return the last state (float 0/1)."""
        steps = jnp.int32(self.num_gibbs_steps)
        return self._sample_by_chains(
            key, sample_shape, lambda k, n: _sample_chains(self.params, k, steps, num_chains=n)
        )

    # -- saving ----------------------------------------------------------------------------
    def save_config(self) -> dict:
        return {
            "num_visible": self.num_visible,
            "num_hidden": self.num_hidden,
            "num_gibbs_steps": self.num_gibbs_steps,
        }

    @classmethod
    def from_config(cls, config: dict) -> BernoulliRBM:
        """A template RBM (zero params) with the shapes of :meth:`save_config`."""
        keys = ("num_visible", "num_hidden")
        missing = [k for k in keys if k not in config]
        if missing:
            raise ValueError(
                f"config: expected keys {list(keys)}, got {sorted(config)} (missing {missing})"
            )
        V = check_positive_int("num_visible", config["num_visible"])
        H = check_positive_int("num_hidden", config["num_hidden"])
        return cls(
            jnp.zeros((V, H), jnp.float32),
            num_gibbs_steps=int(config.get("num_gibbs_steps", 1000)),
        )

    def __repr__(self) -> str:
        return (
            f"BernoulliRBM(num_visible={self.num_visible}, num_hidden={self.num_hidden}, "
            f"num_gibbs_steps={self.num_gibbs_steps})"
        )
