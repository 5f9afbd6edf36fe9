"""NumPyro's conventions for the learned distributions (issue 16, items 6 and 10), and float64.

Measured on the old code:

* inside ``numpyro.contrib.control_flow.scan`` every learned distribution but
  ``DequantizedCategorical`` failed at ``log_density`` (``build_flow("realnvp")``:
  ``ScopeParamShapeError ... expected shape (1, 4), received (3, 1, 4)``; NHF the same;
  RBM / BM dot_general shape errors): scan stacks the params along a new leading axis;
* ``NeuralHamiltonianFlow(validate_args=True).log_prob(nan)`` returned NaN silently;
* ``numpyro.enable_validation(); build_flow(...)._validate_args`` was ``None`` (the flag was
  read inside ``jit``), and ``build_flow`` had no ``validate_args``;
* ``EnergyBasedModel.has_rsample`` was ``True`` (its draws are MCMC chains).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.contrib.control_flow import scan
from numpyro.distributions.batch_util import vmap_over
from numpyro.infer.util import log_density

import numpyro_hgf as nh
from numpyro_hgf.distributions import (
    BernoulliRBM,
    BoltzmannMachine,
    ContinuousFlow,
    DeepBeliefNet,
    DeepBoltzmannMachine,
    DequantizedCategorical,
    DiffusionPrior,
    EnergyBasedModel,
    HGFPrior,
)
from numpyro_hgf.nn import EnergyMLP, TimeMLP
from numpyro_hgf.paths import VPSDE, OscillationPath
from numpyro_hgf.samplers.ode import ODESolver

KEY = jax.random.PRNGKey(0)
T = 3


def _ebm(**kw):
    net = EnergyMLP((4,))
    params = net.init(jax.random.key(0), jnp.zeros((1, 2)))["params"]
    return EnergyBasedModel(net, params, (2,), num_steps=5, step_size=0.1, **kw)


def _bm():
    W = 0.3 * jax.random.normal(jax.random.key(2), (3, 3))
    W = W + W.T
    return BoltzmannMachine(
        W - jnp.diag(jnp.diag(W)), jnp.array([0.1, -0.2, 0.3]), num_gibbs_steps=3
    )


def _nhf(**kw):
    return nh.flows.NeuralHamiltonianFlow.create(
        0, 2, num_layers=1, num_steps=2, hidden=(4,), num_particles=4, **kw
    )


def _ode_prior(kind):
    net = TimeMLP(hidden=(4,), out_dim=2, embed_dim=4, time_scale=1.0)
    params = net.init(jax.random.key(3), jnp.zeros((1, 2)), jnp.zeros(()))["params"]
    solver = ODESolver("rk4", nfe=8)
    if kind == "hgf":
        return HGFPrior(net, params, OscillationPath(), event_shape=(2,), solver=solver)
    params = jax.tree.map(lambda p: 0.05 * p, params)  # a tame score net for the VP drift
    return DiffusionPrior(net, params, VPSDE(), eps=1e-2, solver=solver, sampler="ode")


def _continuous_flow():
    net = TimeMLP(hidden=(4,), out_dim=2, embed_dim=4, time_scale=1.0)
    params = net.init(jax.random.key(3), jnp.zeros((1, 2)), jnp.zeros(()))["params"]
    base = dist.Normal(jnp.zeros(2), 1.0).to_event(1)
    return ContinuousFlow(net, params, base, solver=ODESolver("rk4", nfe=8), trace="exact")


def _layers(sizes, seed):
    rng = np.random.default_rng(seed)
    weights = [
        0.5 * rng.standard_normal((a, b)) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    return [jnp.asarray(w, jnp.float32) for w in weights], [jnp.zeros(n) for n in sizes]


MAKERS = {
    "realnvp": lambda: nh.flows.build_flow("realnvp", 2, num_layers=2, hidden=(4,), key=1),
    "maf": lambda: nh.flows.build_flow("maf", 2, num_layers=1, hidden=(4,), key=1),
    "planar": lambda: nh.flows.build_flow("planar", 2, num_layers=1, key=1),
    "nhf": _nhf,
    "ebm": _ebm,
    "rbm": lambda: BernoulliRBM(
        0.3 * jax.random.normal(jax.random.key(1), (3, 2)),
        jnp.array([0.2, -0.1, 0.0]),
        num_gibbs_steps=3,
    ),
    "bm": _bm,
    "dequantized": lambda: DequantizedCategorical(jnp.array([0.5, -0.3, 0.1])),
    "hgf": lambda: _ode_prior("hgf"),
    "cflow": _continuous_flow,
    "diffusion": lambda: _ode_prior("diffusion"),
    "dbm": lambda: DeepBoltzmannMachine(*_layers((3, 2, 2), 4), num_gibbs_steps=3),
    "dbn": lambda: DeepBeliefNet(*_layers((3, 2, 2), 5), num_gibbs_steps=3),
}
CONTINUOUS = ("realnvp", "maf", "planar", "nhf", "ebm", "hgf", "cflow", "diffusion")


def _scan_model(d):
    def body(carry, t):
        x = numpyro.sample("x", d)
        return carry, x

    return scan(body, 0, jnp.arange(T))


# -- item 10: scan -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MAKERS))
def test_scan_site_matches_the_steps_by_hand(name):
    d = MAKERS[name]()
    with numpyro.handlers.seed(rng_seed=0):
        tr = numpyro.handlers.trace(_scan_model).get_trace(d)
    value = tr["x"]["value"]
    assert value.shape == (T, *d.batch_shape, *d.event_shape)
    assert tr["x"]["fn"].batch_shape == (T, *d.batch_shape)
    ld, _ = log_density(_scan_model, (d,), {}, {"x": value})
    by_hand = sum(float(jnp.sum(d.log_prob(value[t]))) for t in range(T))
    np.testing.assert_allclose(float(ld), by_hand, rtol=1e-5, atol=1e-5)
    # the stacked site itself: a batch of T distributions, entry t the step-t density
    per_step = tr["x"]["fn"].log_prob(value)
    assert per_step.shape == (T, *d.batch_shape)
    np.testing.assert_allclose(
        np.asarray(per_step), np.asarray(d.log_prob(value)), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("name", ["realnvp", "ebm", "rbm"])
def test_stacked_params_sample_a_batch(name):
    d = MAKERS[name]()
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), d)
    assert stacked.param_batch_shape == (2,)
    x = stacked.sample(KEY, (4,))
    assert x.shape == (4, 2, *d.event_shape)
    lp = stacked.log_prob(x)
    assert lp.shape == (4, 2)
    np.testing.assert_allclose(np.asarray(lp), np.asarray(d.log_prob(x)), rtol=1e-5, atol=1e-5)


# -- item 6 / 10: validation -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["realnvp", "nhf", "ebm"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_validated_log_prob_warns_out_of_support(name, bad):
    d = {
        "realnvp": lambda: nh.flows.build_flow(
            "realnvp", 2, num_layers=2, hidden=(4,), key=1, validate_args=True
        ),
        "nhf": lambda: _nhf(validate_args=True),
        "ebm": lambda: _ebm(validate_args=True),
    }[name]()
    value = jnp.array([[bad, 0.0], [0.1, 0.2]])
    with pytest.warns(UserWarning, match="Out-of-support"):
        lp = d.log_prob(value)
    assert float(lp[0]) == -np.inf and np.isfinite(float(lp[1]))


@pytest.fixture
def validation_off():
    before = dist.Distribution._validate_args
    numpyro.enable_validation(False)
    yield
    numpyro.enable_validation(before)


@pytest.mark.parametrize("name", CONTINUOUS)
def test_unchecked_non_finite_value_gives_nan_or_minus_inf(name, validation_off):
    d = MAKERS[name]()
    assert not d._validate_args
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning, no exception
        lp = d.log_prob(jnp.array([[jnp.nan, 0.0], [jnp.inf, 0.0], [0.1, 0.2]]))
    assert bool(jnp.isnan(lp[0]) | (lp[0] == -jnp.inf))
    assert bool(jnp.isnan(lp[1]) | (lp[1] == -jnp.inf))
    assert bool(jnp.isfinite(lp[2]))


def test_build_flow_follows_the_global_validation_flag(validation_off):
    numpyro.enable_validation(True)
    try:
        flow = nh.flows.build_flow("realnvp", 2, num_layers=2, hidden=(4,), key=1)
    finally:
        numpyro.enable_validation(False)
    assert flow._validate_args is True
    with pytest.warns(UserWarning, match="Out-of-support"):
        flow.log_prob(jnp.array([jnp.nan, 0.0]))
    quiet = nh.flows.build_flow("realnvp", 2, num_layers=2, hidden=(4,), key=1)
    assert not quiet._validate_args
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet.log_prob(jnp.array([jnp.nan, 0.0]))
    assert nh.flows.build_flow("planar", 2, num_layers=1, validate_args=True)._validate_args


# -- item 10: has_rsample ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, expected",
    [
        ("realnvp", True),
        ("maf", True),
        ("planar", True),
        ("nhf", True),
        ("ebm", False),
        ("rbm", False),
        ("bm", False),
        ("dequantized", False),
        ("hgf", True),
        ("diffusion", True),
        ("dbm", False),
        ("dbn", False),
    ],
)
def test_has_rsample_only_where_reparameterized(name, expected):
    d = MAKERS[name]()
    assert d.has_rsample is expected
    if not expected:
        with pytest.raises(NotImplementedError):
            d.rsample(KEY)


def test_flow_sample_gradient_is_the_reparameterized_one():
    # d/dloc E[x] = 1 for a flow whose base is shifted: the gradient flows through the draw
    flow = MAKERS["realnvp"]()

    def mean_x(shift):
        base = dist.Normal(jnp.zeros(2) + shift, 1.0).to_event(1)
        f = nh.flows.NormalizingFlow(base, flow.transforms)
        return jnp.mean(f.rsample(KEY, (2000,))[:, 0])

    # zero-output conditioners: the flow is the identity at init, so the derivative is 1
    np.testing.assert_allclose(float(jax.grad(mean_x)(0.0)), 1.0, atol=1e-5)


# -- item 10: NumPyro's generic distribution checks --------------------------------------------
@pytest.mark.parametrize("name", sorted(MAKERS))
def test_shapes_expand_to_event_and_mask(name):
    d = MAKERS[name]()
    x = d.sample(KEY, (5,))
    assert x.shape == (5, *d.batch_shape, *d.event_shape)
    assert d.log_prob(x).shape == (5, *d.batch_shape)
    e = d.expand((2, *d.batch_shape))
    assert e.batch_shape == (2, *d.batch_shape)
    assert e.sample(KEY, (3,)).shape == (3, 2, *d.batch_shape, *d.event_shape)
    assert e.log_prob(x[:2]).shape == (2, *d.batch_shape)
    ind = e.to_event(1)
    assert ind.event_shape == (2, *d.batch_shape, *d.event_shape)[: 1 + len(d.event_shape)] or (
        ind.event_shape[0] == d.batch_shape[-1] if d.batch_shape else ind.event_shape[0] == 2
    )
    assert ind.log_prob(ind.sample(KEY, (4,))).shape == (4, *ind.batch_shape)
    assert d.mask(False).log_prob(x).shape == (5, *d.batch_shape)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_pytree_round_trip_under_jit_and_vmap(name):
    d = MAKERS[name]()
    x = d.sample(KEY, (4,))
    leaves, treedef = jax.tree.flatten(d)
    again = jax.tree.unflatten(treedef, leaves)
    assert type(again) is type(d) and again.batch_shape == d.batch_shape
    jitted = jax.jit(lambda d: d)(d)
    assert type(jitted) is type(d) and jitted.event_shape == d.event_shape
    np.testing.assert_allclose(
        np.asarray(jax.jit(lambda d, x: d.log_prob(x))(d, x)),
        np.asarray(d.log_prob(x)),
        rtol=1e-5,
        atol=1e-5,
    )
    stacked = jax.tree.map(lambda leaf: jnp.stack([leaf, leaf]), d)
    lp = jax.vmap(lambda d: d.log_prob(x))(stacked)
    assert lp.shape == (2, 4, *d.batch_shape)
    np.testing.assert_allclose(np.asarray(lp[1]), np.asarray(d.log_prob(x)), rtol=1e-5, atol=1e-5)


VMAP_OVER = {
    "ebm": dict(params=0),
    "rbm": dict(W=0, b_visible=0, b_hidden=0),
    "bm": dict(W=0, b=0),
    "dequantized": dict(logits=0),
}


@pytest.mark.parametrize("name", sorted(VMAP_OVER))
def test_vmap_over_a_constructor(name):
    d = MAKERS[name]()
    axes = vmap_over(d, **VMAP_OVER[name])
    fields = {f: getattr(d, f) for f in VMAP_OVER[name]}

    def make(**kw):
        data, aux = d.tree_flatten()
        names = type(d).gather_pytree_data_fields()
        return type(d).tree_unflatten(
            aux, tuple(kw.get(n, v) for n, v in zip(names, data, strict=True))
        )

    batched = jax.vmap(lambda f: make(**f), out_axes=axes)(
        jax.tree.map(lambda v: jnp.stack([v, v]), fields)
    )
    one = d.sample(KEY)
    two = jax.vmap(lambda d: d.sample(KEY), in_axes=(axes,))(batched)
    assert two.shape == (2, *one.shape)


# -- float64 ------------------------------------------------------------------------------------
def _to64(d):
    return jax.tree.map(
        lambda x: (
            jnp.asarray(np.asarray(x), jnp.float64)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)
            else x
        ),
        d,
    )


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "nhf" else n for n in sorted(MAKERS)]
)
def test_float64_sample_and_log_prob(name):
    d32 = MAKERS[name]()
    x = d32.sample(KEY, (6,))
    lp32 = d32.log_prob(x)
    assert lp32.dtype == jnp.float32
    with jax.enable_x64(True):
        d64 = _to64(d32)
        x64 = d64.sample(KEY, (6,))
        assert x64.dtype == jnp.float64
        lp64 = d64.log_prob(jnp.asarray(np.asarray(x), jnp.float64))
        assert lp64.dtype == jnp.float64
        assert d64.log_prob(x64).dtype == jnp.float64
        if name == "nhf":  # its log_prob is an estimate from float64 draws: compare the exact
            z = jnp.concatenate([jnp.asarray(np.asarray(x), jnp.float64)] * 2, axis=-1)
            lp64 = d64.joint_log_prob(z)
            assert lp64.dtype == jnp.float64
    if name == "nhf":
        lp32 = d32.joint_log_prob(jnp.concatenate([x, x], axis=-1))
    np.testing.assert_allclose(np.asarray(lp64), np.asarray(lp32), rtol=1e-4, atol=1e-4)


def test_with_solver_swaps_only_the_solver():
    d = _continuous_flow()
    accurate = d.with_solver(ODESolver("tsit5", rtol=1e-8, atol=1e-8))
    assert accurate.solver == ODESolver("tsit5", rtol=1e-8, atol=1e-8)
    assert accurate.sample_solver == d.sample_solver and accurate.params is d.params
    both = d.with_solver("heun", sample_solver=ODESolver("euler", nfe=4))
    assert both.solver == ODESolver("heun") and both.sample_solver == ODESolver("euler", nfe=4)
    x = jnp.array([[0.3, -0.4], [1.0, 0.2]])
    # a tame 2-d field: RK4 with 2 steps already agrees with the accurate solve
    np.testing.assert_allclose(d.log_prob(x), accurate.log_prob(x), atol=1e-3)
    with pytest.raises(TypeError, match="solver: expected an ODESolver"):
        d.with_solver(3)
