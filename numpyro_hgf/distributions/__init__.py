"""NumPyro distributions backed by learned generative models, one module per family.

==========================  ==========================================================
``NormalizingFlow``         a finite chain of bijections (defined in :mod:`numpyro_hgf.flows`)
``NeuralHamiltonianFlow``   volume-preserving leapfrog layers + momentum encoder (flows)
``ContinuousFlow``          ``dx/dt = v(x, t)``: sampling and log_prob by the one ODE module
``HGFPrior``                a Hamiltonian generative flow: a ``ContinuousFlow`` on a path
``DiffusionPrior``          a score model of an SDE; PF-ODE log_prob, four samplers
``EnergyBasedModel``        ``exp(-E(x)) / Z`` (unnormalised; MCMC sampling)
``BernoulliRBM``            restricted Boltzmann machine over binary vectors
``BoltzmannMachine``        fully visible Boltzmann machine over spins
``DeepBoltzmannMachine``    binary visible units under two or more binary hidden layers
``DeepBeliefNet``           an RBM on top of a sigmoid belief net (greedy RBM stack)
``DequantizedCategorical``  the piecewise-constant density of dequantized L-level data
``ScoreModel``              a trained score network (no density)
``GeneratorPrior``          ``x = G(z)``, ``z ~ N(0, I)``: a GAN generator (no density; latent form)
==========================  ==========================================================

The unnormalised models share :class:`~numpyro_hgf.distributions.unnormalized.
UnnormalizedDistribution` (``unnormalized_log_prob``, ``log_normalizer``,
``with_log_normalizer``).
"""

from numpyro_hgf.distributions.boltzmann import BoltzmannMachine
from numpyro_hgf.distributions.continuous_flow import ContinuousFlow, HGFPrior
from numpyro_hgf.distributions.deep_belief import DeepBeliefNet
from numpyro_hgf.distributions.deep_boltzmann import DeepBoltzmannMachine
from numpyro_hgf.distributions.dequantized import DequantizedCategorical
from numpyro_hgf.distributions.diffusion import DiffusionPrior
from numpyro_hgf.distributions.energy import EnergyBasedModel
from numpyro_hgf.distributions.generator import (
    GeneratorDensityError,
    GeneratorPrior,
    GeneratorReparam,
)
from numpyro_hgf.distributions.rbm import BernoulliRBM
from numpyro_hgf.distributions.score import ScoreModel
from numpyro_hgf.distributions.unnormalized import UnnormalizedDistribution
from numpyro_hgf.flows.flow import NormalizingFlow
from numpyro_hgf.flows.hamiltonian_flow import NeuralHamiltonianFlow

__all__ = [
    "NormalizingFlow",
    "NeuralHamiltonianFlow",
    "ContinuousFlow",
    "HGFPrior",
    "DiffusionPrior",
    "EnergyBasedModel",
    "BernoulliRBM",
    "BoltzmannMachine",
    "DeepBoltzmannMachine",
    "DeepBeliefNet",
    "DequantizedCategorical",
    "ScoreModel",
    "UnnormalizedDistribution",
    "GeneratorPrior",
    "GeneratorReparam",
    "GeneratorDensityError",
]
