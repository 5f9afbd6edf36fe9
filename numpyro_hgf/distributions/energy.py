"""``EnergyBasedModel``: a learned energy ``E(x)`` as a NumPyro distribution.

Row "energy-based model" of the package's table: the learned field is a scalar energy
``E(x)`` (a ``flax.linen`` module, e.g. :class:`numpyro_hgf.nn.EnergyMLP`, and its
params), there is no path (samples come from MCMC), and the objectives are the
score-matching family (the score ``-grad E`` needs no normaliser)::

    p(x) = exp(-E(x)) / Z,        Z = int exp(-E(x)) dx.

``log_prob`` is ``-E(x)``, *unnormalised* (it is ``log p(x) + log Z``), which is all that
NUTS / HMC and score matching need.  :meth:`EnergyBasedModel.log_normalizer` estimates
``log Z`` (trapezoid quadrature in one or two dimensions, annealed importance sampling
otherwise) and :meth:`EnergyBasedModel.with_log_normalizer` returns a normalised copy.

The model is a pytree whose data are the params (and the optional ``log Z``); the module
and the sampler settings are static, so it passes through ``jit``/``vmap`` and changing
only the params never recompiles.
"""

from __future__ import annotations

import math
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import constraints

from numpyro_hgf._checks import (
    check_choice,
    check_event_shape,
    check_event_shape_arg,
    check_key,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    is_concrete,
)
from numpyro_hgf.distributions.unnormalized import UnnormalizedDistribution
from numpyro_hgf.flows._batched_params import (
    leading_batch_shape,
    map_over_param_batch,
    register_param_batch,
)
from numpyro_hgf.io import register_model
from numpyro_hgf.nn.config import module_config, module_from_config
from numpyro_hgf.samplers import mcmc
from numpyro_hgf.samplers.ais import annealed_importance_sampling

__all__ = ["EnergyBasedModel", "SAMPLERS"]

SAMPLERS = ("mala", "hmc", "langevin")
QUADRATURE_MAX_DIM = 2
_EDGE_MASS_WARN = 1e-6


# Sampling, quadrature and AIS run through ``jax.jit`` with the model itself as a pytree
# argument (params traced, module and settings static), so repeated eager calls on models
# of one configuration reuse one compiled function.
@jax.jit
def _jit_energy(ebm, flat):
    return ebm._energy_flat(flat)


@jax.jit
def _jit_score(ebm, flat):
    return -jax.grad(lambda y: jnp.sum(ebm._energy_flat(y)))(flat)


@partial(jax.jit, static_argnums=(2,))
def _jit_sample(ebm, key, sample_shape):
    num_chains = math.prod(sample_shape)
    k_init, k_run = jax.random.split(key)
    x0 = ebm.init_scale * jax.random.normal(k_init, (num_chains, *ebm.event_shape))
    x, accept = ebm._run_chains(k_run, x0)
    return x.reshape(*sample_shape, *ebm.event_shape), accept.reshape(sample_shape)


def _sample_with_info(ebm, key, sample_shape):
    return ebm.sample_with_info(key, sample_shape)


@partial(jax.jit, static_argnums=(3,))
def _jit_quadrature(ebm, low, high, resolution):
    """Trapezoid rule for ``log int exp(-E)`` on a ``resolution^d`` grid, ``d in {1, 2}``.

    Returns ``(log_z, log_edge_fraction)``; the second is the log of the share of the
    integral carried by the outermost ring of grid points (a truncation diagnostic).
    """
    dim = low.shape[0]
    axes = [jnp.linspace(low[i], high[i], resolution) for i in range(dim)]
    steps = [(high[i] - low[i]) / (resolution - 1) for i in range(dim)]
    # log trapezoid weights: h/2 at the two ends, h inside
    log_w1 = [
        jnp.log(steps[i]) + jnp.zeros(resolution).at[jnp.array([0, -1])].set(jnp.log(0.5))
        for i in range(dim)
    ]
    edge1 = jnp.zeros(resolution, bool).at[jnp.array([0, -1])].set(True)
    if dim == 1:
        x = axes[0][:, None].reshape(resolution, *ebm.event_shape)
        log_f = -ebm._energy_flat(x) + log_w1[0]
        edge = edge1
    else:

        def row(x0):
            pts = jnp.stack([jnp.full(resolution, x0), axes[1]], axis=-1)
            return -ebm._energy_flat(pts.reshape(resolution, *ebm.event_shape))

        log_f = jax.lax.map(row, axes[0], batch_size=16) + log_w1[0][:, None] + log_w1[1][None, :]
        edge = edge1[:, None] | edge1[None, :]
    log_z = jax.scipy.special.logsumexp(log_f)
    log_edge = jax.scipy.special.logsumexp(jnp.where(edge, log_f, -jnp.inf)) - log_z
    return log_z, log_edge


@partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _jit_ais(ebm, key, num_chains, num_betas, transition, num_mcmc_steps, settings):
    step_size, base_scale, num_integration_steps, beta_power = settings
    event_axes = tuple(range(1, 1 + len(ebm.event_shape)))
    dim = math.prod(ebm.event_shape)

    def log_base(x):  # normalised N(0, base_scale^2 I): the AIS ratio is then log Z itself
        sq = jnp.sum(x**2, axis=event_axes)
        return -0.5 * sq / base_scale**2 - 0.5 * dim * jnp.log(2 * jnp.pi * base_scale**2)

    def log_target(x):
        return -ebm._energy_flat(x)

    def kernel(k, x, beta):
        def log_beta(y):
            return (1.0 - beta) * log_base(y) + beta * log_target(y)

        if transition == "mala":
            return mcmc.mala(k, log_beta, x, step_size, num_mcmc_steps).samples
        steps = num_integration_steps
        return mcmc.hmc(k, log_beta, x, step_size, num_mcmc_steps, num_integration_steps=steps)[0]

    k_init, k_run = jax.random.split(key)
    x0 = base_scale * jax.random.normal(k_init, (num_chains, *ebm.event_shape))
    betas = jnp.linspace(0.0, 1.0, num_betas) ** beta_power
    return annealed_importance_sampling(k_run, x0, log_base, log_target, kernel, betas)


