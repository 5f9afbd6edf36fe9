"""NumPyro distributions backed by learned generative models."""

from numpyro_hgf.distributions.boltzmann import BoltzmannMachine
from numpyro_hgf.distributions.continuous_flow import ContinuousFlow, HGFPrior
from numpyro_hgf.distributions.energy import EnergyBasedModel
from numpyro_hgf.distributions.normalizing_flow import NormalizingFlow
from numpyro_hgf.distributions.rbm import BernoulliRBM

__all__ = [
    "BernoulliRBM",
    "BoltzmannMachine",
    "ContinuousFlow",
    "EnergyBasedModel",
    "HGFPrior",
    "NormalizingFlow",
]
from numpyro_hgf.distributions.diffusion import DiffusionPrior  # noqa: E402

__all__ += ["DiffusionPrior"]
from numpyro_hgf.distributions.dequantized import DequantizedCategorical  # noqa: E402

__all__ += ["DequantizedCategorical"]
