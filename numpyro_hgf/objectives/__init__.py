"""Objectives: the *objective* column of the architecture table, as pure functions.

Score matching (:mod:`~numpyro_hgf.objectives.score_matching`) shares one signature,
``objective(score_fn, params, x, key, **options) -> scalar`` with
``score_fn(params, x) -> (batch, d)``; Hamiltonian score matching
(:mod:`~numpyro_hgf.objectives.hamiltonian`) adds the velocity player; velocity regression
for the Hamiltonian paths lives with its trainer (:mod:`numpyro_hgf.train.velocity`) and is
re-exported here as :func:`velocity_matching`; contrastive divergence for RBMs lives in
:mod:`~numpyro_hgf.objectives.contrastive`.
"""

from numpyro_hgf.objectives.contrastive import contrastive_divergence
from numpyro_hgf.objectives.hamiltonian import (
    VelocityMLP,
    hamiltonian_score_matching,
    hsm_velocity_loss,
    simulate_phase_space,
)
from numpyro_hgf.objectives.score_matching import (
    denoising_score_matching,
    explicit_score_matching,
    implicit_score_matching,
    kde_score,
    score_from_energy,
    score_from_network,
    scott_bandwidth,
    sliced_score_matching,
)
from numpyro_hgf.train.velocity import velocity_matching_loss as velocity_matching

__all__ = [
    "VelocityMLP",
    "contrastive_divergence",
    "denoising_score_matching",
    "explicit_score_matching",
    "hamiltonian_score_matching",
    "hsm_velocity_loss",
    "implicit_score_matching",
    "kde_score",
    "score_from_energy",
    "score_from_network",
    "scott_bandwidth",
    "simulate_phase_space",
    "sliced_score_matching",
    "velocity_matching",
]
