"""Guides for SVI: flow guides (and, later, amortized encoder guides)."""

from numpyro_hgf.guides.flow import AutoFlowGuide

__all__ = ["AutoFlowGuide"]
