"""``DiffusionPrior``: a score-based diffusion model as a NumPyro distribution.

Row "diffusion" of the package's table: the learned field is a score ``s(x, t)`` (a
``flax.linen`` module and its params), the path is a forward SDE (:mod:`numpyro_hgf.paths.sde`), the
objective denoising score matching (:func:`numpyro_hgf.train.fit_diffusion`).

* ``log_prob`` integrates the probability-flow ODE ``dx/dt = f - g^2 s / 2`` (Song et al. 2021,
  eq. 13 and App. D.2) from the data at ``eps`` up to ``T`` with the instantaneous change of
  variables, through the one ODE module (:func:`numpyro_hgf.samplers.ode.ode_log_prob`, exact or
  Hutchinson trace)::

      log p_eps(x) = log pi(x_T) + int_eps^T div_x(f - g^2 s / 2)(x_t, t) dt.

  It is a jit-able, differentiable JAX function of the value and the params (the reference
  implementation integrates on the host with ``scipy.integrate.solve_ivp``), so the prior works
  under ``grad``, NUTS and SVI.
* ``sample`` runs a sampler object of :mod:`numpyro_hgf.samplers.diffusion` with a chosen
  number of score evaluations: ``ProbabilityFlowODE`` (``"ode"``), ``ReverseSDE``
  (``"reverse_sde"``, Euler--Maruyama), ``PredictorCorrector`` (``"pc"``), ``Ancestral``
  (``"ddpm"``; VP SDE with a noise-predicting network).
* ``bits_per_dim`` dequantizes integer levels uniformly and reports the bound of
  :func:`numpyro_hgf.metrics.bits_per_dim`.

It is a :class:`~numpyro_hgf.distributions.ContinuousFlow` whose velocity is the PF-ODE drift
(base ``pi`` at ``t0 = T``, data at ``t1 = eps``), so it shares that class's jit-cached solves,
``with_params`` and Hutchinson probe handling.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
from numpyro.distributions import Distribution, constraints

from numpyro_hgf._checks import (
    check_choice,
    check_event_shape,
    check_instance,
    check_key,
    check_nonnegative_int,
    check_open_time,
    check_positive_float,
    check_positive_int,
)
from numpyro_hgf.datasets import dequantize
from numpyro_hgf.distributions.continuous_flow import (
    ContinuousFlow,
    _flatten_batch,
    event_shape_of,
)
from numpyro_hgf.io import register_model
from numpyro_hgf.objectives.diffusion import NETWORK_OUTPUTS
from numpyro_hgf.objectives.likelihood import bits_per_dim
from numpyro_hgf.paths.sde import SDE, VPSDE, sde_from_config
from numpyro_hgf.samplers.diffusion import (
    DIFFUSION_SAMPLERS,
    Ancestral,
    DiffusionSampler,
    PredictorCorrector,
    ProbabilityFlowODE,
    ReverseSDE,
)
from numpyro_hgf.samplers.ode import ODESolver

__all__ = ["DiffusionPrior", "SAMPLERS", "OUTPUTS"]

SAMPLERS = tuple(DIFFUSION_SAMPLERS)
OUTPUTS = tuple(reversed(NETWORK_OUTPUTS))  # ("score", "noise")


@partial(jax.jit, static_argnums=(2, 3))
def _jit_sample(prior, key, sample_shape, sampler: DiffusionSampler):
    base_key, run_key = jax.random.split(key)
    x_T = prior.base.sample(base_key, sample_shape)
    flat, batch_shape = _flatten_batch(x_T, prior.event_shape)
    out, nfe = sampler.sample(run_key, prior, flat)
    return out.reshape(*batch_shape, *prior.event_shape), jnp.asarray(nfe)


@register_model("diffusion_prior")
class DiffusionPrior(ContinuousFlow):
    """Score-based diffusion prior (Song et al., ICLR 2021).

    Args:
        score: a ``flax.linen`` module, ``score.apply({"params": params}, x, t)`` with
            ``x: (batch, *event_shape)``, ``t: ()`` -> ``(batch, *event_shape)``.
        params: its inner params pytree.
        sde: a :mod:`numpyro_hgf.paths.sde` SDE (``VPSDE``, ``VESDE``, ``SubVPSDE``).
        event_shape: the data shape; inferred from ``score.out_dim`` when it has one.
        output: what the network outputs: ``"score"`` (``s = net``) or ``"noise"``
            (e-prediction, ``s(x, t) = -net(x, t) / sigma(t)``; what
            :func:`~numpyro_hgf.train.fit_diffusion` trains by default).
        eps: lowest time of the PF-ODE in ``log_prob`` (``log_prob`` is the density of
            ``p_eps``), in ``(0, T)``; Song et al. use ``1e-5``.
        sample_eps: last time of the samplers (Song et al.: ``1e-3``).
        sampler: default sampler of :meth:`sample`: a
            :class:`~numpyro_hgf.samplers.diffusion.DiffusionSampler` object
            (``ProbabilityFlowODE(solver)``, ``ReverseSDE(num_steps)``,
            ``PredictorCorrector(num_steps, snr, num_corrector_steps)``, ``Ancestral(num_steps)``)
            or one of their names ``"ode"``, ``"reverse_sde"``, ``"pc"``, ``"ddpm"``.
        num_steps, snr, num_corrector_steps: the settings a sampler *name* is built with
            (``"ode"`` uses ``sample_solver``).
        base: override the prior ``pi`` (e.g. the exact ``p_T`` in oracle tests); a prior with
            an overridden base cannot be saved.
        trace, solver, sample_solver, num_probes, probe_key: as for
            :class:`~numpyro_hgf.distributions.ContinuousFlow` (``solver`` is used by
            ``log_prob``; ``sample_solver`` by the ``"ode"`` sampler).

    ``log_prob(value)``: ``value: (*batch, *event_shape) -> (*batch,)``; a value whose
    trailing shape is not ``event_shape`` (an image of the wrong size) is a ``ValueError``.
    """

    _field_role = "score"
    pytree_aux_fields = (
        "sde",
        "output",
        "eps",
        "sample_eps",
        "sampler",
        "num_steps",
        "snr",
        "num_corrector_steps",
        "_custom_base",
    )

    def __init__(
        self,
        score,
        params,
        sde,
        *,
        event_shape=None,
        output: str = "score",
        eps: float = 1e-5,
        sample_eps: float = 1e-3,
        sampler: str = "ode",
        num_steps: int = 500,
        snr: float = 0.16,
        num_corrector_steps: int = 1,
        base=None,
        **kwargs,
    ):
        check_instance("sde", sde, SDE, "a numpyro_hgf.paths SDE (VPSDE, VESDE, SubVPSDE)")
        if not hasattr(score, "apply"):
            raise TypeError(f"score: expected a flax.linen module, got {type(score).__name__}")
        event_shape = event_shape_of(score, event_shape, "score")
        self.sde = sde
        self.output = check_choice("output", output, OUTPUTS)
        self.eps = check_open_time("eps", eps, sde.T)
        self.sample_eps = check_open_time("sample_eps", sample_eps, sde.T)
        self.num_steps = check_positive_int("num_steps", num_steps)
        self.snr = check_positive_float("snr", snr)
        self.num_corrector_steps = check_nonnegative_int("num_corrector_steps", num_corrector_steps)
        sample_solver = kwargs.get("sample_solver") or kwargs.get("solver", "tsit5")
        self.sampler = self._sampler_of(sampler, ODESolver.of(sample_solver))
        self._custom_base = base is not None
        if base is not None:
            check_instance("base", base, Distribution, "a numpyro Distribution")
        base = sde.prior(event_shape) if base is None else base
        if base.event_shape != event_shape:
            raise ValueError(
                f"base: expected event_shape {event_shape}, got {tuple(base.event_shape)}"
            )
        super().__init__(score, params, base, sde.T, self.eps, **kwargs)

    @constraints.dependent_property(is_discrete=False)
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    # -- the learned field -------------------------------------------------------------
    @property
    def network(self):
        """The score (or noise) network, a ``flax.linen`` module."""
        return self.velocity

    def _net(self, x, t):
        return self.velocity.apply({"params": self.params}, x, t)

    def score(self, x, t):
        """``s(x, t) ~ grad_x log p_t(x)``: ``x: (batch, *event_shape)``, ``t: ()`` in
        ``(0, T]`` -> ``(batch, *event_shape)``."""
        self.sde.check_time(t)
        out = self._net(x, t)
        if self.output == "noise":
            out = -out / self.sde.sigma(t)
        return out

    def noise(self, x, t):
        """e-prediction ``-sigma(t) s(x, t)`` (the DDPM view), shapes as :meth:`score`."""
        if self.output == "noise":
            self.sde.check_time(t)
            return self._net(x, t)
        return -self.sde.sigma(t) * self.score(x, t)

    def field(self, x, t):
        """PF-ODE drift ``f(x, t) - 1/2 g(t)^2 s(x, t)`` (the velocity of the ODE model)."""
        return self.sde.pf_ode_drift(self.score, x, t)

    # -- sampling ----------------------------------------------------------------------
    def _sampler_of(self, sampler, solver: ODESolver | None = None) -> DiffusionSampler:
        """A sampler object from an object or a name (built with this prior's settings)."""
        if isinstance(sampler, DiffusionSampler):
            chosen = sampler
        else:
            name = check_choice("sampler", sampler, SAMPLERS)
            chosen = {
                "ode": lambda: ProbabilityFlowODE(solver or self.sampler.solver),
                "reverse_sde": lambda: ReverseSDE(self.num_steps),
                "pc": lambda: PredictorCorrector(
                    self.num_steps, self.snr, self.num_corrector_steps
                ),
                "ddpm": lambda: Ancestral(self.num_steps),
            }[name]()
        if isinstance(chosen, Ancestral) and not isinstance(self.sde, VPSDE):
            raise ValueError(
                f"sampler: 'ddpm' needs a VPSDE prior, got a {type(self.sde).__name__}"
            )
        return chosen

    def sample_with_nfe(self, key, sample_shape=(), sampler=None, nfe=None, solver=None):
        """``(samples: (*sample_shape, *event_shape), nfe)``.

        Args:
            sampler: a :class:`~numpyro_hgf.samplers.diffusion.DiffusionSampler` or a name
                (``"ode"``, ``"reverse_sde"``, ``"pc"``, ``"ddpm"``); default: the prior's.
            nfe: score evaluations (the sampler's ``with_nfe``): ``"reverse_sde"`` /
                ``"ddpm"``: the number of steps; ``"pc"``: ``nfe // (1 + num_corrector_steps)``
                predictor steps; ``"ode"``: Heun's method with ``nfe`` evaluations.
            solver: the ODE solver of ``"ode"`` (overrides ``nfe``).
        """
        check_key("key", key)
        if nfe is not None:
            nfe = check_positive_int("nfe", nfe)
        solver = None if solver is None else ODESolver.of(solver)
        chosen = self.sampler if sampler is None else self._sampler_of(sampler, solver)
        if isinstance(chosen, ProbabilityFlowODE) and solver is not None:
            chosen = ProbabilityFlowODE(solver)
        elif nfe is not None:
            chosen = chosen.with_nfe(nfe)
        return _jit_sample(self, key, tuple(sample_shape), chosen)

    # -- density -----------------------------------------------------------------------
    def bits_per_dim(self, raw_levels, key, num_levels: int = 17, interval=(-1.0, 1.0)):
        """Bits per dimension of integer data by uniform dequantization (Theis et al. 2016).

        ``x = low + (high - low) (raw + u) / L``, ``u ~ U[0, 1)``
        (:func:`numpyro_hgf.datasets.dequantize`), then
        ``bpd = -(log p(x) + D log((high - low) / L)) / (D log 2)``
        (:func:`numpyro_hgf.metrics.bits_per_dim`), an upper bound on the discrete bits/dim
        on average over ``u``.

        Args:
            raw_levels: ``(*batch, *event_shape)`` integer levels ``0 .. num_levels - 1``.
            key: ``jax.random`` key of the dequantization noise.
            num_levels: ``L`` (17 for the 8x8 digits); interval: ``(low, high)`` of the data
                the prior was trained on.

        Returns:
            ``(*batch,)`` bits per dimension.
        """
        check_event_shape("raw_levels", raw_levels, self.event_shape)
        check_key("key", key)
        x = dequantize(key, raw_levels, num_levels, interval)
        dim = math.prod(self.event_shape)
        return bits_per_dim(self.log_prob(x), dim, num_levels, interval)

    # -- saving ------------------------------------------------------------------------
    def save_config(self) -> dict:
        if self._custom_base:
            raise TypeError(
                "model: expected a DiffusionPrior with the SDE's own prior as base to save, got "
                "one with an overridden base"
            )
        return {
            **self._common_config(),
            "sde": self.sde.config(),
            "output": self.output,
            "eps": self.eps,
            "sample_eps": self.sample_eps,
            "sampler": self.sampler.name,
            "sampler_options": dataclasses.asdict(self.sampler),
            "num_steps": self.num_steps,
            "snr": self.snr,
            "num_corrector_steps": self.num_corrector_steps,
        }

    @classmethod
    def from_config(cls, config: dict):
        score, params, event_shape, options = cls._from_common_config(config)
        sampler = config["sampler"]
        if "sampler_options" in config:
            sampler = DIFFUSION_SAMPLERS[sampler](**config["sampler_options"])
        return cls(
            score,
            params,
            sde_from_config(config["sde"]),
            event_shape=event_shape,
            output=config["output"],
            eps=config["eps"],
            sample_eps=config["sample_eps"],
            sampler=sampler,
            num_steps=config["num_steps"],
            snr=config["snr"],
            num_corrector_steps=config["num_corrector_steps"],
            **options,
        )
