"""``fit_hsm``: Hamiltonian score matching (Holderrieth et al., NeurIPS 2024), one fit skeleton.

A force ``F_theta`` (the score model) and a velocity predictor ``V_phi(x, t)`` are trained as
the game ``min_theta max_phi [-L_hsm(phi | theta)]``
(:func:`numpyro_hgf.objectives.hamiltonian_score_matching`).

How the game runs on a single-loss trainer
------------------------------------------
The trainer differentiates one scalar, ``L_hsm(phi | theta)``, with respect to the params
``{"force": theta, "velocity": phi}``.  :func:`hsm_optimizer` is an
``optax.multi_transform`` that descends the ``phi`` gradient and *negates* the ``theta``
gradient before its optimiser (gradient ascent on ``L_hsm`` = descent on the discrepancy
``D(theta) = -L_hsm(phi*, theta)``).  With ``velocity_steps = k > 1`` the force optimiser
is wrapped in ``optax.MultiSteps``: the velocity moves every step, the force once every
``k`` steps with the average of its last ``k`` gradients, so the velocity player stays
closer to its best response ``phi*(theta)`` (the Danskin gradient).

Choosing the horizon
--------------------
The HSD grows like ``t^2`` (a weak signal at tiny ``T``) while long trajectories make ``V*``
hard to learn: on the 2-d ring benchmark ``T = 0.25`` beat 0.1, 0.5 and 1, on the 20-d
mixture ``T = 1`` beat 0.25 and 2.  Scale ``T`` with the length scale of the data's score (in
the Taylor regime ``t ||grad^2 log pi||^(1/2) < 1``) and with the dimension.  Antithetic
``+-v0`` pairs did not change the learned score on the ring.

The defaults
------------
The predictor baseline ``V = t F_theta + V_phi`` and the small-time (``"taylor"``) force
gradient learn a better score than the paper's plain predictor with the exact gradient
through the leapfrog (``force_baseline=False, force_gradient="full"``): on the benchmark
(``docs/benchmarks.md``) the plain form left the force far behind a velocity player that had
already found the score, and the ``"taylor"`` gradient does not back-propagate through the
simulation (about half the time).
"""

from __future__ import annotations

from typing import Unpack

import jax
import jax.numpy as jnp
import optax

from numpyro_hgf._checks import (
    check_choice,
    check_data_matrix,
    check_fits,
    check_key,
    check_positive_float,
    check_positive_int,
    check_positive_scalar,
)
from numpyro_hgf.distributions.score import ScoreModel, energy_model
from numpyro_hgf.nn.mlp import EnergyMLP, VelocityMLP
from numpyro_hgf.objectives.hamiltonian import TIME_SAMPLING, hamiltonian_score_matching
from numpyro_hgf.objectives.score_matching import (
    as_apply,
    implicit_score_matching,
    score_from_energy,
    score_from_network,
    sliced_score_matching,
)
from numpyro_hgf.train.fit import fit_objective, init_field_params
from numpyro_hgf.train.options import Recipe, TrainKeywords, TrainOptions, resolve_options

__all__ = ["fit_hsm", "hsm_optimizer", "RECIPE"]

#: The optimisation ``fit_hsm`` recommends (for the force; the velocity runs 5x faster).
RECIPE = Recipe(steps=2_000, batch_size=256, learning_rate=1e-3, clip_norm=1.0, ema_decay=None)
#: Dimensions up to which the held-out criterion is implicit score matching (exact trace).
EXACT_TRACE_MAX_DIM = 16


def hsm_optimizer(
    force_optimizer: optax.GradientTransformation,
    velocity_optimizer: optax.GradientTransformation,
    *,
    velocity_steps: int = 1,
) -> optax.GradientTransformation:
    """One optax transformation for the HSM game on params ``{"force", "velocity"}``.

    The loss is ``L_hsm(phi | theta)``.  ``velocity`` (``phi``) descends it;
    ``force`` (``theta``) gets the **negated** gradient (``optax.scale(-1)`` before its
    optimiser), i.e. descends ``-L_hsm``, the discrepancy estimate: ``min_theta max_phi
    -L_hsm``.  ``velocity_steps = k``: the force updates once per ``k`` steps with its
    accumulated mean gradient (``optax.MultiSteps``), the velocity every step.
    """
    k = check_positive_int("velocity_steps", velocity_steps)
    ascent = optax.chain(optax.scale(-1.0), force_optimizer)
    if k > 1:
        ascent = optax.MultiSteps(ascent, every_k_schedule=k).gradient_transformation()

    def labels(params):
        return {
            "force": jax.tree.map(lambda _: "force", params["force"]),
            "velocity": jax.tree.map(lambda _: "velocity", params["velocity"]),
        }

    return optax.multi_transform({"force": ascent, "velocity": velocity_optimizer}, labels)


