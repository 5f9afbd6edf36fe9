"""``NormalizingFlow`` from ``build_flow``: shapes, normalisation, jit/vmap/grad, NumPyro
inference (NUTS, SVI, flax_module registration), argument errors and save/load."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from jax.flatten_util import ravel_pytree
from numpyro.diagnostics import effective_sample_size
from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal

import numpyro_hgf.flows as nf
from numpyro_hgf.distributions import NormalizingFlow
from numpyro_hgf.io import load, save

D = 2
KINDS = nf.FLOW_KINDS
# perturbation of the (identity-initialised) params: clearly non-Gaussian, mass in [-8, 8]^2
NOISE = {"planar": 0.5, "radial": 0.7, "realnvp": 0.15, "maf": 0.3, "spline": 0.3, "bnaf": 0.2}


def perturb(params, key, scale):
    """Add N(0, scale^2) noise to every leaf (conditioners start at the identity).

    One normal draw for the flattened pytree: cheap to compile under ``jit``."""
    flat, unravel = ravel_pytree(params)
    return unravel(flat + scale * jax.random.normal(key, flat.shape, flat.dtype))


def make_flow(kind, key, num_layers=2):
    k1, k2 = jax.random.split(key)
    flow = nf.build_flow(kind, D, num_layers=num_layers, hidden=(8,), key=k1)
    return flow.with_params(perturb(flow.params, k2, NOISE[kind]))


def _grid(n=400, lim=8.0):
    g = jnp.linspace(-lim, lim, n)
    xx, yy = jnp.meshgrid(g, g, indexing="ij")
    w = np.full(n, g[1] - g[0])
    w[[0, -1]] *= 0.5  # trapezoid weights
    return jnp.stack([xx, yy], -1).reshape(-1, 2), np.outer(w, w).reshape(-1)


SAMPLE_SHAPES = ((), (3,), (2, 3))


def _evaluate(flow, key, grid):
    """Samples of shape (2, 3) and one log_prob pass over them and the grid (one copy of
    the forward and of the inverse graph per compilation: cheap to compile)."""
    x = flow.sample(key, (2, 3))
    lp = flow.log_prob(jnp.concatenate([x.reshape(-1, D), grid]))
    return {"samples": x, "log_probs": lp[:6].reshape(2, 3), "grid": lp[6:]}


@pytest.fixture(scope="module")
def built():
    """kind -> (flow, results of ``_evaluate``): built and evaluated in one ``jit`` each
    (a NormalizingFlow is a pytree, so it can be returned from ``jit``)."""
    cache = {}
    grid, _ = _grid()
    run = jax.jit(
        lambda kind, fkey, skey, grid: (f := make_flow(kind, fkey), _evaluate(f, skey, grid)),
        static_argnums=0,
    )

    def get(kind, seed=11):
        if (kind, seed) not in cache:
            fkey = jax.random.fold_in(jax.random.PRNGKey(seed), KINDS.index(kind))
            flow, out = run(kind, fkey, jax.random.PRNGKey(0), grid)
            cache[kind, seed] = flow, jax.tree.map(np.asarray, out)
        return cache[kind, seed]

    get.fresh = lambda kind: get(kind, seed=99)  # same architecture, other params
    return get


@pytest.mark.parametrize("kind", KINDS)
def test_sample_and_log_prob_shapes(built, kind):
    flow, out = built(kind)
    assert isinstance(flow, NormalizingFlow) and isinstance(flow, dist.TransformedDistribution)
    assert flow.event_shape == (D,) and flow.batch_shape == ()
    assert flow.config["kind"] == kind and flow.config["event_dim"] == D
    assert len(flow.transforms) == 2 and len(flow.params) == 2
    key = jax.random.PRNGKey(0)
    for shape in SAMPLE_SHAPES:  # shapes by abstract evaluation (no compilation)
        x = jax.eval_shape(lambda f, k, shape=shape: f.sample(k, shape), flow, key)
        assert x.shape == shape + (D,)
        assert jax.eval_shape(lambda f, x: f.log_prob(x), flow, x).shape == shape
    assert out["samples"].shape == (2, 3, D) and out["log_probs"].shape == (2, 3)
    assert np.all(np.isfinite(out["log_probs"]))
    assert np.std(out["samples"]) > 0.1
    assert np.ptp(out["log_probs"]) > 0.0


@pytest.mark.parametrize("kind", KINDS)
def test_density_integrates_to_one(built, kind):
    _, out = built(kind)
    _, weights = _grid()
    mass = float(np.sum(np.exp(out["grid"]) * weights))
    assert abs(mass - 1.0) < 0.02, mass
    # and the flow is far from its standard-normal base (non-trivial params)
    grid, _ = _grid()
    base = dist.Normal(0.0, 1.0).log_prob(np.asarray(grid)).sum(-1)
    tv = 0.5 * np.sum(np.abs(np.exp(out["grid"]) - np.exp(base)) * weights)
    assert tv > 0.05, tv


def test_aux_data_is_hashable_and_params_are_the_only_leaves(built):
    flow, _ = built("maf")

    def walk(td):
        nd = td.node_data()
        if nd is not None and nd[0] not in (dict, list, tuple):
            hash(nd[1])
        for child in td.children():
            walk(child)

    walk(jax.tree_util.tree_structure(flow))
    n_params = len(jax.tree.leaves(flow.params))
    n_base = len(jax.tree.leaves(flow.base_dist))
    assert len(jax.tree.leaves(flow)) == n_params + n_base


@jax.jit
def _batched_log_probs(stacked_flows, stacked_params, x):
    """The same two flows evaluated by vmap / lax.map over flows and vmap over params."""
    template = jax.tree.map(lambda a: a[0], stacked_flows)
    return (
        jax.vmap(lambda d: d.log_prob(x))(stacked_flows),
        jax.lax.map(lambda d: d.log_prob(x), stacked_flows),
        jax.vmap(lambda p: template.with_params(p).log_prob(x))(stacked_params),
    )


@pytest.mark.parametrize("kind", ["planar", "maf"])
def test_jit_vmap_lax_map_without_recompilation(built, kind):
    flow, _ = built(kind)
    x = jnp.array([[0.3, -1.2], [2.0, 0.5], [-0.7, 0.1]])
    traces = []

    @jax.jit
    def log_prob(d, x):
        traces.append(1)
        return d.log_prob(x)

    other = flow.with_params(perturb(flow.params, jax.random.PRNGKey(5), 0.1))
    lp1, lp2 = log_prob(flow, x), log_prob(other, x)
    # a flow of the same architecture built from another key reuses the compilation too
    fresh, _ = built.fresh(kind)
    log_prob(fresh, x)
    assert len(traces) == 1
    assert not np.allclose(lp1, lp2)
    if kind == "maf":  # eager equals jit (eager dispatch is slow: one kind is enough)
        np.testing.assert_allclose(flow.log_prob(x), lp1, rtol=1e-5, atol=1e-5)
    stack = lambda a, b: jnp.stack([a, b])
    stacked = jax.tree.map(stack, flow, other)
    stacked_params = jax.tree.map(stack, flow.params, other.params)
    expected = np.stack([lp1, lp2])
    for got in _batched_log_probs(stacked, stacked_params, x):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["planar", "radial", "spline"])
def test_gradients_match_finite_differences_in_float64(built, kind):
    flow32, _ = built(kind)
    with jax.enable_x64(True):
        flow = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), flow32)
        params = flow.params
        x = jax.random.normal(jax.random.PRNGKey(4), (4, D), jnp.float64)

        def f(params, x):
            return flow.with_params(params).log_prob(x).sum()

        vg = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))
        value, (g_params, g_x) = vg(params, x)
        assert value.dtype == jnp.float64
        leaves = jax.tree.leaves(g_params) + [g_x]
        assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in leaves)
        eps = 1e-6
        for i in range(2):
            kp, kx = jax.random.split(jax.random.PRNGKey(100 + i))
            v_p = perturb(jax.tree.map(jnp.zeros_like, params), kp, 1.0)
            v_x = jax.random.normal(kx, x.shape, jnp.float64)
            shift = lambda s, v_p=v_p, v_x=v_x: (
                jax.tree.map(lambda p, v: p + s * v, params, v_p),
                x + s * v_x,
            )
            fd = (vg(*shift(eps))[0] - vg(*shift(-eps))[0]) / (2 * eps)
            dots = jax.tree.map(lambda g, v: jnp.vdot(g, v), g_params, v_p)
            analytic = sum(jax.tree.leaves(dots)) + jnp.vdot(g_x, v_x)
            fd, analytic = float(fd), float(analytic)
            assert abs(fd - analytic) < 1e-6 * (1.0 + abs(analytic)), (fd, analytic)


def _grid_posterior_mean(flow, y_obs, sigma):
    grid, weights = _grid()

    @jax.jit
    def log_post(g):
        return flow.log_prob(g) + dist.Normal(g, sigma).log_prob(y_obs).sum(-1)

    lp = np.asarray(log_post(grid), np.float64) + np.log(weights)
    w = np.exp(lp - lp.max())
    w /= w.sum()
    return w @ np.asarray(grid, np.float64)


def test_flow_prior_under_nuts_matches_grid_quadrature(built):
    flow, _ = built("maf")
    y_obs, sigma = jnp.array([1.0, -0.5]), 0.8

    def model(y):
        x = numpyro.sample("x", flow)
        numpyro.sample("y", dist.Normal(x, sigma).to_event(1), obs=y)

    mcmc = MCMC(NUTS(model), num_warmup=300, num_samples=1200, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), y_obs)
    xs = np.asarray(mcmc.get_samples()["x"])
    ess = np.asarray(effective_sample_size(xs[None]))
    mcse = xs.std(0) / np.sqrt(ess)
    expected = _grid_posterior_mean(flow, y_obs, sigma)
    assert np.all(ess > 200), ess
    assert np.all(np.abs(xs.mean(0) - expected) < 4 * mcse + 1e-3), (xs.mean(0), expected, mcse)


def test_flow_prior_under_svi_with_autonormal(built):
    flow, _ = built("maf")
    y_obs, sigma = jnp.array([1.0, -0.5]), 0.8

    def model(y):
        x = numpyro.sample("x", flow)
        numpyro.sample("y", dist.Normal(x, sigma).to_event(1), obs=y)

    guide = AutoNormal(model)
    svi = SVI(model, guide, optax.adam(0.05), Trace_ELBO(num_particles=4))
    result = svi.run(jax.random.PRNGKey(1), 300, y_obs, progress_bar=False)
    losses = np.asarray(result.losses)
    assert np.all(np.isfinite(losses))
    assert losses[-50:].mean() < losses[:50].mean() - 0.5
    # the Gaussian approximation is centred near the exact posterior mean
    loc = np.asarray(result.params["x_auto_loc"])
    expected = _grid_posterior_mean(flow, y_obs, sigma)
    assert np.all(np.abs(loc - expected) < 0.35), (loc, expected)


def test_flax_flow_registers_params_and_svi_fits_them():
    build = jax.jit(lambda key: nf.build_flow("realnvp", D, num_layers=2, hidden=(8,), key=key))
    template = build(jax.random.PRNGKey(0))
    a = jnp.array([[1.0, 0.0], [0.9, 0.4]])
    data = jax.random.normal(jax.random.PRNGKey(1), (256, D)) @ a.T + jnp.array([1.0, -1.0])

    def model(data):
        flow = nf.flax_flow("nf", template)
        with numpyro.plate("n", data.shape[0]):
            numpyro.sample("obs", flow, obs=data)

    def guide(data):
        pass

    tr = numpyro.handlers.trace(numpyro.handlers.seed(model, 0)).get_trace(data)
    sites = [name for name, site in tr.items() if site["type"] == "param"]
    assert sites == ["nf_0$params", "nf_1$params"]
    for i in range(2):  # registered with the flow's own params, not a random re-init
        registered = tr[f"nf_{i}$params"]["value"]
        assert jax.tree.structure(registered) == jax.tree.structure(template.params[i])
        jax.tree.map(np.testing.assert_array_equal, registered, template.params[i])
    # the method form registers the same sites
    tr2 = numpyro.handlers.trace(lambda: template.register("nf")).get_trace()
    assert sorted(tr2) == ["nf_0$params", "nf_1$params"]

    svi = SVI(model, guide, optax.adam(0.02), Trace_ELBO())
    result = svi.run(jax.random.PRNGKey(2), 300, data, progress_bar=False)
    losses = np.asarray(result.losses)
    assert np.all(np.isfinite(losses)) and losses[-20:].mean() < losses[0] - 50.0
    fitted = template.with_params(tuple(result.params[f"nf_{i}$params"] for i in range(2)))
    mean_log_prob = jax.jit(lambda f: f.log_prob(data).mean())
    nll = lambda f: -float(mean_log_prob(f))
    assert nll(fitted) < nll(template) - 0.5
    np.testing.assert_allclose(nll(fitted) * data.shape[0], losses[-1], rtol=0.05)


def test_bad_input_errors_name_argument_expected_and_got(built):
    flow, _ = built("realnvp")
    with pytest.raises(
        ValueError, match=r"value: expected trailing \(event\) shape \(2,\), got .*\(4, 3\)"
    ):
        flow.log_prob(jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"value: expected .*\(2,\), got .*\(4, 3\)"):
        jax.jit(lambda d, v: d.log_prob(v))(flow, jnp.zeros((4, 3)))
    with pytest.raises(
        ValueError, match=r"hidden: expected a sequence of positive integers, got \(8, 0\)"
    ):
        nf.build_flow("maf", D, hidden=(8, 0))
    with pytest.raises(ValueError, match=r"hidden: expected .*, got \(-4,\)"):
        nf.build_flow("planar", D, hidden=-4)
    with pytest.raises(
        ValueError,
        match=r"kind: expected one of 'planar', 'radial', 'realnvp', 'maf', 'spline', 'bnaf', "
        r"got 'glow'",
    ):
        nf.build_flow("glow", D)
    with pytest.raises(ValueError, match=r"event_dim: expected a positive integer, got 0"):
        nf.build_flow("maf", 0)
    with pytest.raises(ValueError, match=r"event_dim: expected at least 2 .* got 1"):
        nf.build_flow("spline", 1)
    with pytest.raises(TypeError, match=r"opts: unexpected option\(s\) \['num_bins'\] .* 'maf'"):
        nf.build_flow("maf", D, num_bins=4)
    with pytest.raises(
        ValueError, match=r"params: expected a sequence of 2 per-transform params, got 1"
    ):
        flow.with_params(flow.params[:1])


def test_one_dimensional_maf_and_planar():
    for kind in ("maf", "planar", "radial"):  # shapes by abstract evaluation only
        lp = jax.eval_shape(
            lambda kind=kind: nf.build_flow(kind, 1, num_layers=2, hidden=(4,)).log_prob(
                jnp.zeros((5, 1))
            )
        )
        assert lp.shape == (5,)


def test_save_load_round_trip(built, tmp_path):
    flow, _ = built("spline")
    path = save(tmp_path / "flow", flow)
    loaded = load(path)
    assert isinstance(loaded, NormalizingFlow) and loaded.config == flow.config
    x = jax.random.normal(jax.random.PRNGKey(0), (16, D))
    log_prob = jax.jit(lambda d, x: d.log_prob(x))
    np.testing.assert_array_equal(log_prob(loaded, x), log_prob(flow, x))
    hand_built = NormalizingFlow(flow.base_dist, list(flow.transforms))
    with pytest.raises(TypeError, match=r"model: expected a NormalizingFlow built by"):
        save(tmp_path / "hand", hand_built)
