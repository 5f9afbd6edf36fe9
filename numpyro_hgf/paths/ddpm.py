"""Discrete DDPM (Ho et al., NeurIPS 2020).

The forward chain ``q(x_i | x_{i-1}) = N(sqrt(1 - b_i) x_{i-1}, b_i I)``, ``i = 1..N``, has
``a_i = 1 - b_i``, ``abar_i = prod_{j<=i} a_j`` and the closed-form marginal

    x_i = sqrt(abar_i) x_0 + sqrt(1 - abar_i) e,        e ~ N(0, I).

The reverse model ``p(x_{i-1} | x_i) = N(mu(x_i, i), s_i^2 I)`` with the e-prediction mean
(Ho et al. eq. 11)

    mu(x_i, i) = (x_i - b_i / sqrt(1 - abar_i) e_theta(x_i, i)) / sqrt(a_i)

turns each ELBO term ``KL(q(x_{i-1} | x_i, x_0) || p(x_{i-1} | x_i))`` into
``w_i ||e - e_theta(x_i, i)||^2`` with (Ho et al. eq. 12)

    w_i = b_i^2 / (2 s_i^2 a_i (1 - abar_i)).

(Some course notes write ``(1 - a_i)^2 / (s_i^2 (1 - abar_i))``, the same up to the factor
``1 / (2 a_i)``, which is 1/2 to within ``b_i <= 0.02``.)  Ho et al. train the unweighted
"simple" loss, which is the VP-SDE denoising score matching loss with ``lambda = sigma^2``
(:func:`numpyro_hgf.train.fit_diffusion`): a VP score network trained with ``output="noise"``
is a DDPM e-model at ``t_i = i / N`` for :func:`schedule_from_vp` (the two marginals agree
exactly).

The e-model is called ``eps_model(x, t)`` with ``x: (batch, *event)`` and the continuous time
``t = i / N`` (a scalar), so one ``TimeMLP`` serves both views.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks import (
    check_choice,
    check_fraction,
    check_instance,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    describe,
    is_concrete,
)
from numpyro_hgf.paths.sde import VPSDE

__all__ = [
    "DDPMSchedule",
    "linear_beta_schedule",
    "cosine_beta_schedule",
    "schedule_from_vp",
    "posterior_variance",
    "reverse_variance",
    "elbo_weights",
    "ddpm_perturb",
    "VARIANCES",
]

VARIANCES = ("beta", "posterior")


class DDPMSchedule(NamedTuple):
    """The noise schedule, each ``(N,)`` with index ``i - 1`` holding step ``i``:
    ``betas`` ``b_i``, ``alphas`` ``a_i = 1 - b_i``, ``alpha_bars`` ``abar_i``."""

    betas: jax.Array
    alphas: jax.Array
    alpha_bars: jax.Array

    @property
    def num_steps(self) -> int:
        return int(self.betas.shape[0])

    def times(self) -> jax.Array:
        """``t_i = i / N``, ``i = 1..N``: the continuous times fed to the e-model."""
        return jnp.arange(1, self.num_steps + 1, dtype=self.betas.dtype) / self.num_steps


def _check_schedule(schedule) -> None:
    what = "a DDPMSchedule (e.g. linear_beta_schedule())"
    check_instance("schedule", schedule, DDPMSchedule, what)


def _from_betas(betas) -> DDPMSchedule:
    betas = jnp.asarray(betas)
    if betas.ndim != 1 or betas.shape[0] < 1:
        raise ValueError(f"betas: expected a non-empty 1-D array, got {describe(betas)}")
    if is_concrete(betas):
        arr = np.asarray(betas)
        if not (np.all(arr > 0) and np.all(arr < 1)):
            raise ValueError(
                "betas: expected values in (0, 1), got values in "
                f"[{arr.min():.4g}, {arr.max():.4g}]"
            )
    alphas = 1.0 - betas
    return DDPMSchedule(betas, alphas, jnp.cumprod(alphas))


def linear_beta_schedule(
    num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> DDPMSchedule:
    """Ho et al.'s linear schedule ``b_i`` from ``beta_start`` to ``beta_end``."""
    num_steps = check_positive_int("num_steps", num_steps)
    check_positive_float("beta_start", beta_start)
    check_positive_float("beta_end", beta_end)
    return _from_betas(jnp.linspace(beta_start, beta_end, num_steps))


