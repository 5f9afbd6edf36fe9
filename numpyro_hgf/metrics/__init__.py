"""Metrics: how far a model is from data, in samples, likelihood, score and images.

==========================================  =====================================================
:mod:`~.distances`                          MMD, sliced and exact Wasserstein-2, energy distance
``bits_per_dim``                            a log-likelihood as bits per dimension
                                            (:mod:`numpyro_hgf.objectives.likelihood`)
:mod:`~.hsd`                                Hamiltonian score discrepancy (trains a velocity
                                            predictor), its small-time form, Fisher divergence
:mod:`~.images`                             Fréchet distances in a digits classifier's features,
                                            memorisation checks, quality against NFE
==========================================  =====================================================
"""

from numpyro_hgf.metrics import distances as distances
from numpyro_hgf.metrics import hsd as hsd
from numpyro_hgf.metrics import images as images
from numpyro_hgf.metrics.distances import energy_distance, mmd, sliced_wasserstein, wasserstein2
from numpyro_hgf.metrics.hsd import (
    HSDResult,
    fisher_divergence,
    gaussian_hsd,
    hamiltonian_score_discrepancy,
    hsd_taylor,
)
from numpyro_hgf.metrics.images import (
    classifier_frechet_distance,
    frechet_distance,
    nearest_training_distance,
    train_digits_classifier,
)
from numpyro_hgf.objectives.likelihood import bits_per_dim

__all__ = [
    "mmd",
    "sliced_wasserstein",
    "wasserstein2",
    "energy_distance",
    "bits_per_dim",
    "hamiltonian_score_discrepancy",
    "hsd_taylor",
    "fisher_divergence",
    "gaussian_hsd",
    "HSDResult",
    "frechet_distance",
    "classifier_frechet_distance",
    "train_digits_classifier",
    "nearest_training_distance",
]
