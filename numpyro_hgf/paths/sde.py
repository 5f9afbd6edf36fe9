"""Forward SDEs of score-based diffusion models: the *path* column of the diffusion row.

Song et al. (ICLR 2021), *Score-Based Generative Modeling through SDEs* (Sec. 3.1):
data ``x(0) ~ p_0`` are diffused by the Ito SDE

    dx = f(x, t) dt + g(t) dw,        t in [0, T],  T = 1,

with a linear drift ``f(x, t) = -1/2 b(t) x`` (or 0), so that ``x_t | x_0`` is Gaussian,

    x_t | x_0 ~ N(alpha(t) x_0, sigma(t)^2 I),

and ``p_T`` is close to a tractable prior ``pi``.  The reverse-time SDE (Anderson 1982) and the
probability-flow ODE share the marginals ``p_t``::

    dx = [f(x, t) - g(t)^2 s(x, t)] dt + g(t) dw_bar      (reverse SDE, t: T -> 0)
    dx/dt = f(x, t) - 1/2 g(t)^2 s(x, t)                   (PF-ODE)

with ``s(x, t) = grad_x log p_t(x)`` the score.  (A common slip writes the PF-ODE drift
without the factor ``1/2``; Song et al. 2021, eq. 13, has it, and only with it are the
marginals preserved -- the Gaussian oracle of the tests checks exactly this.)

* ``VPSDE``: ``f = -b(t) x / 2``, ``g^2 = b(t)``; ``alpha = e^{-B/2}``,
  ``sigma^2 = 1 - e^{-B}``; prior ``N(0, I)``;
* ``SubVPSDE``: ``f = -b(t) x / 2``, ``g^2 = b(t) (1 - e^{-2B})``; ``alpha = e^{-B/2}``,
  ``sigma^2 = (1 - e^{-B})^2``; prior ``N(0, I)``;
* ``VESDE``: ``f = 0``, ``g^2 = d[s(t)^2]/dt``; ``alpha = 1``, ``sigma^2 = s(t)^2 - s(0)^2``;
  prior ``N(0, s_max^2 I)``;

with ``b(t) = b_min + t (b_max - b_min)``, ``B(t) = int_0^t b = b_min t + (b_max - b_min) t^2 / 2``
and ``s(t) = s_min (s_max / s_min)^t``.  (The VE row uses the exact variance of ``x_t | x_0``;
Song et al.'s code uses ``s(t)^2``, which differs by ``s_min^2 = 1e-4``.)

For Gaussian data ``N(m, C)``, ``p_t = N(alpha m, alpha^2 C + sigma^2 I)`` and the score is
analytic: :meth:`SDE.gaussian_score` (derived in ``docs/diffusion.md``), the oracle of the tests.

SDEs are frozen dataclasses: hashable, static under ``jit``, saved by :meth:`SDE.config`.
Times must lie in ``(0, T]``: at ``t = 0`` the perturbation kernel is a point mass and the
score of ``x_t | x_0`` is undefined.  Concrete times outside that interval raise ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp
import numpyro.distributions as dist

from numpyro_hgf._checks import check_instance, check_positive_float, check_time_interval
from numpyro_hgf.paths.base import PATHS, Path, path_from_config

__all__ = ["SDE", "VPSDE", "VESDE", "SubVPSDE", "SDES", "sde_from_config", "check_time"]


def check_time(t, T: float = 1.0, name: str = "t") -> None:
    """Raise ``ValueError`` unless every concrete entry of ``t`` lies in ``(0, T]``."""
    check_time_interval(name, t, 0.0, T, open_low=True)


def _expand(c, x):
    """Broadcast a per-example coefficient ``c: () or (batch,)`` against ``x: (batch, *event)``."""
    c = jnp.asarray(c, x.dtype)
    return jnp.reshape(c, c.shape + (1,) * (x.ndim - c.ndim))


@dataclass(frozen=True)
class SDE(Path):
    """Base class of the linear (affine-drift) SDEs.  Shapes throughout:
    ``x: (batch, *event_shape)``; ``t: ()`` or ``(batch,)``; coefficients of ``t`` have the
    shape of ``t``.  Subclasses define :meth:`beta_integral`-style closed forms through
    :meth:`drift_coeff`, :meth:`g2`, :meth:`alpha` and :meth:`sigma`.  The path protocol
    (:meth:`base` = :meth:`prior`, ``horizon`` = ``T``, ``check_time`` on ``(0, T]``,
    ``config``) is :class:`~numpyro_hgf.paths.Path`'s.
    """

    T = 1.0
    open_at_zero = True

    @property
    def horizon(self) -> float:
        return self.T

    # -- closed-form coefficients (subclasses) -----------------------------------------
    def drift_coeff(self, t):
        """``c(t)`` with ``f(x, t) = c(t) x``."""
        raise NotImplementedError  # abstract

    def g2(self, t):
        """``g(t)^2``."""
        raise NotImplementedError  # abstract

    def alpha(self, t):
        """Mean coefficient: ``E[x_t | x_0] = alpha(t) x_0``."""
        raise NotImplementedError  # abstract

    def sigma(self, t):
        """Marginal std of ``x_t | x_0`` (per coordinate)."""
        raise NotImplementedError  # abstract

    def prior_std(self) -> float:
        """Std of the prior ``pi = N(0, prior_std^2 I)``."""
        raise NotImplementedError  # abstract

    # -- the SDE -----------------------------------------------------------------------
    def drift(self, x, t):
        """``f(x, t)``: ``(batch, *event)``."""
        return _expand(self.drift_coeff(t), x) * x

    def diffusion(self, t):
        """``g(t)`` (shape of ``t``)."""
        return jnp.sqrt(self.g2(t))

    def marginal(self, x0, t):
        """``(mean, std)`` of ``x_t | x_0``: ``mean = alpha(t) x0: (batch, *event)``,
        ``std = sigma(t)`` of the shape of ``t``."""
        self.check_time(t)
        return _expand(self.alpha(t), x0) * x0, self.sigma(t)

    def perturb(self, x0, t, z):
        """``x_t = alpha(t) x0 + sigma(t) z`` for standard normal ``z`` of the shape of ``x0``."""
        mean, std = self.marginal(x0, t)
        return mean + _expand(std, x0) * z

    def base(self, event_shape: tuple[int, ...]) -> dist.Distribution:
        """``pi``: ``N(0, prior_std^2 I)`` with the given event shape."""
        event_shape = tuple(event_shape)
        return dist.Normal(jnp.zeros(event_shape), self.prior_std()).to_event(len(event_shape))

    def prior(self, event_shape: tuple[int, ...]) -> dist.Distribution:
        """The base ``pi`` (Song et al.'s name for it): :meth:`base`."""
        return self.base(event_shape)

    def reverse_drift(self, score: Callable, x, t):
        """Drift of the reverse-time SDE, ``f(x, t) - g(t)^2 s(x, t)`` (Song et al. 2021,
        eq. 6).  ``score(x, t) -> (batch, *event)``."""
        return self.drift(x, t) - _expand(self.g2(t), x) * score(x, t)

    def pf_ode_drift(self, score: Callable, x, t):
        """Probability-flow ODE drift ``f(x, t) - 1/2 g(t)^2 s(x, t)`` (Song et al. 2021,
        eq. 13)."""
        return self.drift(x, t) - 0.5 * _expand(self.g2(t), x) * score(x, t)

    def discretize(self, x, t, dt):
        """One forward step ``x_{t} = x_{t-dt} + f_i + G_i z`` of the discretised SDE.

        Returns ``(f_i, G_i)`` with ``f_i: (batch, *event)``, ``G_i`` of the shape of ``t``
        (Song et al. 2021, App. E: Euler--Maruyama ``f dt, g sqrt(dt)`` by default; the VP and
        VE SDEs override it with their exact one-step kernels, DDPM and SMLD).
        """
        return self.drift(x, t) * dt, self.diffusion(t) * jnp.sqrt(dt)

    # -- Gaussian oracle ---------------------------------------------------------------
    def gaussian_marginal(self, t, mean, cov):
        """``(alpha m, alpha^2 C + sigma^2 I)``: ``p_t`` for data ``N(m, C)``; ``t: ()``."""
        a, s = self.alpha(t), self.sigma(t)
        mean, cov = jnp.asarray(mean), jnp.asarray(cov)
        return a * mean, a**2 * cov + s**2 * jnp.eye(mean.shape[-1], dtype=cov.dtype)

    def gaussian_score(self, x, t, mean, cov):
        """Exact ``grad log p_t(x) = -(alpha^2 C + sigma^2 I)^{-1} (x - alpha m)`` for data
        ``N(m, C)``; ``x: (..., d)``, ``t: ()``, ``mean: (d,)``, ``cov: (d, d)``."""
        m_t, c_t = self.gaussian_marginal(t, mean, cov)
        d = m_t.shape[-1]
        # one solve with many right-hand sides (not one small LU per row of x)
        rhs = (x - m_t).reshape(-1, d).T
        return -jnp.linalg.solve(c_t, rhs).T.reshape(jnp.shape(x))


@dataclass(frozen=True)
class _LinearBeta(SDE):
    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self):
        check_positive_float("beta_min", self.beta_min)
        check_positive_float("beta_max", self.beta_max)
        if self.beta_max < self.beta_min:
            raise ValueError(
                f"beta_max: expected a value >= beta_min={self.beta_min}, got {self.beta_max}"
            )

    def beta(self, t):
        """``b(t) = b_min + t (b_max - b_min)``."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def beta_integral(self, t):
        """``B(t) = int_0^t b(s) ds``."""
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def drift_coeff(self, t):
        return -0.5 * self.beta(t)

    def alpha(self, t):
        return jnp.exp(-0.5 * self.beta_integral(t))

    def prior_std(self) -> float:
        return 1.0


@dataclass(frozen=True)
class VPSDE(_LinearBeta):
    """Variance-preserving SDE ``dx = -1/2 b(t) x dt + sqrt(b(t)) dw`` (Song et al. 2021,
    eq. 11): the continuous limit of DDPM (Ho et al. 2020).  Defaults ``b_min = 0.1``,
    ``b_max = 20`` as in both papers."""

    name = "vp"

    def g2(self, t):
        return self.beta(t)

    def sigma(self, t):
        return jnp.sqrt(-jnp.expm1(-self.beta_integral(t)))

    def discretize(self, x, t, dt):
        """Exact one-step kernel (DDPM): ``a_i = alpha(t)^2 / alpha(t - dt)^2``,
        ``f_i = (sqrt(a_i) - 1) x``, ``G_i = sqrt(1 - a_i)``."""
        log_a = -(self.beta_integral(t) - self.beta_integral(t - dt))
        f = _expand(jnp.expm1(0.5 * log_a), x) * x
        return f, jnp.sqrt(-jnp.expm1(log_a))


@dataclass(frozen=True)
class SubVPSDE(_LinearBeta):
    """Sub-VP SDE ``dx = -1/2 b(t) x dt + sqrt(b(t) (1 - e^{-2 B(t)})) dw`` (Song et al. 2021,
    eq. 12): same mean as VP, variance ``(1 - e^{-B})^2 <= 1 - e^{-B}``."""

    name = "subvp"

    def g2(self, t):
        return self.beta(t) * -jnp.expm1(-2.0 * self.beta_integral(t))

    def sigma(self, t):
        return -jnp.expm1(-self.beta_integral(t))


@dataclass(frozen=True)
class VESDE(SDE):
    """Variance-exploding SDE ``dx = sqrt(d[s(t)^2]/dt) dw``, ``s(t) = s_min (s_max/s_min)^t``
    (Song et al. 2021, eq. 9; the continuous limit of SMLD/NCSN).  Defaults ``s_min = 0.01``,
    ``s_max = 50`` (choose ``s_max`` about the largest pairwise distance of the data)."""

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    name = "ve"

    def __post_init__(self):
        check_positive_float("sigma_min", self.sigma_min)
        check_positive_float("sigma_max", self.sigma_max)
        if not self.sigma_max > self.sigma_min:
            raise ValueError(
                f"sigma_max: expected a value > sigma_min={self.sigma_min}, got {self.sigma_max}"
            )

    @property
    def _log_ratio(self) -> float:
        return math.log(self.sigma_max / self.sigma_min)

    def noise_level(self, t):
        """``s(t) = s_min (s_max / s_min)^t``."""
        return self.sigma_min * jnp.exp(t * self._log_ratio)

    def drift_coeff(self, t):
        return jnp.zeros_like(jnp.asarray(t, float))

    def drift(self, x, t):
        return jnp.zeros_like(x)

    def g2(self, t):
        return 2.0 * self._log_ratio * self.noise_level(t) ** 2

    def alpha(self, t):
        return jnp.ones_like(jnp.asarray(t, float))

    def sigma(self, t):
        return self.sigma_min * jnp.sqrt(jnp.expm1(2.0 * t * self._log_ratio))

    def prior_std(self) -> float:
        return self.sigma_max

    def discretize(self, x, t, dt):
        """Exact one-step kernel (SMLD): ``f_i = 0``, ``G_i = sqrt(s(t)^2 - s(t - dt)^2)``."""
        return jnp.zeros_like(x), jnp.sqrt(self.noise_level(t) ** 2 - self.noise_level(t - dt) ** 2)


#: The SDE classes by name (a view of :data:`numpyro_hgf.paths.PATHS`).
SDES = {name: cls for name, cls in PATHS.items() if issubclass(cls, SDE)}


def sde_from_config(config: dict) -> SDE:
    """Rebuild an SDE from :meth:`SDE.config`."""
    check_instance("config", config, dict, "a dict from SDE.config()")
    if dict(config).get("name") not in SDES:
        raise ValueError(
            f"config: expected an SDE name in {sorted(SDES)}, got {config.get('name')!r}"
        )
    return path_from_config(config)
