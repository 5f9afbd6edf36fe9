"""Neural Hamiltonian flow (NHF): volume-preserving flows made of learned Hamiltonian dynamics.

Seed 003 ("Hamiltonian Neural Flows", after Toth et al. 2020, *Hamiltonian Generative
Networks*).  A data point ``q`` in ``R^d`` is the position half of a phase-space state
``z = (q, p)`` in ``R^{2d}``.  Each layer integrates Hamilton's equations of a learned
separable Hamiltonian ``H(q, p) = U_theta(q) + K_theta(p)``::

    dq/dt = dK/dp,   dp/dt = -dU/dq

with leapfrog, a composition of shears: the map is **volume preserving**
(``log|det J| = 0`` exactly) and **reversible** (its inverse is the same integrator run on
the flipped momentum: ``H^{-1} = flip o H o flip`` with ``flip(q, p) = (q, -p)``).

The generative model (row "normalizing flow" of the architecture table, with a latent
momentum; learned field = ``U_theta``, ``M_theta`` per layer + encoder; path = ``L`` layers of
leapfrog; objective = ELBO)::

    (q_0, p_0) ~ pi = N(0, I_{2d}),   (q_T, p_T) = H_L o ... o H_1(q_0, p_0),   data = q_T.

Since the flow preserves volume, ``p(q_T, p_T) = pi(H^{-1}(q_T, p_T))`` and the marginal
``p(q_T) = int pi(H^{-1}(q_T, p_T)) dp_T`` is bounded with a momentum encoder
``f_psi(p_T | q_T) = N(mu_psi(q_T), diag sigma_psi(q_T)^2)`` (seed, "Neural Hamiltonian
Flow")::

    log p(q_T) >= E_{p_T ~ f_psi}[ log pi(H^{-1}(q_T, p_T)) - log f_psi(p_T | q_T) ] = ELBO(q_T)

and, with ``K`` draws, by the importance-weighted bound of Burda et al. (2016), which
increases with ``K`` and tends to ``log p(q_T)`` as ``K -> infinity``::

    IWAE_K(q_T) = E[ log (1/K) sum_k pi(H^{-1}(q_T, p_k)) / f_psi(p_k | q_T) ].

**Kinetic energy.**  The seed's ``K(p)`` is a network; here it is
``K(p) = 1/2 p^T diag(m)^{-1} p`` with a learned positive diagonal mass ``m = exp(log_mass)``
per layer.  With the velocity ``v = m^{-1} p`` the equations become ``dq/dt = v``,
``dv/dt = -m^{-1} grad U(q)``: exactly the unit-mass system that
:func:`numpyro_hgf.dynamics.leapfrog` integrates, so every layer *reuses* that integrator
(one integrator in the package).  Mapped back (``p = m v``), a step is the symplectic
leapfrog of ``H = U + K``::

    p_half = p - h/2 grad U(q);   q' = q + h m^{-1} p_half;   p' = p_half - h/2 grad U(q')

The rescalings ``p -> m^{-1} p -> m p`` have Jacobian determinants ``prod 1/m`` and
``prod m``, so the layer still has ``det J = 1``.  Expressiveness is kept where it matters:
the position map is shaped by the learned potential ``U_theta`` (an MLP), and a Gaussian
kinetic term is also what makes ``p`` the usual Gaussian auxiliary variable of HMC (seed,
"Hamiltonian Monte Carlo").  A general learned ``K(p)`` would need ``leapfrog`` to accept a
``velocity(p) = grad K(p)`` callable (``x' = x + h velocity(v_half)``); that is a small,
backwards-compatible extension of ``dynamics.leapfrog`` if it is ever wanted.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Sequence
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.distribution import Distribution

from numpyro_hgf._checks import (
    check_event_shape,
    check_hidden_sizes,
    check_positive_float,
    check_positive_int,
)
from numpyro_hgf.dynamics import leapfrog
from numpyro_hgf.flows.base import NetworkTransform, as_key, soft_clamp
from numpyro_hgf.io import register_model
from numpyro_hgf.nn import MLP

__all__ = [
    "HamiltonianNet",
    "HamiltonianTransform",
    "NeuralHamiltonianFlow",
    "check_phase_dim",
]


def check_phase_dim(name: str, value) -> int:
    """A phase-space dimension ``2d``: a positive even integer (positions and momenta)."""
    value = check_positive_int(name, value)
    if value % 2:
        raise ValueError(
            f"{name}: expected an even phase-space dimension 2d (positions q and momenta p "
            f"of equal size d), got {value}"
        )
    return value


class HamiltonianNet(nn.Module):
    """The learned Hamiltonian of one layer: ``q: (..., dim) -> (U(q): (...), log_mass: (dim,))``.

    ``U`` is an MLP with a scalar output (softplus activations by default, as
    :class:`~numpyro_hgf.nn.EnergyMLP`: ``grad U`` is smooth and bounded, which keeps the
    leapfrog steps stable); ``log_mass`` is the log of the diagonal mass of the kinetic
    energy ``K(p) = 1/2 sum_i p_i^2 / m_i`` (initialised at ``init_log_mass``).

    Any module with this call signature can drive a :class:`HamiltonianTransform` (the tests
    use an exact harmonic oscillator).
    """

    dim: int
    hidden: Sequence[int] = (64, 64)
    activation: Callable = nn.softplus
    init_log_mass: float = 0.0

    def __post_init__(self):
        check_positive_int("dim", self.dim)
        object.__setattr__(self, "hidden", check_hidden_sizes("hidden", self.hidden))
        super().__post_init__()

    @nn.compact
    def __call__(self, q):
        potential = MLP(self.hidden, 1, activation=self.activation)(q)[..., 0]
        log_mass = self.param("log_mass", nn.initializers.constant(self.init_log_mass), (self.dim,))
        return potential, log_mass


class HamiltonianTransform(NetworkTransform):
    """``num_steps`` leapfrog steps of size ``dt`` of ``H(q, p) = U(q) + 1/2 p^T M^{-1} p``.

    Acts on phase-space vectors ``z = concat(q, p)`` of shape ``(..., 2 * dim)``.  The
    forward map integrates for time ``num_steps * dt``; the inverse is time reversal
    (flip ``p``, run forward, flip ``p``); ``log|det J| = 0`` (symplectic).  The steps are
    :func:`numpyro_hgf.dynamics.leapfrog` on the velocity ``v = M^{-1} p`` (see the module
    docstring).

    Args:
        module: a flax module ``q -> (U(q), log_mass)``, e.g. :class:`HamiltonianNet`.
        params: its inner params.
        dim: position dimension ``d`` (the event size is ``2 d``).
        dt: step size (``> 0``).
        num_steps: leapfrog steps per application (``>= 1``).
    """

    static_fields = ("dim", "dt", "num_steps")

    def __init__(self, module, params, *, dim: int, dt: float = 0.1, num_steps: int = 4):
        super().__init__(module, params)
        self.dim = check_positive_int("dim", dim)
        self.dt = check_positive_float("dt", dt)
        self.num_steps = check_positive_int("num_steps", num_steps)
        module_dim = getattr(module, "dim", None)
        if module_dim is not None and module_dim != self.dim:
            raise ValueError(
                f"module: expected a Hamiltonian on positions of size dim={self.dim}, got a "
                f"module with dim={module_dim}"
            )

    @classmethod
    def create(
        cls,
        key,
        event_dim: int,
        hidden=(64, 64),
        *,
        dt: float = 0.1,
        num_steps: int = 4,
        activation: Callable = nn.softplus,
    ) -> HamiltonianTransform:
        """A layer on ``R^event_dim`` (``event_dim = 2d``, even) with a fresh
        :class:`HamiltonianNet` (random potential, unit masses)."""
        dim = check_phase_dim("event_dim", event_dim) // 2
        check_positive_float("dt", dt)
        check_positive_int("num_steps", num_steps)
        module = HamiltonianNet(dim, check_hidden_sizes("hidden", hidden), activation)
        params = cls.init_params(module, key, jnp.zeros((dim,)))
        return cls(module, params, dim=dim, dt=dt, num_steps=num_steps)

    def init_args(self) -> tuple:
        return (jnp.zeros((self.dim,)),)

    # -- the Hamiltonian ---------------------------------------------------------------
    def potential(self, q):
        """``U(q)``: ``(..., dim) -> (...)``."""
        return self.apply(q)[0]

    def log_mass(self):
        """``log m``: ``(dim,)``."""
        return self.apply(jnp.zeros((self.dim,)))[1]

    def hamiltonian(self, z):
        """``H(q, p) = U(q) + 1/2 sum p^2 / m``: ``(..., 2 dim) -> (...)``."""
        q, p = self._split(z)
        inv_mass = jnp.exp(-self.log_mass())
        return self.potential(q) + 0.5 * jnp.sum(inv_mass * p**2, axis=-1)

    def _split(self, z):
        check_event_shape("z", z, (2 * self.dim,))
        return z[..., : self.dim], z[..., self.dim :]

    def _integrate(self, q, p):
        dtype = jnp.result_type(q)
        inv_mass = jnp.exp(-self.log_mass()).astype(dtype)
        grad_u = jax.grad(lambda q: jnp.sum(self.potential(q)))
        force = lambda q: -inv_mass * grad_u(q)
        # dt (validated > 0 at construction) goes in as an array: dynamics.leapfrog's own
        # positivity check turns a Python float into a bool of a tracer under jit
        dt = jnp.asarray(self.dt, dtype)
        q, v = leapfrog(force, q, p * inv_mass, dt, self.num_steps)
        return q, v / inv_mass

    # -- Transform -----------------------------------------------------------------------
    def __call__(self, z):
        q, p = self._split(z)
        q, p = self._integrate(q, p)
        return jnp.concatenate([q, p], axis=-1)

    def _inverse(self, z):
        q, p = self._split(z)
        q, p = self._integrate(q, -p)
        return jnp.concatenate([q, -p], axis=-1)

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        return jnp.zeros(jnp.shape(x)[:-1], jnp.result_type(x))


_CONFIG_KEYS = ("dim", "num_layers", "num_steps", "dt", "hidden", "encoder_hidden")


@register_model("neural_hamiltonian_flow")
class NeuralHamiltonianFlow(Distribution):
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
    ``log_prob_key`` are data (no recompilation when only the params change).

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
        self.transforms = tuple(transforms)
        self.dim = dims.pop()
        self.encoder = encoder
        self.encoder_params = encoder_params
        self.num_particles = check_positive_int("num_particles", num_particles)
        self.log_prob_key = jax.random.PRNGKey(0) if log_prob_key is None else log_prob_key
        self.log_sigma_bound = check_positive_float("log_sigma_bound", log_sigma_bound)
        self._config = None if config is None else json.dumps(config, sort_keys=True)
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

        The encoder's output layer starts at zero, so at initialisation
        ``f_psi(p | q) = N(0, I)`` (the prior of the momentum).
        """
        dim = check_positive_int("dim", dim)
        num_layers = check_positive_int("num_layers", num_layers)
        num_steps = check_positive_int("num_steps", num_steps)
        dt = check_positive_float("dt", dt)
        hidden = check_hidden_sizes("hidden", hidden)
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
        return cls(transforms, encoder, encoder_params, num_particles=num_particles, config=config)

    # -- params (the seam trainers differentiate through) ---------------------------------
    @property
    def config(self) -> dict | None:
        return None if self._config is None else json.loads(self._config)

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

    def sample(self, key, sample_shape=()):
        """``q_T`` samples: ``(*sample_shape, dim)``."""
        return self.sample_phase(key, sample_shape)[..., : self.dim]

    def sample_phase(self, key, sample_shape=()):
        """Phase-space samples ``(q_T, p_T)``: ``(*sample_shape, 2 dim)`` (jitted)."""
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
        return _log_weights(self, jnp.asarray(q), key, num_samples, bool(shared))

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

    def log_prob(self, value):
        """Lower-bound estimate of ``log p(value)``: :meth:`log_prob_iwae` with
        ``num_particles`` draws of the fixed ``log_prob_key``, shared by all points (so
        ``log_prob(x)[i] == log_prob(x[i])``).  ``(..., dim) -> (...)``."""
        return self.log_prob_iwae(value, self.log_prob_key, self.num_particles, shared=True)

    # -- saving ---------------------------------------------------------------------------------
    def save_config(self) -> dict:
        if self._config is None:
            raise TypeError(
                "model: expected a NeuralHamiltonianFlow built by NeuralHamiltonianFlow.create "
                "(it records the config needed to save it), got a hand-built one"
            )
        return self.config

    @classmethod
    def from_config(cls, config: dict) -> NeuralHamiltonianFlow:
        """Rebuild the architecture (template params from key 0) from :meth:`save_config`."""
        missing = [k for k in _CONFIG_KEYS if k not in config]
        if missing:
            raise ValueError(
                f"config: expected keys {list(_CONFIG_KEYS)}, got {sorted(config)} "
                f"(missing {missing})"
            )
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
