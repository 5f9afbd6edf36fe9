"""``DequantizedCategorical``: the density of uniformly dequantized ``L``-level data.

Data with ``L`` discrete levels (the 17 grey levels of the digits) are made continuous by
uniform dequantization (:func:`numpyro_hgf.datasets.dequantize`); a categorical over the
levels with a uniform density inside each level's cell is a proper density on ``[0, 1)`` whose
log density is the discrete log-probability plus ``log L``, so bits/dim computed on the
dequantized data equal the discrete bits/dim (Theis et al. 2016, Sec. 3.1).  Used as the VAE's
``"categorical"`` likelihood (:mod:`numpyro_hgf.models.vae`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax import lax
from numpyro.distributions import constraints
from numpyro.distributions.util import validate_sample

from numpyro_hgf._checks import _describe
from numpyro_hgf._checks.arrays import check_real_array

__all__ = ["DequantizedCategorical", "half_open_unit_interval"]


class _HalfOpenUnitInterval(constraints._Interval):
    """``[0, 1)``: the support of uniformly dequantized levels."""

    def __init__(self):
        super().__init__(0.0, 1.0)

    def __call__(self, x):
        return (x >= 0.0) & (x < 1.0)

    def feasible_like(self, prototype):
        return jnp.full_like(prototype, 0.5)


half_open_unit_interval = _HalfOpenUnitInterval()


class DequantizedCategorical(dist.Distribution):
    """Piecewise-constant density on ``[0, 1)`` of uniformly dequantized ``L``-level data.

    The level ``k = floor(L x)`` is categorical with ``softmax(logits)`` and ``x`` is uniform on
    its cell ``[k / L, (k + 1) / L)`` (the generative reading of
    :func:`numpyro_hgf.datasets.dequantize` with ``interval=(0, 1)``), so

        p(x) = L softmax(logits)[floor(L x)],        log p(x) = log L + log P(k).

    The density integrates to 1 over ``[0, 1)``; ``bits_per_dim(log p, D, num_levels=L)`` of it
    is the discrete bits/dim ``-log2 P(k) / D`` exactly (the dequantization bound of Theis et al.
    2016 is tight for a density that is constant on the cells).

    Args:
        logits: ``(*batch_shape, L)`` unnormalised log-probabilities of the ``L >= 2`` levels.

    Shapes: ``batch_shape = logits.shape[:-1]``, ``event_shape = ()`` (one pixel; use
    ``.to_event(1)`` for an image).  ``log_prob`` is differentiable in ``logits`` (not in ``x``,
    where it is piecewise constant).
    """

    arg_constraints = {"logits": constraints.real_vector}
    support = half_open_unit_interval
    has_enumerate_support = False

    def __init__(self, logits, *, validate_args=None):
        check_real_array("logits", logits)  # strings, objects, complex: a TypeError
        if jnp.ndim(logits) < 1:
            raise ValueError(
                f"logits: expected an array of shape (..., num_levels), got {_describe(logits)}"
            )
        if jnp.shape(logits)[-1] < 2:
            raise ValueError(
                f"num_levels: expected at least 2 levels (logits.shape[-1]), "
                f"got {jnp.shape(logits)[-1]}"
            )
        self.logits = logits
        super().__init__(batch_shape=jnp.shape(logits)[:-1], validate_args=validate_args)

    @property
    def num_levels(self) -> int:
        return jnp.shape(self.logits)[-1]

    @property
    def probs(self):
        return jax.nn.softmax(self.logits, axis=-1)

    def sample(self, key, sample_shape=()):
        key_level, key_u = jax.random.split(key)
        shape = sample_shape + self.batch_shape
        level = jax.random.categorical(key_level, self.logits, shape=shape)
        u = jax.random.uniform(key_u, shape, dtype=jnp.result_type(self.logits, float))
        # (level + u) / L < 1 can round to 1.0 in float32: stay inside [0, 1)
        x = (level + u) / self.num_levels
        return jnp.minimum(x, jnp.nextafter(jnp.ones((), x.dtype), 0.0))

    def levels(self, value):
        """``floor(L x)`` as int32, clipped to ``0 .. L - 1``."""
        L = self.num_levels
        return jnp.clip(jnp.floor(jnp.asarray(value) * L), 0, L - 1).astype(jnp.int32)

    @validate_sample
    def log_prob(self, value):
        batch_shape = lax.broadcast_shapes(jnp.shape(value), self.batch_shape)
        idx = jnp.broadcast_to(self.levels(value)[..., None], batch_shape + (1,))
        logp = jax.nn.log_softmax(self.logits, axis=-1)
        logp = jnp.broadcast_to(logp, batch_shape + logp.shape[-1:])
        return jnp.log(self.num_levels) + jnp.take_along_axis(logp, idx, axis=-1)[..., 0]

    def _cell_moments(self):
        L = self.num_levels
        mid = (jnp.arange(L) + 0.5) / L
        p = self.probs
        return p, mid, L

    @property
    def mean(self):
        p, mid, _ = self._cell_moments()
        return jnp.sum(p * mid, axis=-1)

    @property
    def variance(self):
        p, mid, L = self._cell_moments()
        second = jnp.sum(p * (mid**2 + 1.0 / (12.0 * L**2)), axis=-1)
        return second - self.mean**2
