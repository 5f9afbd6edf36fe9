"""Training of neural Hamiltonian flows (seed 003) on the :class:`Trainer` core.

Objective: maximise the evidence lower bound of the position marginal,

    ELBO(q) = E_{p ~ f_psi(p | q)}[ log pi(H^{-1}(q, p)) - log f_psi(p | q) ],

jointly in the Hamiltonians (``U_theta`` and the masses of every layer) and the momentum
encoder ``psi`` (reparametrised momentum draws; no Jacobian term since the flow preserves
volume).  ``objective="iwae"`` maximises the tighter importance-weighted bound with
``num_samples`` draws instead (Burda et al. 2016).  See
:class:`~numpyro_hgf.flows.hamiltonian.NeuralHamiltonianFlow`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from numpyro_hgf._checks import (
    check_choice,
    check_event_shape,
    check_finite,
    check_positive_int,
)
from numpyro_hgf.train.trainer import Trainer, TrainResult

__all__ = ["fit_hamiltonian_flow", "hamiltonian_flow_loss"]

OBJECTIVES = ("elbo", "iwae")


def hamiltonian_flow_loss(model, params, q, key, *, num_samples: int = 1, objective="elbo"):
    """Negative mean bound of ``q: (n, dim)`` under ``model.with_params(params)``.

    ``objective="elbo"``: ``-mean ELBO`` (``num_samples`` draws averaged);
    ``"iwae"``: ``-mean IWAE_{num_samples}``.
    """
    nhf = model.with_params(params)
    if objective == "iwae":
        return -jnp.mean(nhf.log_prob_iwae(q, key, num_samples))
    return -jnp.mean(nhf.elbo(q, key, num_samples))


def fit_hamiltonian_flow(
    data,
    *,
    model=None,
    num_layers: int = 2,
    num_steps: int = 4,
    dt: float = 0.2,
    hidden=(64, 64),
    encoder_hidden=None,
    steps: int = 2_000,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    num_samples: int = 1,
    objective: str = "elbo",
    key=None,
    validation_data=None,
    validate_every: int = 200,
    patience: int | None = None,
    ema_decay: float | None = None,
    clip_norm: float | None = 10.0,
    progress: bool | None = None,
    return_result: bool = False,
):
    """Fit a :class:`~numpyro_hgf.flows.hamiltonian.NeuralHamiltonianFlow` to ``data``.

    Args:
        data: ``(n, d)`` training positions (finite).
        model: a ``NeuralHamiltonianFlow`` to start from; if ``None`` one is built with
            ``NeuralHamiltonianFlow.create(key, d, num_layers=..., num_steps=..., dt=...,
            hidden=..., encoder_hidden=...)``.
        num_layers, num_steps, dt, hidden, encoder_hidden: architecture (ignored when
            ``model`` is given): ``num_layers`` Hamiltonian layers of ``num_steps``
            leapfrog steps of size ``dt > 0``.
        steps, batch_size: optimizer steps and minibatch size.
        learning_rate: peak Adam learning rate, cosine decay to zero over ``steps``.
        num_samples: momentum draws per data point and step.
        objective: ``"elbo"`` (the seed's objective) or ``"iwae"``.
        key: ``jax.random`` key (required): initialisation, minibatches, momentum draws.
        validation_data: optional ``(m, d)``; its negative ELBO (``num_samples`` draws, a
            fixed key) is evaluated every ``validate_every`` steps; with ``patience``
            training stops early and the best params are returned.
        ema_decay, clip_norm, progress: passed to :class:`~numpyro_hgf.train.Trainer`.
        return_result: also return the :class:`~numpyro_hgf.train.TrainResult`
            (its ``history`` is the per-step negative bound).

    Returns:
        The trained model (saveable with :func:`numpyro_hgf.save`), or ``(model, result)``.
    """
    from numpyro_hgf.flows.hamiltonian import NeuralHamiltonianFlow

    if key is None:
        raise TypeError("key: expected a jax.random key, got None")
    data = jnp.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"data: expected an array of shape (n, d), got shape {data.shape}")
    check_finite("data", data)
    steps = check_positive_int("steps", steps)
    num_samples = check_positive_int("num_samples", num_samples)
    check_choice("objective", objective, OBJECTIVES)
    init_key, train_key, val_key = jax.random.split(key, 3)
    if model is None:
        model = NeuralHamiltonianFlow.create(
            init_key,
            data.shape[-1],
            num_layers=num_layers,
            num_steps=num_steps,
            dt=dt,
            hidden=hidden,
            encoder_hidden=encoder_hidden,
        )
    elif not isinstance(model, NeuralHamiltonianFlow):
        raise TypeError(
            f"model: expected a NeuralHamiltonianFlow or None, got {type(model).__name__}"
        )
    check_event_shape("data", data, model.event_shape)

    def loss_fn(params, batch, key):
        return hamiltonian_flow_loss(
            model, params, batch, key, num_samples=num_samples, objective=objective
        )

    trainer = Trainer(
        loss_fn,
        optax.adam(optax.cosine_decay_schedule(learning_rate, steps)),
        batch_size=min(batch_size, data.shape[0]),
        ema_decay=ema_decay,
        clip_norm=clip_norm,
        progress=progress,
        description="fit_hamiltonian_flow",
    )
    validation_fn = None
    if validation_data is not None:
        validation_data = jnp.asarray(validation_data)
        if validation_data.ndim != 2:
            raise ValueError(
                "validation_data: expected an array of shape (m, d), got shape "
                f"{validation_data.shape}"
            )
        check_event_shape("validation_data", validation_data, model.event_shape)
        check_finite("validation_data", validation_data)
        neg_elbo = jax.jit(
            lambda params: hamiltonian_flow_loss(
                model, params, validation_data, val_key, num_samples=num_samples
            )
        )
        validation_fn = lambda params: float(np.asarray(neg_elbo(params)))
    result: TrainResult = trainer.fit(
        model.params,
        data,
        steps,
        train_key,
        validation_fn=validation_fn,
        validate_every=validate_every if validation_fn else None,
        patience=patience,
    )
    trained = model.with_params(result.params)
    return (trained, result) if return_result else trained
