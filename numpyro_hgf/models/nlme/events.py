"""Event records in the NONMEM convention -> :class:`~numpyro_hgf.models.nlme.NLMEData`.

One row per event (Beal, Sheiner, Boeckmann & Bauer, *NONMEM Users Guides*, part V, ch. 6)::

    ID    subject              EVID  0 observation, 1 dose, 2 other (ignored),
    TIME  clock time (h)             4 reset (compartments emptied) and dose
    DV    observed value       CMT   compartment of the dose (default 1)
    AMT   dose amount (mg)     MDV   1: the DV does not count (default: 1 unless EVID 0)
    RATE  infusion rate (0: bolus; default 0)
    ADDL, II   ADDL additional doses, every II hours after this one (default 0)

Any other numeric column is a per-subject covariate (its first finite value per subject).
Names are matched case-insensitively.  :func:`read_events` returns :class:`NLMEData` whose
covariates also hold the dose records, padded to ``D`` doses per subject (ADDL expanded),
``(N, D)`` each: ``dose_time``, ``dose_amt``, ``dose_rate``, ``dose_cmt``, ``dose_end`` (the
time of the next reset, ``+inf`` if none) and ``dose_mask`` (1 for a dose, 0 for padding) --
what :func:`~numpyro_hgf.models.pk.one_compartment_oral_doses` and
:func:`~numpyro_hgf.models.pk.one_compartment_iv` read.

After an EVID 4 reset the clock may restart; the times of ``NLMEData`` then run on one
increasing clock: the reset is placed one hour after the subject's latest earlier time, and
the doses before it stop counting there.  A dose and an observation at the same time: the
dose counts (as when the dose record comes first).

Faults raise :class:`EventDataError` (a ``ValueError``) naming the row (0-based position in
the table; for a CSV also its line) and the column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from numpyro_hgf.models.nlme.data import NLMEData

__all__ = ["EventDataError", "read_events", "theophylline_events", "EVENT_COLUMNS"]

#: Required columns, then the optional ones with their defaults (None: depends on EVID).
EVENT_COLUMNS = {
    "ID": "required",
    "TIME": "required",
    "DV": "required",
    "AMT": "required",
    "EVID": "required",
    "CMT": 1.0,
    "MDV": None,
    "RATE": 0.0,
    "ADDL": 0.0,
    "II": 0.0,
}
EVIDS = (0, 1, 2, 4)


class EventDataError(ValueError):
    """A fault in an event table; ``row`` (0-based, or None) and ``column`` say where."""

    def __init__(self, message: str, *, row: int | None = None, column: str | None = None):
        super().__init__(message)
        self.row = row
        self.column = column


# ---------------------------------------------------------------------------------------
# loading and checking
# ---------------------------------------------------------------------------------------


def _load(source) -> tuple[dict, str]:
    """``(columns, where)``: a mapping name -> 1-D array, and a label for messages."""
    if isinstance(source, str | Path):
        import pandas as pd

        return pd.read_csv(source, na_values=["."]), f" of {source}"
    if isinstance(source, Mapping) or hasattr(source, "columns"):
        return source, ""
    raise TypeError(
        f"source: expected a CSV path or a table (pandas DataFrame or mapping column -> "
        f"array), got {type(source).__name__}"
    )


class _Where:
    """Formats 'row i (line j of f.csv), column C' for messages."""

    def __init__(self, where: str):
        self.csv = bool(where)
        self.where = where

    def __call__(self, row: int, column: str) -> str:
        line = f" (line {row + 2}{self.where})" if self.csv else ""
        return f"row {row}{line}, column {column}"


def _columns(table, where: str) -> tuple[dict, dict]:
    """``(standard, other)``: the NONMEM columns as float arrays (defaults filled in) and
    the remaining columns as arrays."""
    names = {str(k).upper(): k for k in table.keys()}
    missing = [c for c, d in EVENT_COLUMNS.items() if d == "required" and c not in names]
    if missing:
        raise EventDataError(
            f"table{where}: expected column {missing[0]} (required: "
            f"{[c for c, d in EVENT_COLUMNS.items() if d == 'required']}), got columns "
            f"{[str(k) for k in table.keys()]}",
            column=missing[0],
        )
    n = len(np.asarray(table[names["ID"]]))
    cols = {}
    for c, default in EVENT_COLUMNS.items():
        if c not in names:
            cols[c] = np.full(n, np.nan if default is None else default)
            continue
        raw = np.asarray(table[names[c]])
        if c == "ID":
            cols[c] = raw
            continue
        try:
            cols[c] = raw.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise EventDataError(
                f"column {c}{where}: expected numbers, got {raw.dtype} ({err})", column=c
            ) from err
    used = {names[c] for c in EVENT_COLUMNS if c in names}
    other = {str(k): np.asarray(table[k]) for k in table.keys() if k not in used}
    return cols, other


def _check_rows(c: dict, at: _Where) -> None:
    """Raise on the first faulty row (one message per kind of fault)."""
    evid, amt, rate, addl, ii = c["EVID"], c["AMT"], c["RATE"], c["ADDL"], c["II"]
    mdv = np.where(np.isnan(c["MDV"]), (evid != 0).astype(float), c["MDV"])
    for i in range(len(evid)):
        if not np.isfinite(c["TIME"][i]):
            raise EventDataError(
                f"{at(i, 'TIME')}: expected a finite time, got {c['TIME'][i]}",
                row=i,
                column="TIME",
            )
        if evid[i] not in EVIDS:
            raise EventDataError(
                f"{at(i, 'EVID')}: expected one of {list(EVIDS)} (0 observation, 1 dose, "
                f"2 other, 4 reset and dose), got {evid[i]}",
                row=i,
                column="EVID",
            )
        if evid[i] in (1, 4):
            if not amt[i] > 0:
                raise EventDataError(
                    f"{at(i, 'AMT')}: a dose record (EVID {int(evid[i])}) needs a positive "
                    f"amount, got {amt[i]}",
                    row=i,
                    column="AMT",
                )
            if rate[i] < 0:
                raise EventDataError(
                    f"{at(i, 'RATE')}: expected a rate >= 0 (0: bolus; modelled rates -1/-2 "
                    f"are not supported), got {rate[i]}",
                    row=i,
                    column="RATE",
                )
            n_add = np.nan_to_num(addl[i])
            if n_add < 0 or n_add != np.round(n_add):
                raise EventDataError(
                    f"{at(i, 'ADDL')}: expected a whole number >= 0, got {addl[i]}",
                    row=i,
                    column="ADDL",
                )
            if n_add > 0 and not np.nan_to_num(ii[i]) > 0:
                raise EventDataError(
                    f"{at(i, 'II')}: ADDL = {int(n_add)} additional doses need an interval "
                    f"II > 0, got {ii[i]}",
                    row=i,
                    column="II",
                )
        if evid[i] == 0 and mdv[i] == 0 and not np.isfinite(c["DV"][i]):
            raise EventDataError(
                f"{at(i, 'DV')}: an observation (EVID 0) with MDV 0 needs a finite DV, got "
                f"{c['DV'][i]} (set MDV 1 to skip it)",
                row=i,
                column="DV",
            )
    c["MDV"] = mdv


def _subject_rows(ids) -> tuple[np.ndarray, list[np.ndarray]]:
    """Subjects in order of first appearance and their rows in table order."""
    _, first = np.unique(ids, return_index=True)
    order = ids[np.sort(first)]
    return order, [np.flatnonzero(ids == s) for s in order]


def _subject_events(c: dict, rows: np.ndarray, sid, at: _Where) -> tuple[list, list]:
    """``(observations, doses)`` of one subject on one increasing clock.

    ``observations``: ``(time, value, counts)``; ``doses``: ``[time, amt, rate, cmt, end]``.
    """
    obs, doses = [], []
    offset, latest, previous = 0.0, -np.inf, None
    for i in rows:
        t, evid = c["TIME"][i], int(c["EVID"][i])
        if previous is not None and t < previous and evid != 4:
            raise EventDataError(
                f"{at(i, 'TIME')}: time decreases within ID {sid} (from {previous} to {t}) "
                "without an EVID 4 reset",
                row=i,
                column="TIME",
            )
        previous = t
        if evid == 4 and np.isfinite(latest):
            offset = latest + 1.0 - t
            for d in doses:
                d[4] = min(d[4], t + offset)
        g = t + offset
        latest = max(latest, g)
        if evid == 0:
            counts = c["MDV"][i] == 0 and np.isfinite(c["DV"][i])
            obs.append((g, c["DV"][i] if counts else 0.0, counts))
        elif evid in (1, 4):
            n_add = int(np.nan_to_num(c["ADDL"][i]))
            ii = np.nan_to_num(c["II"][i])
            rate = np.nan_to_num(c["RATE"][i])
            cmt = np.nan_to_num(c["CMT"][i], nan=1.0)
            for k in range(n_add + 1):
                doses.append([g + k * ii, c["AMT"][i], rate, cmt, np.inf])
    if not any(o[2] for o in obs):
        raise EventDataError(
            f"{at(int(rows[0]), 'DV')}: ID {sid} has no observation that counts "
            "(EVID 0, MDV 0, finite DV)",
            row=int(rows[0]),
            column="DV",
        )
    return obs, doses


def _covariates(other: dict, names, per_subject, order, at: _Where) -> dict:
    """Per-subject covariates: the first finite value of each subject, ``(N,)``."""
    out = {}
    for name in names:
        if name not in other:
            raise EventDataError(
                f"covariates: expected a column {name!r}, got columns {sorted(other)}",
                column=name,
            )
        try:
            v = other[name].astype(np.float64)
        except (TypeError, ValueError) as err:
            raise EventDataError(
                f"column {name}: expected numbers for a covariate, got {other[name].dtype}",
                column=name,
            ) from err
        vals = []
        for sid, rows in zip(order, per_subject, strict=True):
            finite = rows[np.isfinite(v[rows])]
            if finite.size == 0:
                raise EventDataError(
                    f"{at(int(rows[0]), name)}: ID {sid} has no finite value of covariate {name}",
                    row=int(rows[0]),
                    column=name,
                )
            vals.append(v[finite[0]])
        out[name] = jnp.asarray(np.asarray(vals))
    return out


# ---------------------------------------------------------------------------------------
# the reader
# ---------------------------------------------------------------------------------------


def read_events(source, *, covariates: Sequence[str] | None = None) -> NLMEData:
    """Event records (NONMEM convention, see the module docstring) -> :class:`NLMEData`.

    Args:
        source: a CSV path (``"."`` and empty cells are missing) or a table: a pandas
            DataFrame or a mapping column name -> 1-D array.
        covariates: per-subject covariate columns to keep; ``None`` keeps every numeric
            column that is not a NONMEM column.

    Returns:
        :class:`NLMEData` with ``(N, T)`` observation times, values and mask (MDV 1 or
        missing DV: masked out) and covariates: the covariate columns ``(N,)`` and the dose
        records ``dose_time``, ``dose_amt``, ``dose_rate``, ``dose_cmt``, ``dose_end``,
        ``dose_mask``, ``(N, D)``, ``D`` the largest number of doses of a subject after ADDL
        expansion.

    Raises:
        EventDataError: a missing required column; a non-finite TIME; an unknown EVID; a dose
            (EVID 1 or 4) without a positive AMT, with a negative RATE, with ADDL that is not
            a whole number >= 0, or with ADDL > 0 and II <= 0; an observation with missing DV
            and MDV 0; TIME decreasing within a subject other than at an EVID 4 reset; a
            subject without a counted observation; a covariate that is not numeric or has
            no finite value for a subject.
        TypeError: ``source`` is neither a path nor a table.
    """
    table, where = _load(source)
    cols, other = _columns(table, where)
    at = _Where(where)
    _check_rows(cols, at)
    order, per_subject = _subject_rows(cols["ID"])
    events = [
        _subject_events(cols, rows, sid, at) for sid, rows in zip(order, per_subject, strict=True)
    ]
    if covariates is None:
        covariates = [k for k, v in other.items() if np.issubdtype(v.dtype, np.number)]
    cov = _covariates(other, covariates, per_subject, order, at)
    N = len(order)
    T = max(len(o) for o, _ in events)
    D = max(1, max(len(d) for _, d in events))
    times, obs, mask = np.zeros((N, T)), np.zeros((N, T)), np.zeros((N, T), bool)
    dose = np.zeros((6, N, D))
    for i, (o, d) in enumerate(events):
        arr = np.asarray([x[:2] for x in o], np.float64)
        times[i, : len(o)], times[i, len(o) :] = arr[:, 0], arr[-1, 0]
        obs[i, : len(o)] = arr[:, 1]
        mask[i, : len(o)] = [x[2] for x in o]
        if d:
            d = np.asarray(d, np.float64)
            d = d[np.argsort(d[:, 0], kind="stable")]
            dose[:5, i, : len(d)] = d.T
            dose[0, i, len(d) :] = d[-1, 0]
            dose[4, i, len(d) :] = np.inf
            dose[5, i, : len(d)] = 1.0
        else:
            dose[4, i] = np.inf
    names = ("dose_time", "dose_amt", "dose_rate", "dose_cmt", "dose_end", "dose_mask")
    cov.update({name: jnp.asarray(dose[k]) for k, name in enumerate(names)})
    return NLMEData(jnp.asarray(times), jnp.asarray(obs), jnp.asarray(mask), cov, order)


def theophylline_events():
    """The shipped theophylline study as event records: a ``pandas.DataFrame``.

    Per subject one dose row (``TIME 0``, ``EVID 1``, ``CMT 1``, ``AMT = Dose * Wt`` mg, as
    :func:`~numpyro_hgf.models.nlme.theophylline_data`), then its 11 observation rows
    (``EVID 0``, ``CMT 2``, ``MDV 0``); columns ID, TIME, DV, AMT, EVID, CMT, MDV, RATE,
    ADDL, II and the covariate WT (kg); 144 rows (12 doses, 132 concentrations).
    """
    import pandas as pd

    from numpyro_hgf.datasets import theophylline

    th = theophylline()
    rows: list[dict[str, Any]] = []
    for sid in dict.fromkeys(th.subject.tolist()):
        r = np.flatnonzero(th.subject == sid)
        base = {"ID": int(sid), "RATE": 0.0, "ADDL": 0, "II": 0.0, "WT": th.weight_kg[r[0]]}
        rows.append(
            base
            | {"TIME": 0.0, "DV": np.nan, "AMT": th.dose_mg[r[0]], "EVID": 1, "CMT": 1}
            | {"MDV": 1}
        )
        for j in r[np.argsort(th.time_h[r], kind="stable")]:
            obs = {"TIME": th.time_h[j], "DV": th.conc_mg_per_l[j], "AMT": 0.0, "EVID": 0}
            rows.append(base | obs | {"CMT": 2, "MDV": 0})
    columns = ["ID", "TIME", "DV", "AMT", "EVID", "CMT", "MDV", "RATE", "ADDL", "II", "WT"]
    return pd.DataFrame(rows, columns=columns)
