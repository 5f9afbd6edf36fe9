"""One trainer-options object, taken whole (or field by field as keywords) by every ``fit_*``.

:class:`TrainOptions` is the single description of *how* to train -- steps, batch size,
optimizer and learning rate, clipping, EMA, precision, devices, validation and early
stopping, checkpoints and resume, progress and callbacks -- validated when it is built,
before anything is traced.  Every ``fit_*`` function of the package accepts it as
``options=`` and each of its fields as a keyword (typed by :class:`TrainKeywords`, PEP 692),
under the same names and with the same defaults::

    nh.train.fit_velocity(path, data, key=key, steps=5_000, ema_decay=0.999)
    nh.train.fit_velocity(path, data, key=key, options=nh.train.TrainOptions(steps=5_000))

Six fields describe the optimisation itself, and there a good value depends on the
objective (an RBM's SGD step is not a flow's Adam step): their default is
:data:`RECOMMENDED`, which each ``fit_*`` replaces by its own :class:`Recipe` (stated in its
docstring).  ``clip_norm=None`` turns clipping off and ``ema_decay=None`` turns EMA off,
whatever the recipe.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

import optax

from numpyro_hgf._checks import (
    check_choice,
    check_positive_float,
    check_positive_int,
    check_progress,
)

__all__ = [
    "RECOMMENDED",
    "Recipe",
    "TrainOptions",
    "TrainKeywords",
    "OPTIMIZERS",
    "resolve_options",
    "build_optimizer",
]

#: Optimizers that a name builds from ``learning_rate`` and ``steps``.
OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("float32", "bfloat16")


class _Recommended:
    """The default of the optimisation fields: "the value this objective recommends"."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "RECOMMENDED"

    def __reduce__(self):
        return (_Recommended, ())


#: Sentinel default of ``steps``, ``batch_size``, ``learning_rate``, ``optimizer``,
#: ``clip_norm`` and ``ema_decay``: each ``fit_*`` fills it from its :class:`Recipe`.
RECOMMENDED = _Recommended()

_RECIPE_FIELDS = ("steps", "batch_size", "learning_rate", "optimizer", "clip_norm", "ema_decay")


@dataclass(frozen=True)
class Recipe:
    """The optimisation an objective recommends; fills the :data:`RECOMMENDED` fields.

    ``optimizer`` is a name of :data:`OPTIMIZERS` (``"adam"``: Adam with the learning rate
    decayed to zero over ``steps`` by a cosine schedule; ``"sgd"``: plain SGD at a constant
    learning rate), an ``optax.GradientTransformation``, or a function
    ``(learning_rate, steps) -> GradientTransformation``.  ``batch_size=None``: every step
    uses all rows.
    """

    steps: int = 2_000
    batch_size: int | None = 256
    learning_rate: float = 1e-3
    optimizer: str | optax.GradientTransformation | Callable = "adam"
    clip_norm: float | None = 1.0
    ema_decay: float | None = None


def _check_optional_positive_int(name: str, value):
    return None if value is None else check_positive_int(name, value)


