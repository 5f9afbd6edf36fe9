"""``fit_diffusion``: denoising score matching of a time-conditioned score on the trainer core.

Objective (Song et al. 2021, eq. 7; seed 002, "Reversing the SDE"), with ``t ~ U[eps, T]``,
``x_0 ~ data``, ``z ~ N(0, I)`` and ``x_t = alpha(t) x_0 + sigma(t) z``
(:meth:`numpyro_hgf.sde.SDE.perturb`)::

    L(theta) = E_t lambda(t) E || s_theta(x_t, t) - grad log p(x_t | x_0) ||^2,
    grad log p(x_t | x_0) = -z / sigma(t),

weighted by ``lambda(t) = 1 / E||grad log p(x_t | x_0)||^2 = sigma(t)^2 / D`` (the seed's
choice; ``D`` the data dimension, a constant dropped here), so each term is
``|| sigma(t) s_theta(x_t, t) + z ||^2``.  Its minimiser is the score of ``p_t`` for every
``t`` (Vincent 2011).  With the noise parameterisation (``output="noise"``,
``s_theta = -net / sigma(t)``, as in DDPM) the loss is ``|| net(x_t, t) - z ||^2``: DDPM's
"simple" loss in continuous time.

This is the time-conditioned relative of :func:`numpyro_hgf.objectives.denoising_score_matching`
(one or a few fixed noise levels): the level is now the SDE's ``sigma(t)`` at a continuous ``t``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from numpyro_hgf._checks import _describe, check_choice, check_finite, check_positive_int
from numpyro_hgf.train.trainer import Trainer, TrainResult
from numpyro_hgf.train.validation import early_stopping

__all__ = ["fit_diffusion", "diffusion_score_matching_loss"]


def diffusion_score_matching_loss(network, params, sde, x0, key, *, eps=1e-5, output="noise"):
    """Monte Carlo estimate of ``E_t E || sigma(t) s_theta(x_t, t) + z ||^2``.

    Args:
        network: ``flax.linen`` module ``(x: (batch, *event), t: (batch,)) -> (batch, *event)``.
        params: its params.
        sde: a :mod:`numpyro_hgf.sde` SDE.
        x0: ``(batch, *event)`` data.
        key: ``jax.random`` key (times and noise).
        eps: ``t ~ U[eps, T]``.
        output: ``"noise"`` (``net = -sigma s``) or ``"score"`` (``net = s``).

    Returns:
        scalar: squared error summed over the event, mean over the batch.
    """
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


def fit_diffusion(
    sde,
    data,
    *,
    network=None,
    hidden=(128, 128),
    output: str = "noise",
    eps: float = 1e-5,
    steps: int = 5_000,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    key=None,
    ema_decay: float | None = 0.999,
    clip_norm: float | None = 1.0,
    progress: bool | None = None,
    return_result: bool = False,
    validation=None,
    validate_every: int | None = None,
    patience: int | None = None,
    **prior_options,
):
    """Learn the score of ``sde``'s marginals on ``data``; return a ``DiffusionPrior``.

    Args:
        sde: a :mod:`numpyro_hgf.sde` SDE (``VPSDE``, ``VESDE``, ``SubVPSDE``).
        data: ``(n, *event_shape)`` training data.
        network: a ``flax.linen`` module ``(x, t) -> (batch, *event_shape)``; by default a
            :class:`~numpyro_hgf.nn.TimeMLP` with ``hidden`` widths (vectors only; the UNet
            for images comes with the image-training issue).
        output: ``"noise"`` (e-prediction, the default) or ``"score"``.
        eps: times are drawn uniformly on ``[eps, T]``; also the prior's ``eps``.
        steps, batch_size, learning_rate: Adam with cosine decay over ``steps``.
        key: ``jax.random`` key (required).
        ema_decay, clip_norm, progress: as for :class:`~numpyro_hgf.train.Trainer` (the
            progress bar is the trainer's; silence it with ``progress=False`` or
            ``NUMPYRO_HGF_PROGRESS=0``); the prior uses the EMA params when EMA is on.
        return_result: also return the :class:`~numpyro_hgf.train.TrainResult`.
        validation: held-out rows ``(m, *event_shape)`` (split off the *training* data) or
            ``None``.  The training loss on them (fixed draws,
            :func:`numpyro_hgf.train.validation.held_out_loss`) is computed every
            ``validate_every`` steps on the params in use (EMA when on), and the prior gets
            the params with the lowest one; ``patience``: stop after that many validations
            without improvement.  The history is ``result.validation``.
        prior_options: passed to :class:`~numpyro_hgf.distributions.DiffusionPrior`
            (``sampler``, ``num_steps``, ``solver``, ``trace``, ...).

    Returns:
        The trained :class:`~numpyro_hgf.distributions.DiffusionPrior` (saveable), or
        ``(prior, result)``.
    """
    from numpyro_hgf.diffusion_samplers import check_eps
    from numpyro_hgf.distributions.diffusion import DiffusionPrior
    from numpyro_hgf.nn import TimeMLP
    from numpyro_hgf.sde import SDE

    if not isinstance(sde, SDE):
        raise TypeError(
            f"sde: expected a numpyro_hgf.sde SDE (VPSDE, VESDE, SubVPSDE), got {sde!r}"
        )
    if key is None:
        raise TypeError("key: expected a jax.random key, got None")
    check_choice("output", output, ("noise", "score"))
    eps = check_eps(eps, sde.T)
    data = jnp.asarray(data)
    if data.ndim < 2:
        raise ValueError(
            f"data: expected an array of shape (n, *event_shape), got {_describe(data)}"
        )
    if not jnp.issubdtype(data.dtype, jnp.floating):
        raise TypeError(f"data: expected a floating-point array, got {_describe(data)}")
    check_finite("data", data)
    steps = check_positive_int("steps", steps)
    event_shape = tuple(data.shape[1:])
    if network is None:
        if len(event_shape) != 1:
            raise ValueError(
                "network: the default TimeMLP takes vectors (n, d); for data of shape "
                f"{tuple(data.shape)} pass a network (or flatten the data), got None"
            )
        network = TimeMLP(hidden=hidden, out_dim=event_shape[0])
    init_key, train_key = jax.random.split(key)
    params = network.init(init_key, data[:1], jnp.full((1,), sde.T, data.dtype))["params"]

    loss_fn = lambda p, batch, k: diffusion_score_matching_loss(
        network, p, sde, batch, k, eps=eps, output=output
    )
    trainer = Trainer(
        loss_fn,
        optax.adam(optax.cosine_decay_schedule(learning_rate, steps)),
        batch_size=min(batch_size, data.shape[0]),
        ema_decay=ema_decay,
        clip_norm=clip_norm,
        progress=progress,
        description=f"fit_diffusion ({sde.name})",
    )
    stopping = early_stopping(
        loss_fn, validation, train_key, like=data, steps=steps,
        validate_every=validate_every, patience=patience,
    )  # fmt: skip
    result: TrainResult = trainer.fit(params, data, steps, train_key, **stopping)
    prior_options.setdefault("eps", eps)
    prior = DiffusionPrior(
        network, result.params, sde, event_shape=event_shape, output=output, **prior_options
    )
    return (prior, result) if return_result else prior
