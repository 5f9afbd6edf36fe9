"""One base for the models whose density is known only up to its normaliser ``Z``.

Energy-based models, RBMs and Boltzmann machines have ``p(x) = exp(-E(x)) / Z`` with an
energy that is cheap and a ``log Z`` that is not.  They share one protocol:

* :meth:`~UnnormalizedDistribution.unnormalized_log_prob` ``= -E(x)`` (or ``-F(v)``), always
  available, differentiable in the value and the params;
* :meth:`~UnnormalizedDistribution.log_normalizer` estimates ``log Z`` (exact enumeration when
  the model is small, annealed importance sampling or quadrature otherwise; each subclass
  documents its methods);
* :meth:`~UnnormalizedDistribution.with_log_normalizer` attaches an estimate (a number or an
  :class:`~numpyro_hgf.samplers.ais.AISResult`), after which ``log_prob`` is normalised;
* ``log_prob = unnormalized_log_prob - log Z`` with, in order, the attached value, the exact
  enumeration when the subclass has one, and otherwise -- per subclass -- either the
  unnormalised value (``requires_normalizer = False``: fine for MCMC, which ignores constants)
  or a ``ValueError`` that says how to attach an estimate;
* :meth:`~UnnormalizedDistribution.with_params` / ``params``: the seam trainers
  differentiate through (pure pytree data replacement; an attached ``log Z`` is kept as it
  is -- it belongs to the old params, so re-estimate it or drop it with
  ``with_log_normalizer(None)``).

Subclasses are pytrees (NumPyro's ``pytree_data_fields``) whose data fields include
``log_z`` (``None`` or a scalar), so they pass through ``jit``, ``vmap`` and ``grad``.
Params with extra leading dims ``B`` (``param_batch_shape``; ``scan`` and ``vmap`` stack
them) are a batch of models: ``log_prob`` and ``sample`` map the unbatched model over ``B``
(:mod:`numpyro_hgf.flows._batched_params`), and NumPyro's ``promote_batch_shape`` puts ``B``
in front of ``batch_shape``.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Distribution
from numpyro.distributions.util import validate_sample

from numpyro_hgf._checks import (
    check_betas,
    check_binary,
    check_choice,
    check_event_shape,
    check_flag,
    check_key,
    check_positive_int,
    is_concrete,
)
from numpyro_hgf._checks.arrays import check_real_array
from numpyro_hgf.flows._batched_params import map_over_param_batch, sample_over_param_batch
from numpyro_hgf.nn.boltzmann import log_odds
from numpyro_hgf.samplers.ais import AISResult, piecewise_linear_betas

__all__ = ["UnnormalizedDistribution", "LayeredMachine"]


class UnnormalizedDistribution(Distribution):
    """Base of distributions with ``p(x) = exp(u(x)) / Z`` and an intractable ``Z``.

    Subclasses set ``pytree_data_fields`` to include ``"log_z"``, store the attached value in
    ``self.log_z`` (via :meth:`_check_log_normalizer`), and implement
    :meth:`unnormalized_log_prob`, :meth:`log_normalizer`, :meth:`_missing_normalizer_hint`
    and -- when ``Z`` can be enumerated -- :meth:`_exact_log_normalizer`.
    """

    #: ``log_prob`` without an attached or exact ``log Z``: ``True`` raises, ``False`` returns
    #: the unnormalised value.
    requires_normalizer: ClassVar[bool] = True

    # -- what subclasses provide ---------------------------------------------------------------
    def energy(self, value):
        """``E(value)`` with ``p = exp(-E) / Z``; ``value: (..., *event_shape) -> (...)``."""
        raise NotImplementedError  # abstract

    def unnormalized_log_prob(self, value):
        """``-E(value) = log p(value) + log Z``: the log density up to the constant ``log Z``."""
        return -self.energy(value)

    def log_normalizer(self, method=None, **kwargs):
        """An estimate of ``log Z`` (a scalar)."""
        raise NotImplementedError  # abstract

    @property
    def exact_log_normalizer_available(self) -> bool:
        """Whether ``log Z`` can be computed exactly (e.g. by enumeration)."""
        return False

    #: ``fn(params) -> log Z`` by enumeration, for the machines that have one (a jitted
    #: pure function of their module); used while :attr:`exact_log_normalizer_available`
    exact_log_z_fn: ClassVar = None

    def _exact_log_normalizer(self):
        if type(self).exact_log_z_fn is None:
            raise NotImplementedError  # abstract (only when exact_log_normalizer_available)
        return type(self).exact_log_z_fn(self.params)

    def _missing_normalizer_hint(self) -> str:
        return "estimate it and attach it first with model.with_log_normalizer(...)"

    @property
    def param_batch_shape(self) -> tuple[int, ...]:
        """Extra leading dims of the params (``()`` for one model): for the machines with a
        weight matrix ``W``, its leading dims beyond the last two."""
        W = getattr(self, "W", None)
        return () if W is None else tuple(jnp.shape(W)[:-2])

    def _init_gibbs_model(self, event_size, num_gibbs_steps, log_normalizer, dtype, validate_args):
        """The constructor tail of the Gibbs-sampled machines: the sampler's step count, the
        optional known ``log Z`` and NumPyro's ``Distribution`` set-up (event ``(size,)``)."""
        self.num_gibbs_steps = check_positive_int("num_gibbs_steps", num_gibbs_steps)
        self.log_z = self._check_log_normalizer(log_normalizer, dtype)
        super().__init__(batch_shape=(), event_shape=(event_size,), validate_args=validate_args)

    #: the array fields that are the params of a machine with one weight matrix, in order
    param_fields: ClassVar[tuple[str, ...]] = ()
    #: its support check of a value, ``check(name, value)`` (binary or spins), or ``None``
    value_check: ClassVar = None

    def _field_params(self) -> dict:
        """``{name: array}`` of the :attr:`param_fields` (a subclass with param fields sets
        ``params = property(UnnormalizedDistribution._field_params)``)."""
        return {name: getattr(self, name) for name in self.param_fields}

    def _check_value(self, value) -> None:
        """Concrete checks of a ``log_prob`` value (event shape, support); subclasses add."""
        if self.value_check is not None:
            check_event_shape("value", value, self.event_shape)
            type(self).value_check("value", value)

    def _sample_by_chains(self, key, sample_shape, run_chains):
        """``sample`` of the Gibbs-sampled machines: ``run_chains(key, n) -> (n, *event)``,
        the last states of ``n`` independent chains, reshaped to ``sample_shape``."""
        sample_shape = tuple(sample_shape)
        check_key("key", key)
        if self.param_batch_shape:
            return self._sample_batched(key, sample_shape)
        n = int(np.prod(sample_shape, dtype=np.int64))
        return run_chains(key, n).reshape(sample_shape + self.event_shape)

    def _sample_batched(self, key, sample_shape, fn=None):
        """``sample`` of a batch of models: ``(*sample_shape, *param_batch_shape, *event)``."""
        fn = fn or (lambda d, k, s: d.sample(k, s))
        return sample_over_param_batch(self, self.param_batch_shape, fn, key, sample_shape)

    # -- the shared protocol ---------------------------------------------------------------------
    @staticmethod
    def _exact_result(log_z, return_result: bool):
        """``log Z`` of an exact method, or as an ``AISResult`` (one sample, ``stderr`` 0)."""
        if not return_result:
            return log_z
        zero = jnp.zeros((), log_z.dtype)
        return AISResult(log_z, jnp.zeros((1,), log_z.dtype), None, zero)

    def _ais_arguments(self, key, num_chains, num_betas, betas, data, base_visible_bias, dtype):
        """Checked ``(num_chains, betas, base_visible_bias)`` of a machine's
        ``log_normalizer("ais", ...)``; the base biases from ``data`` are its smoothed log-odds
        (the "base-rate" model of Salakhutdinov & Murray 2008), ``None`` if neither is given."""
        if key is None:
            raise TypeError("key: expected a jax.random key for method='ais', got None")
        check_key("key", key)
        num_chains = check_positive_int("num_chains", num_chains)
        if betas is None:
            num_betas = check_positive_int("num_betas", num_betas)
            if num_betas < 2:
                raise ValueError(f"num_betas: expected at least 2, got {num_betas}")
            betas = piecewise_linear_betas(num_betas)
        else:
            betas = check_real_array("betas", betas)
            check_betas("betas", betas)
        num_visible = self.event_shape[-1]
        if base_visible_bias is None and data is not None:
            data = jnp.asarray(data)
            check_event_shape("data", data, self.event_shape)
            check_binary("data", data)
            data = data.reshape(-1, num_visible)
            p = (jnp.sum(data, axis=0) + 0.5) / (data.shape[0] + 1.0)
            base_visible_bias = log_odds(p)
        if base_visible_bias is not None:
            base_visible_bias = jnp.asarray(base_visible_bias, dtype)
            if base_visible_bias.shape != (num_visible,):
                raise ValueError(
                    f"base_visible_bias: expected shape ({num_visible},), got "
                    f"{base_visible_bias.shape}"
                )
        return num_chains, jnp.asarray(betas), base_visible_bias

    @staticmethod
    def _float_weights(W, name: str = "W"):
        """``W`` as a JAX array, integer or boolean entries cast to float32 (strings, objects
        and complex numbers: a ``TypeError`` naming ``name``)."""
        check_real_array(name, W)
        W = jnp.asarray(W)
        return W if jnp.issubdtype(W.dtype, jnp.floating) else W.astype(jnp.float32)

    @classmethod
    def _bias(cls, name: str, b, n: int, dtype):
        """A bias vector ``b`` of ``dtype`` (zeros when ``None``); not reshaped (the caller
        checks its shape)."""
        if b is None:
            return jnp.zeros(n, dtype)
        return jnp.asarray(cls._float_weights(b, name), dtype)

    @staticmethod
    def _check_log_normalizer(log_z, dtype=None):
        """``None``, or a finite scalar (an :class:`AISResult` gives its estimate)."""
        if log_z is None:
            return None
        if isinstance(log_z, AISResult):
            log_z = log_z.log_normalizer_ratio
        log_z = jnp.asarray(log_z, dtype)
        if log_z.shape != ():
            raise ValueError(f"log_normalizer: expected a scalar, got shape {log_z.shape}")
        if is_concrete(log_z) and not bool(jnp.isfinite(log_z)):
            raise ValueError(f"log_normalizer: expected a finite value, got {float(log_z)}")
        return log_z

    def _replace_data(self, **fields):
        """The same model with some pytree data fields replaced (no re-validation)."""
        data, aux = self.tree_flatten()
        names = type(self).gather_pytree_data_fields()
        unknown = set(fields) - set(names)
        if unknown:
            raise TypeError(
                f"fields: {sorted(unknown)} are not data fields of {type(self).__name__}"
            )
        data = tuple(fields.get(n, v) for n, v in zip(names, data, strict=True))
        return type(self).tree_unflatten(aux, data)

    def with_log_normalizer(self, log_normalizer):
        """A copy whose ``log_prob`` is ``unnormalized_log_prob - log_normalizer``.

        ``log_normalizer`` is a scalar, an :class:`~numpyro_hgf.samplers.ais.AISResult`, or
        ``None`` (remove an attached value).
        """
        dtype = getattr(self.log_z, "dtype", None)
        return self._replace_data(log_z=self._check_log_normalizer(log_normalizer, dtype))

    @property
    def is_normalized(self) -> bool:
        """Whether ``log_prob`` includes ``-log Z`` (attached, or exact by enumeration)."""
        return self.log_z is not None or self.exact_log_normalizer_available

    @validate_sample
    def log_prob(self, value):
        """``unnormalized_log_prob(value) - log Z`` (see the module docstring for ``log Z``)."""
        batch = self.param_batch_shape
        if batch:
            self._check_value(value)
            event_ndim = len(self.event_shape)
            return map_over_param_batch(self, batch, lambda d, v: d.log_prob(v), value, event_ndim)
        if self.log_z is None and not self.exact_log_normalizer_available:
            if self.requires_normalizer:
                raise ValueError(
                    f"log_prob: the log normalizer of {self!r} cannot be computed exactly; "
                    f"{self._missing_normalizer_hint()}, or use unnormalized_log_prob(value)"
                )
            return self.unnormalized_log_prob(value)
        log_z = self.log_z if self.log_z is not None else self._exact_log_normalizer()
        return self.unnormalized_log_prob(value) - log_z


