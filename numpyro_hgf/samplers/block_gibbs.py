"""Gibbs sampling: a generic block-Gibbs driver and the sweeps of Boltzmann machines.

A Gibbs *sweep* resamples every block of the state once from its full conditional.  The
driver :func:`gibbs` runs ``num_steps`` sweeps inside :func:`jax.lax.scan` from a given
initial state, for any of

* a model with a ``gibbs_step(key, x) -> x`` method (``BernoulliRBM``: block sweep
  ``h ~ p(h | v)``, ``v ~ p(v | h)``; ``BoltzmannMachine``: sequential single-site sweep),
* a callable ``step(key, x) -> x`` (one sweep), or
* a sequence of block updates ``[update_1, ..., update_m]``, each
  ``update_i(key, state) -> state`` resampling its block given the rest (one sweep
  applies them in order, with independent keys).

Each sweep leaves the target invariant, so the chain converges to it (Geman & Geman 1984).
States may be arrays or pytrees; chains are run in parallel by batching inside the
updates (every kernel in this package is batched over a leading chain axis).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from numpyro_hgf._checks import check_positive_int
from numpyro_hgf._checks.arrays import check_finite_tree
from numpyro_hgf.nn.boltzmann import rbm_hidden_probs, rbm_visible_probs
from numpyro_hgf.nn.deep_boltzmann import dbm_layer_logits

__all__ = ["gibbs", "as_sweep", "rbm_gibbs_sweep", "bm_gibbs_sweep", "dbm_gibbs_sweep"]


def rbm_gibbs_sweep(params, key, v):
    """One block-Gibbs sweep of an RBM, ``h ~ p(h | v)``, ``v ~ p(v | h)``; ``v: (..., V)``
    (float 0/1; ``params`` as in :mod:`numpyro_hgf.nn.boltzmann`)."""
    kh, kv = jax.random.split(key)
    dtype = params["W"].dtype
    h = jax.random.bernoulli(kh, rbm_hidden_probs(params, v)).astype(dtype)
    return jax.random.bernoulli(kv, rbm_visible_probs(params, h)).astype(dtype)


def dbm_gibbs_sweep(params, key, layers):
    """One block-Gibbs sweep of a deep Boltzmann machine (Salakhutdinov & Hinton 2009):
    all odd layers from ``p(x_odd | x_even)``, then all even layers (the visible one
    included) from ``p(x_even | x_odd)``; each block factorises over its units.

    ``layers = (v, h¹, ..., h^L)`` with ``layers[l]: (..., n_l)`` float 0/1; returns the new
    tuple (``params`` as in :mod:`numpyro_hgf.nn.deep_boltzmann`)."""
    dtype = params["weights"][0].dtype
    layers = list(layers)
    keys = jax.random.split(key, len(layers))
    for parity in (1, 0):
        for i in range(parity, len(layers), 2):
            probs = jax.nn.sigmoid(dbm_layer_logits(params, layers, i))
            layers[i] = jax.random.bernoulli(keys[i], probs).astype(dtype)
    return tuple(layers)


def bm_gibbs_sweep(params, key, y, beta=1.0):
    """One sequential single-site Gibbs sweep of ``p_β(y) ∝ exp(½ β yᵀWy + bᵀy)``.

    ``y: (..., d)`` spins; site ``i`` is resampled from
    ``p(y_i = +1 | y_-i) = σ(2 (β W_i·y + b_i))`` for ``i = 0, ..., d - 1``.
    """
    W, b = params["W"], params["b"]
    y = jnp.asarray(y, W.dtype)
    u = jax.random.uniform(key, y.shape, W.dtype)

    def site(i, y):
        field = beta * (y @ W[:, i]) + b[i]  # W_ii = 0, so y_i itself does not enter
        new = jnp.where(u[..., i] < jax.nn.sigmoid(2.0 * field), 1.0, -1.0).astype(W.dtype)
        return y.at[..., i].set(new)

    return jax.lax.fori_loop(0, y.shape[-1], site, y)


def as_sweep(kernel) -> Callable[[jax.Array, Any], Any]:
    """Turn a model / callable / sequence of block updates into one sweep ``(key, x) -> x``."""
    if hasattr(kernel, "gibbs_step") and callable(kernel.gibbs_step):
        return kernel.gibbs_step
    if callable(kernel):
        return kernel
    if isinstance(kernel, Sequence) and not isinstance(kernel, str) and len(kernel) > 0:
        updates = tuple(kernel)
        bad = [type(u).__name__ for u in updates if not callable(u)]
        if bad:
            raise TypeError(
                f"kernel: expected a sequence of callables (key, state) -> state, got {bad}"
            )

        def sweep(key, state):
            for k, update in zip(jax.random.split(key, len(updates)), updates, strict=True):
                state = update(k, state)
            return state

        return sweep
    raise TypeError(
        "kernel: expected a model with a gibbs_step method, a callable (key, x) -> x, or a "
        f"non-empty sequence of block updates, got {type(kernel).__name__}"
    )


def gibbs(key, kernel, init, num_steps: int, *, thin: int = 1, return_trace: bool = False):
    """Run ``num_steps`` Gibbs sweeps from ``init``.

    Args:
        key: ``jax.random`` key (split once per sweep).
        kernel: a model with ``gibbs_step`` (e.g. :class:`~numpyro_hgf.distributions.
            BernoulliRBM`), a sweep ``(key, x) -> x``, or a sequence of block updates
            (see the module docstring).
        init: the initial state, e.g. ``(num_chains, V)`` binary visible vectors (NaN or
            inf entries are a ``ValueError``: they would run NaN chains).
        num_steps: number of sweeps (positive; static under ``jit``).
        thin: with ``return_trace``, keep every ``thin``-th state.
        return_trace: also return the states after sweeps ``thin, 2 thin, ...``
            stacked on a new leading axis: ``(num_steps // thin, *init.shape)``.

    Returns:
        The state after ``num_steps`` sweeps, or ``(state, trace)`` with ``return_trace``.
    """
    num_steps = check_positive_int("num_steps", num_steps)
    thin = check_positive_int("thin", thin)
    check_finite_tree("init", init)
    sweep = as_sweep(kernel)
    if not return_trace:

        def body(x, k):
            return sweep(k, x), None

        x, _ = jax.lax.scan(body, init, jax.random.split(key, num_steps))
        return x
    if num_steps % thin:
        raise ValueError(
            f"thin: expected a divisor of num_steps={num_steps} with return_trace, got {thin}"
        )

    def outer(x, k):
        def inner(x, kk):
            return sweep(kk, x), None

        x, _ = jax.lax.scan(inner, x, jax.random.split(k, thin))
        return x, x

    x, trace = jax.lax.scan(outer, init, jax.random.split(key, num_steps // thin))
    return x, trace
