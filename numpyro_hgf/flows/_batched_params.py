"""Learned distributions whose network params carry extra leading batch dimensions.

``numpyro.contrib.control_flow.scan`` (and ``jax.vmap`` over a constructor, as
``numpyro.distributions.batch_util.vmap_over`` does) stacks every pytree data leaf of a
distribution along new leading axes.  For a distribution whose data are a network's params
that means params of shape ``(*B, *param_shape)``, which the network cannot apply.  The
convention here, the one NumPyro's own distributions follow for their array parameters:

* ``B`` (the *param batch shape*) is the leading shape of the params beyond the network's own
  param shapes; the distribution's ``batch_shape`` gains it in front
  (:func:`promote_param_batch_shape`, registered with NumPyro's ``promote_batch_shape``);
* ``log_prob(value)`` with ``value: (..., *B, *event_shape)`` maps the unbatched distribution
  over ``B`` (:func:`map_over_param_batch`): ``(..., *B)``, entry ``b`` the log density of the
  distribution with params ``params[b]``;
* ``sample(key, sample_shape)`` draws ``(*sample_shape, *B, *event_shape)`` with independent
  keys per batch element (:func:`sample_over_param_batch`).

Every data leaf of the distribution is mapped along ``B`` (a leaf that does not start with
``B`` is broadcast).  Lives in ``flows/`` (the lowest room with a network-holding
distribution) so that every distribution module can use it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = [
    "leading_batch_shape",
    "map_over_param_batch",
    "sample_over_param_batch",
    "promote_param_batch_shape",
    "register_param_batch",
]


def leading_batch_shape(tree, reference_ndims) -> tuple[int, ...]:
    """The leading shape every leaf of ``tree`` has beyond its reference ndim.

    ``reference_ndims``: the ndims of the unbatched leaves, in ``jax.tree.leaves`` order.
    A ``ValueError`` when the leaves disagree (they are not one batch of params).
    """
    leaves = jax.tree.leaves(tree)
    reference_ndims = tuple(reference_ndims)
    if len(leaves) != len(reference_ndims):
        raise ValueError(
            f"params: expected {len(reference_ndims)} arrays (the network's params), "
            f"got {len(leaves)}"
        )
    shapes = {
        tuple(jnp.shape(x))[: max(jnp.ndim(x) - n, 0)]
        for x, n in zip(leaves, reference_ndims, strict=True)
    }
    if len(shapes) > 1:
        raise ValueError(
            f"params: expected one leading batch shape on every param, got {sorted(shapes)}"
        )
    return shapes.pop() if shapes else ()


def _batched_leaves(d, batch_shape):
    leaves, treedef = jax.tree.flatten(d)
    k = len(batch_shape)
    out = [
        x
        if tuple(jnp.shape(x))[:k] == batch_shape
        else jnp.broadcast_to(x, batch_shape + jnp.shape(x))
        for x in leaves
    ]
    return out, treedef


def _single(treedef, leaves, batch_shape):
    d = jax.tree.unflatten(treedef, leaves)
    k = len(batch_shape)
    own = tuple(getattr(d, "_batch_shape", ()))
    if own[:k] == batch_shape:  # a promoted batch shape: the slice has the unbatched one
        d = copy.copy(d)
        d._batch_shape = own[k:]
    return d


def map_over_param_batch(d, batch_shape, fn: Callable, value, event_ndim: int):
    """``fn(d_b, value_b)`` for every ``b`` in ``batch_shape``: ``(..., *B, *event) -> (..., *B)``.

    ``d_b`` is ``d`` with every data leaf sliced at ``b`` (its own batch shape without
    ``B``); ``fn`` must return ``(...)`` for ``value_b: (..., *event)``.
    """
    batch_shape = tuple(batch_shape)
    value = jnp.asarray(value)
    event = value.shape[value.ndim - event_ndim :] if event_ndim else ()
    value = jnp.broadcast_to(value, jnp.broadcast_shapes(value.shape, batch_shape + event))
    leaves, treedef = _batched_leaves(d, batch_shape)

    def g(leaves, v):
        return fn(_single(treedef, leaves, batch_shape), v)

    for i in range(len(batch_shape)):  # innermost map first: it strips the last batch dim
        g = jax.vmap(g, in_axes=(0, -(i + 1) - event_ndim), out_axes=-(i + 1))
    return g(leaves, value)


def sample_over_param_batch(d, batch_shape, fn: Callable, key, sample_shape=()):
    """``fn(d_b, key_b, sample_shape)`` for every ``b``, stacked at axis ``len(sample_shape)``:
    ``(*sample_shape, *B, ...)`` (a pytree of outputs is stacked leaf by leaf)."""
    batch_shape = tuple(batch_shape)
    sample_shape = tuple(sample_shape)
    keys = jax.random.split(key, math.prod(batch_shape))
    keys = keys.reshape(batch_shape + keys.shape[1:])
    leaves, treedef = _batched_leaves(d, batch_shape)

    def g(leaves, k):
        return fn(_single(treedef, leaves, batch_shape), k, sample_shape)

    for _ in batch_shape:
        g = jax.vmap(g, in_axes=(0, 0), out_axes=len(sample_shape))
    return g(leaves, keys)


def promote_param_batch_shape(d):
    """NumPyro's ``promote_batch_shape`` for a distribution with ``param_batch_shape``: a
    copy whose ``batch_shape`` starts with the params' extra leading dimensions."""
    batch_shape = tuple(d.param_batch_shape)
    new = copy.copy(d)
    own = tuple(d.batch_shape)
    if batch_shape and own[: len(batch_shape)] != batch_shape:
        new._batch_shape = batch_shape + own
    return new


def register_param_batch(cls):
    """Class decorator: register :func:`promote_param_batch_shape` for ``cls`` with
    ``numpyro.distributions.batch_util.promote_batch_shape`` (what ``scan`` calls)."""
    from numpyro.distributions.batch_util import promote_batch_shape

    promote_batch_shape.register(cls, promote_param_batch_shape)
    return cls
