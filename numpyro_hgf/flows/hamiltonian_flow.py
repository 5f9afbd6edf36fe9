"""``NeuralHamiltonianFlow``: the neural Hamiltonian flow (NHF) as a NumPyro distribution.

The layers are :class:`~numpyro_hgf.flows.hamiltonian.HamiltonianTransform` s; the model, its
momentum encoder and its bounds are described in :mod:`numpyro_hgf.flows.hamiltonian`.
"""

from __future__ import annotations

import copy
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.distribution import Distribution
from numpyro.distributions.util import validate_sample

from numpyro_hgf._checks import (
    as_key,
    check_event_shape,
    check_flag,
    check_hidden_sizes,
    check_key,
    check_positive_float,
    check_positive_int,
)
from numpyro_hgf.flows._batched_params import (
    map_over_param_batch,
    register_param_batch,
    sample_over_param_batch,
)
from numpyro_hgf.flows.base import BuilderConfig, soft_clamp
from numpyro_hgf.flows.hamiltonian import HamiltonianTransform
from numpyro_hgf.io import register_model
from numpyro_hgf.nn.mlp import MLP

__all__ = ["NeuralHamiltonianFlow"]


@register_model("neural_hamiltonian_flow")
@register_param_batch
class NeuralHamiltonianFlow(BuilderConfig, Distribution):
    """Neural Hamiltonian flow on ``R^dim``: a latent-momentum model fitted by its ELBO.

    ``(q_0, p_0) ~ N(0, I_{2 dim})`` goes through the :class:`HamiltonianTransform` layers
    (each with its own networks) and ``q_T`` is the sample; a momentum encoder
    ``f_psi(p_T | q_T) = N(mu(q_T), diag sigma(q_T)^2)`` (an MLP with ``2 dim`` outputs, log
    ``sigma`` soft-clamped to ``(-log_sigma_bound, log_sigma_bound)``) bounds the marginal
    likelihood from below (see the module docstring).

    It is a NumPyro ``Distribution`` (event shape ``(dim,)``, support ``real_vector``) whose
    ``log_prob`` is **a lower-bound estimate**: the importance-weighted bound
    :meth:`log_prob_iwae` with ``num_particles`` momentum draws of the fixed key
    ``log_prob_key``, the same draws for every point.  It is therefore a deterministic,
    differentiable function of each value, independent of the batch (usable in
    ``numpyro.sample`` as a learned prior, and by NUTS), biased low by the IWAE gap
    (``O(1/num_particles)`` when the weights have finite variance).  :meth:`elbo` and
    :meth:`log_prob_iwae` take explicit keys.

    It is a pytree: networks, ``dim`` and the config are static; the params and
    ``log_prob_key`` are data (no recompilation when only the params change).  Params with
    extra leading dims ``B`` (``numpyro.contrib.control_flow.scan`` stacks them) are a batch
    of flows mapped over ``B`` (``param_batch_shape``; see
    :mod:`numpyro_hgf.flows._batched_params`).

    ``sample`` is reparameterized (``has_rsample``).  With ``validate_args=True``,
    ``log_prob`` of a value outside ``real_vector`` (NaN, inf) warns and gives ``-inf``;
    unchecked, a NaN gives NaN (never an exception; under NUTS a divergence).

    Args:
        transforms: the :class:`HamiltonianTransform` layers, applied base -> data in order.
        encoder: flax module ``q: (..., dim) -> (..., 2 dim)`` (mean, raw log-scale).
        encoder_params: its inner params.
        num_particles: momentum draws of :meth:`log_prob` (static).
        log_prob_key: key of :meth:`log_prob` (default ``PRNGKey(0)``).
        log_sigma_bound: soft clamp of the encoder's log standard deviation.
        config: the :meth:`create` arguments (set by ``create``; needed to save).
    """

    support = constraints.real_vector
    pytree_data_fields = ("transforms", "encoder_params", "log_prob_key")
    pytree_aux_fields = ("encoder", "dim", "num_particles", "log_sigma_bound", "_config")
    CONFIG_KEYS = ("dim", "num_layers", "num_steps", "dt", "hidden", "encoder_hidden")
    BUILDER = "NeuralHamiltonianFlow.create"

    def __init__(
        self,
        transforms,
        encoder,
        encoder_params,
        *,
        num_particles: int = 64,
        log_prob_key=None,
        log_sigma_bound: float = 5.0,
        config: dict | None = None,
        validate_args=None,
    ):
        transforms = (transforms,) if isinstance(transforms, HamiltonianTransform) else transforms
        if (
            not isinstance(transforms, list | tuple)
            or not transforms
            or not all(isinstance(t, HamiltonianTransform) for t in transforms)
        ):
            raise TypeError(
                "transforms: expected a non-empty sequence of HamiltonianTransform, got "
                f"{type(transforms).__name__}"
            )
        dims = {t.dim for t in transforms}
        if len(dims) != 1:
            raise ValueError(
                f"transforms: expected layers on one position dimension, got dims {sorted(dims)}"
            )
        if not hasattr(encoder, "apply"):
            raise TypeError(f"encoder: expected a flax.linen module, got {encoder!r}")
        self.transforms = tuple(transforms)
        self.dim = dims.pop()
        self.encoder = encoder
        self.encoder_params = encoder_params
        self.num_particles = check_positive_int("num_particles", num_particles)
        if log_prob_key is not None:
            check_key("log_prob_key", log_prob_key)
        self.log_prob_key = jax.random.PRNGKey(0) if log_prob_key is None else log_prob_key
        self.log_sigma_bound = check_positive_float("log_sigma_bound", log_sigma_bound)
        self._config = self._encode_config(config)
        out = jax.eval_shape(
            lambda p: encoder.apply({"params": p}, jnp.zeros((self.dim,))), encoder_params
        )
        if out.shape != (2 * self.dim,):
            raise ValueError(
                f"encoder: expected outputs of shape ({2 * self.dim},) (mean and log-scale of "
                f"p given q), got {out.shape}"
            )
        super().__init__(batch_shape=(), event_shape=(self.dim,), validate_args=validate_args)

    @classmethod
    def create(
        cls,
        key,
        dim: int,
        *,
        num_layers: int = 2,
        num_steps: int = 4,
        dt: float = 0.2,
        hidden=(64, 64),
        encoder_hidden=None,
        num_particles: int = 64,
        validate_args=None,
    ) -> NeuralHamiltonianFlow:
        """A fresh NHF on ``R^dim``.

        Args:
            key: PRNG key (or int seed; ``None`` means 0).
            dim: data (position) dimension ``d``; the phase space is ``R^{2d}``.
            num_layers: Hamiltonian layers ``L``, each with its own ``U`` and mass.
            num_steps, dt: leapfrog steps per layer and their size; the total integration
                time is ``num_layers * num_steps * dt``.
            hidden: hidden widths of every potential ``U``.
            encoder_hidden: hidden widths of the momentum encoder (default ``hidden``).
            num_particles: momentum draws of :meth:`log_prob`.
            validate_args: NumPyro's argument validation (``None``: the global flag).

        The encoder's output layer starts at zero, so at initialisation
        ``f_psi(p | q) = N(0, I)`` (the prior of the momentum).
        """
        dim = check_positive_int("dim", dim)
        num_layers = check_positive_int("num_layers", num_layers)
        num_steps = check_positive_int("num_steps", num_steps)
        dt = check_positive_float("dt", dt)
        hidden = check_hidden_sizes("hidden", hidden)
        num_particles = check_positive_int("num_particles", num_particles)
        encoder_hidden = hidden if encoder_hidden is None else encoder_hidden
        encoder_hidden = check_hidden_sizes("encoder_hidden", encoder_hidden)
        keys = jax.random.split(as_key(key), num_layers + 1)
        transforms = [
            HamiltonianTransform.create(k, 2 * dim, hidden, dt=dt, num_steps=num_steps)
            for k in keys[:-1]
        ]
        encoder = MLP(encoder_hidden, 2 * dim, zero_init_output=True)
        encoder_params = encoder.init(keys[-1], jnp.zeros((dim,)))["params"]
        config = {
            "dim": dim,
            "num_layers": num_layers,
            "num_steps": num_steps,
            "dt": dt,
            "hidden": list(hidden),
            "encoder_hidden": list(encoder_hidden),
            "num_particles": num_particles,
        }
        return cls(
            transforms,
            encoder,
            encoder_params,
            num_particles=num_particles,
            config=config,
            validate_args=validate_args,
        )

    # -- params (the seam trainers differentiate through) ---------------------------------
    @property
    def params(self):
        """``(tuple of per-layer params, encoder params)``."""
        return tuple(t.params for t in self.transforms), self.encoder_params

    def with_params(self, params) -> NeuralHamiltonianFlow:
        """Same networks and hyper-parameters, new ``params`` (a pair like :attr:`params`)."""
        layer_params, encoder_params = params
        layer_params = tuple(layer_params)
        if len(layer_params) != len(self.transforms):
            raise ValueError(
                f"params: expected params for {len(self.transforms)} layers, got "
                f"{len(layer_params)}"
            )
        new = copy.copy(self)
        new.transforms = tuple(
            t.with_params(p) for t, p in zip(self.transforms, layer_params, strict=True)
        )
        new.encoder_params = encoder_params
        return new

    # -- the flow --------------------------------------------------------------------------
    @property
    def base_dist(self):
        """The phase-space prior ``N(0, I_{2 dim})``."""
        return dist.Normal(jnp.zeros(2 * self.dim), 1.0).to_event(1)

    def forward(self, z0):
        """``(q_0, p_0) -> (q_T, p_T)``: ``(..., 2 dim) -> (..., 2 dim)``."""
        for t in self.transforms:
            z0 = t(z0)
        return z0

    def inverse(self, z):
        """``(q_T, p_T) -> (q_0, p_0)`` (time reversal of every layer, in reverse order)."""
        for t in reversed(self.transforms):
            z = t.inv(z)
        return z

    def joint_log_prob(self, z):
        """Exact ``log p(q_T, p_T) = log pi(H^{-1}(q_T, p_T))`` (volume preservation)."""
        return self.base_dist.log_prob(self.inverse(z))

    def encode(self, q):
        """Momentum encoder: ``q: (..., dim) -> (mean, log_scale)``, each ``(..., dim)``."""
        out = self.encoder.apply({"params": self.encoder_params}, q)
        return out[..., : self.dim], soft_clamp(out[..., self.dim :], self.log_sigma_bound)

    @property
    def param_batch_shape(self) -> tuple[int, ...]:
        """Extra leading dims of the network params (``()`` for one flow)."""
        return tuple(jnp.broadcast_shapes(*(t.param_batch_shape for t in self.transforms)))

    def sample(self, key, sample_shape=()):
        """``q_T`` samples: ``(*sample_shape, *param_batch_shape, dim)``."""
        check_key("key", key)
        batch = self.param_batch_shape
        if batch:
            return sample_over_param_batch(self, batch, _sample, key, sample_shape)
        return self.sample_phase(key, sample_shape)[..., : self.dim]

    def sample_phase(self, key, sample_shape=()):
        """Phase-space samples ``(q_T, p_T)``: ``(*sample_shape, 2 dim)`` (jitted)."""
        check_key("key", key)
        return _sample_phase(self, key, tuple(sample_shape))

    # -- bounds on log p(q) -----------------------------------------------------------------
    def log_weights(self, q, key, num_samples: int = 1, *, shared: bool = False):
        """``log pi(H^{-1}(q, p_k)) - log f_psi(p_k | q)`` for ``p_k ~ f_psi(. | q)``.

        ``q: (..., dim)`` -> ``(num_samples, ...)``.  The ``p_k`` are reparametrised draws
        ``mu(q) + sigma(q) eps_k``; the ``eps_k`` are independent across points, or, with
        ``shared=True``, the same ``num_samples`` draws for every point (then a point's
        weights do not depend on the batch it comes in).  Jitted (cached per architecture,
        shape and ``num_samples``), so eager calls are fast too.
        """
        check_event_shape("q", q, (self.dim,))
        num_samples = check_positive_int("num_samples", num_samples)
        check_key("key", key)
        shared = check_flag("shared", shared)
        return _log_weights(self, jnp.asarray(q), key, num_samples, shared)

    def elbo(self, q, key, num_samples: int = 1):
        """``ELBO(q)``, Monte Carlo over ``num_samples`` momentum draws: ``(..., dim) -> (...)``."""
        return jnp.mean(self.log_weights(q, key, num_samples), axis=0)

    def log_prob_iwae(self, q, key, num_samples: int = 64, *, shared: bool = False):
        """Importance-weighted bound ``log (1/K) sum_k w_k`` with ``K = num_samples``.

        A lower bound on ``log p(q)`` in expectation, increasing in ``K`` and converging to
        ``log p(q)`` (Burda et al. 2016); ``K = 1`` is the single-sample ELBO.
        ``q: (..., dim) -> (...)``; ``shared`` as in :meth:`log_weights`.
        """
        log_w = self.log_weights(q, key, num_samples, shared=shared)
        return jax.nn.logsumexp(log_w, axis=0) - math.log(num_samples)

    @validate_sample
    def log_prob(self, value):
        """Lower-bound estimate of ``log p(value)``: :meth:`log_prob_iwae` with
        ``num_particles`` draws of the fixed ``log_prob_key``, shared by all points (so
        ``log_prob(x)[i] == log_prob(x[i])``).  ``(..., dim) -> (...)``."""
        batch = self.param_batch_shape
        if batch:
            check_event_shape("q", value, (self.dim,))
            return map_over_param_batch(self, batch, _log_prob, value, 1)
        return self.log_prob_iwae(value, self.log_prob_key, self.num_particles, shared=True)

    # -- saving ---------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict) -> NeuralHamiltonianFlow:
        """Rebuild the architecture (template params from key 0) from :meth:`save_config`."""
        config = cls._checked_config(config)
        return cls.create(
            0,
            config["dim"],
            num_layers=config["num_layers"],
            num_steps=config["num_steps"],
            dt=config["dt"],
            hidden=tuple(config["hidden"]),
            encoder_hidden=tuple(config["encoder_hidden"]),
            num_particles=config.get("num_particles", 64),
        )

    def __repr__(self) -> str:
        t = self.transforms[0]
        return (
            f"NeuralHamiltonianFlow(dim={self.dim}, {len(self.transforms)} layers x "
            f"{t.num_steps} leapfrog steps of dt={t.dt:g})"
        )


