"""Documented alias of :mod:`numpyro_hgf.metrics.hsd` (its place before the layout of 0.2)."""

from numpyro_hgf.metrics.hsd import *  # noqa: F401, F403
from numpyro_hgf.metrics.hsd import __all__  # noqa: F401
