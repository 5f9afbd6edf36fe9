"""Paths: the *path* column of the design table, behind one protocol (:class:`Path`).

A path carries the data at ``t = 0`` to a tractable base at ``t = T``:

==========================  ======================================================  =========
path                        motion                                                  module
==========================  ======================================================  =========
``FlowMatchingPath``        zero force, ``v0 = z - x0`` (CondOT; optional OT)       hamiltonian
``DiffusionPath``           zero force, ``v0 ~ N(0, I)``                            hamiltonian
``OscillationPath``         harmonic force ``-w^2 x``                               hamiltonian
``ReflectionPath``          free motion in a box with reflecting walls             hamiltonian
``VPSDE``, ``SubVPSDE``     ``dx = -b(t) x / 2 dt + g(t) dw``                       sde
``VESDE``                   ``dx = sqrt(d s(t)^2 / dt) dw``                         sde
==========================  ======================================================  =========

Every path registers itself in :data:`PATHS` by its ``name`` and saves as ``config()``
(:func:`path_from_config` rebuilds any of them).  The discrete DDPM noise schedules
(:mod:`~numpyro_hgf.paths.ddpm`) and the Hamiltonian dynamics -- leapfrog and the closed-form
harmonic and reflecting motions (:mod:`~numpyro_hgf.paths.dynamics`) -- live here too.
"""

from numpyro_hgf.paths import ddpm as ddpm
from numpyro_hgf.paths import dynamics as dynamics
from numpyro_hgf.paths import sde as sde
from numpyro_hgf.paths.base import PATHS, Path, path_from_config
from numpyro_hgf.paths.hamiltonian import (
    DiffusionPath,
    FlowMatchingPath,
    HamiltonianPath,
    OscillationPath,
    ReflectionPath,
)
from numpyro_hgf.paths.sde import SDE, SDES, VESDE, VPSDE, SubVPSDE, sde_from_config

__all__ = [
    "Path",
    "HamiltonianPath",
    "FlowMatchingPath",
    "DiffusionPath",
    "OscillationPath",
    "ReflectionPath",
    "SDE",
    "VPSDE",
    "SubVPSDE",
    "VESDE",
    "PATHS",
    "SDES",
    "path_from_config",
    "sde_from_config",
]
