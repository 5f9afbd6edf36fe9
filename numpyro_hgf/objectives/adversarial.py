"""Adversarial objectives: GAN (Goodfellow et al. 2014), WGAN (Arjovsky et al. 2017) and
WGAN-GP (Gulrajani et al. 2017), as pure functions.

A generator ``G_theta: z -> x`` (``z ~ N(0, I)``) has no tractable density, so it is fitted
through a second player, the critic ``C_phi: x -> R`` (``critic_fn(phi, x: (batch, *event))
-> (batch,)``; a trailing output axis of width 1 is dropped):

* ``"ns"`` -- the discriminator ``D = sigmoid(C)`` is a Bernoulli classifier of "real"
  (label 1) against "generated" (label 0).  Its log-likelihood (the seed's derivation)
  ``E_data[log D(x)] + E_z[log(1 - D(G(z)))]`` is maximised by ``D* = p / (p + q)``, where
  it equals ``2 JS(p || q) - 2 log 2``.  :func:`discriminator_loss` is its negative (the
  binary cross-entropy); the generator minimises the non-saturating
  :func:`nonsaturating_generator_loss` ``-E_z[log D(G(z))]`` (Goodfellow et al. 2014,
  Sec. 3), which has the same fixed point and strong gradients early on.
* ``"wgan"`` -- the critic maximises the Kantorovich-Rubinstein dual
  ``E_data[C(x)] - E_z[C(G(z))]`` over 1-Lipschitz ``C`` (its supremum is ``W_1(p, q)``);
  :func:`wasserstein_critic_loss` is its negative, the generator minimises
  :func:`wasserstein_generator_loss` ``-E_z[C(G(z))]``.  The Lipschitz bound is kept by
  clipping the critic's weights to ``[-c, c]`` after each step (Arjovsky et al. 2017,
  Algorithm 1; :func:`clip_params`).
* ``"wgan-gp"`` -- the same dual with the soft constraint :func:`gradient_penalty`
  ``lambda E[(||grad C(x_hat)|| - 1)^2]`` on ``x_hat = eps x + (1 - eps) G(z)``,
  ``eps ~ U(0, 1)`` (Gulrajani et al. 2017, eq. 3 and Algorithm 1, ``lambda = 10``).

:func:`adversarial_losses` evaluates both players' losses on one batch;
:func:`adversarial_game_loss` folds them into the one scalar a single-loss trainer
differentiates (see its docstring).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from numpyro_hgf._checks import (
    check_callable,
    check_choice,
    check_key,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    is_concrete,
)

__all__ = [
    "ADVERSARIAL_LOSSES",
    "GP_WEIGHT",
    "critic_values",
    "discriminator_log_likelihood",
    "discriminator_loss",
    "nonsaturating_generator_loss",
    "wasserstein_critic_loss",
    "wasserstein_generator_loss",
    "gradient_penalty",
    "clip_params",
    "adversarial_losses",
    "adversarial_game_loss",
    "generator_energy_distance",
]

#: The games of :func:`adversarial_losses`.
ADVERSARIAL_LOSSES = ("ns", "wgan", "wgan-gp")
#: Gulrajani et al.'s gradient-penalty weight ``lambda``.
GP_WEIGHT = 10.0

CriticFn = Callable  # (params, x: (batch, *event_shape)) -> (batch,) or (batch, 1)
GeneratorFn = Callable  # (params, z: (batch, latent_dim)) -> (batch, *event_shape)


def critic_values(critic_fn: CriticFn, params, x) -> jax.Array:
    """``C(x)``: ``x: (batch, *event_shape) -> (batch,)`` (a width-1 output axis dropped)."""
    out = critic_fn(params, x)
    if out.ndim == 2 and out.shape[-1] == 1:
        out = out[:, 0]
    return out


def discriminator_log_likelihood(critic_fn: CriticFn, params, real, fake) -> jax.Array:
    """Mean Bernoulli log-likelihood of the labels (real 1, generated 0) under
    ``D = sigmoid(C)``: ``mean log D(real) + mean log(1 - D(fake))`` (stable in the logit).

    ``real: (n, *event)``, ``fake: (m, *event)`` -> scalar, ``<= 0``.  At ``D* = p / (p + q)``
    its expectation is ``2 JS(p || q) - 2 log 2`` (Goodfellow et al. 2014, Theorem 1).
    """
    logit_real = critic_values(critic_fn, params, real)
    logit_fake = critic_values(critic_fn, params, fake)
    return jnp.mean(jax.nn.log_sigmoid(logit_real)) + jnp.mean(jax.nn.log_sigmoid(-logit_fake))


def discriminator_loss(critic_fn: CriticFn, params, real, fake) -> jax.Array:
    """Binary cross-entropy of the discriminator: ``-discriminator_log_likelihood``."""
    return -discriminator_log_likelihood(critic_fn, params, real, fake)


def nonsaturating_generator_loss(critic_fn: CriticFn, params, fake) -> jax.Array:
    """``-mean log D(G(z)) = mean softplus(-C(G(z)))`` (Goodfellow et al. 2014, Sec. 3)."""
    return jnp.mean(jax.nn.softplus(-critic_values(critic_fn, params, fake)))


def wasserstein_critic_loss(critic_fn: CriticFn, params, real, fake) -> jax.Array:
    """``mean C(fake) - mean C(real)``: minus the Kantorovich-Rubinstein dual estimate of
    ``W_1`` (Arjovsky et al. 2017, eq. 3)."""
    return jnp.mean(critic_values(critic_fn, params, fake)) - jnp.mean(
        critic_values(critic_fn, params, real)
    )


def wasserstein_generator_loss(critic_fn: CriticFn, params, fake) -> jax.Array:
    """``-mean C(G(z))`` (the generator's part of the dual)."""
    return -jnp.mean(critic_values(critic_fn, params, fake))


def gradient_penalty(
    critic_fn: CriticFn, params, real, fake, key, weight: float = GP_WEIGHT
) -> jax.Array:
    """``weight * mean (||grad_x C(x_hat)||_2 - 1)^2`` on ``x_hat = eps real + (1 - eps) fake``,
    ``eps ~ U(0, 1)`` per row (Gulrajani et al. 2017, eq. 3).

    ``real``, ``fake``: ``(batch, *event_shape)`` of the same shape -> scalar.
    """
    _check_weight("weight", weight)
    check_key("key", key)
    if jnp.shape(real) != jnp.shape(fake):
        raise ValueError(
            f"fake: expected the shape of real {jnp.shape(real)}, got {jnp.shape(fake)}"
        )
    eps = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
    x_hat = eps * real + (1.0 - eps) * fake

    def total(x):
        return jnp.sum(critic_values(critic_fn, params, x))

    grads = jax.grad(total)(x_hat).reshape(real.shape[0], -1)
    # the norm's gradient at 0 is undefined: a tiny floor keeps it finite
    norms = jnp.sqrt(jnp.sum(grads**2, axis=-1) + jnp.finfo(real.dtype).tiny)
    return weight * jnp.mean((norms - 1.0) ** 2)


def _check_weight(name: str, weight) -> None:
    """A concrete penalty weight is a finite number ``>= 0`` (traced ones pass)."""
    if is_concrete(weight):
        check_nonnegative_float(name, weight)


def clip_params(params, clip_value: float):
    """Every leaf clipped to ``[-clip_value, clip_value]`` (WGAN weight clipping)."""
    if is_concrete(clip_value):
        check_positive_float("clip_value", clip_value)
    return jax.tree.map(lambda w: jnp.clip(w, -clip_value, clip_value), params)


def adversarial_losses(
    loss: str,
    critic_fn: CriticFn,
    critic_params,
    real,
    fake,
    key=None,
    *,
    gp_weight: float = GP_WEIGHT,
) -> tuple[jax.Array, jax.Array]:
    """``(critic_loss, generator_loss)`` of the game ``loss`` (one of
    :data:`ADVERSARIAL_LOSSES`) on ``real: (n, *event)`` and ``fake = G(z): (n, *event)``.

    Both are to be minimised, the first over the critic, the second over the generator (the
    caller decides which params carry gradients).  ``key`` draws the interpolation of the
    gradient penalty (``"wgan-gp"`` only).
    """
    check_choice("loss", loss, ADVERSARIAL_LOSSES)
    check_callable("critic_fn", critic_fn, "a callable critic_fn(params, x)")
    _check_weight("gp_weight", gp_weight)
    if loss == "wgan-gp":
        check_key("key", key)
    if loss == "ns":
        critic = discriminator_loss(critic_fn, critic_params, real, fake)
        generator = nonsaturating_generator_loss(critic_fn, critic_params, fake)
    elif loss in ("wgan", "wgan-gp"):
        critic = wasserstein_critic_loss(critic_fn, critic_params, real, fake)
        if loss == "wgan-gp":
            critic = critic + gradient_penalty(critic_fn, critic_params, real, fake, key, gp_weight)
        generator = wasserstein_generator_loss(critic_fn, critic_params, fake)
    else:
        raise ValueError(f"loss: expected one of {list(ADVERSARIAL_LOSSES)}, got {loss!r}")
    return critic, generator


def adversarial_game_loss(
    loss: str,
    critic_fn: CriticFn,
    generator_fn: GeneratorFn,
    params,
    real,
    key,
    *,
    latent_dim: int,
    gp_weight: float = GP_WEIGHT,
) -> jax.Array:
    """The two-player game as ONE scalar for a single-loss trainer.

    ``params = {"critic": phi, "generator": theta}``; ``real: (batch, *event_shape)``; ``z ~
    N(0, I_latent_dim)`` one per row.  Returns::

        L_C(phi, sg(theta)) + L_G(sg(phi), theta) - sg(L_G(phi, theta))

    (``sg`` = ``stop_gradient``): its gradient in ``phi`` is the critic's loss gradient, its
    gradient in ``theta`` the generator's (the non-zero-sum NS game included), and its value
    is the critic's loss ``L_C`` (for the Wasserstein games minus the dual estimate of
    ``W_1``, plus the penalty).
    """
    check_choice("loss", loss, ADVERSARIAL_LOSSES)
    check_callable("generator_fn", generator_fn, "a callable generator_fn(params, z)")
    latent_dim = check_positive_int("latent_dim", latent_dim)
    check_key("key", key)
    z_key, gp_key = jax.random.split(key)
    z = jax.random.normal(z_key, (real.shape[0], latent_dim), real.dtype)
    critic, generator = params["critic"], params["generator"]
    fake = generator_fn(generator, z)
    critic_loss, _ = adversarial_losses(
        loss, critic_fn, critic, real, jax.lax.stop_gradient(fake), gp_key, gp_weight=gp_weight
    )
    _, generator_loss = adversarial_losses(
        loss, critic_fn, jax.lax.stop_gradient(critic), real, fake, gp_key, gp_weight=gp_weight
    )
    return critic_loss + generator_loss - jax.lax.stop_gradient(generator_loss)


def generator_energy_distance(
    generator_fn: GeneratorFn, params, rows, key, *, latent_dim: int
) -> jax.Array:
    """Energy distance (V-statistic, Szekely & Rizzo) between ``rows: (m, *event)`` and as many
    generated samples ``G(z)``, ``z ~ N(0, I)`` from ``key``: a held-out criterion of the
    generator alone (zero iff the two samples' laws agree; a fixed ``key`` gives common
    random numbers).  :func:`numpyro_hgf.metrics.energy_distance` is the metric of record
    (this one sits in the objective layer, below the trainers)."""
    check_callable("generator_fn", generator_fn, "a callable generator_fn(params, z)")
    latent_dim = check_positive_int("latent_dim", latent_dim)
    check_key("key", key)
    z = jax.random.normal(key, (rows.shape[0], latent_dim), rows.dtype)
    x = rows.reshape(rows.shape[0], -1)
    y = generator_fn(params, z).reshape(rows.shape[0], -1)

    def mean_dist(a, b):
        d2 = jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
        return jnp.mean(jnp.sqrt(jnp.maximum(d2, jnp.finfo(a.dtype).tiny)))

    return 2.0 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y)
