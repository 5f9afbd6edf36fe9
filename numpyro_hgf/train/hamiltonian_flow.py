"""Training of neural Hamiltonian flows on the one fit skeleton.

Objective: maximise the evidence lower bound of the position marginal
(:func:`numpyro_hgf.objectives.hamiltonian_flow_loss`),

    ELBO(q) = E_{p ~ f_psi(p | q)}[ log pi(H^{-1}(q, p)) - log f_psi(p | q) ],

jointly in the Hamiltonians (``U_theta`` and the masses of every layer) and the momentum
encoder ``psi`` (reparametrised momentum draws; no Jacobian term since the flow preserves
volume).  ``objective="iwae"`` maximises the tighter importance-weighted bound with
``num_samples`` draws instead (Burda et al. 2016).  See
:class:`~numpyro_hgf.flows.NeuralHamiltonianFlow`.
"""

from __future__ import annotations

from typing import Unpack

import jax

from numpyro_hgf._checks import (
    check_choice,
    check_data_matrix,
    check_event_shape,
    check_key,
    check_positive_int,
)
from numpyro_hgf.flows.hamiltonian_flow import NeuralHamiltonianFlow
from numpyro_hgf.objectives.likelihood import LIKELIHOOD_BOUNDS, hamiltonian_flow_loss
from numpyro_hgf.train.fit import fit_objective
from numpyro_hgf.train.options import Recipe, TrainKeywords, TrainOptions, resolve_options

__all__ = ["fit_hamiltonian_flow", "hamiltonian_flow_loss", "RECIPE"]

#: The optimisation ``fit_hamiltonian_flow`` recommends.
RECIPE = Recipe(steps=2_000, batch_size=256, learning_rate=1e-3, clip_norm=10.0, ema_decay=None)

OBJECTIVES = LIKELIHOOD_BOUNDS


def fit_hamiltonian_flow(
    data,
    *,
    model=None,
    num_layers: int = 2,
    num_steps: int = 4,
    dt: float = 0.2,
    hidden=(64, 64),
    encoder_hidden=None,
    num_samples: int = 1,
    objective: str = "elbo",
    key=None,
    options: TrainOptions | None = None,
    return_result: bool = False,
    **train_options: Unpack[TrainKeywords],
):
    """Fit a :class:`~numpyro_hgf.flows.NeuralHamiltonianFlow` to ``data``.

    Args:
        data: ``(n, d)`` training positions (finite).
        model: a ``NeuralHamiltonianFlow`` to start from; if ``None`` one is built with
            ``NeuralHamiltonianFlow.create(key, d, num_layers=..., num_steps=..., dt=...,
            hidden=..., encoder_hidden=...)``.
        num_layers, num_steps, dt, hidden, encoder_hidden: architecture (ignored when
            ``model`` is given): ``num_layers`` Hamiltonian layers of ``num_steps``
            leapfrog steps of size ``dt > 0``.
        num_samples: momentum draws per data point and step.
        objective: ``"elbo"`` or ``"iwae"``.
        key: ``jax.random`` key (required): initialisation, minibatches, momentum draws.
        options, **train_options: how to train (:class:`~numpyro_hgf.train.TrainOptions`).
            Recommended: 2,000 Adam steps of 256 rows, learning rate 1e-3 with cosine decay,
            clipping at norm 10, no EMA.  With ``validation`` rows the model gets the params
            of the lowest held-out negative bound (``num_samples`` fixed draws).
        return_result: also return the :class:`~numpyro_hgf.train.TrainResult`
            (its ``history`` is the per-step negative bound).

    Returns:
        The trained model (saveable with :func:`numpyro_hgf.save`), or ``(model, result)``.
    """
    key = check_key("key", key)
    options = resolve_options(options, train_options, RECIPE)
    data = check_data_matrix("data", data)
    num_samples = check_positive_int("num_samples", num_samples)
    check_choice("objective", objective, OBJECTIVES)
    init_key, train_key = jax.random.split(key)
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

    result = fit_objective(
        loss_fn, model.params, data, options, key=train_key, description="fit_hamiltonian_flow"
    )
    trained = model.with_params(result.params)
    return (trained, result) if return_result else trained
