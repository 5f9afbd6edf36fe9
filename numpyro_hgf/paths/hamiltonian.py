"""Hamiltonian paths: the *path* column of the architecture table for the velocity models.

A path is a force field, a coupling of ``(x0, v0)`` (``x0`` from the data, ``v0`` from a
velocity distribution) and a horizon ``T`` (Holderrieth et al., *Hamiltonian Score
Matching and Generative Flows*, NeurIPS 2024, Sec. 5).  Running ``dx/dt = v,
dv/dt = F(x)`` from ``(x0, v0)`` gives ``(x_t, v_t)``; the x-marginal ``p_t`` is
transported by the optimal velocity predictor

    V*(x, t) = E[v_t | x_t = x],

which :func:`numpyro_hgf.train.fit_velocity` learns by regression
``min E ||V(x_t, t) - v_t||^2`` (the HSM loss with a fixed force, up to a constant).  A
sample is ``x_T ~ pi_T`` integrated by ``dx/dt = V(x, t)`` from ``T`` back to ``0``.

=====================  ==============  ================================  =====================
path                   force           coupling                          ``pi_T``
=====================  ==============  ================================  =====================
``FlowMatchingPath``   0               ``v0 = z - x0``, ``z ~ N(0, I)``  ``N(0, I)``, T = 1
                                       (optionally minibatch OT)
``DiffusionPath``      0               ``v0 ~ N(0, I)`` independent      ``N(0, (s^2+T^2) I)``
``OscillationPath``    ``-w^2 x``      ``v0 ~ N(0, I)`` independent      ``N(0, I / w^2)``,
                                                                         T = pi / (2 w)
``ReflectionPath``     walls of a box  ``v0 ~ N(0, s_v^2 I)``            ``U(box)`` (T large)
=====================  ==============  ================================  =====================

Every path offers :meth:`~HamiltonianPath.optimal_velocity_gaussian`, the closed-form
``V*`` for Gaussian data ``N(mean, cov)`` (derived in ``docs/hgf.md``), used as an
oracle in tests.  Paths are frozen dataclasses (hashable, static under ``jit``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from scipy.optimize import linear_sum_assignment

from numpyro_hgf._checks import (
    check_finite_float,
    check_flag,
    check_key,
    check_positive_float,
    is_concrete,
)
from numpyro_hgf.paths.base import Path
from numpyro_hgf.paths.dynamics import fold_into_box, harmonic

__all__ = [
    "HamiltonianPath",
    "FlowMatchingPath",
    "DiffusionPath",
    "OscillationPath",
    "ReflectionPath",
]


def _event_axes(x, event_ndim: int):
    return tuple(range(x.ndim - event_ndim, x.ndim))


def _gaussian_conditional_mean(x, mean_x, mean_v, cov_vx, cov_x):
    """``E[v | x]`` for jointly Gaussian ``(v, x)``: ``mean_v + cov_vx cov_x^{-1} (x - mean_x)``.

    ``x: (..., d)``; ``mean_x, mean_v: (d,)``; ``cov_vx, cov_x: (d, d)``.
    """
    # solve against a trailing column so any leading batch dims broadcast (a transpose
    # ``.T`` would reverse all axes and mix batch dims with the event dim)
    solved = jnp.linalg.solve(cov_x, (x - mean_x)[..., None])[..., 0]
    return mean_v + solved @ cov_vx.T


@dataclass(frozen=True)
class HamiltonianPath(Path):
    """Base of the Hamiltonian paths: a coupling of ``(x0, v0)`` and a closed-form motion.

    Shapes: ``x0: (batch, *event_shape)``; ``t: (batch,)``; returns ``(x_t, v_t)`` of the
    shape of ``x0``.  The path protocol (:meth:`~numpyro_hgf.paths.Path.base`,
    ``horizon``, ``check_time``, ``config``) comes from :class:`~numpyro_hgf.paths.Path`.
    """

    # -- the path ----------------------------------------------------------------------
    def couple(self, x0, key):
        """Draw ``v0`` given ``x0`` (the coupling of phase space)."""
        raise NotImplementedError  # abstract

    def motion(self, x0, v0, t):
        """``(x_t, v_t)`` of the Hamiltonian dynamics from ``(x0, v0)`` (closed form)."""
        raise NotImplementedError  # abstract

    def sample(self, x0, key, t):
        """``(x_t, v_t)`` for data ``x0`` and times ``t``: coupling, then motion."""
        check_key("key", key)
        self.check_data(x0)
        self.check_time(t)
        return self.motion(x0, self.couple(x0, key), t)

    # -- oracle ------------------------------------------------------------------------
    def optimal_velocity_gaussian(self, x, t, mean, cov):
        """Closed-form ``V*(x, t) = E[v_t | x_t = x]`` for data ``N(mean, cov)``.

        ``x: (..., d)``, ``t: ()``, ``mean: (d,)``, ``cov: (d, d)``.
        """
        raise NotImplementedError  # abstract

    def exact_base_gaussian(self, mean, cov) -> dist.Distribution:
        """The exact ``x_T`` marginal for data ``N(mean, cov)`` (for oracle tests)."""
        mean_T, cov_T = self._gaussian_marginal(jnp.asarray(self.horizon), mean, cov)
        return dist.MultivariateNormal(mean_T, cov_T)

    def _gaussian_marginal(self, t, mean, cov):
        raise NotImplementedError  # abstract


@dataclass(frozen=True)
class FlowMatchingPath(HamiltonianPath):
    """Conditional OT flow matching (Lipman et al. 2023) as a zero-force HGF.

    ``x_t = x0 + t v0 = (1 - t) x0 + t z``, ``v_t = v0 = z - x0``, ``z ~ N(0, I)``,
    ``T = 1``.  With ``minibatch_ot=True`` the ``z`` of a batch are re-paired with the
    ``x0`` by an exact assignment minimising ``sum ||x0_i - z_j||^2`` (Tong et al. 2023;
    Pooladian et al. 2023), computed on the host by ``scipy``'s Hungarian solver.
    """

    minibatch_ot: bool = False
    name = "flow_matching"

    def __post_init__(self):
        check_flag("minibatch_ot", self.minibatch_ot)

    @property
    def horizon(self) -> float:
        return 1.0

    def couple(self, x0, key):
        z = jax.random.normal(key, x0.shape, x0.dtype)
        if self.minibatch_ot:
            z = z[_ot_assignment(x0.reshape(x0.shape[0], -1), z.reshape(z.shape[0], -1))]
        return z - x0

    def motion(self, x0, v0, t):
        t = jnp.reshape(t, jnp.shape(t) + (1,) * (x0.ndim - jnp.ndim(t)))
        return x0 + t * v0, v0

    def base(self, event_shape):
        return dist.Normal(jnp.zeros(event_shape), 1.0).to_event(len(event_shape))

    def _gaussian_marginal(self, t, mean, cov):
        eye = jnp.eye(mean.shape[-1])
        return (1 - t) * mean, (1 - t) ** 2 * cov + t**2 * eye

    def optimal_velocity_gaussian(self, x, t, mean, cov):
        if self.minibatch_ot:
            raise ValueError("minibatch_ot: the optimal velocity is analytic only without OT")
        eye = jnp.eye(mean.shape[-1])
        mean_x, cov_x = self._gaussian_marginal(t, mean, cov)
        return _gaussian_conditional_mean(x, mean_x, -mean, t * eye - (1 - t) * cov, cov_x)


def _ot_assignment(x, z):
    """Permutation ``perm`` with ``z[perm]`` optimally paired to ``x`` (squared Euclidean)."""

    def host(x, z):
        cost = ((x[:, None, :] - z[None, :, :]) ** 2).sum(-1)
        rows, cols = linear_sum_assignment(np.asarray(cost, dtype=np.float64))
        perm = np.empty(len(rows), dtype=np.int32)
        perm[rows] = cols
        return perm

    shape = jax.ShapeDtypeStruct((x.shape[0],), jnp.int32)
    return jax.pure_callback(host, shape, x, z, vmap_method="sequential")


@dataclass(frozen=True)
class DiffusionPath(HamiltonianPath):
    """Diffusion as a zero-force HGF: ``x_t = x0 + t v0`` with ``v0 ~ N(0, I)`` independent.

    The x-marginal is the data convolved with ``N(0, t^2 I)`` (the variance-exploding SDE
    with ``sigma(t) = t``).  ``pi_T`` is approximated by ``N(0, (data_std^2 + T^2) I)``,
    exact for data of mean 0 and covariance ``data_std^2 I`` and close whenever ``T`` is
    large against the data scale.
    """

    T: float = 10.0
    data_std: float = 1.0
    name = "diffusion"

    def __post_init__(self):
        check_positive_float("T", self.T)
        check_positive_float("data_std", self.data_std)

    @property
    def horizon(self) -> float:
        return self.T

    def couple(self, x0, key):
        return jax.random.normal(key, x0.shape, x0.dtype)

    def motion(self, x0, v0, t):
        t = jnp.reshape(t, jnp.shape(t) + (1,) * (x0.ndim - jnp.ndim(t)))
        return x0 + t * v0, v0

    def base(self, event_shape):
        scale = math.sqrt(self.data_std**2 + self.T**2)
        return dist.Normal(jnp.zeros(event_shape), scale).to_event(len(event_shape))

    def _gaussian_marginal(self, t, mean, cov):
        return mean, cov + t**2 * jnp.eye(mean.shape[-1])

    def optimal_velocity_gaussian(self, x, t, mean, cov):
        mean_x, cov_x = self._gaussian_marginal(t, mean, cov)
        eye = jnp.eye(mean.shape[-1])
        return _gaussian_conditional_mean(x, mean_x, jnp.zeros_like(mean), t * eye, cov_x)


@dataclass(frozen=True)
class OscillationPath(HamiltonianPath):
    """Oscillation HGF: harmonic force ``F(x) = -omega^2 x``, ``v0 ~ N(0, I)`` independent.

    With ``T = pi / (2 omega)``: ``x_T = v0 / omega`` exactly, so ``pi_T = N(0, I/omega^2)``
    whatever the data (:func:`numpyro_hgf.paths.dynamics.harmonic`).
    """

    omega: float = 1.0
    name = "oscillation"

    def __post_init__(self):
        check_positive_float("omega", self.omega)

    @property
    def horizon(self) -> float:
        return math.pi / (2 * self.omega)

    def couple(self, x0, key):
        return jax.random.normal(key, x0.shape, x0.dtype)

    def motion(self, x0, v0, t):
        t = jnp.reshape(t, jnp.shape(t) + (1,) * (x0.ndim - 1 - jnp.ndim(t)))
        return harmonic(x0, v0, t, self.omega)

    def base(self, event_shape):
        return dist.Normal(jnp.zeros(event_shape), 1.0 / self.omega).to_event(len(event_shape))

    def _gaussian_marginal(self, t, mean, cov):
        c, s = jnp.cos(self.omega * t), jnp.sin(self.omega * t)
        return c * mean, c**2 * cov + (s / self.omega) ** 2 * jnp.eye(mean.shape[-1])

    def optimal_velocity_gaussian(self, x, t, mean, cov):
        w = self.omega
        c, s = jnp.cos(w * t), jnp.sin(w * t)
        eye = jnp.eye(mean.shape[-1])
        mean_x, cov_x = self._gaussian_marginal(t, mean, cov)
        cov_vx = -w * s * c * cov + (c * s / w) * eye
        return _gaussian_conditional_mean(x, mean_x, -w * s * mean, cov_vx, cov_x)


@dataclass(frozen=True)
class ReflectionPath(HamiltonianPath):
    """Reflection HGF: free motion in the box ``[low, high]^d`` with elastic walls.

    ``v0 ~ N(0, velocity_std^2 I)`` independent of ``x0``; the motion is exact by folding
    (:func:`numpyro_hgf.paths.dynamics.reflect`), so training is simulation-free.  As ``T``
    grows ``x_T`` tends to the uniform distribution on the box: the slowest mode
    ``cos(pi (x - low) / L)`` of the folded density (``L = high - low``) decays as
    ``exp(-(pi velocity_std T / L)^2 / 2)``; with the defaults (box ``[-1, 1]``,
    ``velocity_std = 1``, ``T = 3``) that factor is ``1.5e-5``.  Data must lie inside the box.
    """

    low: float = -1.0
    high: float = 1.0
    velocity_std: float = 1.0
    T: float = 3.0
    name = "reflection"

    def __post_init__(self):
        check_finite_float("low", self.low)
        check_finite_float("high", self.high)
        if not self.high > self.low:
            raise ValueError(f"high: expected a value greater than low={self.low}, got {self.high}")
        check_positive_float("velocity_std", self.velocity_std)
        check_positive_float("T", self.T)

    @property
    def horizon(self) -> float:
        return self.T

    def check_data(self, x0, name: str = "x0") -> None:
        if is_concrete(x0):
            arr = np.asarray(x0)
            if arr.size and (arr.min() < self.low or arr.max() > self.high):
                raise ValueError(
                    f"{name}: expected data inside the reflection box [{self.low}, {self.high}], "
                    f"got values in [{arr.min():.4g}, {arr.max():.4g}]"
                )

    def couple(self, x0, key):
        return self.velocity_std * jax.random.normal(key, x0.shape, x0.dtype)

    def motion(self, x0, v0, t):
        t = jnp.reshape(t, jnp.shape(t) + (1,) * (x0.ndim - jnp.ndim(t)))
        x, sign = fold_into_box(x0 + t * v0, self.low, self.high)
        return x, v0 * sign

    def base(self, event_shape):
        low = jnp.full(event_shape, self.low)
        return dist.Uniform(low, jnp.full(event_shape, self.high)).to_event(len(event_shape))

    def optimal_velocity_gaussian(self, x, t, mean, cov, num_images: int = 3):
        """Image sum: ``y = x0 + t v0`` is Gaussian and ``x_t = fold(y)``; each preimage
        ``y`` of ``x`` (per coordinate ``x + 2kL`` with sign +1 or ``2 low - x + 2kL`` with
        sign -1, ``|k| <= num_images``) contributes ``p(y) sign * E[v0 | y]``.  The cost is
        ``(2 (2 num_images + 1))^d`` terms: for small ``d`` only."""
        d = mean.shape[-1]
        width = self.high - self.low
        s2 = self.velocity_std**2
        cov_y = cov + t**2 * s2 * jnp.eye(d)
        ks = jnp.arange(-num_images, num_images + 1) * 2 * width
        per_coord = []  # (images, sign) along one coordinate: 2 * (2K + 1) choices
        for k in ks:
            per_coord.append((1.0, k))
            per_coord.append((-1.0, k))
        combos = list(itertools.product(range(len(per_coord)), repeat=d))
        signs = jnp.array([[per_coord[i][0] for i in c] for c in combos])  # (m, d)
        shifts = jnp.array([[per_coord[i][1] for i in c] for c in combos])  # (m, d)
        x = jnp.asarray(x)
        y = jnp.where(signs > 0, x[..., None, :], 2 * self.low - x[..., None, :]) + shifts
        logp = dist.MultivariateNormal(mean, cov_y).log_prob(y)  # (..., m)
        cond_v0 = t * s2 * jnp.linalg.solve(cov_y, (y - mean)[..., None])[..., 0]
        weights = jax.nn.softmax(logp, axis=-1)[..., None]
        return jnp.sum(weights * signs * cond_v0, axis=-2)