def _game_optimizer(options: TrainOptions, velocity_learning_rate, velocity_steps: int):
    """The two players' optimizers (see ``fit_hsm``), wrapped by :func:`hsm_optimizer`."""
    if isinstance(options.optimizer, optax.GradientTransformation):
        return hsm_optimizer(options.optimizer, options.optimizer, velocity_steps=velocity_steps)
    lr = options.learning_rate
    vel_lr = 5.0 * lr if velocity_learning_rate is None else velocity_learning_rate
    vel_lr = check_positive_float("velocity_learning_rate", vel_lr)
    if options.optimizer == "sgd":
        return hsm_optimizer(optax.sgd(lr), optax.sgd(vel_lr), velocity_steps=velocity_steps)
    # the force optimiser sees one step per ``velocity_steps`` (optax.MultiSteps): its
    # schedule spans the force updates, so it also decays to zero at the end
    force_updates = -(-options.steps // velocity_steps)
    return hsm_optimizer(
        optax.adam(optax.cosine_decay_schedule(lr, force_updates)),
        # no momentum for the velocity: it tracks a moving best response, and momentum
        # makes it lag (on the ring benchmark b1 = 0 cut the Fisher divergence by ~25 %)
        optax.adam(optax.cosine_decay_schedule(vel_lr, options.steps), b1=0.0),
        velocity_steps=velocity_steps,
    )


def _held_out_score_loss(force_fn, dim: int):
    """A held-out criterion for the force alone: implicit score matching (``d <= 16``) or
    sliced score matching, ``FD / 2`` up to a constant either way."""
    if dim <= EXACT_TRACE_MAX_DIM:
        return lambda p, rows, key: implicit_score_matching(force_fn, p["force"], rows, key)
    return lambda p, rows, key: sliced_score_matching(force_fn, p["force"], rows, key)


def _players(data, force, energy, velocity, params, velocity_params, horizon, key):
    """``(force_fn, velocity_fn, theta, phi)``: both players applied as functions of their
    params, initialised (unless given) and checked on two data rows."""
    field, field_name = (energy, "energy") if energy is not None else (force, "force")
    force_fn = score_from_energy(energy) if energy is not None else score_from_network(force)
    velocity_fn = as_apply("velocity", velocity)
    force_key, velocity_key = jax.random.split(key)
    theta = init_field_params(field_name, field, params, force_key, data[:1])
    check_fits(field_name, force_fn, theta, data)
    t0 = jnp.full((1,), horizon, data.dtype)
    phi = init_field_params("velocity", velocity, velocity_params, velocity_key, data[:1], t0)
    check_fits("velocity", velocity_fn, phi, data, jnp.full((2,), horizon, data.dtype))
    return force_fn, velocity_fn, theta, phi


def fit_hsm(
    data,
    *,
    force=None,
    energy=None,
    velocity=None,
    params=None,
    velocity_params=None,
    step_size: float = 0.05,
    num_steps: int = 5,
    time_sampling: str = "uniform",
    antithetic: bool = False,
    force_baseline: bool = True,
    force_gradient: str = "taylor",
    velocity_learning_rate: float | None = None,
    velocity_steps: int = 1,
    hidden=(128, 128),
    velocity_hidden=(128, 128),
    key=None,
    options: TrainOptions | None = None,
    return_result: bool = False,
    **train_options: Unpack[TrainKeywords],
):
    """Hamiltonian score matching: learn a force ``F_theta ~ grad log p`` from ``data``.

    Trains ``{"force": theta, "velocity": phi}`` on the HSM loss
    ``L_hsm(phi | theta) = E[||V_phi(x_t, t)||^2 - 2 V_phi(x_t, t)^T v_t]`` with
    ``(x_t, v_t)`` the leapfrog simulation of ``dx = v, dv = F_theta(x)`` from
    ``x0 ~ data, v0 ~ N(0, I)`` to ``t ~ U(0, T]``, ``T = num_steps * step_size``:
    ``phi`` minimises it, ``theta`` maximises it (:func:`hsm_optimizer`), i.e. ``theta``
    minimises the Hamiltonian score discrepancy ``-min_phi L_hsm``.  The loss history of
    the result is ``L_hsm``; ``-L_hsm`` tracks the (training-batch) discrepancy.

    Args:
        data: ``(n, d)``.
        force: a ``flax.linen`` score network ``x -> (batch, d)`` (the force is the score).
        energy: instead, an energy ``x -> (batch,)``; the force is ``-grad E``.  With
            neither, an :class:`~numpyro_hgf.nn.EnergyMLP` with ``hidden`` widths.
        velocity: ``flax.linen`` module ``(x, t) -> (batch, d)``; default
            :class:`~numpyro_hgf.nn.VelocityMLP` (``t * TimeMLP``, widths
            ``velocity_hidden``, time scaled to ``T``).
        params, velocity_params: initial params (default: ``init`` on the data).
        step_size, num_steps, time_sampling: the simulation (see
            :func:`~numpyro_hgf.objectives.simulate_phase_space`); ``step_size > 0``; the
            default horizon ``T = 0.25`` suits data on unit scale (see "Choosing the
            horizon" above).
        antithetic: simulate ``+-v0`` pairs (twice the simulation cost).
        force_baseline, force_gradient: the predictor ``V = t F_theta + V_phi`` and the
            force's gradient (see
            :func:`~numpyro_hgf.objectives.hamiltonian_score_matching` and "The defaults"
            above).
        velocity_learning_rate: the velocity player's peak learning rate (default
            ``5 * learning_rate``: the velocity, whose best response the force's gradient
            assumes, moves on the faster time scale; its Adam has no momentum, ``b1 = 0``,
            so that it does not lag behind the force).
        velocity_steps: velocity updates per force update (``k``; see :func:`hsm_optimizer`).
        key: ``jax.random`` key (required).
        options, **train_options: how to train (:class:`~numpyro_hgf.train.TrainOptions`).
            Recommended: 2,000 steps of 256 rows, learning rate 1e-3 (Adam, cosine decay, for
            the force; see ``velocity_learning_rate``), clipping at norm 1, no EMA.  An optax
            ``optimizer`` replaces both players' Adams (the force's gradient is still
            negated).  With ``validation`` rows the force gets the params of the lowest
            held-out score-matching loss (implicit score matching for ``d <= 16``, sliced
            with fixed projections above), a criterion that does not depend on the velocity
            player.
        return_result: also return the velocity and the training result.

    Returns:
        The force model (an ``EnergyBasedModel`` for a flax energy, else a ``ScoreModel``),
        or ``(model, (velocity_module, velocity_params), result)`` with ``return_result``.
    """
    key = check_key("key", key)
    options = resolve_options(options, train_options, RECIPE)
    data = check_data_matrix("data", data, min_rows=2)
    check_positive_scalar("step_size", step_size)
    num_steps = check_positive_int("num_steps", num_steps)
    velocity_steps = check_positive_int("velocity_steps", velocity_steps)
    check_choice("time_sampling", time_sampling, TIME_SAMPLING)
    if force is not None and energy is not None:
        raise ValueError("force: expected either force or energy, got both")
    if force is None and energy is None:
        energy = EnergyMLP(hidden=hidden)
    horizon = num_steps * float(step_size)
    if velocity is None:
        velocity = VelocityMLP(hidden=velocity_hidden, horizon=horizon)
    optimizer = _game_optimizer(options, velocity_learning_rate, velocity_steps)
    init_key, train_key = jax.random.split(key)
    force_fn, velocity_fn, theta, phi = _players(
        data, force, energy, velocity, params, velocity_params, horizon, init_key
    )

    game = dict(step_size=step_size, num_steps=num_steps, time_sampling=time_sampling,
                antithetic=bool(antithetic), force_baseline=bool(force_baseline),
                force_gradient=force_gradient)  # fmt: skip

    def loss_fn(p, batch, k):
        return hamiltonian_score_matching(
            force_fn, p["force"], batch, k, velocity_fn=velocity_fn,
            velocity_params=p["velocity"], **game,
        )  # fmt: skip

    result = fit_objective(
        loss_fn,
        {"force": theta, "velocity": phi},
        data,
        options,
        key=train_key,
        description="fit_hsm",
        optimizer=optimizer,
        validation_loss=_held_out_score_loss(force_fn, data.shape[1]),
    )
    trained = result.params["force"]
    event_shape = data.shape[1:]
    if energy is not None:
        model = energy_model(energy, trained, event_shape)
    else:
        model = ScoreModel(force, trained, event_shape, kind="score")
    if return_result:
        return model, (velocity, result.params["velocity"]), result
    return model
