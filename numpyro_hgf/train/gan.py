"""``fit_gan``: adversarial generators (GAN, WGAN, WGAN-GP) on the one fit skeleton.

A generator ``G_theta: z -> x`` and a critic ``C_phi: x -> R`` play one of the games of
:mod:`numpyro_hgf.objectives.adversarial`; the trained generator is a
:class:`~numpyro_hgf.distributions.GeneratorPrior`.

How the game runs on a single-loss trainer
------------------------------------------
The trainer differentiates one scalar, :func:`~numpyro_hgf.objectives.adversarial.
adversarial_game_loss`, with respect to ``{"critic": phi, "generator": theta}``: its
gradient in ``phi`` is the critic's loss gradient and in ``theta`` the generator's (stop
gradients separate the players, so the non-zero-sum non-saturating game works too); its
value is the critic's loss.  :func:`gan_optimizer` is an ``optax.multi_transform`` over the
two players: the critic steps every trainer step, the generator once every ``n_critic``
steps (:func:`every_k_steps`, Arjovsky et al. 2017 and Gulrajani et al. 2017, Algorithm 1:
``n_critic`` critic updates per generator update), on the gradient of that step.  Both
gradients come from the same batch and the same params, so the generator's step sees the
critic after ``n_critic - 1`` of the round's updates (the papers' sees it after all
``n_critic``; one critic step of lag).  For ``"wgan"`` the critic's weights are clipped to
``[-clip_value, clip_value]`` after each of its updates (:func:`clip_critic_weights`).

``steps`` counts trainer steps = critic updates; the generator makes ``steps // n_critic``.

The recipes (the papers' optimisers, constant learning rates)
-------------------------------------------------------------
* ``"ns"``: Adam(2e-4, b1 = 0.5, b2 = 0.999) for both players (Radford et al. 2016, DCGAN),
  ``n_critic = 1``;
* ``"wgan"``: RMSProp(5e-5), ``n_critic = 5``, clipping ``c = 0.01`` (Arjovsky et al. 2017);
* ``"wgan-gp"``: Adam(1e-4, b1 = 0, b2 = 0.9), ``n_critic = 5``, ``lambda = 10``
  (Gulrajani et al. 2017, Algorithm 1).

No gradient clipping, no EMA by default (an EMA of the generator, Yazici et al. 2019, is one
``ema_decay=`` away).  With ``validation`` rows the generator gets the params of the lowest
held-out energy distance between the rows and as many generated samples (fixed ``z``), a
criterion of the generator alone (the critic's loss is not comparable across steps).
"""

from __future__ import annotations

from typing import NamedTuple, Unpack

import jax
import jax.numpy as jnp
import optax

from numpyro_hgf._checks import (
    check_choice,
    check_data_matrix,
    check_hidden_sizes,
    check_key,
    check_positive_float,
    check_positive_int,
    describe_output,
)
from numpyro_hgf.distributions.generator import GeneratorPrior
from numpyro_hgf.nn.mlp import MLP
from numpyro_hgf.objectives.adversarial import (
    ADVERSARIAL_LOSSES,
    GP_WEIGHT,
    adversarial_game_loss,
    generator_energy_distance,
)
from numpyro_hgf.objectives.score_matching import as_apply
from numpyro_hgf.train.fit import fit_objective, init_field_params
from numpyro_hgf.train.options import Recipe, TrainKeywords, TrainOptions, resolve_options

__all__ = [
    "fit_gan",
    "gan_optimizer",
    "every_k_steps",
    "clip_critic_weights",
    "RECIPE",
    "RECIPES",
    "N_CRITIC",
]


def _dcgan_adam(learning_rate, steps):
    """Adam(b1 = 0.5, b2 = 0.999) at a constant rate (Radford et al. 2016)."""
    return optax.adam(learning_rate, b1=0.5, b2=0.999)


def _wgan_rmsprop(learning_rate, steps):
    """RMSProp at a constant rate (Arjovsky et al. 2017, Algorithm 1)."""
    return optax.rmsprop(learning_rate)


