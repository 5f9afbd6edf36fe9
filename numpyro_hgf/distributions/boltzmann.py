"""``BoltzmannMachine``: a fully visible Boltzmann machine over ``{-1, +1}^d`` spins.

Energy and distribution (Ackley, Hinton & Sejnowski 1985; temperature 1)::

    E(y) = -½ yᵀ W y - bᵀ y,       p(y) = exp(-E(y)) / Z,      y ∈ {-1, +1}^d,

with ``W`` symmetric and zero on the diagonal.  The single-site conditionals are
``p(y_i = +1 | y_-i) = σ(2 (W_i· y + b_i))``; a Gibbs sweep visits the sites in order
(``lax.fori_loop``).  ``log Z`` is exact by enumerating ``2^d`` states for ``d <= 20``;
otherwise AIS (:func:`numpyro_hgf.samplers.ais.annealed_importance_sampling`, base = independent
spins with fields ``b``, path ``p_β ∝ exp(½ β yᵀWy + bᵀy)``) estimates it.

Maximum likelihood is exact for small ``d``: the gradient of the mean log-likelihood is
``(E_data[y yᵀ] - E_model[y yᵀ], E_data[y] - E_model[y])``, and the model moments come
from enumeration -- :func:`numpyro_hgf.train.rbm.fit_boltzmann_exact` differentiates the
enumerated ``log Z`` to get exactly that.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import constraints
from numpyro.distributions.constraints import _SingletonConstraint

from numpyro_hgf._checks import (
    check_choice,
    check_finite,
    check_flag,
    check_key,
    check_positive_int,
    check_spins,
    check_symmetric_zero_diagonal,
)
from numpyro_hgf.distributions.unnormalized import UnnormalizedDistribution
from numpyro_hgf.flows._batched_params import register_param_batch
from numpyro_hgf.io import register_model
from numpyro_hgf.nn.boltzmann import EXACT_MAX_UNITS, bm_energy, bm_log_normalizer_exact
from numpyro_hgf.samplers.ais import annealed_importance_sampling, linear_betas
from numpyro_hgf.samplers.block_gibbs import bm_gibbs_sweep  # noqa: F401

__all__ = ["BoltzmannMachine", "spin", "bm_log_normalizer_ais"]


class _Spin(_SingletonConstraint):
    """Values in ``{-1, +1}``."""

    is_discrete = True

    def __call__(self, x):
        xp = jnp if isinstance(x, jax.Array) else np
        return xp.equal(x, -1) | xp.equal(x, 1)

    def feasible_like(self, prototype):
        return jnp.ones_like(prototype)


#: The constraint ``{-1, +1}`` (elementwise).
spin = _Spin()


def bm_log_normalizer_ais(params, key, betas, num_chains: int, sweeps_per_beta: int = 1):
    """AIS estimate of ``log Z``: base = independent spins with fields ``b``
    (``log Z_0 = Σ_i log(2 cosh b_i)``), geometric path ``p_β ∝ exp(½βyᵀWy + bᵀy)``,
    Gibbs transitions.  ``log_normalizer_ratio`` of the result is ``log Z`` itself."""
    W, b = params["W"], params["b"]
    d = W.shape[0]
    log_z_base = jnp.sum(jnp.logaddexp(b, -b))
    k0, k1 = jax.random.split(key)
    y0 = jnp.where(
        jax.random.uniform(k0, (num_chains, d)) < jax.nn.sigmoid(2.0 * b), 1.0, -1.0
    ).astype(W.dtype)

    def transition(key, y, beta):
        for k in jax.random.split(key, sweeps_per_beta):
            y = bm_gibbs_sweep(params, k, y, beta)
        return y

    res = annealed_importance_sampling(
        k1,
        y0,
        lambda y: y @ b,
        lambda y: -bm_energy(params, y),
        transition,
        betas,
    )
    return res._replace(log_normalizer_ratio=res.log_normalizer_ratio + log_z_base)


_exact_log_z = jax.jit(bm_log_normalizer_exact)
_ais_log_z = jax.jit(bm_log_normalizer_ais, static_argnames=("num_chains", "sweeps_per_beta"))


@functools.partial(jax.jit, static_argnames=("num_chains",))
def _sample_chains(params, key, num_steps, num_chains: int):
    k0, k1 = jax.random.split(key)
    b = params["b"]
    y0 = jnp.where(jax.random.bernoulli(k0, 0.5, (num_chains, b.shape[0])), 1.0, -1.0)
    return jax.lax.fori_loop(
        0,
        num_steps,
        lambda i, y: bm_gibbs_sweep(params, jax.random.fold_in(k1, i), y),
        y0.astype(b.dtype),
    )


_energy = jax.jit(bm_energy)


@register_model("boltzmann_machine")
@register_param_batch
class BoltzmannMachine(UnnormalizedDistribution):
    """Fully visible Boltzmann machine over ``y ∈ {-1, +1}^d``.

    Args:
        W: ``(d, d)`` symmetric couplings with zero diagonal (checked; a ``ValueError``
            naming ``W`` otherwise).
        b: ``(d,)`` fields (default zeros).
        num_gibbs_steps: sequential single-site sweeps per :meth:`sample` chain (default
            1000), each chain started from independent uniform spins.
        log_normalizer: an attached ``log Z`` (see :meth:`with_log_normalizer`).
        validate_args: NumPyro's argument validation.

    ``log_prob(y) = -E(y) - log Z`` with ``log Z`` attached, else exact for ``d <= 20``,
    else a ``ValueError`` asking for an AIS estimate; ``unnormalized_log_prob(y) = -E(y)``.
    Samples are float ``±1`` of shape ``(*sample_shape, d)``, not reparameterized
    (``has_rsample`` is ``False``).  Stacked params ``W: (*B, d, d)`` (``scan``) are a batch
    of machines (``param_batch_shape = B``).
    """

    arg_constraints = {"W": constraints.real_matrix, "b": constraints.real_vector}
    support = constraints.independent(spin, 1)
    pytree_data_fields = ("W", "b", "log_z")
    param_fields = ("W", "b")  # params: ``{"W": (d, d), "b": (d,)}``
    params = property(UnnormalizedDistribution._field_params)
    value_check = staticmethod(check_spins)
    pytree_aux_fields = ("num_gibbs_steps",)
    exact_log_z_fn = staticmethod(_exact_log_z)

    def __init__(
        self,
        W,
        b=None,
        *,
        num_gibbs_steps: int = 1000,
        log_normalizer=None,
        validate_args=None,
    ):
        W = self._float_weights(W)
        if W.ndim != 2 or W.shape[0] != W.shape[1] or W.shape[0] == 0:
            raise ValueError(f"W: expected a square (d, d) matrix, got an array of shape {W.shape}")
        d = W.shape[0]
        b = self._bias("b", b, d, W.dtype)
        if b.shape != (d,):
            raise ValueError(f"b: expected shape ({d},) to match W {W.shape}, got {b.shape}")
        check_finite("W", W)
        check_finite("b", b)
        check_symmetric_zero_diagonal("W", W)
        self.W, self.b = W, b
        self._init_gibbs_model(d, num_gibbs_steps, log_normalizer, W.dtype, validate_args)

    @property
    def dim(self) -> int:
        return int(self.W.shape[-1])

    def with_params(self, params) -> BoltzmannMachine:
        """A new machine with ``params`` (``{"W", "b"}``); an attached ``log Z`` is kept."""
        return self._replace_data(W=params["W"], b=params["b"])

    # -- densities -----------------------------------------------------------------------
    def energy(self, value):
        """``E(y)``; ``value: (..., d) -> (...)``."""
        self._check_value(value)
        return _energy(self.params, value)

    @property
    def exact_log_normalizer_available(self) -> bool:
        """Whether ``log Z`` can be enumerated (``d <= 20``)."""
        return self.dim <= EXACT_MAX_UNITS

    def _missing_normalizer_hint(self) -> str:
        return (
            f"with d={self.dim} > {EXACT_MAX_UNITS} units it cannot be enumerated; attach an "
            "AIS estimate first: bm = bm.with_log_normalizer(bm.log_normalizer(method='ais', "
            "key=key))"
        )

    def log_normalizer(
        self,
        method: str = "exact",
        *,
        key=None,
        num_chains: int = 100,
        num_betas: int = 1000,
        return_result: bool = False,
    ):
        """``log Z``: ``"exact"`` (enumeration, ``d <= 20``) or ``"ais"`` (``num_chains``
        runs over ``num_betas`` linearly spaced temperatures).  With ``return_result`` the
        :class:`~numpyro_hgf.samplers.ais.AISResult` is returned (its ``log_normalizer_ratio`` is
        ``log Z``)."""
        check_choice("method", method, ("exact", "ais"))
        return_result = check_flag("return_result", return_result)
        if method == "exact":
            if self.dim > EXACT_MAX_UNITS:
                raise ValueError(
                    f"method: 'exact' enumerates 2^d states and needs d <= {EXACT_MAX_UNITS}, "
                    f"got d={self.dim}; use method='ais'"
                )
            return self._exact_result(_exact_log_z(self.params), return_result)
        if key is None:
            raise TypeError("key: expected a jax.random key for method='ais', got None")
        check_key("key", key)
        num_chains = check_positive_int("num_chains", num_chains)
        num_betas = check_positive_int("num_betas", num_betas)
        if num_betas < 2:
            raise ValueError(f"num_betas: expected at least 2, got {num_betas}")
        res = _ais_log_z(self.params, key, linear_betas(num_betas), num_chains=num_chains)
        return res if return_result else res.log_normalizer_ratio

    # -- sampling ------------------------------------------------------------------------
    def gibbs_step(self, key, y):
        """One sequential single-site Gibbs sweep; ``y: (..., d)`` spins."""
        return bm_gibbs_sweep(self.params, key, y)

    def sample(self, key, sample_shape=()):
        """Independent chains from uniform spins, :attr:`num_gibbs_steps` sweeps each."""
        steps = jnp.int32(self.num_gibbs_steps)
        return self._sample_by_chains(
            key, sample_shape, lambda k, n: _sample_chains(self.params, k, steps, num_chains=n)
        )

    # -- saving ----------------------------------------------------------------------------
    def save_config(self) -> dict:
        return {"dim": self.dim, "num_gibbs_steps": self.num_gibbs_steps}

    @classmethod
    def from_config(cls, config: dict) -> BoltzmannMachine:
        if "dim" not in config:
            raise ValueError(f"config: expected keys ['dim'], got {sorted(config)}")
        d = check_positive_int("dim", config["dim"])
        return cls(
            jnp.zeros((d, d), jnp.float32),
            num_gibbs_steps=int(config.get("num_gibbs_steps", 1000)),
        )

    def __repr__(self) -> str:
        return f"BoltzmannMachine(dim={self.dim}, num_gibbs_steps={self.num_gibbs_steps})"