def cosine_beta_schedule(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999):
    """Nichol & Dhariwal (2021) cosine schedule: ``abar(t) = cos^2(pi/2 (t + s)/(1 + s))``."""
    num_steps = check_positive_int("num_steps", num_steps)
    s = check_nonnegative_float("s", s)
    max_beta = check_fraction("max_beta", max_beta)
    t = np.linspace(0.0, 1.0, num_steps + 1)
    f = np.cos(0.5 * np.pi * (t + s) / (1 + s)) ** 2
    betas = np.clip(1.0 - f[1:] / f[:-1], 1e-8, max_beta)
    return _from_betas(jnp.asarray(betas, jnp.float32))


def schedule_from_vp(sde, num_steps: int = 1000) -> DDPMSchedule:
    """The DDPM whose marginals equal the VP SDE's at ``t_i = i / N``:
    ``abar_i = alpha(t_i)^2``, ``b_i = 1 - exp(-(B(t_i) - B(t_{i-1})))``."""
    if not isinstance(sde, VPSDE):
        raise TypeError(f"sde: expected a VPSDE, got {sde!r}")
    num_steps = check_positive_int("num_steps", num_steps)
    t = jnp.linspace(0.0, 1.0, num_steps + 1)
    big_b = sde.beta_integral(t)
    return _from_betas(-jnp.expm1(-(big_b[1:] - big_b[:-1])))


def posterior_variance(schedule: DDPMSchedule) -> jax.Array:
    """``b~_i = (1 - abar_{i-1}) / (1 - abar_i) b_i`` (variance of ``q(x_{i-1} | x_i, x_0)``;
    ``b~_1 = 0``)."""
    _check_schedule(schedule)
    prev = jnp.concatenate([jnp.ones((1,), schedule.alpha_bars.dtype), schedule.alpha_bars[:-1]])
    return (1.0 - prev) / (1.0 - schedule.alpha_bars) * schedule.betas


def reverse_variance(schedule: DDPMSchedule, variance: str = "beta") -> jax.Array:
    """The reverse-process variance ``s_i^2``: ``b_i`` (``"beta"``) or ``b~_i``
    (``"posterior"``)."""
    _check_schedule(schedule)
    check_choice("variance", variance, VARIANCES)
    return schedule.betas if variance == "beta" else posterior_variance(schedule)


def elbo_weights(schedule: DDPMSchedule, variance: str = "beta") -> jax.Array:
    """``w_i = b_i^2 / (2 s_i^2 a_i (1 - abar_i))`` (Ho et al. eq. 12), ``(N,)``, with
    ``s_i^2 = b_i`` (``"beta"``) or ``b~_i`` (``"posterior"``; ``w_1`` is then set to
    ``w_1`` of ``"beta"``, since ``b~_1 = 0`` and the first term is a decoder in the paper)."""
    var = reverse_variance(schedule, variance)
    var = jnp.where(var > 0, var, schedule.betas)
    b, a, abar = schedule.betas, schedule.alphas, schedule.alpha_bars
    return b**2 / (2.0 * var * a * (1.0 - abar))


def ddpm_perturb(schedule: DDPMSchedule, x0, index, noise):
    """``x_i = sqrt(abar_i) x0 + sqrt(1 - abar_i) e`` for 0-based ``index = i - 1: (batch,)``."""
    abar = schedule.alpha_bars[index].reshape((-1,) + (1,) * (x0.ndim - 1))
    return jnp.sqrt(abar) * x0 + jnp.sqrt(1.0 - abar) * noise
