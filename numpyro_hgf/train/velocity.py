"""The one velocity trainer: flow matching, diffusion-as-HGF, oscillation and reflection HGFs.

Objective (velocity regression; Holderrieth et al. 2024, Sec. 5): for a
:class:`~numpyro_hgf.paths.HamiltonianPath`, ``t ~ U(0, T)``, ``x0 ~ data`` and
``(x_t, v_t) = path.sample(x0, key, t)``,

    L(phi) = E || V_phi(x_t, t) - v_t ||^2,

minimised by ``V* (x, t) = E[v_t | x_t = x]``.  It equals the HSM loss with a fixed force,
``E[||V||^2 - 2 V . v_t]``, plus the constant ``E||v_t||^2``.  Any path and any velocity
network (``TimeMLP`` for vectors; a UNet for images) go through this one function.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from numpyro_hgf._checks import check_finite, check_positive_int
from numpyro_hgf.train.trainer import Trainer, TrainResult
from numpyro_hgf.train.validation import early_stopping

__all__ = ["fit_velocity", "velocity_matching_loss"]


def velocity_matching_loss(velocity, params, path, x0, key):
    """Monte Carlo estimate of ``E || V(x_t, t) - v_t ||^2`` on a batch ``x0: (batch, *event)``.

    The squared error is summed over the event dims and averaged over the batch.
    """
    t_key, v_key = jax.random.split(key)
    t = path.sample_time(t_key, x0.shape[0])
    x_t, v_t = path.motion(x0, path.couple(x0, v_key), t)
    pred = velocity.apply({"params": params}, x_t, t)
    return jnp.mean(jnp.sum((pred - v_t).reshape(x0.shape[0], -1) ** 2, axis=-1))


def fit_velocity(
    path,
    data,
    *,
    velocity=None,
    hidden=(128, 128),
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
    trainer_options: dict | None = None,
    **prior_options,
):
    """Learn the optimal velocity predictor of ``path`` on ``data``; return an ``HGFPrior``.

    Args:
        path: a :class:`~numpyro_hgf.paths.HamiltonianPath` (flow matching, diffusion,
            oscillation, reflection).
        data: ``(n, *event_shape)`` training data (inside the box for reflection).
        velocity: a ``flax.linen`` module ``(x, t) -> v``; by default a
            :class:`~numpyro_hgf.nn.TimeMLP` with ``hidden`` widths whose time embedding
            is scaled to the path's horizon.
        steps, batch_size, learning_rate: Adam with cosine decay over ``steps``.
        key: ``jax.random`` key (required).
        ema_decay, clip_norm, progress: as for :class:`~numpyro_hgf.train.Trainer`; the
            prior uses the EMA params when EMA is on.
        return_result: also return the :class:`~numpyro_hgf.train.TrainResult`.
        validation: held-out rows ``(m, *event_shape)`` (split off the *training* data) or
            ``None``.  The training loss on them (fixed draws,
            :func:`numpyro_hgf.train.validation.held_out_loss`) is computed every
            ``validate_every`` steps on the params in use (EMA when on), and the prior gets
            the params with the lowest one; ``patience``: stop after that many validations
            without improvement.  The history is ``result.validation``.
        trainer_options: further :class:`~numpyro_hgf.train.Trainer` options (``devices``,
            ``precision``, ``checkpoint_dir``, ``checkpoint_every``, ``callback``, ...); see
            :func:`numpyro_hgf.train.images.fit_images` for images with a ``UNet``.
        prior_options: passed to :class:`~numpyro_hgf.distributions.HGFPrior` (``solver``,
            ``sample_solver``, ``trace``, ``num_probes``).

    Returns:
        The trained :class:`~numpyro_hgf.distributions.HGFPrior` (saveable), or
        ``(prior, result)``.
    """
    from numpyro_hgf.distributions import HGFPrior
    from numpyro_hgf.nn import TimeMLP
    from numpyro_hgf.paths import HamiltonianPath

    if not isinstance(path, HamiltonianPath):
        raise TypeError(f"path: expected a HamiltonianPath, got {type(path).__name__}")
    if key is None:
        raise TypeError("key: expected a jax.random key, got None")
    data = jnp.asarray(data)
    if data.ndim < 2:
        raise ValueError(f"data: expected an array of shape (n, *event_shape), got {data.shape}")
    check_finite("data", data)
    path.check_data(data, name="data")
    if validation is not None:
        path.check_data(jnp.asarray(validation), name="validation")
    steps = check_positive_int("steps", steps)
    event_shape = tuple(data.shape[1:])
    if velocity is None:
        if len(event_shape) != 1:
            raise ValueError(
                "velocity: the default TimeMLP takes vectors (n, d); for data of shape "
                f"{data.shape} pass a network (e.g. nh.nn.UNet), got None"
            )
        velocity = TimeMLP(hidden=hidden, out_dim=event_shape[0], time_scale=1000.0 / path.horizon)
    init_key, train_key = jax.random.split(key)
    params = velocity.init(init_key, data[:1], jnp.zeros(()))["params"]

    loss_fn = lambda p, batch, k: velocity_matching_loss(velocity, p, path, batch, k)
    trainer = Trainer(
        loss_fn,
        optax.adam(optax.cosine_decay_schedule(learning_rate, steps)),
        batch_size=min(batch_size, data.shape[0]),
        ema_decay=ema_decay,
        clip_norm=clip_norm,
        progress=progress,
        description=f"fit_velocity ({path.name})",
        **(trainer_options or {}),
    )
    stopping = early_stopping(
        loss_fn, validation, train_key, like=data, steps=steps,
        validate_every=validate_every, patience=patience,
    )  # fmt: skip
    result: TrainResult = trainer.fit(params, data, steps, train_key, **stopping)
    prior = HGFPrior(velocity, result.params, path, event_shape=event_shape, **prior_options)
    return (prior, result) if return_result else prior
