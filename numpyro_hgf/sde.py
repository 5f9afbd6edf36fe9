"""Documented alias of :mod:`numpyro_hgf.paths.sde` (its place before the layout of 0.2)."""

from numpyro_hgf.paths.sde import *  # noqa: F401, F403
from numpyro_hgf.paths.sde import __all__  # noqa: F401
