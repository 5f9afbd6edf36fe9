"""Data that ships with the package: toy 2-D densities, 8x8 digits, small clinical tables.

Nothing here downloads anything.

* :func:`toy2d` -- the six 2-D benchmark densities of FFJORD (Grathwohl et al. 2019) and
  FlowJAX's two moons, drawn with ``jax.random`` (the same key gives the same points);
* :func:`digits` -- scikit-learn's bundled 8x8 handwritten digits with a fixed train/test
  split, as grey levels, scaled to ``[-1, 1]`` or binarized; :func:`dequantize` turns the
  integer grey levels into continuous data for density models;
* :func:`theophylline`, :func:`sleepstudy`, :func:`orange` and :func:`indometh` -- the
  tables in ``numpyro_hgf/data``.
"""

from numpyro_hgf.datasets.images import DIGITS_NUM_LEVELS, Digits, dequantize, digits
from numpyro_hgf.datasets.tables import (
    Indometh,
    Orange,
    SleepStudy,
    Theophylline,
    indometh,
    orange,
    sleepstudy,
    theophylline,
)
from numpyro_hgf.datasets.toy import (
    FLOWJAX_MOONS_ENTROPY,
    TOY2D_NAMES,
    TWO_MOONS_ENTROPY,
    standardize,
    toy2d,
    toy2d_stats,
)

__all__ = [
    "TOY2D_NAMES",
    "DIGITS_NUM_LEVELS",
    "TWO_MOONS_ENTROPY",
    "FLOWJAX_MOONS_ENTROPY",
    "Digits",
    "Theophylline",
    "SleepStudy",
    "Orange",
    "Indometh",
    "toy2d",
    "toy2d_stats",
    "standardize",
    "digits",
    "dequantize",
    "theophylline",
    "sleepstudy",
    "orange",
    "indometh",
]
