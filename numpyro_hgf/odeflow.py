"""Documented alias of :mod:`numpyro_hgf.samplers.ode` (its place before the layout of 0.2)."""

from numpyro_hgf.samplers.ode import *  # noqa: F401, F403
from numpyro_hgf.samplers.ode import __all__  # noqa: F401
