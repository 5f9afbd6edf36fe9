"""``BoltzmannMachine``: a fully visible Boltzmann machine over ``{-1, +1}^d`` spins.

Energy and distribution (Ackley, Hinton & Sejnowski 1985; temperature 1)::

    E(y) = -½ yᵀ W y - bᵀ y,       p(y) = exp(-E(y)) / Z,      y ∈ {-1, +1}^d,

with ``W`` symmetric and zero on the diagonal.  The single-site conditionals are
``p(y_i = +1 | y_-i) = σ(2 (W_i· y + b_i))``; a Gibbs sweep visits the sites in order
(``lax.fori_loop``).  ``log Z`` is exact by enumerating ``2^d`` states for ``d <= 20``;
otherwise AIS (:func:`numpyro_hgf.ais.annealed_importance_sampling`, base = independent
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
from numpyro.distributions import Distribution, constraints
from numpyro.distributions.constraints import _SingletonConstraint
from numpyro.distributions.util import validate_sample

from numpyro_hgf._checks import (
    _describe,
    check_choice,
    check_event_shape,
    check_finite,
    check_positive_int,
    is_concrete,
)
from numpyro_hgf.ais import AISResult, annealed_importance_sampling, linear_betas
from numpyro_hgf.distributions.rbm import EXACT_MAX_UNITS, logsumexp_over_binary_states
from numpyro_hgf.io import register_model

__all__ = [
    "BoltzmannMachine",
    "spin",
    "check_spins",
    "bm_energy",
    "bm_gibbs_sweep",
    "bm_log_normalizer_exact",
    "bm_log_normalizer_ais",
]


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


def check_spins(name: str, x) -> None:
    """Raise a ``ValueError`` naming ``name`` unless a concrete ``x`` holds only ±1."""
    if not is_concrete(x):
        return
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name}: expected a numeric array of -1s and +1s, got {_describe(x)}")
    bad = ~((arr == -1) | (arr == 1))
    if np.any(bad):
        example = arr[bad].ravel()[:3].tolist()
        raise ValueError(
            f"{name}: expected spins in {{-1, +1}}, got {int(bad.sum())} other "
            f"entr{'y' if int(bad.sum()) == 1 else 'ies'} (e.g. {example}) in {_describe(x)}"
        )


def _check_coupling(W, tol: float = 1e-5) -> None:
    if not is_concrete(W):
        return
    w = np.asarray(W)
    asym = float(np.max(np.abs(w - w.T))) if w.size else 0.0
    diag = float(np.max(np.abs(np.diag(w)))) if w.size else 0.0
    scale = max(1.0, float(np.max(np.abs(w)))) if w.size else 1.0
    if asym > tol * scale or diag > tol * scale:
        raise ValueError(
            "W: expected a symmetric matrix with zero diagonal, got max |W - Wᵀ| = "
            f"{asym:.3g} and max |diag W| = {diag:.3g}"
        )


def bm_energy(params, y):
    """``E(y) = -½ yᵀWy - bᵀy``; ``y: (..., d) -> (...)``."""
    W, b = params["W"], params["b"]
    y = jnp.asarray(y, W.dtype)
    return -0.5 * jnp.sum((y @ W) * y, axis=-1) - y @ b


def bm_gibbs_sweep(params, key, y, beta=1.0):
    """One sequential single-site Gibbs sweep of ``p_β(y) ∝ exp(½ β yᵀWy + bᵀy)``.

    ``y: (..., d)`` spins; site ``i`` is resampled from
    ``p(y_i = +1 | y_-i) = σ(2 (β W_i·y + b_i))`` for ``i = 0, ..., d - 1``.
    """
    W, b = params["W"], params["b"]
    y = jnp.asarray(y, W.dtype)
    u = jax.random.uniform(key, y.shape, W.dtype)

    def site(i, y):
        field = beta * (y @ W[:, i]) + b[i]  # W_ii = 0, so y_i itself does not enter
        new = jnp.where(u[..., i] < jax.nn.sigmoid(2.0 * field), 1.0, -1.0).astype(W.dtype)
        return y.at[..., i].set(new)

    return jax.lax.fori_loop(0, y.shape[-1], site, y)


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


@jax.jit
def _log_prob_exact(params, y):
    return -bm_energy(params, y) - bm_log_normalizer_exact(params)


@jax.jit
def _log_prob_given(params, log_z, y):
    return -bm_energy(params, y) - log_z


_energy = jax.jit(bm_energy)


@register_model("boltzmann_machine")
class BoltzmannMachine(Distribution):
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
    Samples are float ``±1`` of shape ``(*sample_shape, d)``.
    """

    arg_constraints = {"W": constraints.real_matrix, "b": constraints.real_vector}
    support = constraints.independent(spin, 1)
    pytree_data_fields = ("W", "b", "log_z")
    pytree_aux_fields = ("num_gibbs_steps",)

    def __init__(
        self,
        W,
        b=None,
        *,
        num_gibbs_steps: int = 1000,
        log_normalizer=None,
        validate_args=None,
    ):
        W = jnp.asarray(W)
        if not jnp.issubdtype(W.dtype, jnp.floating):
            W = W.astype(jnp.float32)
        if W.ndim != 2 or W.shape[0] != W.shape[1] or W.shape[0] == 0:
            raise ValueError(f"W: expected a square (d, d) matrix, got an array of shape {W.shape}")
        d = W.shape[0]
        b = jnp.zeros(d, W.dtype) if b is None else jnp.asarray(b, W.dtype)
        if b.shape != (d,):
            raise ValueError(f"b: expected shape ({d},) to match W {W.shape}, got {b.shape}")
        check_finite("W", W)
        check_finite("b", b)
        _check_coupling(W)
        self.W, self.b = W, b
        self.num_gibbs_steps = check_positive_int("num_gibbs_steps", num_gibbs_steps)
        if log_normalizer is not None:
            log_normalizer = jnp.asarray(log_normalizer, W.dtype)
            if log_normalizer.shape != ():
                raise ValueError(
                    f"log_normalizer: expected a scalar, got shape {log_normalizer.shape}"
                )
        self.log_z = log_normalizer
        super().__init__(batch_shape=(), event_shape=(d,), validate_args=validate_args)

    @property
    def dim(self) -> int:
        return int(self.W.shape[0])

    @property
    def params(self) -> dict:
        """``{"W": (d, d), "b": (d,)}``."""
        return {"W": self.W, "b": self.b}

    def with_params(self, params) -> BoltzmannMachine:
        """A new machine with ``params`` (an attached ``log Z`` is dropped)."""
        return BoltzmannMachine(
            params["W"],
            params["b"],
            num_gibbs_steps=self.num_gibbs_steps,
            validate_args=self._validate_args,
        )

    def with_log_normalizer(self, value) -> BoltzmannMachine:
        """The same machine with ``log Z = value`` attached (e.g. an AIS estimate)."""
        if isinstance(value, AISResult):
            value = value.log_normalizer_ratio
        return BoltzmannMachine(
            self.W,
            self.b,
            num_gibbs_steps=self.num_gibbs_steps,
            log_normalizer=value,
            validate_args=self._validate_args,
        )

    # -- densities -----------------------------------------------------------------------
    def energy(self, value):
        """``E(y)``; ``value: (..., d) -> (...)``."""
        check_event_shape("value", value, self.event_shape)
        check_spins("value", value)
        return _energy(self.params, value)

    def unnormalized_log_prob(self, value):
        """``-E(y) = log p(y) + log Z``."""
        return -self.energy(value)

    @validate_sample
    def log_prob(self, value):
        """``log p(y) = -E(y) - log Z``."""
        check_event_shape("value", value, self.event_shape)
        check_spins("value", value)
        if self.log_z is not None:
            return _log_prob_given(self.params, self.log_z, value)
        if self.dim <= EXACT_MAX_UNITS:
            return _log_prob_exact(self.params, value)
        else:
            raise ValueError(
                f"log_prob: the log normalizer of a Boltzmann machine with d={self.dim} > "
                f"{EXACT_MAX_UNITS} units cannot be enumerated; attach an AIS estimate first: "
                "bm = bm.with_log_normalizer(bm.log_normalizer(method='ais', key=key))"
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
        :class:`~numpyro_hgf.ais.AISResult` is returned (its ``log_normalizer_ratio`` is
        ``log Z``)."""
        check_choice("method", method, ("exact", "ais"))
        if method == "exact":
            if self.dim > EXACT_MAX_UNITS:
                raise ValueError(
                    f"method: 'exact' enumerates 2^d states and needs d <= {EXACT_MAX_UNITS}, "
                    f"got d={self.dim}; use method='ais'"
                )
            return _exact_log_z(self.params)
        if key is None:
            raise TypeError("key: expected a jax.random key for method='ais', got None")
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
        sample_shape = tuple(sample_shape)
        n = int(np.prod(sample_shape, dtype=np.int64))
        y = _sample_chains(self.params, key, jnp.int32(self.num_gibbs_steps), num_chains=n)
        return y.reshape(sample_shape + self.event_shape)

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