class LayeredMachine(UnnormalizedDistribution):
    """Base of the layered binary machines (the RBM and the DBM): ``log Z`` by enumerating
    the smaller parity of the layers, or by annealed importance sampling from a base-rate
    model (Salakhutdinov & Murray 2008; Salakhutdinov & Hinton 2009, sec. 3.2).

    Subclasses set :attr:`exact_log_z_fn` and :attr:`ais_log_z_fn` (pure functions of the
    params), implement :meth:`_exact_size_error` (why ``"exact"`` cannot enumerate, or
    ``None``) and :attr:`weight_dtype`.
    """

    def _exact_size_error(self) -> str | None:
        raise NotImplementedError  # abstract

    #: ``fn(params, key, base_visible_bias, betas, num_chains=...) -> AISResult``
    ais_log_z_fn: ClassVar = None

    def _ais_log_normalizer(self, key, base_visible_bias, betas, num_chains: int) -> AISResult:
        fn = type(self).ais_log_z_fn
        return fn(self.params, key, base_visible_bias, betas, num_chains=num_chains)

    @property
    def weight_dtype(self):
        raise NotImplementedError  # abstract

    def log_normalizer(
        self,
        method: str = "exact",
        *,
        key=None,
        num_chains: int = 100,
        num_betas: int = 10_000,
        betas=None,
        data=None,
        base_visible_bias=None,
        return_result: bool = False,
    ):
        """``log Z``, exactly or by annealed importance sampling.

        Args:
            method: ``"exact"`` (enumerate the smaller parity of the layers; at most
                ``EXACT_MAX_UNITS = 20`` units) or ``"ais"`` (Salakhutdinov & Murray 2008:
                :func:`~numpyro_hgf.distributions.rbm.rbm_log_normalizer_ais`,
                :func:`~numpyro_hgf.distributions.deep_boltzmann.dbm_log_normalizer_ais`).
            key: ``jax.random`` key (AIS only).
            num_chains: independent AIS runs.
            num_betas: number of inverse temperatures, spread like Salakhutdinov &
                Murray's schedule (1/29 of them on [0, 0.5), 8/29 on [0.5, 0.9), the rest
                on [0.9, 1]; :func:`~numpyro_hgf.samplers.ais.piecewise_linear_betas`);
                ``betas`` overrides it.
            data: optional ``(n, V)`` binary data: the base visible biases are the
                smoothed data log-odds (the "base-rate" model).  Without ``data`` and
                ``base_visible_bias`` they are the model's default (the RBM: the log-odds
                of its mean-field visible marginals; the DBM: zero).
            base_visible_bias: ``(V,)`` base visible biases (overrides ``data``).
            return_result: return the :class:`~numpyro_hgf.samplers.ais.AISResult` (its
                ``log_normalizer_ratio`` is ``log Z``; ``stderr`` its standard error).

        Returns:
            A scalar ``log Z`` (or the ``AISResult`` with ``return_result``; for
            ``"exact"`` the result has ``stderr = 0`` and no samples).
        """
        check_choice("method", method, ("exact", "ais"))
        return_result = check_flag("return_result", return_result)
        if method == "exact":
            error = self._exact_size_error()
            if error is not None:
                raise ValueError(f"method: 'exact' {error}; use method='ais'")
            return self._exact_result(self._exact_log_normalizer(), return_result)
        num_chains, betas, base_visible_bias = self._ais_arguments(
            key, num_chains, num_betas, betas, data, base_visible_bias, self.weight_dtype
        )
        res = self._ais_log_normalizer(key, base_visible_bias, betas, num_chains)
        return res if return_result else res.log_normalizer_ratio
