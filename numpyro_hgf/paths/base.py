"""The one path protocol: how data at ``t = 0`` are carried to a tractable base at ``t = T``.

Every generative model of the package is a learned field, a path and an objective
(``docs/architecture.md``).  A :class:`Path` is the middle column: a family of marginals
``p_t``, ``t`` in ``[0, T]``, with the data at ``t = 0`` and a distribution that can be
sampled and scored exactly at ``t = T`` (:meth:`Path.base`).  Two families implement it:

* :class:`~numpyro_hgf.paths.HamiltonianPath` -- a force field and a coupling of
  ``(x0, v0)`` (flow matching, diffusion, oscillation and reflection HGFs; Holderrieth et al.
  2024, Sec. 5); trained by velocity regression, sampled by the ODE ``dx/dt = V(x, t)``;
* :class:`~numpyro_hgf.paths.SDE` -- a forward Ito SDE with Gaussian ``x_t | x_0``
  (VP, sub-VP, VE; Song et al. 2021); trained by denoising score matching, sampled by the
  reverse SDE or the probability-flow ODE.

A path is a frozen dataclass (hashable: static under ``jit``), registers itself under its
``name`` when its class is defined (:data:`PATHS`), and saves as :meth:`Path.config`, so a
new path is one module in this package: the trainers, the distributions, the image trainer
and the CLI find it through the registry.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import numpyro.distributions as dist

from numpyro_hgf._checks import (
    check_finite_float,
    check_instance,
    check_key,
    check_nonnegative_int,
    check_time_interval,
)

__all__ = ["Path", "PATHS", "path_from_config"]

#: Every path class by its ``name`` (filled as the classes are defined).
PATHS: dict[str, type] = {}


class Path:
    """Base of every path.  Subclasses are frozen dataclasses with a class attribute ``name``.

    Shapes: data ``x0: (batch, *event_shape)``; times ``t: ()`` or ``(batch,)``.

    Attributes:
        name: the registry name (``PATHS[name] is type(path)``); also the ``"name"`` of
            :meth:`config`.
        open_at_zero: whether ``t = 0`` itself is excluded from the path's times (an SDE's
            perturbation kernel is a point mass there, so its score is undefined).
    """

    name: ClassVar[str] = "path"
    open_at_zero: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__ and not cls.__name__.startswith("_"):
            PATHS[cls.name] = cls

    # -- the protocol ----------------------------------------------------------------------
    @property
    def horizon(self) -> float:
        """``T``: the time at which the path reaches its base."""
        raise NotImplementedError  # abstract

    @property
    def time_range(self) -> tuple[float, float]:
        """``(0, T)``: data at ``t = 0``, base at ``t = T``."""
        return (0.0, float(self.horizon))

    def base(self, event_shape: tuple[int, ...]) -> dist.Distribution:
        """The tractable distribution at ``t = T``, with the given event shape."""
        raise NotImplementedError  # abstract

    def sample_time(self, key, n: int, t_min: float | None = None):
        """``t ~ U(t_min, T)``, shape ``(n,)`` (``t_min`` defaults to ``0``)."""
        check_key("key", key)
        n = check_nonnegative_int("n", n)
        lo, hi = self.time_range
        if t_min is not None:
            t_min = check_finite_float("t_min", t_min)
            if not lo <= t_min < hi:
                raise ValueError(f"t_min: expected a time in [{lo:g}, {hi:g}), got {t_min}")
        lo = lo if t_min is None else t_min
        return jax.random.uniform(key, (n,), minval=lo, maxval=hi)

    # -- checks ------------------------------------------------------------------------------
    def check_time(self, t, name: str = "t") -> None:
        """Raise ``ValueError`` naming ``name`` unless concrete times lie on the path."""
        lo, hi = self.time_range
        check_time_interval(name, t, lo, hi, open_low=self.open_at_zero)

    def check_data(self, x0, name: str = "x0") -> None:
        """Raise if ``x0`` cannot start this path (e.g. outside a reflection box).

        ``name`` is the argument named in the error (``"data"`` for a trainer).
        """

    # -- saving --------------------------------------------------------------------------------
    def config(self) -> dict:
        """JSON-friendly description: ``{"name": ..., **fields}`` (see :func:`path_from_config`)."""
        return {"name": self.name, **dataclasses.asdict(self)}


def path_from_config(config: dict) -> Path:
    """Rebuild any registered path from :meth:`Path.config`."""
    check_instance("config", config, dict, "a dict from Path.config()")
    config = dict(config)
    name = config.pop("name", None)
    if name not in PATHS:
        raise ValueError(f"config: expected a path name in {sorted(PATHS)}, got {name!r}")
    return PATHS[name](**config)
