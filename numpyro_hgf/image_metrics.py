"""Documented alias of :mod:`numpyro_hgf.metrics.images` (its place before the layout of 0.2)."""

from numpyro_hgf.metrics.images import *  # noqa: F401, F403
from numpyro_hgf.metrics.images import __all__  # noqa: F401
