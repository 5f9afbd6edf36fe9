"""Data that ships with the package: toy 2-D densities, 8x8 digits, two small clinical tables.

Nothing here downloads anything.

* :func:`toy2d` -- the six 2-D benchmark densities of FFJORD (Grathwohl et al. 2019,
  ``lib/toy_data.py`` in ``rtqichen/ffjord``), re-implemented with ``jax.random`` so that the
  same key gives the same points (no NumPy / scikit-learn global randomness).
* :func:`digits` -- scikit-learn's bundled 8x8 handwritten digits with a fixed train/test split,
  as grey levels, scaled to ``[-1, 1]`` or binarized; :func:`dequantize` turns the integer grey
  levels into continuous data for density models.
* :func:`theophylline` and :func:`sleepstudy` -- the two tables in ``numpyro_hgf/data``.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from importlib import resources
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks import (
    _describe,
    check_choice,
    check_finite,
    check_positive_int,
    is_concrete,
)
from numpyro_hgf.metrics import _check_interval

__all__ = [
    "TOY2D_NAMES",
    "DIGITS_NUM_LEVELS",
    "TWO_MOONS_ENTROPY",
    "FLOWJAX_MOONS_ENTROPY",
    "Digits",
    "Theophylline",
    "SleepStudy",
    "toy2d",
    "toy2d_stats",
    "standardize",
    "digits",
    "dequantize",
    "theophylline",
    "sleepstudy",
]

# --------------------------------------------------------------------------------------------
# toy 2-D densities
# --------------------------------------------------------------------------------------------

TOY2D_NAMES: tuple[str, ...] = (
    "two_moons",
    "eight_gaussians",
    "checkerboard",
    "pinwheel",
    "rings",
    "swissroll",
    "flowjax_moons",
)
# FFJORD's own spellings are accepted too.
_ALIASES = {"moons": "two_moons", "8gaussians": "eight_gaussians"}

#: Differential entropy (nats) of *standardized* two_moons, ``toy2d("two_moons", n, key,
#: standardize=True)``: the lowest expected negative log-likelihood (nats per point) a perfect
#: density model can reach on that data (the benchmark floor).  Computed by quadrature of the
#: exact density (make_moons units: H = 1.0078 nats; standardizing adds
#: -log(std_x std_y) = +0.8221), 1.8298; a Kozachenko-Leonenko kNN estimate on 20,000 points
#: (``tests/test_datasets.py``) agrees to about 0.01 nats.  Note: the value 1.484 that has been
#: quoted for "standardized two moons" does NOT match the FFJORD / make_moons(noise=0.1)
#: definition used here; it is the entropy of standardized moons with noise std ~0.0707
#: (= 0.1 / sqrt 2) in make_moons units.
TWO_MOONS_ENTROPY = 1.830

#: Differential entropy (nats) of standardized ``flowjax_moons`` (FlowJAX's
#: ``flowjax.tasks.two_moons``: radius 2, noise std 0.2): the 1.484-nat floor quoted with
#: FlowJAX's documented two-moons result (test NLL 1.53).  Kozachenko-Leonenko kNN estimates
#: on 400,000 points give 1.483 and 1.480 (two seeds); ``tests/test_datasets.py`` re-checks it.
FLOWJAX_MOONS_ENTROPY = 1.484

# Population mean and standard deviation of each density, per coordinate (closed forms; the
# swiss-roll moments are integrals of t cos t and t sin t over t ~ U[1.5 pi, 4.5 pi]).
_SQRT_VAR_MOONS_Y = math.sqrt(0.5 - 4 / math.pi**2 + (4 / math.pi - 0.5) ** 2 / 4 + 0.01)
_TOY2D_STATS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    # 2 * make_moons + [-1, -0.2]: make_moons has mean (1/2, 1/4), var_x 3/4 + noise^2.
    "two_moons": ((0.0, 0.3), (2.0 * math.sqrt(0.76), 2.0 * _SQRT_VAR_MOONS_Y)),
    # 8 centres at radius 4, std 0.5, all divided by 1.414: var = (8 + 0.25) / 1.414^2.
    "eight_gaussians": ((0.0, 0.0), (math.sqrt(8.25) / 1.414, math.sqrt(8.25) / 1.414)),
    # both coordinates are uniform on [-4, 4].
    "checkerboard": ((0.0, 0.0), (math.sqrt(16.0 / 3.0), math.sqrt(16.0 / 3.0))),
    # 5-fold symmetric: isotropic, E|x|^2 = 4 (1 + 0.3^2 + 0.1^2).
    "pinwheel": ((0.0, 0.0), (math.sqrt(2.2), math.sqrt(2.2))),
    # radii 3, 2.25, 1.5, 0.75 with equal weight, noise std 0.08.
    "rings": ((0.0, 0.0), (math.sqrt(16.875 / 8 + 0.0064),) * 2),
    # x = 2 cos(a) -+ 1, y = 2 sin(a), a ~ U[0, 2 pi), noise std 0.2 on both coordinates.
    "flowjax_moons": ((0.0, 0.0), (math.sqrt(3.04), math.sqrt(2.04))),
    "swissroll": ((0.4, 2.0 / (15.0 * math.pi)), (1.3396166833137104, 1.4045538767613894)),
}


def _canonical_name(name) -> str:
    if isinstance(name, str):
        name = _ALIASES.get(name, name)
    return check_choice("name", name, TOY2D_NAMES)


def toy2d_stats(name: str) -> tuple[jax.Array, jax.Array]:
    """Population ``(mean, std)`` of a :func:`toy2d` density, each of shape ``(2,)``.

    These are the constants ``toy2d(..., standardize=True)`` uses, so every batch, whatever its
    key or size, lives in the same coordinates: ``x_std = (x - mean) / std``.
    """
    mean, std = _TOY2D_STATS[_canonical_name(name)]
    return jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)


def standardize(x, axis: int = 0) -> jax.Array:
    """Standardize each dimension by the sample's own statistics: ``(x - mean) / std``.

    Args:
      x: ``(n, d)`` array (any shape; statistics are taken along ``axis``).
      axis: the sample axis.

    Returns:
      An array of the same shape with zero sample mean and unit (population, ``ddof=0``)
      standard deviation along ``axis``.  Unlike ``toy2d(..., standardize=True)``, which uses
      fixed population constants (:func:`toy2d_stats`), the map here depends on the sample.
    """
    x = jnp.asarray(x)
    if x.ndim == 0:
        raise ValueError(f"x: expected an array with a sample axis, got {_describe(x)}")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis: expected an axis of an array of rank {x.ndim}, got {axis}")
    return _standardize(x, axis % x.ndim)


@functools.partial(jax.jit, static_argnums=1)
def _standardize(x, axis: int):
    mean = jnp.mean(x, axis=axis, keepdims=True)
    std = jnp.std(x, axis=axis, keepdims=True)
    return (x - mean) / std


def _shuffle(key, x):
    return x[jax.random.permutation(key, x.shape[0])]


def _two_moons(key, n):
    # sklearn.datasets.make_moons(n, noise=0.1): n // 2 points on the outer moon, the rest on
    # the inner one, each at evenly spaced angles in [0, pi] (endpoints included), shuffled,
    # plus N(0, 0.1^2) noise; FFJORD then maps x -> 2 x + [-1, -0.2].
    k_perm, k_noise = jax.random.split(key)
    n_out = n // 2
    n_in = n - n_out
    t_out = jnp.linspace(0.0, jnp.pi, n_out)
    t_in = jnp.linspace(0.0, jnp.pi, n_in)
    outer = jnp.stack([jnp.cos(t_out), jnp.sin(t_out)], axis=1)
    inner = jnp.stack([1.0 - jnp.cos(t_in), 1.0 - jnp.sin(t_in) - 0.5], axis=1)
    x = _shuffle(k_perm, jnp.concatenate([outer, inner], axis=0))
    x = x + 0.1 * jax.random.normal(k_noise, x.shape)
    return 2.0 * x + jnp.array([-1.0, -0.2])


def _flowjax_moons(key, n):
    # flowjax.tasks.two_moons(key, n, noise_std=0.2): two interleaved half circles of radius 2
    # (the lower one shifted right by 1, the upper one left by 1), i.i.d. angles.
    k_angle, k_noise = jax.random.split(key)
    angle = 2 * jnp.pi * jax.random.uniform(k_angle, (n,))
    x = 2 * jnp.cos(angle) + jnp.where(angle > jnp.pi, 1.0, -1.0)
    y = 2 * jnp.sin(angle)
    return jnp.stack([x, y], axis=1) + 0.2 * jax.random.normal(k_noise, (n, 2))


def _eight_gaussians(key, n):
    k_idx, k_noise = jax.random.split(key)
    s = 1.0 / math.sqrt(2.0)
    centers = 4.0 * jnp.array(
        [(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)], jnp.float32
    )
    idx = jax.random.randint(k_idx, (n,), 0, 8)
    x = 0.5 * jax.random.normal(k_noise, (n, 2)) + centers[idx]
    return x / 1.414


def _checkerboard(key, n):
    k1, k2, k3 = jax.random.split(key, 3)
    x1 = jax.random.uniform(k1, (n,)) * 4.0 - 2.0
    x2_ = jax.random.uniform(k2, (n,)) - jax.random.randint(k3, (n,), 0, 2) * 2.0
    x2 = x2_ + jnp.mod(jnp.floor(x1), 2.0)
    return jnp.stack([x1, x2], axis=1) * 2.0


def _pinwheel(key, n):
    # FFJORD draws n // 5 points per arm; here arm labels cycle 0..4 so exactly n points come
    # back (the same distribution when 5 divides n).
    k_feat, k_perm = jax.random.split(key)
    radial_std, tangential_std, num_classes, rate = 0.3, 0.1, 5, 0.25
    rads = jnp.linspace(0.0, 2.0 * jnp.pi, num_classes, endpoint=False)
    features = jax.random.normal(k_feat, (n, 2)) * jnp.array([radial_std, tangential_std])
    features = features.at[:, 0].add(1.0)
    labels = jnp.arange(n) % num_classes
    angles = rads[labels] + rate * jnp.exp(features[:, 0])
    c, s = jnp.cos(angles), jnp.sin(angles)
    # einsum("ti,tij->tj", features, [[c, -s], [s, c]])
    x = jnp.stack(
        [features[:, 0] * c + features[:, 1] * s, -features[:, 0] * s + features[:, 1] * c], 1
    )
    return 2.0 * _shuffle(k_perm, x)


def _rings(key, n):
    # Four concentric circles (radii 3, 2.25, 1.5, 0.75), evenly spaced angles (endpoint
    # excluded), n // 4 points on each of the outer three, shuffled, plus N(0, 0.08^2) noise.
    k_perm, k_noise = jax.random.split(key)
    n4 = n3 = n2 = n // 4
    n1 = n - n4 - n3 - n2
    circles = []
    for m, r in ((n4, 1.0), (n3, 0.75), (n2, 0.5), (n1, 0.25)):
        t = jnp.linspace(0.0, 2.0 * jnp.pi, m, endpoint=False)
        circles.append(r * jnp.stack([jnp.cos(t), jnp.sin(t)], axis=1))
    x = _shuffle(k_perm, 3.0 * jnp.concatenate(circles, axis=0))
    return x + 0.08 * jax.random.normal(k_noise, x.shape)


def _swissroll(key, n):
    # sklearn.datasets.make_swiss_roll(n, noise=1.0)[:, [0, 2]] / 5:
    # t ~ 1.5 pi (1 + 2 U), point (t cos t, t sin t) + N(0, I).
    k_t, k_noise = jax.random.split(key)
    t = 1.5 * jnp.pi * (1.0 + 2.0 * jax.random.uniform(k_t, (n,)))
    x = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=1)
    x = x + jax.random.normal(k_noise, x.shape)
    return x / 5.0


_GENERATORS = {
    "two_moons": _two_moons,
    "eight_gaussians": _eight_gaussians,
    "checkerboard": _checkerboard,
    "pinwheel": _pinwheel,
    "rings": _rings,
    "swissroll": _swissroll,
    "flowjax_moons": _flowjax_moons,
}


def toy2d(name: str, n: int, key, *, standardize: bool = False) -> jax.Array:
    """``n`` points from one of the FFJORD 2-D benchmark densities.

    Definitions follow ``lib/toy_data.py`` of FFJORD (Grathwohl et al. 2019):

    * ``two_moons`` (alias ``moons``): ``sklearn.datasets.make_moons(n, noise=0.1)`` -- outer
      moon ``(cos t, sin t)``, inner moon ``(1 - cos t, 1 - sin t - 0.5)``, ``t`` evenly spaced
      in ``[0, pi]``, plus N(0, 0.1^2) noise -- then ``2 x + [-1, -0.2]``.
    * ``eight_gaussians`` (alias ``8gaussians``): centres on the circle of radius 4 at
      multiples of 45 degrees, std 0.5, everything divided by 1.414.
    * ``checkerboard``: uniform on the 8 black squares of a 4x4 board covering ``[-4, 4]^2``.
    * ``pinwheel``: 5 arms, radial std 0.3, tangential std 0.1, rate 0.25, times 2.
    * ``rings``: 4 concentric circles of radii 3, 2.25, 1.5, 0.75 plus N(0, 0.08^2) noise.
    * ``swissroll``: ``sklearn.datasets.make_swiss_roll(n, noise=1.0)``, columns ``[0, 2]``,
      divided by 5.
    * ``flowjax_moons`` (not FFJORD): FlowJAX's ``flowjax.tasks.two_moons`` -- angle
      ``a ~ U[0, 2 pi)``, ``(2 cos a - 1, 2 sin a)`` for ``a <= pi`` and ``(2 cos a + 1, 2 sin a)``
      otherwise, plus N(0, 0.2^2) noise.  Standardized, its entropy floor is
      :data:`FLOWJAX_MOONS_ENTROPY` = 1.484 nats, the floor of FlowJAX's two-moons benchmark.

    As in scikit-learn / FFJORD, ``two_moons`` and ``rings`` place their points at evenly
    spaced angles (a deterministic grid for a given ``n``); ``key`` shuffles them and draws the
    noise.  All other densities are i.i.d. draws.  The same ``key`` gives the same points.

    Args:
      name: one of :data:`TOY2D_NAMES` (or FFJORD's ``moons`` / ``8gaussians``).
      n: number of points, a positive int.
      key: a ``jax.random`` key.
      standardize: if true, return ``(x - mean) / std`` with the density's fixed population
        moments (:func:`toy2d_stats`), so that all batches share one coordinate system.  The
        entropy floor :data:`TWO_MOONS_ENTROPY` = 1.830 nats refers to standardized two_moons
        (the 1.484 quoted elsewhere does not match this definition; see the constant).

    Returns:
      ``(n, 2)`` float32 array.

    Jit with ``jax.jit(toy2d, static_argnames=("name", "n", "standardize"))``.
    """
    name = _canonical_name(name)
    n = check_positive_int("n", n)
    return _toy2d(name, n, key, bool(standardize))


@functools.partial(jax.jit, static_argnums=(0, 1, 3))
def _toy2d(name: str, n: int, key, standardize: bool) -> jax.Array:
    # one compiled program per (name, n, standardize) instead of many eager ops
    x = _GENERATORS[name](key, n).astype(jnp.float32)
    if standardize:
        mean, std = toy2d_stats(name)
        x = (x - mean) / std
    return x


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------

#: Grey levels of the 8x8 digits: integers 0..16, i.e. 17 levels.
DIGITS_NUM_LEVELS = 17


class Digits(NamedTuple):
    """8x8 handwritten digits.

    Attributes:
      images: ``(n, 8, 8)`` float32 -- grey levels 0..16 (``raw``), in ``[-1, 1]``
        (``scaled``: ``2 raw / 16 - 1``) or in ``{0, 1}`` (``binary``: ``raw > 8``).
      labels: ``(n,)`` int32 digit classes 0..9.
    """

    images: jax.Array
    labels: jax.Array


@functools.lru_cache(maxsize=1)
def _digits_numpy() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()  # ships inside the scikit-learn wheel
    images = np.asarray(bunch.images, np.float32)  # (1797, 8, 8), integers 0..16
    labels = np.asarray(bunch.target, np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(images, labels, test_size=0.2, random_state=0)
    out = {"train": (x_tr, y_tr), "test": (x_te, y_te), "both": (images, labels)}
    for arr in (a for pair in out.values() for a in pair):
        arr.setflags(write=False)
    return out


def digits(split: str = "train", form: str = "scaled") -> Digits:
    """scikit-learn's bundled 8x8 handwritten digits (``sklearn.datasets.load_digits``).

    The split is ``train_test_split(test_size=0.2, random_state=0)``: 1,437 training and 360
    test images; ``"both"`` gives all 1,797 in scikit-learn's original order.

    Args:
      split: ``"train"``, ``"test"`` or ``"both"``.
      form: ``"scaled"`` (``[-1, 1]``, ``2 raw / 16 - 1``), ``"raw"`` (grey levels 0..16 as
        float32; :data:`DIGITS_NUM_LEVELS` = 17 levels) or ``"binary"`` (``raw > 8`` as 0./1.).

    Returns:
      :class:`Digits` with ``images`` ``(n, 8, 8)`` float32 and ``labels`` ``(n,)`` int32.

    For continuous density models on the discrete grey levels use :func:`dequantize` and report
    :func:`numpyro_hgf.metrics.bits_per_dim` with ``num_levels=17``.
    """
    check_choice("split", split, ("train", "test", "both"))
    check_choice("form", form, ("scaled", "raw", "binary"))
    raw, labels = _digits_numpy()[split]
    if form == "raw":
        images = raw
    elif form == "scaled":
        images = raw * np.float32(2.0 / 16.0) - np.float32(1.0)
    else:
        images = (raw > 8).astype(np.float32)
    return Digits(jnp.asarray(images, jnp.float32), jnp.asarray(labels, jnp.int32))


def dequantize(key, raw_levels, num_levels: int = DIGITS_NUM_LEVELS, interval=(0.0, 1.0)):
    """Uniform dequantization of integer levels into continuous data.

    ``x = low + (high - low) (raw + u) / num_levels`` with ``u ~ U[0, 1)`` i.i.d. per entry, so
    ``x`` lies in ``[low, high)``; the default ``interval=(0, 1)`` gives ``(raw + u) / L``, and
    ``interval=(-1, 1)`` gives ``2 (raw + u) / L - 1``.

    Log-likelihood correction.  Each level ``k`` owns the cell ``[k, k+1) * scale + low`` of
    width ``scale = (high - low) / num_levels`` in ``x``-space, so for any continuous density
    ``p`` on ``x`` (Jensen, Theis et al. 2016)::

        log P(raw) >= E_u[log p(x)] + D log(scale),     D = number of dimensions,

    and the bits/dim of the discrete data is bounded by
    ``-(E_u[log p(x)] + D log scale) / (D log 2)`` -- what
    :func:`numpyro_hgf.metrics.bits_per_dim` computes with the same ``num_levels`` and
    ``interval``.  Example: the uniform density on ``[-1, 1]^D`` has ``log p = -D log 2``; with
    17 levels its bits/dim is ``log2(17) = 4.09``.

    Args:
      key: a ``jax.random`` key.
      raw_levels: array of integer levels in ``0 .. num_levels - 1`` (any shape, any numeric
        dtype), e.g. ``digits(form="raw").images``.
      num_levels: number of discrete levels ``L`` (17 for the digits).
      interval: ``(low, high)`` of the continuous data.

    Returns:
      float32 array of the shape of ``raw_levels``.
    """
    num_levels = check_positive_int("num_levels", num_levels)
    low, high = _check_interval(interval)
    raw = jnp.asarray(raw_levels)
    check_finite("raw_levels", raw)
    if not np.issubdtype(raw.dtype, np.number) or raw.dtype == jnp.bool_:
        raise TypeError(f"raw_levels: expected a numeric array of levels, got {_describe(raw)}")
    if is_concrete(raw) and raw.size:
        arr = np.asarray(raw)
        integral = bool(np.all(arr == np.round(arr)))
        if not integral or arr.min() < 0 or arr.max() > num_levels - 1:
            raise ValueError(
                f"raw_levels: expected integer levels in 0..{num_levels - 1}, got "
                f"{'non-integer ' if not integral else ''}values in [{arr.min()}, {arr.max()}]"
            )
    return _dequantize(key, raw, num_levels, low, high)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _dequantize(key, raw, num_levels: int, low: float, high: float):
    u = jax.random.uniform(key, raw.shape, jnp.float32)
    scale = (high - low) / num_levels
    x = (low + scale * (raw.astype(jnp.float32) + u)).astype(jnp.float32)
    # u < 1, but the top cell can round up to ``high`` in float32: keep the half-open range
    return jnp.minimum(x, jnp.nextafter(jnp.float32(high), jnp.float32(low)))


# --------------------------------------------------------------------------------------------
# clinical tables
# --------------------------------------------------------------------------------------------


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
