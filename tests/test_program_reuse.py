"""A second fit_* call with the same shapes and options compiles nothing (issue 21).

``nh.train.programs`` keeps one jitted training program per loss identity, optimizer and trainer
configuration: the model travels into the program as an argument (``ModelLoss``), so new
initial params, a new base or new data of the same shapes reuse the executable.  Checked with
JAX's own compile events (``/jax/core/compile/backend_compile_duration``), with negative
controls (a changed architecture or batch size compiles again), and against the uncached path
(the same key gives the same params).
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from jax import monitoring

import numpyro_hgf as nh
from numpyro_hgf.objectives import negative_log_likelihood
from numpyro_hgf.train.fit import fit_objective
from numpyro_hgf.train.options import resolve_options
from numpyro_hgf.train.programs import ModelLoss

_EVENTS: list[str] = []
monitoring.register_event_duration_secs_listener(
    lambda name, _duration, **_kw: _EVENTS.append(name) if "backend_compile" in name else None
)

DATA = np.random.default_rng(0).normal(size=(128, 2)).astype(np.float32)
FIT = dict(num_layers=2, hidden=(8,), steps=30, batch_size=32, progress=False)


@contextlib.contextmanager
def count_compiles():
    """Yields a list that holds the backend compilations of the block when it exits."""
    start = len(_EVENTS)
    out: list[str] = []
    yield out
    out.extend(_EVENTS[start:])


def test_second_fit_flow_compiles_nothing():
    first = nh.train.fit_flow("maf", DATA, key=jax.random.key(0), **FIT)
    with count_compiles() as compiled:
        second = nh.train.fit_flow("maf", DATA * 1.5 + 0.3, key=jax.random.key(1), **FIT)
    assert compiled == [], f"a second fit_flow compiled {len(compiled)} programs"
    # the same program on other values gives other params (nothing was frozen in)
    a = jax.tree.leaves(first.params)
    b = jax.tree.leaves(second.params)
    assert any(not np.allclose(x, y) for x, y in zip(a, b, strict=True))


def test_a_changed_configuration_compiles_again():
    """Negative control: another minibatch size is another program."""
    nh.train.fit_flow("maf", DATA, key=jax.random.key(0), **FIT)
    with count_compiles() as compiled:
        nh.train.fit_flow("maf", DATA, key=jax.random.key(0), **{**FIT, "batch_size": 16})
    assert len(compiled) >= 1


def test_model_arrays_are_arguments_not_constants():
    """Two flows that differ only in their base's location share the program and their
    losses differ by the closed-form shift of the Normal base."""
    flow = nh.flows.build_flow("realnvp", 2, num_layers=1, hidden=(4,), key=0)
    base = dist.Normal(jnp.full(2, 0.5), jnp.ones(1)).to_event(1)
    shifted = type(flow)(
        base, flow.transforms, config=flow.config, validate_args=flow._validate_args
    )
    x = jnp.zeros((1, 2))
    a = ModelLoss(negative_log_likelihood, flow)
    b = ModelLoss(negative_log_likelihood, shifted)
    assert a.identity() == b.identity()
    # identity transforms at initialisation: -log N(0; 0.5, 1) + log N(0; 0, 1) per dim
    assert float(b(flow.params, x, None) - a(flow.params, x, None)) == pytest.approx(0.25, rel=1e-5)


def test_reuse_does_not_change_results():
    """The cached program (``ModelLoss``) and a fresh closure give the same params."""
    flow = nh.flows.build_flow("maf", 2, num_layers=2, hidden=(8,), key=0)
    options = resolve_options(
        None, dict(steps=30, batch_size=32, progress=False), nh.train.flow.RECIPE
    )
    key = jax.random.key(3)
    cached = fit_objective(
        ModelLoss(negative_log_likelihood, flow), flow.params, DATA, options, key=key,
        description="cached",
    )  # fmt: skip
    fresh = fit_objective(
        lambda p, batch, _k: negative_log_likelihood(flow, p, batch), flow.params, DATA,
        options, key=key, description="fresh",
    )  # fmt: skip
    np.testing.assert_allclose(cached.history, fresh.history, rtol=1e-6)
    for x, y in zip(jax.tree.leaves(cached.params), jax.tree.leaves(fresh.params), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)


def test_second_fit_rbm_compiles_nothing():
    data = (np.random.default_rng(1).random((64, 6)) < 0.3).astype(np.float32)
    nh.train.fit_rbm(data, num_hidden=3, key=jax.random.key(0), epochs=1, progress=False)
    with count_compiles() as compiled:
        nh.train.fit_rbm(data[::-1], num_hidden=3, key=jax.random.key(1), epochs=1, progress=False)
    assert compiled == []


def test_model_loss_rejects_a_non_callable():
    with pytest.raises(TypeError, match="objective: expected a callable"):
        ModelLoss("nll", None)
