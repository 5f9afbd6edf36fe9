"""Normalizing-flow bijections as NumPyro ``Transform``s, and builders.

=================================  ===========================================================
``PlanarTransform``                Rezende & Mohamed 2015; numerical inverse (bracketed Newton)
``RadialTransform``                Rezende & Mohamed 2015; exact inverse (scalar quadratic)
``AffineCouplingTransform``        RealNVP, Dinh et al. 2017; MLP conditioner
``MaskedAutoregressiveTransform``  MAF, Papamakarios et al. 2017; MADE conditioner
``SplineCouplingTransform``        rational-quadratic splines, Durkan et al. 2019
``BlockAutoregressiveTransform``   BNAF, De Cao et al. 2019; numerical inverse (bisection)
=================================  ===========================================================

Each is a ``(module, params)`` pair: the flax module is static pytree aux data, the inner
params dict is data.  A finite chain of them over a base is a
:class:`NormalizingFlow` (a NumPyro ``TransformedDistribution``, re-exported as
``nh.distributions.NormalizingFlow``): the flow family's path *is* its chain of bijections,
so the chain lives beside them.  ``build_flow`` assembles one from a few hyper-parameters;
``flax_flow`` registers a flow's networks in a NumPyro model or guide via
``numpyro.contrib.module.flax_module``.  The neural Hamiltonian flow
(:class:`NeuralHamiltonianFlow`) chains volume-preserving leapfrog layers with a momentum
encoder.
"""

from numpyro_hgf.flows.autoregressive import MaskedAutoregressiveTransform
from numpyro_hgf.flows.base import NetworkTransform, soft_clamp
from numpyro_hgf.flows.block_autoregressive import BlockAutoregressiveTransform
from numpyro_hgf.flows.coupling import AffineCouplingTransform
from numpyro_hgf.flows.flow import FLOW_KINDS, NormalizingFlow, build_flow, flax_flow
from numpyro_hgf.flows.hamiltonian import HamiltonianTransform
from numpyro_hgf.flows.hamiltonian_flow import NeuralHamiltonianFlow
from numpyro_hgf.flows.ode_map import ODEMapTransform as ODEMapTransform
from numpyro_hgf.flows.planar import PlanarParams, PlanarTransform, planar_inverse
from numpyro_hgf.flows.radial import RadialParams, RadialTransform, radial_inverse
from numpyro_hgf.flows.spline import (
    SplineCouplingTransform,
    rational_quadratic_spline,
    spline_params,
)
from numpyro_hgf.nn.hamiltonian import HamiltonianNet  # noqa: F401  (documented here before 0.2)

__all__ = [
    "FLOW_KINDS",
    "AffineCouplingTransform",
    "BlockAutoregressiveTransform",
    "NormalizingFlow",
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