@register_model("energy_based_model")
@register_param_batch
class EnergyBasedModel(UnnormalizedDistribution):
    """Energy-based model ``p(x) = exp(-E(x)) / Z`` with a learned energy ``E``.

    Args:
        energy: a ``flax.linen`` module; ``energy.apply({"params": params}, x)`` maps
            ``x: (n, *event_shape)`` to ``(n,)`` (e.g. :class:`~numpyro_hgf.nn.EnergyMLP`
            for a flat event).  Checked at construction with ``jax.eval_shape``.
        params: its inner params pytree.
        event_shape: shape of one draw, e.g. ``(2,)``.
        confinement: ``c >= 0`` adds ``c |x|^2 / 2`` to the network's energy: a Gaussian
            tilt that makes any bounded-below network normalisable (default 0).
        sampler: how :meth:`sample` draws, one of ``"mala"`` (default; exact stationary
            law), ``"hmc"`` (leapfrog + Metropolis) or ``"langevin"`` (unadjusted, with an
            ``O(step_size)`` bias); see :mod:`numpyro_hgf.samplers`.
        num_steps: MCMC transitions per draw (default 1000).
        step_size: Langevin / MALA step ``eps`` or leapfrog step ``h`` (default 0.01).
        init_scale: chains start from ``N(0, init_scale^2 I)`` (default 1).
        num_integration_steps: leapfrog steps per HMC transition (default 10).
        log_normalizer: ``log Z`` if known (see :meth:`with_log_normalizer`); ``None``
            (default) leaves ``log_prob`` unnormalised.

    ``sample(key, sample_shape)`` runs ``prod(sample_shape)`` independent chains of
    ``num_steps`` transitions from ``N(0, init_scale^2 I)`` and returns their final
    states: the draws are **approximate** (finite chains; the unadjusted sampler is also
    biased), and the defaults suit energies on roughly unit scale; tune ``step_size`` and
    ``num_steps`` for yours (:meth:`sample_with_info` reports the acceptance rates).
    Annealed Langevin needs a noise-conditional score ``s(x, sigma)``, which a single
    energy ``E(x)`` does not provide; use :func:`numpyro_hgf.samplers.annealed_langevin`
    with a score network for that.

    ``log_prob(x) = -E(x)`` (minus ``log Z`` only once it has been set) is differentiable
    in ``x`` and in the params, so the model is a prior under NUTS and a target of score
    matching.  With ``validate_args=True`` a value outside the support (NaN, inf) warns and
    gives ``-inf``; unchecked, a NaN gives NaN (never an exception; under NUTS a divergence).

    Draws are not reparameterized (``has_rsample`` is ``False``: gradients through MCMC
    chains are biased).  Params stacked by ``scan`` are a batch (``param_batch_shape``).
    """

    arg_constraints = {}
    has_rsample = False  # MCMC draws (NumPyro's default would be True: no arg_constraints)
    requires_normalizer = False
    pytree_data_fields = ("params", "log_z")
    pytree_aux_fields = (
        "energy",
        "_param_ndims",
        "confinement",
        "sampler",
        "num_steps",
        "step_size",
        "init_scale",
        "num_integration_steps",
    )

    def __init__(
        self,
        energy,
        params,
        event_shape,
        *,
        confinement: float = 0.0,
        sampler: str = "mala",
        num_steps: int = 1000,
        step_size: float = 0.01,
        init_scale: float = 1.0,
        num_integration_steps: int = 10,
        log_normalizer=None,
        validate_args=None,
    ):
        if not hasattr(energy, "apply"):
            raise TypeError(f"energy: expected a flax.linen module, got {type(energy).__name__}")
        event_shape = check_event_shape_arg("event_shape", event_shape)
        self.energy = energy
        self.params = params
        self._param_ndims = tuple(int(jnp.ndim(x)) for x in jax.tree.leaves(params))
        self.confinement = check_nonnegative_float("confinement", confinement)
        self.sampler = check_choice("sampler", sampler, SAMPLERS)
        self.num_steps = check_positive_int("num_steps", num_steps)
        self.step_size = check_positive_float("step_size", step_size)
        self.init_scale = check_positive_float("init_scale", init_scale)
        self.num_integration_steps = check_positive_int(
            "num_integration_steps", num_integration_steps
        )
        self.log_z = self._check_log_normalizer(log_normalizer)
        probe = jax.ShapeDtypeStruct((1, *event_shape), jnp.result_type(float))
        x_shape = "(n, " + ", ".join(map(str, event_shape)) + ")"
        try:
            out = jax.eval_shape(lambda p, x: energy.apply({"params": p}, x), params, probe)
        except Exception as err:  # the net cannot take this event shape at all
            raise ValueError(
                f"energy: expected a module mapping x: {x_shape} to (n,) for event_shape "
                f"{event_shape}, but applying it to shape {(1, *event_shape)} failed: {err}"
            ) from err
        if not hasattr(out, "shape") or tuple(out.shape) != (1,):
            got = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
            raise ValueError(
                f"energy: expected an output of shape (n,) (one scalar energy per point) for "
                f"x: {x_shape}, got shape {got} for x of shape {(1, *event_shape)}"
            )
        super().__init__(batch_shape=(), event_shape=event_shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False)
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    # -- params ---------------------------------------------------------------------------
    @property
    def param_batch_shape(self) -> tuple[int, ...]:
        """Leading dims of the params beyond the network's own (``()`` for one model)."""
        return leading_batch_shape(self.params, self._param_ndims)

    def _check_value(self, value) -> None:
        check_event_shape("value", value, self.event_shape)

    def with_params(self, params):
        """The same model with new ``params`` (differentiable; no re-initialisation).

        A ``log Z`` set with :meth:`with_log_normalizer` is kept as it is (``nh.load``
        restores a saved model this way); it belongs to the old params, so after changing
        them re-estimate it or drop it with ``with_log_normalizer(None)``.
        """
        return self._replace_data(params=params)

    # -- energy, score, density ----------------------------------------------------------
    def _energy_flat(self, flat):
        """``E`` on ``flat: (n, *event_shape)`` -> ``(n,)`` (network + confinement)."""
        e = self.energy.apply({"params": self.params}, flat)
        if self.confinement:
            axes = tuple(range(1, flat.ndim))
            e = e + 0.5 * self.confinement * jnp.sum(flat**2, axis=axes)
        return e

    def _flatten(self, name, x):
        x = jnp.asarray(x)
        check_event_shape(name, x, self.event_shape)
        batch_shape = x.shape[: x.ndim - len(self.event_shape)]
        return x.reshape((-1, *self.event_shape)), batch_shape

    def compute_energy(self, x):
        """``E(x)`` for ``x: (..., *event_shape)`` -> ``(...)`` (network + confinement)."""
        flat, batch_shape = self._flatten("x", x)
        return _jit_energy(self, flat).reshape(batch_shape)

    def unnormalized_log_prob(self, value):
        """``-E(value)``, ``value: (..., *event_shape)`` -> ``(...)``.  ``log_prob`` is this
        (UNNORMALISED: off by the constant ``log Z``) until :meth:`with_log_normalizer` set
        ``log Z``."""
        batch = self.param_batch_shape
        if batch:
            fn = type(self).unnormalized_log_prob
            return map_over_param_batch(self, batch, fn, value, len(self.event_shape))
        flat, batch_shape = self._flatten("value", value)
        return -_jit_energy(self, flat).reshape(batch_shape)

    def score(self, x):
        """Stein score ``grad_x log p(x) = -grad_x E(x)``, same shape as ``x``."""
        flat, _ = self._flatten("x", x)
        return _jit_score(self, flat).reshape(jnp.shape(x))

    # -- sampling --------------------------------------------------------------------------
    def _run_chains(self, key, x0):
        """Run the configured sampler from ``x0: (n, *event_shape)``; ``(x, acceptance)``."""
        if self.sampler == "langevin":
            x = mcmc.langevin(key, self.score, x0, self.step_size, self.num_steps)
            return x, jnp.ones(x0.shape[0], x.dtype)
        if self.sampler == "mala":
            result = mcmc.mala(key, self.log_prob, x0, self.step_size, self.num_steps)
        else:
            steps = self.num_integration_steps
            result = mcmc.hmc(
                key, self.log_prob, x0, self.step_size, self.num_steps, num_integration_steps=steps
            )
        return result.samples, result.acceptance_rate

    def sample_with_info(self, key, sample_shape=()):
        """``(samples: (*sample_shape, *event_shape), acceptance_rate: sample_shape)``.

        The acceptance rate is each chain's mean Metropolis acceptance probability (1 for
        the unadjusted Langevin sampler).
        """
        sample_shape = tuple(int(s) for s in sample_shape)
        check_key("key", key)
        if self.param_batch_shape:
            return self._sample_batched(key, sample_shape, _sample_with_info)
        return _jit_sample(self, key, sample_shape)

    def sample(self, key, sample_shape=()):
        """Approximate draws: final states of independent MCMC chains (see the class doc)."""
        return self.sample_with_info(key, sample_shape)[0]

    # -- the normaliser --------------------------------------------------------------------
    def log_normalizer(self, method: str | None = None, *, key=None, **kwargs):
        """Estimate ``log Z = log int exp(-E(x)) dx`` (a scalar).

        The estimate is of the energy's own normaliser, whether or not a ``log Z`` was set
        with :meth:`with_log_normalizer`.

        Args:
            method: ``"quadrature"`` (events of at most 2 dimensions; see
                :meth:`log_normalizer_quadrature`), ``"ais"`` (any dimension; see
                :meth:`log_normalizer_ais`), or ``None``: quadrature when the event has at
                most 2 dimensions, AIS otherwise.
            key: ``jax.random`` key, required by AIS.
            **kwargs: passed to the chosen method.
        """
        dim = math.prod(self.event_shape)
        if method is None:
            method = "quadrature" if dim <= QUADRATURE_MAX_DIM else "ais"
        check_choice("method", method, ("quadrature", "ais"))
        if method == "quadrature":
            return self.log_normalizer_quadrature(**kwargs)
        if key is None:
            raise ValueError("key: expected a jax.random key for method='ais', got None")
        return self.log_normalizer_ais(key, **kwargs).log_normalizer_ratio

    def log_normalizer_quadrature(self, bounds=(-10.0, 10.0), resolution: int | None = None):
        """``log Z`` by the trapezoid rule on a regular grid (events of 1 or 2 dimensions).

        ``Z ~= sum_ij w_i w_j exp(-E(x_ij))`` with trapezoid weights (``h/2`` at the ends,
        ``h`` inside) on ``resolution`` points per dimension spanning ``bounds``.  For a
        smooth density that has decayed at the bounds the error falls faster than any
        power of ``h``; truncation is the usual limit, so a ``UserWarning`` names
        ``bounds`` when the outermost ring of grid points carries more than ``1e-6`` of
        the integral.

        Args:
            bounds: ``(low, high)``, scalars or ``(d,)`` arrays (per dimension); default
                ``(-10, 10)`` in every dimension.
            resolution: grid points per dimension (default 4001 in 1D, 401 in 2D).
        """
        dim = math.prod(self.event_shape)
        if dim > QUADRATURE_MAX_DIM:
            raise ValueError(
                f"method: quadrature needs an event of at most {QUADRATURE_MAX_DIM} "
                f"dimensions, got event_shape {self.event_shape}; use method='ais'"
            )
        if resolution is None:
            resolution = 4001 if dim == 1 else 401
        resolution = check_positive_int("resolution", resolution)
        if resolution < 3:
            raise ValueError(f"resolution: expected at least 3 grid points, got {resolution}")
        try:  # a pair of numbers or of (d,) arrays
            low, high = (np.broadcast_to(np.asarray(b, float), (dim,)) for b in bounds)
        except (TypeError, ValueError):
            raise ValueError(f"bounds: expected a pair (low, high), got {bounds!r}") from None
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high > low)):
            raise ValueError(
                f"bounds: expected finite low < high in every dimension, got low={low.tolist()}, "
                f"high={high.tolist()}"
            )
        log_z, log_edge = _jit_quadrature(self, jnp.asarray(low), jnp.asarray(high), resolution)
        if is_concrete(log_edge) and float(log_edge) > np.log(_EDGE_MASS_WARN):
            warnings.warn(
                f"bounds: the edge of the grid {low.tolist()}..{high.tolist()} carries "
                f"{float(np.exp(log_edge)):.2e} of exp(-E); widen the bounds",
                UserWarning,
                stacklevel=2,
            )
        return log_z

    def log_normalizer_ais(
        self,
        key,
        *,
        num_chains: int = 512,
        num_betas: int = 500,
        transition: str = "mala",
        num_mcmc_steps: int = 2,
        step_size: float | None = None,
        base_scale: float | None = None,
        num_integration_steps: int = 5,
        beta_power: float = 1.0,
    ):
        """``log Z`` by annealed importance sampling (Neal 2001), :mod:`numpyro_hgf.samplers.ais`.

        The base is the normalised ``N(0, base_scale^2 I)``; ``num_chains`` chains move
        through ``p_beta ∝ N(0, s^2 I)^(1 - beta) exp(-E)^beta`` on ``num_betas``
        temperatures ``beta_k = (k / (K - 1))^beta_power`` (linear by default; a power
        above 1 puts more of them near the base), with ``num_mcmc_steps`` MALA or HMC
        transitions per temperature.  Since the base is
        normalised, the AIS ratio estimates ``log Z`` itself (a stochastic lower bound in
        expectation; its delta-method standard error is ``stderr``).

        Args:
            key: ``jax.random`` key.
            num_chains, num_betas, num_mcmc_steps: AIS sizes.
            transition: ``"mala"`` or ``"hmc"``.
            step_size: MALA step / leapfrog step (default: the model's ``step_size``).
            base_scale: ``s`` (default: the model's ``init_scale``); pick it near the
                spread of the target.
            num_integration_steps: leapfrog steps per HMC transition.
            beta_power: exponent of the temperature schedule.

        Returns:
            :class:`numpyro_hgf.samplers.ais.AISResult` (``log_normalizer_ratio`` = ``log Z``,
            ``log_weights``, ``samples`` from the target, ``stderr``).
        """
        check_key("key", key)
        num_chains = check_positive_int("num_chains", num_chains)
        num_betas = check_positive_int("num_betas", num_betas)
        if num_betas < 2:
            raise ValueError(f"num_betas: expected at least 2 temperatures, got {num_betas}")
        check_choice("transition", transition, ("mala", "hmc"))
        num_mcmc_steps = check_positive_int("num_mcmc_steps", num_mcmc_steps)
        step_size = self.step_size if step_size is None else step_size
        step_size = check_positive_float("step_size", step_size)
        base_scale = self.init_scale if base_scale is None else base_scale
        base_scale = check_positive_float("base_scale", base_scale)
        num_integration_steps = check_positive_int("num_integration_steps", num_integration_steps)
        beta_power = check_positive_float("beta_power", beta_power)
        settings = (step_size, base_scale, num_integration_steps, beta_power)
        return _jit_ais(self, key, num_chains, num_betas, transition, num_mcmc_steps, settings)

    # -- saving ----------------------------------------------------------------------------
    def save_config(self) -> dict:
        log_z = self.log_z
        if log_z is not None:
            if not is_concrete(log_z):
                raise TypeError("model: cannot save a traced log_normalizer")
            log_z = float(log_z)
        return {
            "energy": module_config(self.energy),
            "event_shape": list(self.event_shape),
            "confinement": self.confinement,
            "sampler": self.sampler,
            "num_steps": self.num_steps,
            "step_size": self.step_size,
            "init_scale": self.init_scale,
            "num_integration_steps": self.num_integration_steps,
            "log_normalizer": log_z,
        }

    @classmethod
    def from_config(cls, config: dict):
        energy = module_from_config(config["energy"])
        event_shape = tuple(config["event_shape"])
        params = energy.init(jax.random.key(0), jnp.zeros((1, *event_shape)))["params"]
        return cls(
            energy,
            params,
            event_shape,
            confinement=config.get("confinement", 0.0),
            sampler=config.get("sampler", "mala"),
            num_steps=config.get("num_steps", 1000),
            step_size=config.get("step_size", 0.01),
            init_scale=config.get("init_scale", 1.0),
            num_integration_steps=config.get("num_integration_steps", 10),
            log_normalizer=config.get("log_normalizer"),
        )
