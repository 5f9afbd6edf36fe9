"""The small clinical tables shipped in ``numpyro_hgf/data`` (nothing downloads)."""

from __future__ import annotations

import csv
import io
from importlib import resources
from typing import NamedTuple

import numpy as np

__all__ = [
    "Theophylline",
    "SleepStudy",
    "Orange",
    "Indometh",
    "theophylline",
    "sleepstudy",
    "orange",
    "indometh",
]


class Theophylline(NamedTuple):
    """Theophylline pharmacokinetics (Boeckmann, Sheiner & Beal 1994; R's ``datasets::Theoph``).

    12 subjects, one oral dose at time 0, 132 rows (11 samples per subject).  Every field is a
    ``(132,)`` NumPy array, one entry per observation, sorted by subject then time.

    Attributes:
      subject: int, subject id as in the file (1..12).
      subject_index: int, 0-based contiguous index (0..11), in order of first appearance.
      weight_kg: float, body weight (kg).
      dose_mg_per_kg: float, oral dose per kg of body weight (mg/kg).
      dose_mg: float, the dose in mg, ``dose_mg_per_kg * weight_kg``.
      time_h: float, time since the dose (h).
      conc_mg_per_l: float, theophylline plasma concentration (mg/L).
    """

    subject: np.ndarray
    subject_index: np.ndarray
    weight_kg: np.ndarray
    dose_mg_per_kg: np.ndarray
    dose_mg: np.ndarray
    time_h: np.ndarray
    conc_mg_per_l: np.ndarray

    @property
    def num_subjects(self) -> int:
        return int(self.subject_index.max()) + 1


class SleepStudy(NamedTuple):
    """Reaction times under sleep deprivation (Belenky et al. 2003, as shipped with lme4).

    18 subjects x 10 days = 180 rows; every field is a ``(180,)`` NumPy array.  The standard
    model is ``reaction_ms ~ days + (days | subject)``.

    Attributes:
      subject: int, subject id as in the file (308..372).
      subject_index: int, 0-based contiguous index (0..17), in order of first appearance.
      days: int, days of sleep deprivation (0..9).
      reaction_ms: float, average reaction time (ms).
    """

    subject: np.ndarray
    subject_index: np.ndarray
    days: np.ndarray
    reaction_ms: np.ndarray

    @property
    def num_subjects(self) -> int:
        return int(self.subject_index.max()) + 1


class Orange(NamedTuple):
    """Growth of five orange trees (Draper & Smith 1998; R's ``datasets::Orange``, used
    throughout Pinheiro & Bates 2000, ch. 8).

    5 trees x 7 ages = 35 rows; every field is a ``(35,)`` NumPy array.  The standard model is
    the logistic ``Asym / (1 + exp((xmid - age) / scal))`` with a random effect on ``Asym``.

    Attributes:
      tree: int, tree id as in the file (1..5).
      tree_index: int, 0-based contiguous index (0..4).
      age_days: float, days since 1968-12-31.
      circumference_mm: float, trunk circumference at breast height (mm).
    """

    tree: np.ndarray
    tree_index: np.ndarray
    age_days: np.ndarray
    circumference_mm: np.ndarray

    @property
    def num_subjects(self) -> int:
        return int(self.tree_index.max()) + 1


class Indometh(NamedTuple):
    """Indometacin plasma concentrations after an IV bolus (Kwan et al. 1976; R's
    ``datasets::Indometh``, Pinheiro & Bates 2000, sec. 6.2).

    6 subjects x 11 times = 66 rows; every field is a ``(66,)`` NumPy array.  The standard
    model is bi-exponential (nlme's ``SSbiexp``).

    Attributes:
      subject: int, subject id as in the file (1..6).
      subject_index: int, 0-based contiguous index (0..5).
      time_h: float, time since the bolus (h).
      conc_mcg_per_ml: float, plasma concentration (mcg/mL).
    """

    subject: np.ndarray
    subject_index: np.ndarray
    time_h: np.ndarray
    conc_mcg_per_ml: np.ndarray

    @property
    def num_subjects(self) -> int:
        return int(self.subject_index.max()) + 1


def _read_csv(filename: str) -> dict[str, np.ndarray]:
    text = resources.files("numpyro_hgf").joinpath("data", filename).read_text("utf-8")
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader)]
    rows = [r for r in reader if r and any(c.strip() for c in r)]
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in header]
    return {
        h: np.asarray([float(v) for v in c], np.float64) for h, c in zip(header, cols, strict=True)
    }


def _contiguous_index(ids: np.ndarray) -> np.ndarray:
    _, first = np.unique(ids, return_index=True)
    order = ids[np.sort(first)]  # ids in order of first appearance
    lookup = {int(s): i for i, s in enumerate(order)}
    return np.asarray([lookup[int(s)] for s in ids], np.int32)


def theophylline() -> Theophylline:
    """The theophylline table shipped in ``numpyro_hgf/data/theophylline.csv``.

    Returns:
      :class:`Theophylline` of ``(132,)`` NumPy arrays (12 subjects).  Published
      one-compartment fits (first-order absorption, dose in mg) report ka ~ 1.59 /h,
      CL ~ 2.75 L/h, V ~ 31.8 L (FOCEi).
    """
    c = _read_csv("theophylline.csv")
    subject = c["Subject"].astype(np.int32)
    return Theophylline(
        subject=subject,
        subject_index=_contiguous_index(subject),
        weight_kg=c["Wt"],
        dose_mg_per_kg=c["Dose"],
        dose_mg=c["Dose"] * c["Wt"],
        time_h=c["Time"],
        conc_mg_per_l=c["conc"],
    )


def sleepstudy() -> SleepStudy:
    """The sleepstudy table shipped in ``numpyro_hgf/data/sleepstudy.csv``.

    Returns:
      :class:`SleepStudy` of ``(180,)`` NumPy arrays (18 subjects x 10 days).
    """
    c = _read_csv("sleepstudy.csv")
    subject = c["Subject"].astype(np.int32)
    return SleepStudy(
        subject=subject,
        subject_index=_contiguous_index(subject),
        days=c["Days"].astype(np.int32),
        reaction_ms=c["Reaction"],
    )


def _grouped_table(cls, filename: str, id_column: str, *columns: str):
    """``cls(ids, contiguous index, *columns)`` from a shipped CSV, in the file's row order."""
    c = _read_csv(filename)
    ids = c[id_column].astype(np.int32)
    return cls(ids, _contiguous_index(ids), *(c[name] for name in columns))


def orange() -> Orange:
    """The Orange table shipped in ``numpyro_hgf/data/orange.csv``: :class:`Orange` of
    ``(35,)`` NumPy arrays (5 trees)."""
    return _grouped_table(Orange, "orange.csv", "Tree", "age_days", "circumference_mm")


def indometh() -> Indometh:
    """The Indometh table shipped in ``numpyro_hgf/data/indometh.csv``: :class:`Indometh` of
    ``(66,)`` NumPy arrays (6 subjects)."""
    return _grouped_table(Indometh, "indometh.csv", "Subject", "time_h", "conc_mcg_per_ml")
