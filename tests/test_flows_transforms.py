"""Numerical checks of the flow bijections in ``numpyro_hgf.flows`` (one layer at a time)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from jax.flatten_util import ravel_pytree

import numpyro_hgf.flows as nf
from numpyro_hgf.flows.planar import planar_u_hat
from numpyro_hgf.nn import MLP

DIM = 3


def perturb(params, key, scale):
    """Add N(0, scale^2) noise to every leaf (conditioners start at the identity).

    One normal draw for the flattened pytree: cheap to compile under ``jit``."""
    flat, unravel = ravel_pytree(params)
    return unravel(flat + scale * jax.random.normal(key, flat.shape, flat.dtype))


def _make(name, key):
    k1, k2 = jax.random.split(key)
    rev = tuple(range(DIM - 1, -1, -1))
    if name == "planar":
        t = nf.PlanarTransform.create(k1, DIM, init_scale=0.8)
        return t.with_params(perturb(t.params, k2, 0.3))
    if name == "radial":
        t = nf.RadialTransform.create(k1, DIM)
        return t.with_params(perturb(t.params, k2, 0.8))
    if name.startswith("bnaf"):
        t = nf.BlockAutoregressiveTransform.create(k1, DIM, (4, 4), reverse=name.endswith("rev"))
        return t.with_params(perturb(t.params, k2, 0.2))
    if name.startswith("realnvp"):
        t = nf.AffineCouplingTransform.create(k1, DIM, (8,), swap=name.endswith("swap"))
    elif name.startswith("maf"):
        t = nf.MaskedAutoregressiveTransform.create(
            k1, DIM, (8, 8), order=rev if name.endswith("rev") else None
        )
    else:
        # small bound so that test points also probe the identity tails; milder noise, as
        # large conditioner outputs give near-flat bins (slopes ~1e-4) where no float32
        # inverse can be accurate to 1e-4 (ill-conditioning, not an error of the formula)
        t = nf.SplineCouplingTransform.create(
            k1, DIM, (8,), swap=name.endswith("swap"), num_bins=5, bound=2.5
        )
        return t.with_params(perturb(t.params, k2, 0.15))
    return t.with_params(perturb(t.params, k2, 0.25))


NAMES = ["planar", "radial", "realnvp", "realnvp_swap", "maf", "spline", "bnaf", "bnaf_rev"]


def _evaluate(t, x):
    """Everything the per-transform checks need (one compilation per transform)."""
    base = dist.Normal(jnp.zeros(DIM), 1.0).to_event(1)
    y = t(x)
    x_pre = t.inv(x)  # the test points are also used as "data" y = t(x_pre)
    y_back, inter = t.call_with_intermediates(x_pre)
    jac = jax.vmap(jax.jacfwd(t))(x_pre)
    return {
        "y": y,
        "x_back": t.inv(y),
        "y_back": y_back,
        "logdet": t.log_abs_det_jacobian(x_pre, x),
        "logdet_inter": t.log_abs_det_jacobian(x_pre, x, inter),
        "jac": jac,
        "td_log_prob": dist.TransformedDistribution(base, [t]).log_prob(x),
        "by_hand": base.log_prob(x_pre) - jnp.linalg.slogdet(jac)[1],
        "via_logdet": base.log_prob(x_pre) - t.log_abs_det_jacobian(x_pre, x),
    }


_make_jit = jax.jit(_make, static_argnums=0)


@pytest.fixture(scope="module")
def points():
    return 1.5 * jax.random.normal(jax.random.PRNGKey(3), (64, DIM))


@pytest.fixture(scope="module")
def built(points):
    """name -> (transform, numpy results of ``_evaluate``), built lazily, one compile each.

    Transforms are pytrees, so they are created (and perturbed) inside the same ``jit``
    that evaluates them, and returned from it.
    """
    cache = {}
    keys = dict(zip(NAMES, jax.random.split(jax.random.PRNGKey(7), len(NAMES)), strict=True))
    run = jax.jit(lambda name, key, x: (t := _make(name, key), _evaluate(t, x)), static_argnums=0)

    def get(name):
        if name not in cache:
            t, out = run(name, keys[name], points)
            cache[name] = t, jax.tree.map(np.asarray, out)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def transforms(built):
    return lambda name: built(name)[0]


@pytest.fixture(scope="module")
def evaluated(built):
    return lambda name: built(name)[1]


@pytest.mark.parametrize("name", NAMES)
def test_inverse_roundtrip(evaluated, points, name):
    out = evaluated(name)
    assert np.abs(out["y"] - points).max() > 0.05, "test params must be non-identity"
    np.testing.assert_allclose(out["x_back"], points, atol=1e-4)
    np.testing.assert_allclose(out["y_back"], points, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_logdet_equals_slogdet_of_jacobian(evaluated, points, name):
    out = evaluated(name)
    sign, expected = np.linalg.slogdet(out["jac"].astype(np.float64))
    assert np.all(sign > 0)  # every flow layer here preserves orientation
    assert out["logdet"].shape == (points.shape[0],)
    np.testing.assert_allclose(out["logdet"], expected, atol=2e-4)
    np.testing.assert_allclose(out["logdet_inter"], expected, atol=2e-4)


@pytest.mark.parametrize("name", NAMES)
def test_transformed_log_prob_by_hand(evaluated, name):
    out = evaluated(name)
    np.testing.assert_allclose(out["td_log_prob"], out["by_hand"], atol=2e-4)
    np.testing.assert_allclose(out["td_log_prob"], out["via_logdet"], atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_pytree_params_are_data_and_inverse_cache_is_not(transforms, name):
    t = transforms(name)
    before = jax.tree_util.tree_structure(t)
    _ = t.inv  # creates the weakref-cached inverse in __dict__
    assert "_inv" in t.__dict__
    after = jax.tree_util.tree_structure(t)
    assert before == after
    assert len(jax.tree.leaves(t)) == len(jax.tree.leaves(t.params))
    _, aux = t.tree_flatten()
    hash(aux)  # static aux data is hashable (module dataclass + tuple of scalars)
    rebuilt = jax.tree.unflatten(after, jax.tree.leaves(t))
    assert "_inv" not in rebuilt.__dict__
    assert type(rebuilt) is type(t) and rebuilt.module == t.module
    assert t == rebuilt and t == t.with_params(t.params)
    other = t.with_params(jax.tree.map(lambda p: p + 1.0, t.params))
    assert not (t == other)
    assert jax.tree_util.tree_structure(other) == after


def test_zero_initialised_conditioners_are_identity(points):
    @jax.jit
    def run(key, x):
        layers = (
            nf.AffineCouplingTransform.create(key, DIM, (8,)),
            nf.SplineCouplingTransform.create(key, DIM, (8,)),
            nf.MaskedAutoregressiveTransform.create(key, DIM, (8,)),
        )
        return [t.call_with_intermediates(x) for t in layers]

    for y, logdet in run(jax.random.PRNGKey(0), points):
        np.testing.assert_allclose(y, points, atol=1e-6)
        np.testing.assert_allclose(logdet, 0.0, atol=1e-6)


@pytest.mark.parametrize("reverse", [False, True])
def test_maf_convention(transforms, points, reverse):
    t = _make_jit("maf_rev", jax.random.PRNGKey(1)) if reverse else transforms("maf")
    # autoregressive in the MADE order: triangular Jacobian of the inverse pass
    jac = np.asarray(jax.jit(jax.vmap(jax.jacfwd(t.inv)))(points[:8]))
    tri = np.tril(jac, -1) if reverse else np.triu(jac, 1)
    assert np.abs(tri).max() < 1e-6
    assert np.abs(jac).max() > 0.1
    # inverse (data -> base, used by log_prob): ONE parallel MADE pass, no loop;
    # sampling (base -> data): a loop of MADE passes
    inverse = str(jax.make_jaxpr(t._inverse)(points))
    forward = str(jax.make_jaxpr(t.__call__)(points))
    assert inverse.count("dot_general") == len(t.module.hidden) + 1
    assert "while" not in inverse and "scan" not in inverse
    assert "while" in forward or "scan" in forward


def test_planar_reparametrisation_guarantees_invertibility():
    w = jnp.array([0.3, -1.2, 0.5])
    for u in (-10.0 * w / jnp.dot(w, w), jnp.array([5.0, 4.0, -3.0]), jnp.zeros(3)):
        wu_hat = float(jnp.dot(w, planar_u_hat(w, u)))
        expected = -1.0 + float(jax.nn.softplus(jnp.dot(w, u)))
        assert wu_hat > -1.0
        np.testing.assert_allclose(wu_hat, expected, rtol=1e-5)


def test_planar_inverse_is_accurate_near_degenerate_slope():
    # w . u_hat close to -1: the scalar equation is nearly flat around its root
    module = nf.PlanarParams(2)
    w = jnp.array([2.0, 0.0])
    params = {"w": w, "u": -4.0 * w / jnp.dot(w, w), "b": jnp.array(0.3)}
    t = nf.PlanarTransform(module, params)
    x = jax.random.normal(jax.random.PRNGKey(1), (200, 2)) * 2.0
    assert float(jnp.dot(w, planar_u_hat(w, params["u"]))) < -0.95
    x_back = jax.jit(lambda t, x: t.inv(t(x)))(t, x)
    np.testing.assert_allclose(x_back, x, atol=1e-4)


def test_radial_inverse_exact_near_centre():
    t = nf.RadialTransform.create(jax.random.PRNGKey(0), 2)
    t = t.with_params({**t.params, "beta_raw": jnp.array(-3.0)})  # contraction: beta ~ -alpha
    z0 = t.params["z0"]
    x = z0 + jnp.array([[0.0, 0.0], [1e-6, 0.0], [1e-3, -2e-3], [3.0, 4.0]])

    @jax.jit
    def check(t, x):
        grad = jax.grad(lambda x: t.log_abs_det_jacobian(x, t(x)).sum())(x)
        return t.inv(t(x)), grad

    x_back, grad = check(t, x)
    np.testing.assert_allclose(x_back, x, atol=1e-5)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_rational_quadratic_spline_pure_function():
    num_bins, bound = 6, 3.0
    with jax.enable_x64(True):
        raw = jax.random.normal(jax.random.PRNGKey(5), (50, 3 * num_bins - 1), jnp.float64)
        x = jnp.linspace(-4.0, 4.0, 50)

        @jax.jit
        def run(raw, x):
            w, h, d = nf.spline_params(raw)
            y, logdet = nf.rational_quadratic_spline(x, w, h, d, bound)
            x_back, inv_logdet = nf.rational_quadratic_spline(y, w, h, d, bound, inverse=True)
            spline = lambda x, w, h, d: nf.rational_quadratic_spline(x, w, h, d, bound)[0]
            dydx = jax.vmap(jax.grad(spline))(x, w, h, d)
            ends = jnp.stack([jnp.full(50, -bound), jnp.full(50, bound)], -1)
            y_ends = spline(ends, w[:, None], h[:, None], d[:, None])
            w0, h0, d0 = nf.spline_params(jnp.zeros((3 * num_bins - 1,)))
            y0, ld0 = nf.rational_quadratic_spline(x, w0, h0, d0, bound)
            return w, h, d, y, logdet, x_back, inv_logdet, dydx, ends, y_ends, y0, ld0

        out = [np.asarray(a) for a in run(raw, x)]  # to numpy while x64 is on
    w, h, d, y, logdet, x_back, inv_logdet, dydx, ends, y_ends, y0, ld0 = out
    x = np.asarray(x)
    assert y.dtype == np.float64
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(h.sum(-1), 1.0, rtol=1e-12)
    assert d.shape == (50, num_bins + 1) and np.all(d > 0)
    np.testing.assert_allclose(d[:, [0, -1]], 1.0)
    np.testing.assert_allclose(x_back, x, atol=1e-9)  # Durkan eq. 29-32 inverse is exact
    np.testing.assert_allclose(inv_logdet, -logdet, atol=1e-9)
    np.testing.assert_allclose(np.exp(logdet), dydx, rtol=1e-9)
    outside = np.abs(x) > bound
    np.testing.assert_allclose(y[outside], x[outside])
    np.testing.assert_allclose(logdet[outside], 0.0)
    np.testing.assert_allclose(y_ends, ends, atol=1e-12)  # knots at +-B stay at +-B
    np.testing.assert_allclose(y0, x, atol=1e-12)  # zero raw params: identity spline
    np.testing.assert_allclose(ld0, 0.0, atol=1e-12)


def test_construction_errors_name_the_argument():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match=r"event_dim: expected at least 2 .* got 1"):
        nf.AffineCouplingTransform.create(key, 1)
    with pytest.raises(ValueError, match=r"event_dim: expected at least 2 .* got 1"):
        nf.SplineCouplingTransform.create(key, 1)
    with pytest.raises(ValueError, match=r"hidden: expected .* positive integers, got \(8, -1\)"):
        nf.MaskedAutoregressiveTransform.create(key, 3, (8, -1))
    module, params = MLP((4,), 5), {}  # construction checks run before params are used
    with pytest.raises(ValueError, match=r"module: expected .* out_dim 4 .* got out_dim 5"):
        nf.AffineCouplingTransform(module, params, dim=3)
    with pytest.raises(ValueError, match=r"log_scale_bound: expected a positive .* got -1"):
        nf.AffineCouplingTransform(MLP((4,), 4), params, dim=3, log_scale_bound=-1.0)
    with pytest.raises(TypeError, match=r"module: expected a PlanarParams, got MLP"):
        nf.PlanarTransform(module, params)
