"""Score-matching trainers on the :class:`~numpyro_hgf.train.Trainer` core.

* :func:`fit_score` -- explicit (KDE), implicit, sliced or denoising score matching of an
  energy ``E(x)`` (score ``-grad E``) or of a score network ``s(x)`` / ``s(x, sigma)``;
* :func:`fit_hsm` -- Hamiltonian score matching: a force ``F_theta`` (the score model) and
  a velocity predictor ``V_phi(x, t)`` trained as the game
  ``min_theta max_phi [-L_hsm(phi | theta)]`` (:mod:`numpyro_hgf.objectives.hamiltonian`).

The objectives are the pure functions of :mod:`numpyro_hgf.objectives`; here they are
closed over the network and handed to the one trainer core.

How the HSM game runs on a single-loss trainer
----------------------------------------------
The trainer differentiates one scalar, ``L_hsm(phi | theta)``, with respect to the params
``{"force": theta, "velocity": phi}``.  :func:`hsm_optimizer` is an
``optax.multi_transform`` that descends the ``phi`` gradient and *negates* the ``theta``
gradient before its optimiser (gradient ascent on ``L_hsm`` = descent on the discrepancy
``D(theta) = -L_hsm(phi*, theta)``).  With ``velocity_steps = k > 1`` the force optimiser
is wrapped in ``optax.MultiSteps``: the velocity moves every step, the force once every
``k`` steps with the average of its last ``k`` gradients, so the velocity player stays
closer to its best response ``phi*(theta)`` (the Danskin gradient).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from numpyro_hgf._checks import (
    _describe,
    check_choice,
    check_finite,
    check_positive_float,
    check_positive_int,
)
from numpyro_hgf.io import register_model
from numpyro_hgf.objectives.hamiltonian import (
    TIME_SAMPLING,
    VelocityMLP,
    _check_step_size,
    hamiltonian_score_matching,
)
from numpyro_hgf.objectives.score_matching import (
    _as_apply,
    _check_sigma,
    call_field,
    denoising_score_matching,
    explicit_score_matching,
    implicit_score_matching,
    score_from_energy,
    score_from_network,
    sliced_score_matching,
)
from numpyro_hgf.train.trainer import Trainer, TrainResult

__all__ = ["fit_score", "fit_hsm", "hsm_optimizer", "ScoreModel", "SCORE_OBJECTIVES"]

SCORE_OBJECTIVES: dict[str, Callable] = {
    "explicit": explicit_score_matching,
    "implicit": implicit_score_matching,
    "sliced": sliced_score_matching,
    "denoising": denoising_score_matching,
}


# --------------------------------------------------------------------------------------------
# the trained model
# --------------------------------------------------------------------------------------------


@register_model("score_model")
@jax.tree_util.register_pytree_node_class
class ScoreModel:
    """A trained score model: a ``flax.linen`` field and its params.

    ``kind="score"``: the network outputs the score, ``s(x) = network(x)`` (or
    ``network(x, sigma)`` when ``sigmas`` is set: a noise-conditional NCSN score).
    ``kind="energy"``: the network is an energy, ``s(x) = -grad E(x)``.

    It unpacks as ``module, params = model`` (the package's ``(module, params)``
    convention), is a pytree whose leaves are the params, and is saveable with
    :func:`numpyro_hgf.save` when the module is one of :mod:`numpyro_hgf.nn`'s registered
    modules.
    """

    def __init__(self, network, params, event_shape, *, kind: str = "score", sigmas=None):
        self.network = network
        self.params = params
        self.event_shape = tuple(int(n) for n in event_shape)
        self.kind = check_choice("kind", kind, ("score", "energy"))
        self.sigmas = None if sigmas is None else tuple(float(s) for s in np.ravel(sigmas))
        apply = score_from_energy(network) if kind == "energy" else score_from_network(network)
        self._score_fn = apply

    def __iter__(self):
        return iter((self.network, self.params))

    # a pytree whose data are the params: passes through jit without recompiling
    def tree_flatten(self):
        return (self.params,), (self.network, self.event_shape, self.kind, self.sigmas)

    @classmethod
    def tree_unflatten(cls, aux, children):
        network, event_shape, kind, sigmas = aux
        return cls(network, children[0], event_shape, kind=kind, sigmas=sigmas)

    def __repr__(self) -> str:
        return (
            f"ScoreModel({type(self.network).__name__}, kind={self.kind!r}, "
            f"event_shape={self.event_shape}, sigmas={self.sigmas})"
        )

    @property
    def score_fn(self) -> Callable:
        """``(params, x, *cond) -> (batch, d)``, as the objectives take it."""
        return self._score_fn

    def score(self, x, sigma=None) -> jax.Array:
        """``s(x)`` for ``x: (batch, d)`` (``sigma``: the level of a noise-conditional score)."""
        x = jnp.asarray(x)
        if x.shape[-len(self.event_shape) :] != self.event_shape:
            raise ValueError(f"x: expected trailing shape {self.event_shape}, got {_describe(x)}")
        flat = x.reshape(-1, *self.event_shape)
        cond = ()
        if self.sigmas is not None:
            if sigma is None:
                raise ValueError(
                    f"sigma: this noise-conditional score needs a level (trained on "
                    f"{self.sigmas}), got None"
                )
            cond = (jnp.broadcast_to(jnp.asarray(sigma, flat.dtype), flat.shape[:1]),)
        return self._score_fn(self.params, flat, *cond).reshape(x.shape)

    def energy(self, x) -> jax.Array:
        """``E(x)`` (``kind="energy"`` only), ``x: (batch, d) -> (batch,)``."""
        if self.kind != "energy":
            raise TypeError("energy: this model outputs a score, not an energy")
        return self.network.apply({"params": self.params}, jnp.asarray(x))

    # -- saving ------------------------------------------------------------------------
    def with_params(self, params) -> ScoreModel:
        return ScoreModel(
            self.network, params, self.event_shape, kind=self.kind, sigmas=self.sigmas
        )

    def save_config(self) -> dict:
        from numpyro_hgf.nn import module_config

        return {
            "network": module_config(self.network),
            "event_shape": list(self.event_shape),
            "kind": self.kind,
            "sigmas": None if self.sigmas is None else list(self.sigmas),
        }

    @classmethod
    def from_config(cls, config: dict) -> ScoreModel:
        from numpyro_hgf.nn import module_from_config

        network = module_from_config(config["network"])
        event_shape = tuple(config["event_shape"])
        x = jnp.zeros((1, *event_shape))
        cond = () if config.get("sigmas") is None else (jnp.ones((1,)),)
        params = network.init(jax.random.key(0), x, *cond)["params"]
        return cls(network, params, event_shape, kind=config["kind"], sigmas=config.get("sigmas"))


def _energy_model(energy, params, event_shape):
    """An :class:`~numpyro_hgf.distributions.energy.EnergyBasedModel` for a flax energy
    (a plain callable energy gives a :class:`ScoreModel` with ``kind="energy"``)."""
    from numpyro_hgf.distributions.energy import EnergyBasedModel

    if not hasattr(energy, "apply"):
        return ScoreModel(energy, params, event_shape, kind="energy")
    return EnergyBasedModel(energy, params, event_shape)


# --------------------------------------------------------------------------------------------
# shared checks
# --------------------------------------------------------------------------------------------


def _check_data(data) -> jax.Array:
    arr = jnp.asarray(data)
    if arr.ndim != 2:
        raise ValueError(f"data: expected an array of shape (n, d), got {_describe(arr)}")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(f"data: expected a floating-point array, got {_describe(arr)}")
    check_finite("data", arr)
    if arr.shape[0] < 2:
        raise ValueError(f"data: expected at least 2 points, got {arr.shape[0]}")
    return arr


def _init_params(name: str, module, params, key, x, *cond):
    if params is not None:
        return params
    if not hasattr(module, "init"):
        raise TypeError(
            f"params: a plain callable {name} needs initial params, got None "
            f"(or pass a flax.linen module as {name})"
        )
    return module.init(key, x, *cond)["params"]


def _check_fits(name: str, fn, params, data, *cond) -> None:
    """Abstract evaluation on two data rows: a wrong input size names ``data``."""
    got = _describe(data)
    jax.eval_shape(
        lambda p, x, *c: call_field(name, fn, p, x, *c, arg="data", got=got),
        params,
        data[:2],
        *cond,
    )


def _schedule(learning_rate: float, steps: int):
    return optax.cosine_decay_schedule(check_positive_float("learning_rate", learning_rate), steps)


# --------------------------------------------------------------------------------------------
# fit_score
# --------------------------------------------------------------------------------------------


def fit_score(
    objective: str | Callable,
    data,
    *,
    energy=None,
    network=None,
    params=None,
    key=None,
    steps: int = 2_000,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    optimizer: optax.GradientTransformation | None = None,
    sigma=0.1,
    num_projections: int = 1,
    projection: str = "rademacher",
    variance_reduction: bool = False,
    bandwidth: float | None = None,
    kde_reference: str = "data",
    hidden=(128, 128),
    ema_decay: float | None = None,
    clip_norm: float | None = 1.0,
    progress: bool | None = None,
    return_result: bool = False,
):
    """Fit a score model to ``data`` by score matching.

    Args:
        objective: ``"explicit"`` (KDE target), ``"implicit"`` (Hyvarinen, exact trace),
            ``"sliced"`` (Hutchinson projections), ``"denoising"``; or any callable
            ``objective(score_fn, params, x, key) -> scalar``.
        data: ``(n, d)`` training data.
        energy: a ``flax.linen`` energy ``x -> (batch,)`` (score ``-grad E``), e.g.
            :class:`~numpyro_hgf.nn.EnergyMLP`; or a callable ``(params, x)`` with ``params``.
        network: a ``flax.linen`` score network ``x -> (batch, d)``, or
            ``(x, sigma) -> (batch, d)`` for several noise levels.  Give ``energy`` or
            ``network``; with neither, an ``EnergyMLP(hidden)`` (or, for several noise
            levels, a ``TimeMLP(hidden)`` taking ``t = sigma``).
        params: initial params (default: the module's ``init`` on the data).
        key: ``jax.random`` key (required).
        steps, batch_size, learning_rate: Adam with cosine decay over ``steps``
            (``optimizer`` replaces it).
        sigma: denoising noise level ``> 0``, or a 1-D sequence of levels (NCSN, weighting
            ``sigma^2``); only for ``"denoising"``.
        num_projections, projection, variance_reduction: sliced score matching options.
        bandwidth: KDE width for ``"explicit"`` (``None``: Scott's rule).
        kde_reference: ``"data"`` (KDE over the whole training set) or ``"batch"``.
        ema_decay, clip_norm, progress: as for :class:`~numpyro_hgf.train.Trainer`.
        return_result: also return the :class:`~numpyro_hgf.train.TrainResult`.

    Returns:
        For an energy: an ``EnergyBasedModel`` when :mod:`numpyro_hgf.distributions`
        provides it, else a :class:`ScoreModel` with ``kind="energy"``; for a score
        network: a :class:`ScoreModel`.  With ``return_result``: ``(model, result)``.
    """
    from numpyro_hgf.nn import EnergyMLP, TimeMLP

    if key is None:
        raise TypeError("key: expected a jax.random key, got None")
    if callable(objective) and not isinstance(objective, str):
        objective_fn, name = objective, getattr(objective, "__name__", "custom")
    else:
        name = check_choice("objective", objective, tuple(SCORE_OBJECTIVES))
        objective_fn = SCORE_OBJECTIVES[name]
    data = _check_data(data)
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    if energy is not None and network is not None:
        raise ValueError("network: expected either energy or network, got both")

    multi_sigma = False
    options: dict = {}
    if name == "denoising":
        _check_sigma("sigma", sigma)
        multi_sigma = np.ndim(sigma) == 1
        options["sigma"] = tuple(float(s) for s in sigma) if multi_sigma else float(sigma)
    elif name == "sliced":
        options.update(
            num_projections=check_positive_int("num_projections", num_projections),
            projection=check_choice("projection", projection, ("rademacher", "gaussian")),
            variance_reduction=bool(variance_reduction),
        )
    elif name == "explicit":
        check_choice("kde_reference", kde_reference, ("data", "batch"))
        if bandwidth is not None:
            options["bandwidth"] = check_positive_float("bandwidth", bandwidth)
        if kde_reference == "data":
            options["reference"] = data

    if energy is None and network is None:
        if multi_sigma:
            network = TimeMLP(hidden=hidden, out_dim=data.shape[1], time_scale=1000.0 / max(sigma))
        else:
            energy = EnergyMLP(hidden=hidden)
    field = energy if energy is not None else network
    field_name = "energy" if energy is not None else "network"
    score_fn = score_from_energy(energy) if energy is not None else score_from_network(network)
    _as_apply(field_name, field)  # type check with the argument's name

    init_key, train_key = jax.random.split(key)
    cond = (jnp.full((1,), options["sigma"][0], data.dtype),) if multi_sigma else ()
    params = _init_params(field_name, field, params, init_key, data[:1], *cond)
    cond2 = (jnp.full((2,), options["sigma"][0], data.dtype),) if multi_sigma else ()
    _check_fits(field_name, score_fn, params, data, *cond2)

    loss_fn = lambda p, batch, k: objective_fn(score_fn, p, batch, k, **options)
    trainer = Trainer(
        loss_fn,
        optimizer if optimizer is not None else optax.adam(_schedule(learning_rate, steps)),
        batch_size=min(batch_size, data.shape[0]),
        ema_decay=ema_decay,
        clip_norm=clip_norm,
        progress=progress,
        description=f"fit_score ({name})",
    )
    result: TrainResult = trainer.fit(params, data, steps, train_key)
    event_shape = data.shape[1:]
    if energy is not None and not multi_sigma:
        model = _energy_model(energy, result.params, event_shape)
    else:
        model = ScoreModel(
            field,
            result.params,
            event_shape,
            kind="energy" if energy is not None else "score",
            sigmas=options["sigma"] if multi_sigma else None,
        )
    return (model, result) if return_result else model


# --------------------------------------------------------------------------------------------
# fit_hsm
# --------------------------------------------------------------------------------------------


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


def fit_hsm(
    data,
    *,
    force=None,
    energy=None,
    velocity=None,
    params=None,
    velocity_params=None,
    key=None,
    step_size: float = 0.05,
    num_steps: int = 5,
    time_sampling: str = "uniform",
    antithetic: bool = False,
    force_baseline: bool = True,
    force_gradient: str = "taylor",
    steps: int = 2_000,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    velocity_learning_rate: float | None = None,
    velocity_steps: int = 1,
    hidden=(128, 128),
    velocity_hidden=(128, 128),
    ema_decay: float | None = None,
    clip_norm: float | None = 1.0,
    progress: bool | None = None,
    return_result: bool = False,
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
            :class:`~numpyro_hgf.objectives.VelocityMLP` (``t * TimeMLP``, widths
            ``velocity_hidden``, time scaled to ``T``).
        params, velocity_params: initial params (default: ``init`` on the data).
        key: ``jax.random`` key (required).
        step_size, num_steps, time_sampling: the simulation (see
            :func:`~numpyro_hgf.objectives.simulate_phase_space`); ``step_size > 0``.  The
            default horizon ``T = 5 x 0.05 = 0.25`` suits data on unit scale: the HSD grows
            like ``t^2`` (weak signal at tiny ``T``) while long trajectories make ``V*``
            hard to learn (on the 2-d ring benchmark ``T = 0.25`` beat 0.1, 0.5 and 1; on
            the 20-d mixture ``T = 1`` beat 0.25 and 2): scale ``T`` with the length scale
            of the data's score (in the Taylor regime ``t ||grad^2 log pi||^(1/2) < 1``)
            and with the dimension.
        antithetic: simulate ``+-v0`` pairs (twice the simulation cost; on the ring
            benchmark it did not change the learned score).
        force_baseline, force_gradient: the predictor ``V = t F_theta + V_phi`` and the
            force's gradient (see
            :func:`~numpyro_hgf.objectives.hamiltonian_score_matching`).  The defaults,
            the baseline and the small-time (``"taylor"``) gradient, learn a better score
            than the paper's plain predictor with the exact gradient through the leapfrog
            (``force_baseline=False, force_gradient="full"``): on the benchmark
            (``docs/benchmarks.md``) the plain form left the force far behind a velocity
            player that had already found the score, and the ``"taylor"`` gradient does not
            back-propagate through the simulation (about half the time).
        steps, batch_size: optimizer steps and minibatch size.
        learning_rate, velocity_learning_rate: Adam (cosine decay) for the force and the
            velocity (default ``5 * learning_rate``: the velocity player, whose best
            response the force's gradient assumes, moves on the faster time scale; its
            Adam has no momentum, ``b1 = 0``, so that it does not lag behind the force).
        velocity_steps: velocity updates per force update (``k``; see :func:`hsm_optimizer`).
        ema_decay, clip_norm, progress: as for :class:`~numpyro_hgf.train.Trainer`.
        return_result: also return the velocity and the training result.

    Returns:
        The force model -- an ``EnergyBasedModel`` (or :class:`ScoreModel` with
        ``kind="energy"``) for an energy, a :class:`ScoreModel` for a force network --
        or ``(model, (velocity_module, velocity_params), result)`` with ``return_result``
        (``result.params`` holds both players).
    """
    from numpyro_hgf.nn import EnergyMLP

    if key is None:
        raise TypeError("key: expected a jax.random key, got None")
    data = _check_data(data)
    _check_step_size(step_size)
    num_steps = check_positive_int("num_steps", num_steps)
    check_choice("time_sampling", time_sampling, TIME_SAMPLING)
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    if force is not None and energy is not None:
        raise ValueError("force: expected either force or energy, got both")
    if force is None and energy is None:
        energy = EnergyMLP(hidden=hidden)
    field = energy if energy is not None else force
    field_name = "energy" if energy is not None else "force"
    force_fn = score_from_energy(energy) if energy is not None else score_from_network(force)
    horizon = num_steps * float(step_size)
    if velocity is None:
        velocity = VelocityMLP(hidden=velocity_hidden, horizon=horizon)
    velocity_fn = _as_apply("velocity", velocity)

    init_key, vel_key, train_key = jax.random.split(key, 3)
    theta = _init_params(field_name, field, params, init_key, data[:1])
    _check_fits(field_name, force_fn, theta, data)
    t0 = jnp.full((1,), horizon, data.dtype)
    phi = _init_params("velocity", velocity, velocity_params, vel_key, data[:1], t0)
    _check_fits("velocity", velocity_fn, phi, data, jnp.full((2,), horizon, data.dtype))

    options = dict(
        step_size=step_size,
        num_steps=num_steps,
        time_sampling=time_sampling,
        antithetic=bool(antithetic),
        force_baseline=bool(force_baseline),
        force_gradient=force_gradient,
    )

    def loss_fn(p, batch, k):
        return hamiltonian_score_matching(
            force_fn,
            p["force"],
            batch,
            k,
            velocity_fn=velocity_fn,
            velocity_params=p["velocity"],
            **options,
        )

    vel_lr = 5.0 * learning_rate if velocity_learning_rate is None else velocity_learning_rate
    # the force optimiser sees one step per ``velocity_steps`` (optax.MultiSteps): its
    # schedule spans the force updates, so it also decays to zero at the end
    force_updates = -(-steps // check_positive_int("velocity_steps", velocity_steps))
    optimizer = hsm_optimizer(
        optax.adam(_schedule(learning_rate, force_updates)),
        # no momentum for the velocity: it tracks a moving best response, and momentum
        # makes it lag (on the ring benchmark b1 = 0 cut the Fisher divergence by ~25 %)
        optax.adam(_schedule(vel_lr, steps), b1=0.0),
        velocity_steps=velocity_steps,
    )
    trainer = Trainer(
        loss_fn,
        optimizer,
        batch_size=min(batch_size, data.shape[0]),
        ema_decay=ema_decay,
        clip_norm=clip_norm,
        progress=progress,
        description="fit_hsm",
    )
    result: TrainResult = trainer.fit({"force": theta, "velocity": phi}, data, steps, train_key)
    trained = result.params["force"]
    event_shape = data.shape[1:]
    if energy is not None:
        model = _energy_model(energy, trained, event_shape)
    else:
        model = ScoreModel(force, trained, event_shape, kind="score")
    if return_result:
        return model, (velocity, result.params["velocity"]), result
    return model