def _wgan_gp_adam(learning_rate, steps):
    """Adam(b1 = 0, b2 = 0.9) at a constant rate (Gulrajani et al. 2017, Algorithm 1)."""
    return optax.adam(learning_rate, b1=0.0, b2=0.9)


#: The optimisation ``fit_gan`` recommends per game (``steps`` = critic updates).
RECIPES = {
    "ns": Recipe(steps=5_000, batch_size=256, learning_rate=2e-4, optimizer=_dcgan_adam,
                 clip_norm=None, ema_decay=None),
    "wgan": Recipe(steps=10_000, batch_size=256, learning_rate=5e-5, optimizer=_wgan_rmsprop,
                   clip_norm=None, ema_decay=None),
    "wgan-gp": Recipe(steps=10_000, batch_size=256, learning_rate=1e-4,
                      optimizer=_wgan_gp_adam, clip_norm=None, ema_decay=None),
}  # fmt: skip
#: The default game's recipe (``loss="wgan-gp"``).
RECIPE = RECIPES["wgan-gp"]
#: Critic updates per generator update, per game (the papers' values).
N_CRITIC = {"ns": 1, "wgan": 5, "wgan-gp": 5}
#: Default weight-clipping bound of ``"wgan"`` (Arjovsky et al. 2017).
CLIP_VALUE = 0.01


class EveryKState(NamedTuple):
    count: jax.Array
    inner: optax.OptState


def every_k_steps(inner: optax.GradientTransformation, k: int) -> optax.GradientTransformation:
    """``inner`` applied on every ``k``-th step only (steps ``k - 1, 2k - 1, ...``), to that
    step's gradient; zero updates (and a frozen ``inner`` state) on the others.

    Unlike ``optax.MultiSteps`` nothing is averaged: the generator of a WGAN steps on the
    gradient at the current critic, as in Algorithm 1 of Arjovsky et al. (2017).
    """
    k = check_positive_int("n_critic", k)

    def init(params):
        return EveryKState(jnp.zeros((), jnp.int32), inner.init(params))

    def update(updates, state, params=None):
        apply = (state.count % k) == (k - 1)
        new_updates, new_inner = inner.update(updates, state.inner, params)
        select = lambda a, b: jax.tree.map(lambda x, y: jnp.where(apply, x, y), a, b)
        zeros = jax.tree.map(jnp.zeros_like, new_updates)
        return select(new_updates, zeros), EveryKState(
            state.count + 1, select(new_inner, state.inner)
        )

    return optax.GradientTransformation(init, update)


def clip_critic_weights(clip_value: float) -> optax.GradientTransformation:
    """Updates that land the params in ``[-clip_value, clip_value]``: ``clip(p + u) - p``
    (WGAN weight clipping, applied after the critic's optimiser)."""
    c = check_positive_float("clip_value", clip_value)

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("clip_critic_weights: expected params in update, got None")
        new = jax.tree.map(lambda p, u: jnp.clip(p + u, -c, c) - p, params, updates)
        return new, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def gan_optimizer(
    critic_optimizer: optax.GradientTransformation,
    generator_optimizer: optax.GradientTransformation,
    *,
    n_critic: int = 1,
    clip_value: float | None = None,
) -> optax.GradientTransformation:
    """One optax transformation for the game on params ``{"critic", "generator"}``.

    The critic steps with ``critic_optimizer`` every step (then, with ``clip_value``, its
    weights are clipped, WGAN); the generator with ``generator_optimizer`` once every
    ``n_critic`` steps (:func:`every_k_steps`).
    """
    n_critic = check_positive_int("n_critic", n_critic)
    critic = critic_optimizer
    if clip_value is not None:
        critic = optax.chain(critic_optimizer, clip_critic_weights(clip_value))
    generator = generator_optimizer
    if n_critic > 1:
        generator = every_k_steps(generator_optimizer, n_critic)

    def labels(params):
        return {name: jax.tree.map(lambda _, n=name: n, params[name]) for name in params}

    return optax.multi_transform({"critic": critic, "generator": generator}, labels)


