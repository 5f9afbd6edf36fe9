"""``DeepBoltzmannMachine``: binary visible units under two or more binary hidden layers.

Row "DBM / DBN" of the package's table: learned field = weights and biases of a chain of
layers (:mod:`numpyro_hgf.nn.deep_boltzmann`, energy SH09 eq. 1), path = layer-wise block
Gibbs (:func:`numpyro_hgf.samplers.block_gibbs.dbm_gibbs_sweep`), objective = mean-field
E-step + persistent-chain M-step (:func:`numpyro_hgf.objectives.deep_boltzmann.dbm_pcd_loss`,
trained by :func:`numpyro_hgf.train.fit_dbm` after greedy pre-training).

``p(v) = Σ_h exp(-E(v, h)) / Z``.  Both ``log Z`` and the unnormalised ``log p*(v)`` are sums
over binary states; each is *exact* when the smaller parity of the layers it sums over has at
most ``EXACT_MAX_UNITS = 20`` units (the other parity is summed out analytically).  Otherwise
``log Z`` is estimated by annealed importance sampling on the even layers with the odd ones
summed out (SH09 §3.2; :func:`dbm_log_normalizer_ais`) and attached with
:meth:`~DeepBoltzmannMachine.with_log_normalizer`, and the per-example quantity is the
mean-field lower bound :meth:`~DeepBoltzmannMachine.mean_field_bound` (SH09 eq. 6).

References:
    R. Salakhutdinov and G. E. Hinton, "Deep Boltzmann machines", AISTATS 2009 (SH09);
    R. Salakhutdinov and I. Murray, "On the quantitative analysis of deep belief networks",
    ICML 2008 (SM08).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import constraints

from numpyro_hgf._checks import (
    check_binary,
    check_event_shape,
    check_finite,
    check_key,
    check_positive_int,
)
from numpyro_hgf._checks.arrays import check_real_array
from numpyro_hgf.distributions.unnormalized import LayeredMachine
from numpyro_hgf.flows._batched_params import register_param_batch
from numpyro_hgf.io import register_model
from numpyro_hgf.nn.boltzmann import EXACT_MAX_UNITS
from numpyro_hgf.nn.deep_boltzmann import (
    dbm_enumerated_units,
    dbm_interpolated_params,
    dbm_log_marginal_of_parity,
    dbm_log_normalizer_exact,
    dbm_mean_field,
    dbm_mean_field_bound_unnormalized,
    dbm_unnormalized_log_prob,
)
from numpyro_hgf.samplers.ais import AISResult, annealed_importance_sampling
from numpyro_hgf.samplers.block_gibbs import dbm_gibbs_sweep

__all__ = ["DeepBoltzmannMachine", "dbm_log_normalizer_ais", "check_layer_params", "each_of"]


class each_of(constraints.Constraint):  # noqa: N801  (a constraint instance-like name)
    """``base`` holds for every array of a tuple (the weights / biases of a layer chain)."""

    def __init__(self, base):
        self.base = base
        super().__init__()

    def __call__(self, x):
        return jnp.all(jnp.stack([jnp.all(self.base(xi)) for xi in x]))

    def feasible_like(self, prototype):
        return tuple(self.base.feasible_like(p) for p in prototype)

    def tree_flatten(self):
        return (), ((), {"base": self.base})


def check_layer_params(weights, biases, *, min_hidden_layers: int):
    """``(weights, biases)`` as tuples of float arrays of one dtype with chained shapes:
    ``weights[l-1]: (n_{l-1}, n_l)``, ``biases[l]: (n_l,)`` (default zeros), finite."""
    if isinstance(weights, jax.Array | np.ndarray) or not hasattr(weights, "__len__"):
        raise TypeError(
            f"weights: expected a sequence of (n_(l-1), n_l) matrices, got {type(weights).__name__}"
        )
    for i, w in enumerate(weights):  # strings, objects, complex: a TypeError naming weights[i]
        check_real_array(f"weights[{i}]", w)
    weights = [jnp.asarray(w) for w in weights]
    if len(weights) < min_hidden_layers:
        raise ValueError(
            f"weights: expected at least {min_hidden_layers} weight matrices (one per hidden "
            f"layer), got {len(weights)}"
        )
    dtype = jnp.result_type(*[w.dtype for w in weights])
    dtype = dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.float32
    weights = [w.astype(dtype) for w in weights]
    for i, w in enumerate(weights):
        if w.ndim != 2 or 0 in w.shape:
            raise ValueError(f"weights[{i}]: expected a non-empty matrix, got shape {w.shape}")
        if i and w.shape[0] != weights[i - 1].shape[1]:
            raise ValueError(
                f"weights[{i}]: expected {weights[i - 1].shape[1]} rows to match weights[{i - 1}] "
                f"{weights[i - 1].shape}, got shape {w.shape}"
            )
    sizes = [weights[0].shape[0]] + [w.shape[1] for w in weights]
    if biases is None:
        biases = [None] * len(sizes)
    if len(biases) != len(sizes):
        raise ValueError(
            f"biases: expected {len(sizes)} bias vectors (one per layer, visible first), got "
            f"{len(biases)}"
        )
    biases = [
        jnp.zeros(n, dtype) if b is None else jnp.asarray(b, dtype)
        for n, b in zip(sizes, biases, strict=True)
    ]
    for i, (n, b) in enumerate(zip(sizes, biases, strict=True)):
        if b.shape != (n,):
            raise ValueError(f"biases[{i}]: expected shape ({n},), got {b.shape}")
    for i, w in enumerate(weights):
        check_finite(f"weights[{i}]", w)
    for i, b in enumerate(biases):
        check_finite(f"biases[{i}]", b)
    return tuple(weights), tuple(biases)


def dbm_log_normalizer_ais(params, key, base_visible_bias, betas, num_chains: int) -> AISResult:
    """AIS estimate of the DBM's ``log Z`` (SH09 §3.2, after SM08).

    Base: independent units with visible biases ``base_visible_bias`` (``None``: zero) and
    zero hidden biases, ``log Z_A = Σ_i softplus(a_i) + (Σ_{l>=1} n_l) log 2``, drawn exactly.
    The path interpolates the params (:func:`~numpyro_hgf.nn.deep_boltzmann.
    dbm_interpolated_params`); the AIS state is the even layers (``v, h², ...``) with the odd
    layers summed out analytically in the weights, and each transition is one block-Gibbs
    sweep of the intermediate DBM.  The result's ``log_normalizer_ratio`` is ``log Z``.
    """
    W, b = params["weights"], params["biases"]
    dtype = W[0].dtype
    a0 = jnp.zeros_like(b[0]) if base_visible_bias is None else base_visible_bias.astype(dtype)
    base = (a0,) + tuple(jnp.zeros_like(x) for x in b[1:])
    log_z_base = sum(jnp.sum(jax.nn.softplus(a)) for a in base)
    even = list(range(0, len(b), 2))
    cuts = np.cumsum([b[i].shape[0] for i in even])[:-1].tolist()

    def full(state):  # (chains, Σ even n_l) -> the layer list, None for the odd layers
        layers = [None] * len(b)
        for i, x in zip(even, jnp.split(state, cuts, axis=-1), strict=True):
            layers[i] = x
        return layers

    def log_density(state, beta):
        p = dbm_interpolated_params(params, base, beta)
        return dbm_log_marginal_of_parity(p, full(state), 0)

    def transition(key, state, beta):
        layers = dbm_gibbs_sweep(dbm_interpolated_params(params, base, beta), key, full(state))
        return jnp.concatenate([layers[i] for i in even], axis=-1)

    k0, k1 = jax.random.split(key)
    base_even = jnp.concatenate([base[i] for i in even])
    state0 = jax.random.bernoulli(k0, jax.nn.sigmoid(base_even), (num_chains, base_even.shape[0]))
    state0 = state0.astype(dtype)
    res = annealed_importance_sampling(
        k1,
        state0,
        lambda s: log_density(s, 0.0),
        lambda s: log_density(s, 1.0),
        transition,
        betas,
        log_density=log_density,
    )
    return res._replace(log_normalizer_ratio=res.log_normalizer_ratio + log_z_base)


_exact_log_z = jax.jit(dbm_log_normalizer_exact)
_ais_log_z = jax.jit(dbm_log_normalizer_ais, static_argnames=("num_chains",))
_unnormalized = jax.jit(dbm_unnormalized_log_prob)


@functools.partial(jax.jit, static_argnames=("num_iters",))
def _bound(params, v, num_iters: int):
    mu = dbm_mean_field(params, v, num_iters)
    return dbm_mean_field_bound_unnormalized(params, v, mu), mu


@functools.partial(jax.jit, static_argnames=("num_chains",))
def _run_chains(params, key, num_steps, num_chains: int):
    # every layer starts at Bernoulli(σ(b_l)); a traced number of sweeps (one compile)
    keys = jax.random.split(key, len(params["biases"]) + 1)
    dtype = params["weights"][0].dtype
    layers = tuple(
        jax.random.bernoulli(k, jax.nn.sigmoid(b), (num_chains, b.shape[0])).astype(dtype)
        for k, b in zip(keys[1:], params["biases"], strict=True)
    )
    return jax.lax.fori_loop(
        0,
        num_steps,
        lambda i, x: dbm_gibbs_sweep(params, jax.random.fold_in(keys[0], i), x),
        layers,
    )


@register_model("deep_boltzmann_machine")
@register_param_batch
class DeepBoltzmannMachine(LayeredMachine):
    """Deep Boltzmann machine over binary visible vectors ``v ∈ {0,1}^V`` (SH09).

    Args:
        weights: ``(W_1, ..., W_L)``, ``L >= 2``, ``W_l: (n_{l-1}, n_l)`` with ``n_0 = V``.
        biases: ``(b_0, ..., b_L)``, ``b_l: (n_l,)`` (default zeros; an entry may be ``None``).
        num_gibbs_steps: block-Gibbs sweeps of :meth:`sample` (static aux field).
        num_mean_field_iters: fixed-point sweeps of :meth:`mean_field` (static aux field).
        log_normalizer: a known or estimated ``log Z`` (see :meth:`with_log_normalizer`).
        validate_args: NumPyro's argument validation.

    Shapes: ``event_shape = (V,)``, ``batch_shape = ()``;
    ``sample(key, sample_shape) -> (*sample_shape, V)`` float 0/1;
    ``log_prob(v: (..., V)) -> (...)``; ``mean_field_bound(v) -> (...)``.

    ``log_prob(v) = log p*(v) - log Z`` with ``log Z`` the attached value, else exact
    (:attr:`exact_log_normalizer_available`), else a ``ValueError`` asking for AIS.
    ``log p*(v)`` (:meth:`unnormalized_log_prob`) is exact when the hidden layers'
    smaller parity has at most 20 units (:attr:`exact_free_energy_available`), else a
    ``ValueError`` pointing to :meth:`mean_field_bound`.  The weights, biases and attached
    ``log Z`` are pytree data (``jit``/``vmap``/``grad`` without recompiling for new values).
    """

    arg_constraints = {
        "weights": each_of(constraints.real_matrix),
        "biases": each_of(constraints.real_vector),
    }
    support = constraints.independent(constraints.boolean, 1)
    pytree_data_fields = ("weights", "biases", "log_z")
    pytree_aux_fields = ("num_gibbs_steps", "num_mean_field_iters")
    exact_log_z_fn = staticmethod(_exact_log_z)
    ais_log_z_fn = staticmethod(_ais_log_z)
    has_enumerate_support = False

    def __init__(
        self,
        weights,
        biases=None,
        *,
        num_gibbs_steps: int = 1000,
        num_mean_field_iters: int = 30,
        log_normalizer=None,
        validate_args=None,
    ):
        self.weights, self.biases = check_layer_params(weights, biases, min_hidden_layers=2)
        self.num_mean_field_iters = check_positive_int("num_mean_field_iters", num_mean_field_iters)
        V, dtype = self.biases[0].shape[0], self.weights[0].dtype
        self._init_gibbs_model(V, num_gibbs_steps, log_normalizer, dtype, validate_args)

    # -- params ----------------------------------------------------------------------------
    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """``(V, n_1, ..., n_L)``."""
        return tuple(int(b.shape[-1]) for b in self.biases)

    @property
    def param_batch_shape(self) -> tuple[int, ...]:
        """Leading dims of the weights beyond ``(n_l, n_{l+1})`` (``()`` for one machine):
        what ``numpyro.contrib.control_flow.scan`` stacks."""
        return tuple(jnp.shape(self.weights[0])[:-2])

    @property
    def params(self) -> dict:
        """``{"weights": (W_1, ..., W_L), "biases": (b_0, ..., b_L)}``."""
        return {"weights": self.weights, "biases": self.biases}

    def with_params(self, params) -> DeepBoltzmannMachine:
        """A new DBM with ``params`` (like :attr:`params`); an attached ``log Z`` is kept."""
        if not isinstance(params, dict) or set(params) != {"weights", "biases"}:
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ValueError(f"params: expected keys ['biases', 'weights'], got {got}")
        return self._replace_data(weights=tuple(params["weights"]), biases=tuple(params["biases"]))

    def _check_value(self, value) -> None:
        check_event_shape("value", value, self.event_shape)
        check_binary("value", value)

    # -- densities -------------------------------------------------------------------------
    @property
    def exact_log_normalizer_available(self) -> bool:
        """Whether ``log Z`` can be enumerated (the smaller parity of all layers <= 20 units)
        and so can ``log p*(v)`` (:attr:`exact_free_energy_available`)."""
        k = dbm_enumerated_units(self.layer_sizes)[1]
        return k <= EXACT_MAX_UNITS and self.exact_free_energy_available

    @property
    def exact_free_energy_available(self) -> bool:
        """Whether ``log p*(v)`` can be enumerated (hidden layers' smaller parity <= 20)."""
        return dbm_enumerated_units(self.layer_sizes[1:])[1] <= EXACT_MAX_UNITS

    def _missing_normalizer_hint(self) -> str:
        return (
            f"with layer sizes {self.layer_sizes} it cannot be enumerated; estimate it by AIS "
            "and attach it first: dbm = dbm.with_log_normalizer(dbm.log_normalizer("
            "method='ais', key=key))"
        )

    def energy(self, value):
        """The free energy ``F(v) = -log Σ_h exp(-E(v, h))``; ``value: (..., V) -> (...)``."""
        return -self.unnormalized_log_prob(value)

    free_energy = energy

    def unnormalized_log_prob(self, value):
        """``log p*(v) = log Σ_h exp(-E(v, h))`` (exact enumeration); ``(..., V) -> (...)``."""
        self._check_value(value)
        if not self.exact_free_energy_available:
            raise ValueError(
                f"value: log p*(v) sums over the hidden layers {self.layer_sizes[1:]}, whose "
                f"smaller parity has more than {EXACT_MAX_UNITS} units; use "
                "mean_field_bound(value) (a lower bound on log p(v))"
            )
        return _unnormalized(self.params, value)

    def joint_energy(self, layers):
        """``E(v, h¹, ..., h^L)`` (SH09 eq. 1); ``layers[l]: (..., n_l) -> (...)``."""
        from numpyro_hgf.nn.deep_boltzmann import dbm_energy

        if len(layers) != len(self.biases):
            raise ValueError(f"layers: expected {len(self.biases)} layers, got {len(layers)}")
        return dbm_energy(self.params, layers)

    def mean_field(self, value):
        """The mean-field posterior means ``(μ_1, ..., μ_L)``, ``μ_l: (..., n_l)`` (SH09
        eq. 7, :attr:`num_mean_field_iters` sweeps)."""
        self._check_value(value)
        return _bound(self.params, value, self.num_mean_field_iters)[1]

    def mean_field_bound(self, value):
        """The variational lower bound on ``log p(v)`` per data point (SH09 eq. 6):
        ``-E(v, μ) + Σ_l H(μ_l) - log Z`` at the mean-field fixed point ``μ(v)``;
        ``value: (..., V) -> (...)``.  Needs ``log Z`` (attached or exact)."""
        self._check_value(value)
        if self.log_z is None and dbm_enumerated_units(self.layer_sizes)[1] > EXACT_MAX_UNITS:
            raise ValueError(
                f"mean_field_bound: log Z is unknown; {self._missing_normalizer_hint()}"
            )
        log_z = self.log_z if self.log_z is not None else self._exact_log_normalizer()
        return _bound(self.params, value, self.num_mean_field_iters)[0] - log_z

    def _exact_size_error(self) -> str | None:
        k = dbm_enumerated_units(self.layer_sizes)[1]
        if k <= EXACT_MAX_UNITS:
            return None
        return (
            f"enumerates 2^k states of the smaller parity of the layers and needs k <= "
            f"{EXACT_MAX_UNITS}, got layer sizes {self.layer_sizes} (k={k})"
        )

    @property
    def weight_dtype(self):
        return self.weights[0].dtype

    # -- sampling --------------------------------------------------------------------------
    def gibbs_step(self, key, layers):
        """One block-Gibbs sweep (odd layers, then even); ``layers = (v, h¹, ..., h^L)``."""
        return dbm_gibbs_sweep(self.params, key, layers)

    def sample_layers(self, key, num_chains: int, num_steps: int | None = None):
        """``(v, h¹, ..., h^L)`` of ``num_chains`` independent chains after ``num_steps``
        sweeps (default :attr:`num_gibbs_steps`) from ``x_l ~ Bernoulli(σ(b_l))``."""
        check_key("key", key)
        num_chains = check_positive_int("num_chains", num_chains)
        steps = self.num_gibbs_steps if num_steps is None else num_steps
        steps = check_positive_int("num_steps", steps)
        return _run_chains(self.params, key, jnp.int32(steps), num_chains=num_chains)

    def sample(self, key, sample_shape=()):
        """The visible layer of independent chains after :attr:`num_gibbs_steps` sweeps."""
        return self._sample_by_chains(
            key, sample_shape, lambda k, n: self.sample_layers(k, max(n, 1))[0][:n]
        )

    # -- saving ----------------------------------------------------------------------------
    def save_config(self) -> dict:
        return {
            "layer_sizes": list(self.layer_sizes),
            "num_gibbs_steps": self.num_gibbs_steps,
            "num_mean_field_iters": self.num_mean_field_iters,
        }

    @classmethod
    def from_config(cls, config: dict) -> DeepBoltzmannMachine:
        """A template DBM (zero params) with the layer sizes of :meth:`save_config`."""
        if "layer_sizes" not in config:
            raise ValueError(f"config: expected the key 'layer_sizes', got {sorted(config)}")
        sizes = [check_positive_int("layer_sizes", n) for n in config["layer_sizes"]]
        return cls(
            [jnp.zeros((a, b), jnp.float32) for a, b in zip(sizes[:-1], sizes[1:], strict=True)],
            num_gibbs_steps=int(config.get("num_gibbs_steps", 1000)),
            num_mean_field_iters=int(config.get("num_mean_field_iters", 30)),
        )

    def __repr__(self) -> str:
        return (
            f"DeepBoltzmannMachine(layer_sizes={self.layer_sizes}, "
            f"num_gibbs_steps={self.num_gibbs_steps})"
        )
