"""numpyro_hgf: learned generative models as first-class NumPyro citizens."""

__version__ = "0.1.0"
