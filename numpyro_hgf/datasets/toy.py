"""The six 2-D benchmark densities of FFJORD (Grathwohl et al. 2019, ``lib/toy_data.py`` in
``rtqichen/ffjord``) and FlowJAX's two moons, re-implemented with ``jax.random`` so that the
same key gives the same points (no NumPy / scikit-learn global randomness)."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks import (
    check_choice,
    check_flag,
    check_key,
    check_positive_int,
    describe,
)
from numpyro_hgf._checks.arrays import check_real_array

__all__ = [
    "TOY2D_NAMES",
    "TWO_MOONS_ENTROPY",
    "FLOWJAX_MOONS_ENTROPY",
    "toy2d",
    "toy2d_stats",
    "standardize",
]

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
    x = check_real_array("x", x)
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
        raise TypeError(f"axis: expected an integer axis, got {axis!r}")
    if x.ndim == 0:
        raise ValueError(f"x: expected an array with a sample axis, got {describe(x)}")
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
    key = check_key("key", key)
    check_flag("standardize", standardize)
    return _toy2d(name, n, key, bool(standardize))


@functools.partial(jax.jit, static_argnums=(0, 1, 3))
def _toy2d(name: str, n: int, key, standardize: bool) -> jax.Array:
    # one compiled program per (name, n, standardize) instead of many eager ops
    x = _GENERATORS[name](key, n).astype(jnp.float32)
    if standardize:
        mean, std = toy2d_stats(name)
        x = (x - mean) / std
    return x
