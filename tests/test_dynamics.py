"""Hamiltonian dynamics: leapfrog, the closed-form harmonic and reflection motions.

Oracles: the harmonic closed form, time reversibility and symplecticity of leapfrog,
an event-driven (bounce by bounce) simulation of a particle in a box.  Float64 throughout
(``jax.enable_x64`` for this module only, restored at teardown).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from numpyro_hgf.dynamics import fold_into_box, harmonic, leapfrog, reflect
from numpyro_hgf.nn import MLP, EnergyMLP
from numpyro_hgf.paths import OscillationPath


@pytest.fixture(autouse=True, scope="module")
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def learned_force():
    """An arbitrary learned force: a random small MLP ``R^3 -> R^3`` (float64 params)."""
    mlp = MLP(hidden=(16, 16), out_dim=3, activation=nn.tanh)
    params = jax.jit(mlp.init)(jax.random.key(0), jnp.zeros((1, 3)))
    # scale the weights up so the force is clearly nonlinear on the scale of the motion
    params = jax.tree.map(lambda p: 2.0 * p, params)
    return lambda x: mlp.apply(params, x)


def _state(key, shape):
    kx, kv = jax.random.split(key)
    return jax.random.normal(kx, shape), jax.random.normal(kv, shape)


def test_leapfrog_matches_harmonic_closed_form():
    omega = 1.3
    x0, v0 = _state(jax.random.key(1), (4, 3))
    force = lambda x: -(omega**2) * x
    x_exact, v_exact = harmonic(x0, v0, 1.0, omega)

    x1, v1 = leapfrog(force, x0, v0, 0.001, 1000)
    err = max(float(jnp.max(jnp.abs(x1 - x_exact))), float(jnp.max(jnp.abs(v1 - v_exact))))
    assert err < 1e-4, err
    # second order: doubling the step multiplies the global error by ~4
    x2, v2 = leapfrog(force, x0, v0, 0.002, 500)
    err2 = max(float(jnp.max(jnp.abs(x2 - x_exact))), float(jnp.max(jnp.abs(v2 - v_exact))))
    assert 3.5 < err2 / err < 4.5, (err, err2)


def test_leapfrog_trajectory_is_consistent():
    force = lambda x: -jnp.sin(x)  # pendulum
    x0, v0 = _state(jax.random.key(2), (5, 2))
    (xT, vT), (xs, vs) = leapfrog(force, x0, v0, 0.05, 20, return_trajectory=True)
    assert xs.shape == vs.shape == (20, 5, 2)
    np.testing.assert_array_equal(xs[-1], xT)
    np.testing.assert_array_equal(vs[-1], vT)
    # restarting from step 7 reproduces the rest of the trajectory
    (x_rest, v_rest) = leapfrog(force, xs[6], vs[6], 0.05, 13)
    np.testing.assert_allclose(x_rest, xT, atol=1e-12)
    np.testing.assert_allclose(v_rest, vT, atol=1e-12)


def test_leapfrog_is_time_reversible(learned_force):
    x0, v0 = _state(jax.random.key(3), (6, 3))
    xT, vT = leapfrog(learned_force, x0, v0, 0.01, 300)
    assert float(jnp.max(jnp.abs(xT - x0))) > 0.1  # it went somewhere
    xb, vb = leapfrog(learned_force, xT, -vT, 0.01, 300)
    assert float(jnp.max(jnp.abs(xb - x0))) < 1e-6
    assert float(jnp.max(jnp.abs(-vb - v0))) < 1e-6


def test_leapfrog_preserves_volume_with_a_learned_force(learned_force):
    x0, v0 = _state(jax.random.key(4), (3,))

    def flow(z):
        x, v = leapfrog(learned_force, z[:3], z[3:], 0.1, 10)
        return jnp.concatenate([x, v])

    jac = jax.jacfwd(flow)(jnp.concatenate([x0, v0]))
    # the map is far from the identity (the force matters) ...
    assert float(jnp.max(jnp.abs(jac - jnp.eye(6)))) > 0.1
    # ... yet volume preserving: log |det J| = 0 (a composition of shears)
    sign, logdet = jnp.linalg.slogdet(jac)
    assert float(sign) == 1.0
    assert abs(float(logdet)) < 1e-6, float(logdet)


def test_leapfrog_is_symplectic_for_a_gradient_force():
    """For a conservative force ``F = -grad U`` the map is symplectic: ``J^T W J = W``.

    (An arbitrary learned force is only volume preserving: the kick's Jacobian block
    ``h dF/dx`` must be symmetric for symplecticity.)"""
    energy = EnergyMLP(hidden=(16,), activation=nn.softplus)
    params = jax.jit(energy.init)(jax.random.key(9), jnp.zeros((1, 3)))
    force = lambda x: -jax.grad(lambda y: jnp.sum(energy.apply(params, y)))(x)
    z0 = jnp.concatenate(_state(jax.random.key(10), (3,)))

    def flow(z):
        x, v = leapfrog(force, z[:3], z[3:], 0.1, 10)
        return jnp.concatenate([x, v])

    jac = jax.jacfwd(flow)(z0)
    w = jnp.block([[jnp.zeros((3, 3)), jnp.eye(3)], [-jnp.eye(3), jnp.zeros((3, 3))]])
    assert float(jnp.max(jnp.abs(jac - jnp.eye(6)))) > 0.05
    np.testing.assert_allclose(jac.T @ w @ jac, w, atol=1e-12)


def test_leapfrog_runs_under_jit_and_grad():
    force = lambda x: -(x**3)
    x0, v0 = _state(jax.random.key(5), (3, 2))
    run = lambda x, v: leapfrog(force, x, v, 0.1, 7)
    eager = run(x0, v0)
    jitted = jax.jit(run)(x0, v0)
    np.testing.assert_allclose(jitted[0], eager[0], atol=1e-12)
    # d x_T / d x0 by autodiff equals a central finite difference
    f = lambda x: jnp.sum(run(x, v0)[0])
    g = jax.grad(f)(x0)
    eps = 1e-6
    e = jnp.zeros_like(x0).at[1, 0].set(eps)
    fd = (f(x0 + e) - f(x0 - e)) / (2 * eps)
    assert abs(float(g[1, 0]) - float(fd)) < 1e-7


def test_harmonic_solves_the_equations_of_motion():
    omega = 0.7
    x0, v0 = _state(jax.random.key(6), (4, 2))
    x0_back, v0_back = harmonic(x0, v0, 0.0, omega)
    np.testing.assert_allclose(x0_back, x0, atol=1e-15)
    np.testing.assert_allclose(v0_back, v0, atol=1e-15)
    t = 0.9
    dx_dt, dv_dt = jax.jacfwd(lambda s: harmonic(x0, v0, s, omega))(t)
    x_t, v_t = harmonic(x0, v0, t, omega)
    np.testing.assert_allclose(dx_dt, v_t, atol=1e-12)
    np.testing.assert_allclose(dv_dt, -(omega**2) * x_t, atol=1e-12)
    # energy is conserved
    energy = lambda x, v: 0.5 * jnp.sum(v**2, -1) + 0.5 * omega**2 * jnp.sum(x**2, -1)
    np.testing.assert_allclose(energy(x_t, v_t), energy(x0, v0), rtol=1e-13)
    # per-sample times (batch,)
    ts = jnp.array([0.0, 0.3, 0.6, 0.9])
    xb, _ = harmonic(x0, v0, ts, omega)
    for i, ti in enumerate(ts):
        np.testing.assert_allclose(xb[i], harmonic(x0[i], v0[i], ti, omega)[0], atol=1e-14)


@pytest.mark.parametrize("omega", [0.5, 1.0, 3.0])
def test_oscillation_at_quarter_period_gives_v0_over_omega(omega):
    x0, v0 = _state(jax.random.key(7), (8, 3))
    T = np.pi / (2 * omega)
    x_T, v_T = harmonic(x0, v0, T, omega)
    np.testing.assert_allclose(x_T, v0 / omega, atol=1e-14)
    np.testing.assert_allclose(v_T, -omega * x0, atol=1e-14)
    path = OscillationPath(omega=omega)
    assert path.horizon == pytest.approx(T, rel=1e-15)
    x_p, _ = path.motion(x0, v0, jnp.full((8,), path.horizon))
    np.testing.assert_allclose(x_p, v0 / omega, atol=1e-14)


def test_fold_into_box_known_values():
    y = jnp.array([0.25, 1.5, 2.3, -0.2, -1.7, 3.9, 1.0])
    x, sign = fold_into_box(y, 0.0, 1.0)
    np.testing.assert_allclose(x, [0.25, 0.5, 0.3, 0.2, 0.3, 0.1, 1.0], atol=1e-12)
    np.testing.assert_array_equal(sign, [1, -1, 1, -1, 1, -1, 1])


def _bounce(x, v, t, low, high):
    """Event-driven reference: move to the next wall, flip the velocity, repeat."""
    remaining = t
    while True:
        if v > 0:
            hit = (high - x) / v
        elif v < 0:
            hit = (low - x) / v
        else:
            hit = np.inf
        if hit >= remaining:
            return x + v * remaining, v
        x, v, remaining = (high if v > 0 else low), -v, remaining - hit


def test_reflect_matches_event_driven_simulation():
    low, high = np.array([-1.0, 0.0, 2.0]), np.array([1.0, 0.5, 5.0])
    rng = np.random.default_rng(0)
    x0 = rng.uniform(low, high, size=(50, 3))
    v0 = rng.normal(size=(50, 3)) * 4.0
    t = rng.uniform(0.0, 3.0, size=50)
    x, v = reflect(jnp.asarray(x0), jnp.asarray(v0), jnp.asarray(t), low, high)
    x, v = np.asarray(x), np.asarray(v)
    ref = np.array(
        [[_bounce(x0[i, j], v0[i, j], t[i], low[j], high[j]) for j in range(3)] for i in range(50)]
    )
    np.testing.assert_allclose(x, ref[..., 0], atol=1e-10)
    np.testing.assert_allclose(v, ref[..., 1], atol=0)
    # stays inside the box and keeps |v| per coordinate
    assert np.all((x >= low) & (x <= high))
    np.testing.assert_array_equal(np.abs(v), np.abs(v0))
    # many wall hits happened (so the test exercises the folding)
    assert np.mean(np.sign(v) != np.sign(v0)) > 0.3


def test_reflect_long_times_stay_in_box():
    x0, v0 = jnp.full((200, 2), 0.3), jax.random.normal(jax.random.key(8), (200, 2)) * 10
    x, v = jax.jit(lambda x, v: reflect(x, v, 100.0, -1.0, 1.0))(x0, v0)
    assert float(jnp.min(x)) >= -1.0 and float(jnp.max(x)) <= 1.0
    np.testing.assert_array_equal(jnp.abs(v), jnp.abs(v0))


def test_bad_input_names_the_argument():
    x, v = jnp.zeros((2, 3)), jnp.ones((2, 3))
    force = lambda y: -y
    with pytest.raises(ValueError, match=r"^dt: expected a positive value, got -0.1"):
        leapfrog(force, x, v, -0.1, 10)
    with pytest.raises(ValueError, match=r"^dt: "):
        leapfrog(force, x, v, 0.0, 10)
    with pytest.raises(ValueError, match=r"^num_steps: expected a positive integer, got 0"):
        leapfrog(force, x, v, 0.1, 0)
    with pytest.raises(ValueError, match=r"^num_steps: "):
        leapfrog(force, x, v, 0.1, -3)
    with pytest.raises(TypeError, match=r"^num_steps: expected a positive integer"):
        leapfrog(force, x, v, 0.1, 2.5)
    with pytest.raises(ValueError, match=r"^v: expected the shape of x \(2, 3\)"):
        leapfrog(force, x, jnp.ones((2, 2)), 0.1, 3)
    with pytest.raises(ValueError, match=r"^omega: expected a positive value, got -1"):
        harmonic(x, v, 1.0, omega=-1)
    with pytest.raises(ValueError, match=r"^omega: "):
        harmonic(x, v, 1.0, omega=0.0)
    with pytest.raises(ValueError, match=r"^x0: expected positions inside the box"):
        reflect(x + 2.0, v, 1.0, -1.0, 1.0)
    with pytest.raises(ValueError, match=r"^high: expected values greater than low"):
        reflect(x, v, 1.0, 1.0, -1.0)
