"""Denoising score matching of diffusion models: continuous time (SDEs) and DDPM.

Continuous time (Song et al. 2021, eq. 7), with ``t ~ U[eps, T]``, ``x_0 ~ data``,
``z ~ N(0, I)`` and ``x_t = alpha(t) x_0 + sigma(t) z`` (:meth:`numpyro_hgf.paths.SDE.perturb`)::

    L(theta) = E_t lambda(t) E || s_theta(x_t, t) - grad log p(x_t | x_0) ||^2,
    grad log p(x_t | x_0) = -z / sigma(t),

weighted by ``lambda(t) = sigma(t)^2`` (Song et al.'s choice, up to the constant ``1 / D``),
so each term is ``|| sigma(t) s_theta(x_t, t) + z ||^2``; its minimiser is the score of
``p_t`` for every ``t`` (Vincent 2011).  With the noise parameterisation (``output="noise"``,
``s_theta = -net / sigma(t)``) the loss is ``|| net(x_t, t) - z ||^2``: DDPM's "simple" loss
in continuous time.  This is the time-conditioned relative of
:func:`numpyro_hgf.objectives.denoising_score_matching` (one or a few fixed noise levels).

Discrete time (Ho et al. 2020, eq. 14): :func:`ddpm_noise_loss` on a
:class:`~numpyro_hgf.paths.ddpm.DDPMSchedule`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from numpyro_hgf._checks import (
    check_callable,
    check_choice,
    check_instance,
    check_key,
    check_open_time,
    is_concrete,
)
from numpyro_hgf.paths.ddpm import DDPMSchedule, ddpm_perturb
from numpyro_hgf.paths.sde import SDE

__all__ = ["diffusion_score_matching", "ddpm_noise_loss", "NETWORK_OUTPUTS"]

#: What a diffusion network predicts: the score ``s`` or the noise ``e = -sigma s``.
NETWORK_OUTPUTS = ("noise", "score")


def diffusion_score_matching(network, params, sde, x0, key, *, eps=1e-5, output="noise"):
    """Monte Carlo estimate of ``E_t E || sigma(t) s_theta(x_t, t) + z ||^2``.

    Args:
        network: ``flax.linen`` module ``(x: (batch, *event), t: (batch,)) -> (batch, *event)``.
        params: its params.
        sde: a :mod:`numpyro_hgf.paths.sde` SDE.
        x0: ``(batch, *event)`` data.
        key: ``jax.random`` key (times and noise).
        eps: ``t ~ U[eps, T]``.
        output: ``"noise"`` (``net = -sigma s``) or ``"score"`` (``net = s``).

    Returns:
        scalar: squared error summed over the event, mean over the batch.
    """
    if not hasattr(network, "apply"):
        raise TypeError(f"network: expected a flax.linen module, got {network!r}")
    check_instance("sde", sde, SDE, "a numpyro_hgf.paths SDE (VPSDE, VESDE, SubVPSDE)")
    if is_concrete(eps):
        check_open_time("eps", eps, sde.T)
    check_choice("output", output, NETWORK_OUTPUTS)
    check_key("key", key)
    t_key, z_key = jax.random.split(key)
    batch = x0.shape[0]
    t = jax.random.uniform(t_key, (batch,), x0.dtype, minval=eps, maxval=sde.T)
    z = jax.random.normal(z_key, x0.shape, x0.dtype)
    x_t = sde.perturb(x0, t, z)
    net = network.apply({"params": params}, x_t, t)
    if output == "noise":
        residual = net - z
    else:
        std = jnp.reshape(sde.sigma(t), (batch,) + (1,) * (x0.ndim - 1))
        residual = std * net + z
    return jnp.mean(jnp.sum(residual.reshape(batch, -1) ** 2, axis=-1))


def ddpm_noise_loss(eps_model: Callable, schedule: DDPMSchedule, x0, key, weights=None):
    """``E_i E_e w_i ||e - eps_model(x_i, t_i)||^2`` with ``i ~ U{1..N}`` (``weights=None``:
    Ho et al.'s "simple" loss, ``w = 1``; :func:`elbo_weights` gives the ELBO up to
    constants).  ``eps_model(x: (batch, *event), t: (batch,)) -> (batch, *event)``;
    ``x0: (batch, *event)``.  Returns a scalar (summed over the event, mean over the batch)."""
    check_callable("eps_model", eps_model, "a callable eps_model(x, t)")
    check_instance("schedule", schedule, DDPMSchedule, "a DDPMSchedule (linear_beta_schedule())")
    if weights is not None and jnp.shape(weights) != (schedule.num_steps,):
        raise ValueError(
            f"weights: expected one weight per step, shape ({schedule.num_steps},), got shape "
            f"{jnp.shape(weights)}"
        )
    check_key("key", key)
    i_key, e_key = jax.random.split(key)
    index = jax.random.randint(i_key, (x0.shape[0],), 0, schedule.num_steps)
    noise = jax.random.normal(e_key, x0.shape, x0.dtype)
    x_i = ddpm_perturb(schedule, x0, index, noise)
    pred = eps_model(x_i, schedule.times()[index])
    err = jnp.sum((pred - noise).reshape(x0.shape[0], -1) ** 2, axis=-1)
    if weights is not None:
        err = err * jnp.asarray(weights)[index]
    return jnp.mean(err)
