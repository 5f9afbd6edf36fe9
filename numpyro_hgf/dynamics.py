"""Documented alias of :mod:`numpyro_hgf.paths.dynamics` (its place before the layout of 0.2)."""

from numpyro_hgf.paths.dynamics import *  # noqa: F401, F403
from numpyro_hgf.paths.dynamics import __all__  # noqa: F401
