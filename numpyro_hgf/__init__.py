"""numpyro_hgf: learned generative models as first-class NumPyro citizens.

Every model is a learned field (:mod:`numpyro_hgf.nn`), a path between data and a
tractable base, and an objective; see ``docs/architecture.md``.
"""

__version__ = "0.1.0"

from numpyro_hgf import (  # noqa: E402
    datasets,
    ddpm,
    distributions,
    dynamics,
    flows,
    guides,
    metrics,
    models,
    nn,
    objectives,
    odeflow,
    paths,
    preprocessing,
    samplers,
    sde,
    train,
)
from numpyro_hgf.io import load, save  # noqa: E402

__all__ = [
    "__version__",
    "datasets",
    "distributions",
    "flows",
    "guides",
    "load",
    "metrics",
    "models",
    "nn",
    "objectives",
    "odeflow",
    "dynamics",
    "paths",
    "preprocessing",
    "samplers",
    "save",
    "train",
]
__all__ += ["ddpm", "sde"]

from numpyro_hgf import infer  # noqa: E402

__all__ += ["infer"]