@dataclass(frozen=True)
class TrainOptions:
    """How to train; every ``fit_*`` takes it whole (``options=``) or field by field.

    Args:
        steps: optimizer steps.
        batch_size: minibatch size (drawn with replacement; capped at the number of rows);
            ``None``: all rows every step; with ``devices`` the global batch, a multiple of
            the number of devices.
        learning_rate: peak learning rate of the optimizer built by name.
        optimizer: ``"adam"`` (cosine decay to zero over ``steps``), ``"sgd"``, any
            ``optax.GradientTransformation`` (``learning_rate`` is then unused), or a
            function ``(learning_rate, steps) -> GradientTransformation``.
        clip_norm: clip gradients by global norm; ``None``: no clipping.
        ema_decay: keep an exponential moving average of the params, in ``(0, 1)``; the
            trained model uses the EMA params; ``None``: no EMA.
        precision: ``"float32"`` or ``"bfloat16"`` (mixed precision, float32 master params).
        devices: data-parallel training over these devices (``"all"``, a number, a device
            list or a ``Mesh``; see :func:`numpyro_hgf.train.data_parallel_mesh`).
        steps_per_dispatch: optimizer steps per compiled dispatch (``lax.scan`` block).
        validation: held-out rows (split off the *training* data; the data's event shape).
            The objective on them (fixed draws) is computed every ``validate_every`` steps on
            the params in use, and the model gets the params with the lowest value.
        validate_every: steps between validations (default ``steps_per_dispatch``).
        patience: stop after this many validations without improvement (needs
            ``validation``); ``None``: train all ``steps``, still returning the best params.
        checkpoint_dir: orbax checkpoints of the whole train state go here; a run started
            again with the same arguments resumes from the newest one (``resume``).
        checkpoint_every: steps between checkpoints (default: at the end, and at the last
            good step when the loss stops being finite).
        keep_checkpoints: how many of the newest checkpoints to keep.
        resume: continue from the newest checkpoint in ``checkpoint_dir``.
        progress: show a progress bar (``None``: on unless ``NUMPYRO_HGF_PROGRESS=0``).
        callback: ``callback(state)`` on the host every ``callback_every`` steps.
        callback_every: steps between callbacks (default ``steps_per_dispatch``).
    """

    steps: int | _Recommended = RECOMMENDED
    batch_size: int | None | _Recommended = RECOMMENDED
    learning_rate: float | _Recommended = RECOMMENDED
    optimizer: str | optax.GradientTransformation | Callable | _Recommended = RECOMMENDED
    clip_norm: float | None | _Recommended = RECOMMENDED
    ema_decay: float | None | _Recommended = RECOMMENDED
    precision: str = "float32"
    devices: Any = None
    steps_per_dispatch: int = 100
    validation: Any = None
    validate_every: int | None = None
    patience: int | None = None
    checkpoint_dir: str | os.PathLike | None = None
    checkpoint_every: int | None = None
    keep_checkpoints: int = 3
    resume: bool = True
    progress: bool | None = None
    callback: Callable | None = None
    callback_every: int | None = None

    def __post_init__(self):
        given = lambda v: v is not RECOMMENDED
        check_progress(self.progress)
        if given(self.steps):
            check_positive_int("steps", self.steps)
        if given(self.batch_size) and self.batch_size is not None:
            check_positive_int("batch_size", self.batch_size)
        if given(self.learning_rate):
            check_positive_float("learning_rate", self.learning_rate)
        opt = self.optimizer
        if given(opt) and not isinstance(opt, optax.GradientTransformation):
            if isinstance(opt, str):
                check_choice("optimizer", opt, OPTIMIZERS)
            elif not callable(opt) or isinstance(opt, int | float):
                raise TypeError(
                    "optimizer: expected 'adam', 'sgd', an optax.GradientTransformation or a "
                    f"function (learning_rate, steps) -> optimizer, got {type(opt).__name__}"
                )
        if given(self.clip_norm) and self.clip_norm is not None:
            check_positive_float("clip_norm", self.clip_norm)
        if given(self.ema_decay) and self.ema_decay is not None:
            decay = check_positive_float("ema_decay", self.ema_decay)
            if not decay < 1.0:
                raise ValueError(f"ema_decay: expected a number in (0, 1), got {self.ema_decay}")
        check_choice("precision", self.precision, PRECISIONS)
        check_positive_int("steps_per_dispatch", self.steps_per_dispatch)
        for name in ("validate_every", "patience", "checkpoint_every", "callback_every"):
            _check_optional_positive_int(name, getattr(self, name))
        check_positive_int("keep_checkpoints", self.keep_checkpoints)
        if self.checkpoint_every is not None and self.checkpoint_dir is None:
            raise ValueError("checkpoint_every: checkpoints need a checkpoint_dir, got None")
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"callback: expected a callable, got {type(self.callback).__name__}")
        if not isinstance(self.resume, bool):
            raise TypeError(f"resume: expected True or False, got {self.resume!r}")

    def replace(self, **changes) -> TrainOptions:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def with_recipe(self, recipe: Recipe) -> TrainOptions:
        """The :data:`RECOMMENDED` fields filled from ``recipe``."""
        filled = {
            name: getattr(recipe, name)
            for name in _RECIPE_FIELDS
            if getattr(self, name) is RECOMMENDED
        }
        return dataclasses.replace(self, **filled)


class TrainKeywords(TypedDict, total=False):
    """The fields of :class:`TrainOptions` as keyword arguments of every ``fit_*`` (PEP 692)."""

    steps: int
    batch_size: int | None
    learning_rate: float
    optimizer: str | optax.GradientTransformation | Callable
    clip_norm: float | None
    ema_decay: float | None
    precision: str
    devices: Any
    steps_per_dispatch: int
    validation: Any
    validate_every: int | None
    patience: int | None
    checkpoint_dir: str | os.PathLike | None
    checkpoint_every: int | None
    keep_checkpoints: int
    resume: bool
    progress: bool | None
    callback: Callable | None
    callback_every: int | None


_FIELDS = tuple(f.name for f in dataclasses.fields(TrainOptions))
# names of earlier releases, accepted for the same field
_ALIASES = {"validation_data": "validation"}


def resolve_options(options: TrainOptions | None, keywords: dict, recipe: Recipe) -> TrainOptions:
    """The concrete options of one ``fit_*`` call: ``options`` (or the defaults), overridden by
    the ``keywords``, with the :data:`RECOMMENDED` fields taken from ``recipe``.

    Raises:
        TypeError: an unknown keyword (naming it and the accepted ones), or ``options`` that
            is not a :class:`TrainOptions`.
        ValueError: a field out of range (naming it).
    """
    if options is None:
        options = TrainOptions()
    elif not isinstance(options, TrainOptions):
        raise TypeError(
            f"options: expected a numpyro_hgf.train.TrainOptions, got {type(options).__name__}"
        )
    keywords = {_ALIASES.get(name, name): value for name, value in keywords.items()}
    unknown = sorted(set(keywords) - set(_FIELDS))
    if unknown:
        raise TypeError(
            f"{unknown[0]}: not an option of this fit function (unexpected keyword(s) "
            f"{unknown}); the trainer options are {list(_FIELDS)}"
        )
    return options.replace(**keywords).with_recipe(recipe)


def build_optimizer(options: TrainOptions) -> optax.GradientTransformation:
    """The optax optimizer of resolved ``options`` (without clipping; the trainer adds it)."""
    opt = options.optimizer
    if isinstance(opt, optax.GradientTransformation):
        return opt
    if callable(opt):
        return opt(options.learning_rate, options.steps)
    # one object per (kind, rate, steps): the compiled training program is reused
    from numpyro_hgf.train.programs import cached_optimizer

    return cached_optimizer(opt, float(options.learning_rate), int(options.steps))
