"""NLME data: subjects padded to a common length, checked on the way in.

:class:`NLMEData` holds ``(N, T)`` times, observations and a mask, ``(N, n_cov)`` subject
covariates and ``(N,)`` doses; :func:`prepare_data` builds it from per-row arrays and checks
the inputs (missing columns, negative times or doses, NaN observations);
:func:`theophylline_data` is the shipped theophylline study.  Re-exported by
:mod:`numpyro_hgf.models.nlme`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks import check_choice

__all__ = ["NLMEData", "prepare_data", "theophylline_data"]


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------


class NLMEData(NamedTuple):
    """Padded per-subject arrays (``N`` subjects, at most ``T`` observations each).

    Attributes:
        times: ``(N, T)`` observation times (padding: the subject's last time).
        obs: ``(N, T)`` observations (padding and missing values: 0).
        mask: ``(N, T)`` bool, True where an observation counts.
        covariates: dict name -> ``(N,)`` per-subject covariates.
        subjects: ``(N,)`` subject ids as in the table.
    """

    times: jax.Array
    obs: jax.Array
    mask: jax.Array
    covariates: dict
    subjects: np.ndarray

    @property
    def num_subjects(self) -> int:
        return int(self.obs.shape[0])

    @property
    def num_obs(self) -> int:
        return int(np.sum(np.asarray(self.mask)))

    def astype(self, dtype) -> NLMEData:
        """The same data with float arrays cast to ``dtype``."""
        cov = {k: jnp.asarray(v, dtype) for k, v in self.covariates.items()}
        return self._replace(
            times=jnp.asarray(self.times, dtype),
            obs=jnp.asarray(self.obs, dtype),
            covariates=cov,
        )


def prepare_data(
    table: Mapping[str, Any],
    *,
    subject: str,
    time: str,
    observation: str,
    covariates: Sequence[str] = (),
    nonnegative: Sequence[str] = (),
    missing: str = "error",
) -> NLMEData:
    """Long table (one row per observation) -> :class:`NLMEData`.

    Args:
        table: mapping column name -> 1-D array (a dict, a pandas DataFrame, ...).
        subject, time, observation: column names of the subject id, the time and the
            observed value.
        covariates: per-subject columns (constant within a subject; the first row is used).
        nonnegative: columns that must be ``>= 0`` (e.g. a dose); times always must.
        missing: NaN observations: ``"error"`` (default) raises, ``"drop"`` masks them out.

    Raises:
        ValueError: a missing column, columns of different lengths, a negative time or a
            negative value of a ``nonnegative`` column, a non-finite time or covariate, NaN
            observations with ``missing="error"``, a subject without observations.
    """
    check_choice("missing", missing, ("error", "drop"))
    if not (hasattr(table, "keys") and hasattr(table, "__getitem__")):
        raise TypeError(
            f"table: expected a mapping column name -> 1-D array (a dict, a pandas DataFrame), "
            f"got {type(table).__name__}"
        )
    for name, value in (("covariates", covariates), ("nonnegative", nonnegative)):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise TypeError(f"{name}: expected a sequence of column names, got {value!r}")
    needed = [subject, time, observation, *covariates, *nonnegative]
    absent = [c for c in dict.fromkeys(needed) if c not in table]
    if absent:
        raise ValueError(
            f"table: expected columns {absent} (needed by subject/time/observation/covariates),"
            f" got columns {list(table.keys())}"
        )
    cols = {c: np.asarray(table[c]) for c in dict.fromkeys(needed)}
    lengths = {c: v.shape for c, v in cols.items()}
    if len({v.shape for v in cols.values()}) != 1 or any(v.ndim != 1 for v in cols.values()):
        raise ValueError(f"table: expected 1-D columns of one length, got shapes {lengths}")
    if not len(cols[subject]):
        raise ValueError("table: expected at least one row, got an empty table")
    for c in dict.fromkeys([time, observation, *covariates, *nonnegative]):
        try:
            cols[c].astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{c}: expected a numeric column, got dtype {cols[c].dtype} "
                f"(e.g. {cols[c][:3].tolist()})"
            ) from None
    t = cols[time].astype(np.float64)
    if not np.all(np.isfinite(t)):
        raise ValueError(
            f"{time}: expected finite times, got {int(np.sum(~np.isfinite(t)))} NaN/inf"
        )
    if np.any(t < 0):
        raise ValueError(
            f"{time}: expected non-negative times, got {int(np.sum(t < 0))} negative "
            f"(min {t.min()})"
        )
    for c in nonnegative:
        v = cols[c].astype(np.float64)
        if np.any(~np.isfinite(v)) or np.any(v < 0):
            raise ValueError(
                f"{c}: expected finite non-negative values, got min {np.nanmin(v)} "
                f"and {int(np.sum(~np.isfinite(v)))} non-finite"
            )
    y = cols[observation].astype(np.float64)
    bad = ~np.isfinite(y)
    if bad.any() and missing == "error":
        raise ValueError(
            f"{observation}: expected finite observations, got {int(bad.sum())} NaN/inf "
            f"(rows {np.flatnonzero(bad)[:5].tolist()}); pass missing='drop' to mask them out"
        )
    ids = cols[subject]
    _, first = np.unique(ids, return_index=True)
    order = ids[np.sort(first)]
    rows = [np.flatnonzero(ids == s) for s in order]
    T = max(len(r) for r in rows)
    N = len(order)
    times = np.zeros((N, T))
    obs = np.zeros((N, T))
    mask = np.zeros((N, T), bool)
    for i, r in enumerate(rows):
        r = r[np.argsort(t[r], kind="stable")]
        times[i, : len(r)] = t[r]
        times[i, len(r) :] = t[r][-1]
        obs[i, : len(r)] = np.where(bad[r], 0.0, y[r])
        mask[i, : len(r)] = ~bad[r]
        if not mask[i].any():
            raise ValueError(f"{observation}: subject {order[i]!r} has no finite observation")
    cov = {}
    for c in covariates:
        v = cols[c].astype(np.float64)
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{c}: expected finite covariate values, got NaN/inf")
        cov[c] = jnp.asarray(np.asarray([v[r[0]] for r in rows]))
    return NLMEData(jnp.asarray(times), jnp.asarray(obs), jnp.asarray(mask), cov, np.asarray(order))


def theophylline_data() -> NLMEData:
    """The shipped theophylline table as :class:`NLMEData`, dose in mg (``Dose * Wt``).

    Covariates: ``dose`` (mg) and ``weight`` (kg).  All 132 concentrations count (also the
    pre-dose samples at ``t = 0``, as in the published fits).
    """
    from numpyro_hgf.datasets import theophylline

    th = theophylline()
    table = {
        "subject": th.subject,
        "time": th.time_h,
        "conc": th.conc_mg_per_l,
        "dose": th.dose_mg,
        "weight": th.weight_kg,
    }
    return prepare_data(
        table,
        subject="subject",
        time="time",
        observation="conc",
        covariates=("dose", "weight"),
        nonnegative=("dose",),
    )
