"""Normalizing-flow bijections as NumPyro ``Transform``s, and builders.

=================================  ===========================================================
``PlanarTransform``                Rezende & Mohamed 2015; numerical inverse (bracketed Newton)
``RadialTransform``                Rezende & Mohamed 2015; exact inverse (scalar quadratic)
``AffineCouplingTransform``        RealNVP, Dinh et al. 2017; MLP conditioner
``MaskedAutoregressiveTransform``  MAF, Papamakarios et al. 2017; MADE conditioner
``SplineCouplingTransform``        rational-quadratic splines, Durkan et al. 2019
=================================  ===========================================================

Each is a ``(module, params)`` pair: the flax module is static pytree aux data, the inner
params dict is data.  ``build_flow`` assembles them into a
:class:`~numpyro_hgf.distributions.NormalizingFlow`; ``flax_flow`` registers a flow's
networks in a NumPyro model or guide via ``numpyro.contrib.module.flax_module``.
"""

from numpyro_hgf.flows.autoregressive import MaskedAutoregressiveTransform
from numpyro_hgf.flows.base import NetworkTransform, soft_clamp
from numpyro_hgf.flows.build import FLOW_KINDS, build_flow, flax_flow
from numpyro_hgf.flows.coupling import AffineCouplingTransform
from numpyro_hgf.flows.hamiltonian import (
    HamiltonianNet,
    HamiltonianTransform,
    NeuralHamiltonianFlow,
)
from numpyro_hgf.flows.planar import PlanarParams, PlanarTransform, planar_inverse
from numpyro_hgf.flows.radial import RadialParams, RadialTransform, radial_inverse
from numpyro_hgf.flows.spline import (
    SplineCouplingTransform,
    rational_quadratic_spline,
    spline_params,
)

__all__ = [
    "FLOW_KINDS",
    "AffineCouplingTransform",
    "HamiltonianNet",
    "HamiltonianTransform",
    "NeuralHamiltonianFlow",
    "MaskedAutoregressiveTransform",
    "NetworkTransform",
    "PlanarParams",
    "PlanarTransform",
    "RadialParams",
    "RadialTransform",
    "SplineCouplingTransform",
    "build_flow",
    "flax_flow",
    "planar_inverse",
    "radial_inverse",
    "rational_quadratic_spline",
    "soft_clamp",
    "spline_params",
]
