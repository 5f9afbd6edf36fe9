"""Documented alias of :mod:`numpyro_hgf.paths.ddpm` (its place before the layout of 0.2)."""

from numpyro_hgf.objectives.diffusion import ddpm_noise_loss  # noqa: E402, F401
from numpyro_hgf.paths.ddpm import *  # noqa: F401, F403
from numpyro_hgf.paths.ddpm import __all__  # noqa: F401
from numpyro_hgf.samplers.diffusion import ddpm_ancestral  # noqa: E402, F401
