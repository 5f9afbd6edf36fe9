"""Learned fields: the *field* column of the design table, as ``flax.linen`` modules.

Every generative model in the package is *a learned field + a path + an objective*
(``docs/architecture.md``).  This package holds the fields:

==========================  =====================================================================
``MLP``                     ``f(x)``: conditioner nets of flows, encoders, decoders, forces.
``TimeMLP``                 ``f(x, t)``: velocities ``V(x, t)`` and scores ``s(x, t)``.
``EnergyMLP``               ``E(x)`` with scalar output: energies of EBMs.
``VelocityMLP``             ``t * TimeMLP(x, t)``: velocity player of Hamiltonian score matching.
``MADE``                    masked autoregressive net: ``out[..., i, :]`` depends on ``x[..., <i]``.
``BlockAutoregressiveNet``  monotone block-triangular net of BNAF (De Cao et al. 2019).
``UNet``                    ``f(x, t)`` on images ``(..., H, W, C)``; ``FlatImageField``: flat ones.
``HamiltonianNet``          ``q -> (U(q), log_mass)``: one layer of a neural Hamiltonian flow.
==========================  =====================================================================

The energies of Boltzmann machines (weights and biases rather than a network) are pure
functions in :mod:`numpyro_hgf.nn.boltzmann` (deep ones in
:mod:`numpyro_hgf.nn.deep_boltzmann`).  ``module_config`` / ``module_from_config``
(:mod:`numpyro_hgf.nn.config`) describe a module as JSON for ``nh.save`` / ``nh.load``.
"""

from numpyro_hgf.nn import boltzmann as boltzmann
from numpyro_hgf.nn import deep_boltzmann as deep_boltzmann
from numpyro_hgf.nn.block_autoregressive import BlockAutoregressiveNet, BlockMaskedDense
from numpyro_hgf.nn.config import (
    ACTIVATIONS,
    MODULES,
    module_config,
    module_from_config,
    register_module,
)
from numpyro_hgf.nn.hamiltonian import HamiltonianNet
from numpyro_hgf.nn.made import MADE, made_degrees
from numpyro_hgf.nn.mlp import MLP, EnergyMLP, TimeMLP, VelocityMLP, sinusoidal_embedding
from numpyro_hgf.nn.unet import FlatImageField, ResBlock, UNet

__all__ = [
    "MLP",
    "TimeMLP",
    "EnergyMLP",
    "VelocityMLP",
    "MADE",
    "BlockAutoregressiveNet",
    "BlockMaskedDense",
    "UNet",
    "ResBlock",
    "FlatImageField",
    "HamiltonianNet",
    "sinusoidal_embedding",
    "made_degrees",
    "register_module",
    "module_config",
    "module_from_config",
    "ACTIVATIONS",
    "MODULES",
]
