"""Guides for SVI: flow guides and amortized encoder guides."""

from numpyro_hgf.guides.amortized import AmortizedFlowGuide, AmortizedNormalGuide
from numpyro_hgf.guides.flow import AutoFlowGuide

__all__ = ["AmortizedFlowGuide", "AmortizedNormalGuide", "AutoFlowGuide"]
