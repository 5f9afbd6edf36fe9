"""Samplers of score-based diffusion models and DDPM.

All start from ``x_T ~ pi`` (the SDE's prior) at ``T`` and run down to a small ``eps > 0``
(Song et al., ICLR 2021, Sec. 4):

=========================  ==================================================================
:func:`reverse_sde`        Euler--Maruyama on the reverse SDE
                           ``dx = [f - g^2 s] dt + g dw_bar`` (Song et al. 2021, eq. 6)
:func:`predictor_corrector` reverse-diffusion predictor + Langevin corrector with a
                           signal-to-noise ratio (Song et al. 2021, Algorithms 2-5)
:func:`ode_sample`         probability-flow ODE ``dx/dt = f - g^2 s / 2`` through the one
                           ODE module (:func:`numpyro_hgf.samplers.ode.solve_ode`)
``ddpm_ancestral``         DDPM's ancestral sampler (Ho et al. 2020, Algorithm 2) on a
                           :mod:`numpyro_hgf.paths.ddpm` schedule
=========================  ==================================================================

Conventions: ``score(x, t) -> (batch, *event_shape)`` with ``x: (batch, *event_shape)`` and a
scalar time ``t: ()``; ``sde`` is one of :mod:`numpyro_hgf.paths.sde`.  The stochastic loops are one
``jax.lax.scan`` each (a generic SDE solver is several times slower for this); the same key
gives the same draws, and everything is ``jit`` / ``vmap`` / ``grad``-able with the score
closed over.  The time grid is ``t_i = T - i h``, ``h = (T - eps) / num_steps``,
``i = 0 .. num_steps - 1``; step ``i`` moves from ``t_i`` to ``t_i - h``, so the last state is
at ``eps``.  With ``denoise=True`` (the default, as in Song et al.'s code) the last step returns
its mean without the final noise.

The Langevin corrector's step size uses the gradient and noise norms averaged over the chains,
as Song et al.'s code does: a per-chain step ``(snr ||z|| / ||s(x)||)^2`` explodes for a chain
that sits near a mode (``s(x) ~ 0``).  The chains are therefore coupled through one scalar
step size per corrector step; run a few hundred chains or more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp

from numpyro_hgf._checks import (
    check_floating,
    check_instance,
    check_nonnegative_int,
    check_open_time,
    check_output_shape,
    check_positive_float,
    check_positive_int,
    describe,
    describe_output,
)
from numpyro_hgf.paths.ddpm import DDPMSchedule, reverse_variance, schedule_from_vp
from numpyro_hgf.paths.sde import SDE
from numpyro_hgf.samplers.ode import ODEResult, ODESolver, solve_ode

__all__ = [
    "reverse_sde",
    "predictor_corrector",
    "ode_sample",
    "ddpm_ancestral",
    "DiffusionSampler",
    "ProbabilityFlowODE",
    "ReverseSDE",
    "PredictorCorrector",
    "Ancestral",
    "DIFFUSION_SAMPLERS",
]


def _check_sde(sde):
    check_instance("sde", sde, SDE, "a numpyro_hgf.paths SDE (VPSDE, VESDE, SubVPSDE)")


def _check_start(x_T):
    if not hasattr(x_T, "shape") or jnp.ndim(x_T) < 1:
        raise ValueError(
            f"x_T: expected an array of shape (num_chains, *event_shape), got {describe(x_T)}"
        )
    return check_floating("x_T", x_T)


def _check_score(score: Callable, x, t):
    if not callable(score):
        raise TypeError(f"score: expected a callable score(x, t), got {type(score).__name__}")
    out = jax.eval_shape(score, x, jnp.asarray(t, x.dtype))
    if getattr(out, "shape", None) != x.shape:
        raise ValueError(
            f"score: expected score(x, t) of the shape of x {tuple(x.shape)}, got "
            f"{describe_output(out)}"
        )


def _setup(score, sde, x_T, num_steps, eps):
    _check_sde(sde)
    x_T = _check_start(x_T)
    num_steps = check_positive_int("num_steps", num_steps)
    eps = check_open_time("eps", eps, sde.T)
    _check_score(score, x_T, sde.T)
    h = (sde.T - eps) / num_steps
    times = sde.T - h * jnp.arange(num_steps, dtype=x_T.dtype)
    return x_T, num_steps, eps, jnp.asarray(h, x_T.dtype), times


def _finish(x, x_mean, trajectory, denoise, return_trajectory):
    out = x_mean if denoise else x
    return (out, trajectory) if return_trajectory else out


def reverse_sde(
    key,
    score: Callable,
    sde,
    x_T,
    num_steps: int = 1000,
    *,
    eps: float = 1e-3,
    denoise: bool = True,
    return_trajectory: bool = False,
):
    """Euler--Maruyama on the reverse-time SDE (Song et al. 2021, eq. 6)::

        x <- x + [g(t)^2 s(x, t) - f(x, t)] h + g(t) sqrt(h) z,     z ~ N(0, I),

    from ``t = T`` down to ``eps`` in ``num_steps`` steps of ``h = (T - eps) / num_steps``.

    Args:
        key: ``jax.random`` key.
        score: ``s(x, t)``, ``x: (num_chains, *event_shape)``, ``t: ()``.
        sde: a :mod:`numpyro_hgf.paths.sde` SDE.
        x_T: ``(num_chains, *event_shape)`` draws of the prior ``sde.prior(event_shape)``.
        num_steps: steps (= score evaluations), positive (static).
        eps: last time, in ``(0, T)``.
        denoise: return the last step's mean (no noise on the last step).
        return_trajectory: also return the states after every step, ``(num_steps, *x_T.shape)``.

    Returns:
        ``x_eps`` of the shape of ``x_T`` (or ``(x_eps, trajectory)``).
    """
    x_T, num_steps, eps, h, times = _setup(score, sde, x_T, num_steps, eps)
    sqrt_h = jnp.sqrt(h)

    def step(carry, inputs):
        x, _ = carry
        t, k = inputs
        x_mean = x - sde.reverse_drift(score, x, t) * h
        x = x_mean + sde.diffusion(t) * sqrt_h * jax.random.normal(k, x.shape, x.dtype)
        return (x, x_mean), (x if return_trajectory else None)

    keys = jax.random.split(key, num_steps)
    (x, x_mean), trajectory = jax.lax.scan(step, (x_T, x_T), (times, keys))
    return _finish(x, x_mean, trajectory, denoise, return_trajectory)


def _langevin_corrector(score, x, t, k, snr, alpha):
    """One Langevin step at ``t`` with ``e = 2 alpha (snr ||z|| / ||s||)^2`` (Song et al. 2021,
    Algorithms 4-5), the norms averaged over the chains as in the reference code."""
    s = score(x, t)
    z = jax.random.normal(k, x.shape, x.dtype)
    flat = lambda a: a.reshape(a.shape[0], -1)
    s_norm = jnp.mean(jnp.linalg.norm(flat(s), axis=-1))
    z_norm = jnp.mean(jnp.linalg.norm(flat(z), axis=-1))
    step = 2.0 * alpha * (snr * z_norm / jnp.maximum(s_norm, jnp.finfo(x.dtype).tiny)) ** 2
    x_mean = x + step * s
    return x_mean + jnp.sqrt(2.0 * step) * z


def predictor_corrector(
    key,
    score: Callable,
    sde,
    x_T,
    num_steps: int = 1000,
    *,
    snr: float = 0.16,
    num_corrector_steps: int = 1,
    eps: float = 1e-3,
    denoise: bool = True,
    return_trajectory: bool = False,
):
    """Predictor--corrector sampling (Song et al. 2021, Algorithm 1 with the reverse-diffusion
    predictor and the Langevin corrector, Algorithms 2-5).

    At each grid time ``t`` (from ``T`` down, step ``h``):

    * corrector, ``num_corrector_steps`` times: ``x <- x + e s(x, t) + sqrt(2 e) z`` with
      ``e = 2 (snr ||z|| / ||s(x, t)||)^2``, the norms averaged over the chains (``snr``: the
      signal-to-noise ratio);
    * predictor (reverse diffusion): with the SDE's one-step kernel ``(f_i, G_i) =
      sde.discretize(x, t, h)``, ``x <- x - f_i + G_i^2 s(x, t) + G_i z``.

    Args:
        key, score, sde, x_T, eps, denoise, return_trajectory: as for :func:`reverse_sde`.
        num_steps: predictor steps; the score is evaluated
            ``num_steps * (1 + num_corrector_steps)`` times.
        snr: signal-to-noise ratio ``r > 0`` of the corrector (Song et al. use 0.16 for VE and
            0.01-0.17 for VP; larger moves more per step).
        num_corrector_steps: Langevin steps per predictor step (``>= 0``; 0 is the predictor
            alone).

    Returns:
        ``x_eps`` of the shape of ``x_T`` (or ``(x_eps, trajectory)``).
    """
    x_T, num_steps, eps, h, times = _setup(score, sde, x_T, num_steps, eps)
    snr = check_positive_float("snr", snr)
    num_corrector_steps = check_nonnegative_int("num_corrector_steps", num_corrector_steps)

    def step(carry, inputs):
        x, _ = carry
        t, k = inputs
        keys = jax.random.split(k, num_corrector_steps + 1)
        for j in range(num_corrector_steps):
            x = _langevin_corrector(score, x, t, keys[j], snr, 1.0)
        f, g = sde.discretize(x, t, h)
        g = jnp.reshape(g, jnp.shape(g) + (1,) * (x.ndim - jnp.ndim(g)))
        x_mean = x - f + g**2 * score(x, t)
        x = x_mean + g * jax.random.normal(keys[-1], x.shape, x.dtype)
        return (x, x_mean), (x if return_trajectory else None)

    keys = jax.random.split(key, num_steps)
    (x, x_mean), trajectory = jax.lax.scan(step, (x_T, x_T), (times, keys))
    return _finish(x, x_mean, trajectory, denoise, return_trajectory)


def ode_sample(score: Callable, sde, x_T, *, solver="tsit5", eps: float = 1e-3) -> ODEResult:
    """Probability-flow ODE sampling (Song et al. 2021, eq. 13): integrate
    ``dx/dt = f(x, t) - 1/2 g(t)^2 s(x, t)`` from ``x_T`` at ``T`` down to ``eps`` with
    :func:`numpyro_hgf.samplers.ode.solve_ode` (deterministic given ``x_T``; no key).

    Args:
        score: ``s(x, t)``; sde: a :mod:`numpyro_hgf.paths.sde` SDE.
        x_T: ``(num_chains, *event_shape)`` prior draws.
        solver: an :class:`~numpyro_hgf.samplers.ode.ODESolver` or a solver name (a fixed-step
            solver with ``nfe`` sets the number of score evaluations).
        eps: last time, in ``(0, T)``.

    Returns:
        ``ODEResult(x_eps, nfe)``.
    """
    _check_sde(sde)
    x_T = _check_start(x_T)
    eps = check_open_time("eps", eps, sde.T)
    _check_score(score, x_T, sde.T)
    return solve_ode(lambda x, t: sde.pf_ode_drift(score, x, t), x_T, sde.T, eps, solver)


def ddpm_ancestral(
    key,
    eps_model: Callable,
    schedule: DDPMSchedule,
    x_T,
    *,
    variance: str = "beta",
    return_trajectory: bool = False,
):
    """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), one ``lax.scan`` over
    ``i = N..1``::

        x_{i-1} = (x_i - b_i / sqrt(1 - abar_i) e(x_i, t_i)) / sqrt(a_i) + s_i z,

    ``z ~ N(0, I)`` except at ``i = 1`` (no noise).

    Args:
        key: ``jax.random`` key.
        eps_model: ``e(x, t)``, ``x: (num_chains, *event_shape)``, ``t: ()`` (= ``i / N``).
        schedule: a :class:`DDPMSchedule`.
        x_T: ``(num_chains, *event_shape)`` standard normal draws.
        variance: ``s_i^2 = b_i`` (``"beta"``) or ``b~_i`` (``"posterior"``).
        return_trajectory: also return every state, ``(N, *x_T.shape)``.

    Returns:
        ``x_0`` of the shape of ``x_T`` (or ``(x_0, trajectory)``).
    """
    if not isinstance(schedule, DDPMSchedule):
        raise TypeError(f"schedule: expected a DDPMSchedule, got {type(schedule).__name__}")
    if not callable(eps_model):
        raise TypeError(f"eps_model: expected a callable e(x, t), got {type(eps_model).__name__}")
    x_T = jnp.asarray(x_T)
    if x_T.ndim < 1 or not jnp.issubdtype(x_T.dtype, jnp.floating):
        raise ValueError(
            f"x_T: expected a floating array (num_chains, *event_shape), got {describe(x_T)}"
        )
    what = f"(e(x, t) of the shape of x {tuple(x_T.shape)})"
    check_output_shape("eps_model", eps_model, (x_T, jnp.ones((), x_T.dtype)), x_T.shape, what)
    std = jnp.sqrt(reverse_variance(schedule, variance)).astype(x_T.dtype)
    n = schedule.num_steps
    inputs = (
        schedule.times()[::-1].astype(x_T.dtype),
        schedule.betas[::-1].astype(x_T.dtype),
        schedule.alphas[::-1].astype(x_T.dtype),
        schedule.alpha_bars[::-1].astype(x_T.dtype),
        std[::-1],
        jnp.arange(n)[::-1],
        jax.random.split(key, n),
    )

    def step(x, inp):
        t, b, a, abar, s, index, k = inp
        mean = (x - b / jnp.sqrt(1.0 - abar) * eps_model(x, t)) / jnp.sqrt(a)
        noise = jnp.where(index > 0, s, 0.0) * jax.random.normal(k, x.shape, x.dtype)
        x = mean + noise
        return x, (x if return_trajectory else None)

    x, trajectory = jax.lax.scan(step, x_T, inputs)
    return (x, trajectory) if return_trajectory else x


# -- samplers as options that travel whole ------------------------------------------------------
@dataclass(frozen=True)
class DiffusionSampler:
    """How a diffusion prior draws: a hashable option object (static under ``jit``).

    ``sample(key, prior, x_T)`` runs from prior draws ``x_T: (num_chains, *event_shape)`` to
    ``eps = prior.sample_eps`` and returns ``(x, nfe)``; ``with_nfe(nfe)`` is the same sampler
    spending ``nfe`` network evaluations.  ``prior`` provides ``score(x, t)``,
    ``noise(x, t)``, ``sde`` and ``sample_eps`` (a :class:`~numpyro_hgf.distributions.
    DiffusionPrior`).
    """

    name: ClassVar[str] = "sampler"

    def sample(self, key, prior, x_T):
        raise NotImplementedError  # abstract

    def with_nfe(self, nfe: int) -> DiffusionSampler:
        raise NotImplementedError  # abstract


@dataclass(frozen=True)
class ProbabilityFlowODE(DiffusionSampler):
    """The PF-ODE through :func:`ode_sample` with an :class:`~numpyro_hgf.samplers.ode.ODESolver`
    (``with_nfe``: Heun's method with that many evaluations)."""

    solver: ODESolver = ODESolver()
    name: ClassVar[str] = "ode"

    def __post_init__(self):
        object.__setattr__(self, "solver", ODESolver.of(self.solver))

    def sample(self, key, prior, x_T):
        del key  # deterministic given x_T
        result = ode_sample(prior.score, prior.sde, x_T, solver=self.solver, eps=prior.sample_eps)
        return result.value, result.nfe

    def with_nfe(self, nfe: int) -> ProbabilityFlowODE:
        return ProbabilityFlowODE(ODESolver("heun", nfe=max(check_positive_int("nfe", nfe), 2)))


@dataclass(frozen=True)
class ReverseSDE(DiffusionSampler):
    """Euler--Maruyama on the reverse SDE (:func:`reverse_sde`), one evaluation a step."""

    num_steps: int = 500
    name: ClassVar[str] = "reverse_sde"

    def __post_init__(self):
        check_positive_int("num_steps", self.num_steps)

    def sample(self, key, prior, x_T):
        x = reverse_sde(key, prior.score, prior.sde, x_T, self.num_steps, eps=prior.sample_eps)
        return x, jnp.asarray(self.num_steps)

    def with_nfe(self, nfe: int) -> ReverseSDE:
        return ReverseSDE(check_positive_int("nfe", nfe))


@dataclass(frozen=True)
class PredictorCorrector(DiffusionSampler):
    """Reverse-diffusion predictor + Langevin corrector (:func:`predictor_corrector`);
    ``1 + num_corrector_steps`` evaluations a step."""

    num_steps: int = 500
    snr: float = 0.16
    num_corrector_steps: int = 1
    name: ClassVar[str] = "pc"

    def __post_init__(self):
        check_positive_int("num_steps", self.num_steps)
        check_positive_float("snr", self.snr)
        check_nonnegative_int("num_corrector_steps", self.num_corrector_steps)

    def sample(self, key, prior, x_T):
        x = predictor_corrector(
            key,
            prior.score,
            prior.sde,
            x_T,
            self.num_steps,
            snr=self.snr,
            num_corrector_steps=self.num_corrector_steps,
            eps=prior.sample_eps,
        )
        return x, jnp.asarray(self.num_steps * (1 + self.num_corrector_steps))

    def with_nfe(self, nfe: int) -> PredictorCorrector:
        steps = max(1, check_positive_int("nfe", nfe) // (1 + self.num_corrector_steps))
        return PredictorCorrector(steps, self.snr, self.num_corrector_steps)


@dataclass(frozen=True)
class Ancestral(DiffusionSampler):
    """DDPM ancestral sampling (:func:`ddpm_ancestral`) on the DDPM whose marginals are a VP
    SDE's (:func:`~numpyro_hgf.paths.ddpm.schedule_from_vp`); one evaluation a step."""

    num_steps: int = 1000
    name: ClassVar[str] = "ddpm"

    def __post_init__(self):
        check_positive_int("num_steps", self.num_steps)

    def sample(self, key, prior, x_T):
        schedule = schedule_from_vp(prior.sde, self.num_steps)
        return ddpm_ancestral(key, prior.noise, schedule, x_T), jnp.asarray(self.num_steps)

    def with_nfe(self, nfe: int) -> Ancestral:
        return Ancestral(check_positive_int("nfe", nfe))


#: The diffusion samplers by name.
DIFFUSION_SAMPLERS = {
    cls.name: cls for cls in (ProbabilityFlowODE, ReverseSDE, PredictorCorrector, Ancestral)
}
