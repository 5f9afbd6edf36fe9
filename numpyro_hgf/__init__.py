"""numpyro_hgf: learned generative models as first-class NumPyro citizens.

Every model is a learned field (:mod:`~numpyro_hgf.nn`), a path between data and a tractable
base (:mod:`~numpyro_hgf.paths`, run by :mod:`~numpyro_hgf.samplers`) and an objective
(:mod:`~numpyro_hgf.objectives`); :mod:`~numpyro_hgf.distributions` and
:mod:`~numpyro_hgf.flows` make them NumPyro distributions, :mod:`~numpyro_hgf.train` fits
them, :mod:`~numpyro_hgf.infer` samples posteriors with them.  See ``docs/architecture.md``.
"""

from numpyro_hgf import (  # documented aliases of paths / samplers
    _pytree_order,  # noqa: F401  (first: one leaf order in every process)
    datasets,
    ddpm,
    distributions,
    dynamics,
    flows,
    guides,
    infer,
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
from numpyro_hgf._version import __version__
from numpyro_hgf.io import load, save

__all__ = [
    "__version__",
    "save",
    "load",
    "nn",
    "paths",
    "flows",
    "samplers",
    "objectives",
    "distributions",
    "guides",
    "train",
    "metrics",
    "infer",
    "models",
    "datasets",
    "preprocessing",
    "dynamics",
    "sde",
    "ddpm",
    "odeflow",
]
