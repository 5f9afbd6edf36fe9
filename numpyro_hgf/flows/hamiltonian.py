"""``HamiltonianTransform``: one volume-preserving layer of a neural Hamiltonian flow.

After Toth et al. (2020), *Hamiltonian Generative Networks*, and Rezende et al. (2019),
*Equivariant Hamiltonian Flows*.  A data point ``q`` in ``R^d`` is the position half of a
phase-space state ``z = (q, p)`` in ``R^{2d}``.  Each layer integrates Hamilton's
equations of a learned separable Hamiltonian ``H(q, p) = U_theta(q) + K_theta(p)``::

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
``f_psi(p_T | q_T) = N(mu_psi(q_T), diag sigma_psi(q_T)^2)`` (Toth et al. 2020,
Sec. 3)::

    log p(q_T) >= E_{p_T ~ f_psi}[ log pi(H^{-1}(q_T, p_T)) - log f_psi(p_T | q_T) ] = ELBO(q_T)

and, with ``K`` draws, by the importance-weighted bound of Burda et al. (2016), which
increases with ``K`` and tends to ``log p(q_T)`` as ``K -> infinity``::

    IWAE_K(q_T) = E[ log (1/K) sum_k pi(H^{-1}(q_T, p_k)) / f_psi(p_k | q_T) ].

**Kinetic energy.**  Toth et al.'s ``K(p)`` is a network; here it is
``K(p) = 1/2 p^T diag(m)^{-1} p`` with a learned positive diagonal mass ``m = exp(log_mass)``
per layer.  With the velocity ``v = m^{-1} p`` the equations become ``dq/dt = v``,
``dv/dt = -m^{-1} grad U(q)``: exactly the unit-mass system that
:func:`numpyro_hgf.paths.dynamics.leapfrog` integrates, so every layer *reuses* that integrator
(one integrator in the package).  Mapped back (``p = m v``), a step is the symplectic
leapfrog of ``H = U + K``::

    p_half = p - h/2 grad U(q);   q' = q + h m^{-1} p_half;   p' = p_half - h/2 grad U(q')

The rescalings ``p -> m^{-1} p -> m p`` have Jacobian determinants ``prod 1/m`` and
``prod m``, so the layer still has ``det J = 1``.  Expressiveness is kept where it matters:
the position map is shaped by the learned potential ``U_theta`` (an MLP), and a Gaussian
kinetic term is also what makes ``p`` the usual Gaussian auxiliary variable of HMC (Neal
2011).  A general learned ``K(p)`` would need ``leapfrog`` to accept a
``velocity(p) = grad K(p)`` callable (``x' = x + h velocity(v_half)``); that is a small,
backwards-compatible extension of ``dynamics.leapfrog`` if it is ever wanted.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from numpyro_hgf._checks import (
    check_event_shape,
    check_hidden_sizes,
    check_positive_float,
    check_positive_int,
)
from numpyro_hgf.flows.base import NetworkTransform
from numpyro_hgf.nn.hamiltonian import HamiltonianNet
from numpyro_hgf.paths.dynamics import leapfrog

__all__ = ["HamiltonianTransform", "check_phase_dim"]


def check_phase_dim(name: str, value) -> int:
    """A phase-space dimension ``2d``: a positive even integer (positions and momenta)."""
    value = check_positive_int(name, value)
    if value % 2:
        raise ValueError(
            f"{name}: expected an even phase-space dimension 2d (positions q and momenta p "
            f"of equal size d), got {value}"
        )
    return value


class HamiltonianTransform(NetworkTransform):
    """``num_steps`` leapfrog steps of size ``dt`` of ``H(q, p) = U(q) + 1/2 p^T M^{-1} p``.

    Acts on phase-space vectors ``z = concat(q, p)`` of shape ``(..., 2 * dim)``.  The
    forward map integrates for time ``num_steps * dt``; the inverse is time reversal
    (flip ``p``, run forward, flip ``p``); ``log|det J| = 0`` (symplectic).  The steps are
    :func:`numpyro_hgf.paths.dynamics.leapfrog` on the velocity ``v = M^{-1} p`` (see the module
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