def _log_prob(d, value):
    return d.log_prob(value)


def _sample(d, key, sample_shape):
    return d.sample(key, sample_shape)


@partial(jax.jit, static_argnums=2)
def _sample_phase(model: NeuralHamiltonianFlow, key, sample_shape: tuple):
    z0 = jax.random.normal(key, sample_shape + (2 * model.dim,))
    return model.forward(z0)


@partial(jax.jit, static_argnums=(3, 4))
def _log_weights(model: NeuralHamiltonianFlow, q, key, num_samples: int, shared: bool = False):
    mean, log_scale = model.encode(q)
    # shared: the same standard-normal draws for every point (common random numbers), so a
    # point's value does not depend on the rest of the batch
    shape = (num_samples, model.dim) if shared else (num_samples,) + jnp.shape(mean)
    eps = jax.random.normal(key, shape, jnp.result_type(mean))
    if shared:
        eps = jnp.expand_dims(eps, tuple(range(1, mean.ndim)))
        eps = jnp.broadcast_to(eps, (num_samples,) + mean.shape)
    p = mean + jnp.exp(log_scale) * eps
    # log f = sum(-eps^2/2 - log sigma - log(2 pi)/2): exact in eps (no cancellation)
    log_f = jnp.sum(-0.5 * eps**2 - log_scale - 0.5 * math.log(2 * math.pi), axis=-1)
    z = jnp.concatenate([jnp.broadcast_to(q, p.shape), p], axis=-1)
    return model.joint_log_prob(z) - log_f