def _player_optimizers(options: TrainOptions, critic_learning_rate, n_critic: int):
    """``(critic_optimizer, generator_optimizer)`` from the resolved options."""
    opt = options.optimizer
    if isinstance(opt, optax.GradientTransformation):
        return opt, opt
    lr = options.learning_rate
    critic_lr = lr if critic_learning_rate is None else critic_learning_rate
    critic_lr = check_positive_float("critic_learning_rate", critic_lr)
    generator_updates = max(1, options.steps // n_critic)
    if opt == "sgd":
        return optax.sgd(critic_lr), optax.sgd(lr)
    if opt == "adam":  # the package's "adam": cosine decay over each player's updates
        return (
            optax.adam(optax.cosine_decay_schedule(critic_lr, options.steps)),
            optax.adam(optax.cosine_decay_schedule(lr, generator_updates)),
        )
    return opt(critic_lr, options.steps), opt(lr, generator_updates)


def _players(data, generator, critic, generator_params, critic_params, latent_dim, key):
    """``(generator_fn, critic_fn, theta, phi)``: both players checked on abstract values
    (nothing is compiled before a bad shape fails), then initialised unless given."""
    generator_fn, critic_fn = as_apply("generator", generator), as_apply("critic", critic)
    g_key, c_key = jax.random.split(key)
    z = jnp.zeros((2, latent_dim), data.dtype)

    def params_of(name, module, params, k, x):
        if params is not None:
            return params
        return jax.eval_shape(lambda: init_field_params(name, module, None, k, x))

    theta = params_of("generator", generator, generator_params, g_key, z[:1])
    phi = params_of("critic", critic, critic_params, c_key, data[:1])
    fake = _eval_shape("generator", generator_fn, theta, z, f"z of shape {z.shape}")
    if tuple(fake.shape) != tuple(data[:2].shape):
        raise ValueError(
            f"generator: expected an output of shape {tuple(data[:2].shape)} (rows like the "
            f"data) for z of shape {z.shape}, got {describe_output(fake)}"
        )
    out = _eval_shape("critic", critic_fn, phi, data[:2], "the data")
    if tuple(out.shape) not in ((2,), (2, 1)):
        raise ValueError(
            f"critic: expected one value per row, shape (2,) or (2, 1) for 2 data rows, got "
            f"{describe_output(out)}"
        )
    theta = init_field_params("generator", generator, generator_params, g_key, z[:1])
    phi = init_field_params("critic", critic, critic_params, c_key, data[:1])
    return generator_fn, critic_fn, theta, phi


def _eval_shape(name, fn, params, x, what):
    try:
        return jax.eval_shape(fn, params, x)
    except Exception as err:  # flax's shape errors, jnp.dot's TypeError, ...
        first = str(err).strip().split("\n")[0]
        raise ValueError(
            f"{name}: expected params that take {what}; the {name} raised "
            f"{type(err).__name__}: {first}"
        ) from err


def fit_gan(
    data,
    *,
    loss: str = "wgan-gp",
    latent_dim: int | None = None,
    generator=None,
    critic=None,
    generator_params=None,
    critic_params=None,
    hidden=(128, 128),
    critic_hidden=None,
    n_critic: int | None = None,
    gp_weight: float = GP_WEIGHT,
    clip_value: float = CLIP_VALUE,
    critic_learning_rate: float | None = None,
    key=None,
    options: TrainOptions | None = None,
    return_result: bool = False,
    **train_options: Unpack[TrainKeywords],
):
    """Fit a generator ``x = G(z)``, ``z ~ N(0, I)``, to ``data`` by an adversarial game.

    Args:
        data: ``(n, d)`` rows (``n >= 2``).
        loss: ``"ns"`` (the discriminator's Bernoulli log-likelihood against the
            non-saturating generator loss, Goodfellow et al. 2014), ``"wgan"`` (the
            Kantorovich-Rubinstein dual with weight clipping, Arjovsky et al. 2017) or
            ``"wgan-gp"`` (the dual with a gradient penalty, Gulrajani et al. 2017).
        latent_dim: the dimension of ``z`` (default ``min(d, 8)``: 2 for 2-d toy data, 8
            for the 64-d digits).
        generator: a ``flax.linen`` module ``z: (batch, latent_dim) -> (batch, d)``; default
            :class:`~numpyro_hgf.nn.MLP` with widths ``hidden`` and ``out_dim = d``.
        critic: a ``flax.linen`` module ``x: (batch, d) -> (batch,)`` or ``(batch, 1)`` (the
            logit of ``D`` for ``"ns"``); default ``MLP(critic_hidden, out_dim=1)``.
        generator_params, critic_params: initial params (default: ``init``).
        hidden, critic_hidden: widths of the default networks (``critic_hidden`` defaults
            to ``hidden``).
        n_critic: critic updates per generator update (default: 1 for ``"ns"``, 5 for the
            Wasserstein games).
        gp_weight: ``lambda`` of the gradient penalty (``"wgan-gp"``).
        clip_value: the critic's weight bound ``c`` (``"wgan"``).
        critic_learning_rate: the critic's learning rate (default: ``learning_rate``).
        key: ``jax.random`` key (required).
        options, **train_options: how to train (:class:`~numpyro_hgf.train.TrainOptions`);
            the recipe depends on ``loss`` (:data:`RECIPES`, see the module docstring; the
            default ``"wgan-gp"``: 10,000 steps of 256 rows, Adam(1e-4, b1 = 0, b2 = 0.9)).
            ``steps`` counts critic updates.  ``optimizer="adam"`` is the package's Adam
            (cosine decay over each player's updates); an optax ``optimizer`` drives both
            players.  ``validation`` rows select the generator by held-out energy distance.
        return_result: also return the critic and the training result.

    Returns:
        A :class:`~numpyro_hgf.distributions.GeneratorPrior`, or ``(prior, (critic_module,
        critic_params), result)`` with ``return_result``.
    """
    key = check_key("key", key)
    loss = check_choice("loss", loss, ADVERSARIAL_LOSSES)
    options = resolve_options(options, train_options, RECIPES[loss])
    data = check_data_matrix("data", data, min_rows=2)
    d = int(data.shape[1])
    latent_dim = min(d, 8) if latent_dim is None else check_positive_int("latent_dim", latent_dim)
    n_critic = N_CRITIC[loss] if n_critic is None else check_positive_int("n_critic", n_critic)
    gp_weight = check_positive_float("gp_weight", gp_weight)
    clip_value = check_positive_float("clip_value", clip_value)
    hidden = check_hidden_sizes("hidden", hidden)
    critic_hidden = hidden if critic_hidden is None else check_hidden_sizes(
        "critic_hidden", critic_hidden
    )  # fmt: skip
    generator = MLP(hidden=hidden, out_dim=d) if generator is None else generator
    if not hasattr(generator, "apply"):
        raise TypeError(f"generator: expected a flax.linen module, got {type(generator).__name__}")
    critic = MLP(hidden=critic_hidden, out_dim=1) if critic is None else critic
    critic_opt, generator_opt = _player_optimizers(options, critic_learning_rate, n_critic)
    optimizer = gan_optimizer(
        critic_opt, generator_opt, n_critic=n_critic,
        clip_value=clip_value if loss == "wgan" else None,
    )  # fmt: skip
    init_key, train_key = jax.random.split(key)
    generator_fn, critic_fn, theta, phi = _players(
        data, generator, critic, generator_params, critic_params, latent_dim, init_key
    )
    if loss == "wgan":  # the critic starts inside the clipping box (Arjovsky et al.)
        phi = jax.tree.map(lambda w: jnp.clip(w, -clip_value, clip_value), phi)

    def loss_fn(p, batch, k):
        return adversarial_game_loss(
            loss, critic_fn, generator_fn, p, batch, k, latent_dim=latent_dim,
            gp_weight=gp_weight,
        )  # fmt: skip

    def held_out(p, rows, k):
        return generator_energy_distance(generator_fn, p["generator"], rows, k,
                                         latent_dim=latent_dim)  # fmt: skip

    result = fit_objective(
        loss_fn,
        {"critic": phi, "generator": theta},
        data,
        options,
        key=train_key,
        description=f"fit_gan ({loss})",
        optimizer=optimizer,
        validation_loss=held_out,
    )
    prior = GeneratorPrior(generator, result.params["generator"], latent_dim)
    if return_result:
        return prior, (critic, result.params["critic"]), result
    return prior
