"""Documented alias of :mod:`numpyro_hgf.samplers.ais` (its place before the layout of 0.2)."""

from numpyro_hgf.samplers.ais import *  # noqa: F401, F403
from numpyro_hgf.samplers.ais import __all__  # noqa: F401
