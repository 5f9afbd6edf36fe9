"""Hamiltonian score matching and the Hamiltonian score discrepancy: signs, oracles, errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import numpyro_hgf as nh
from numpyro_hgf.hsd import (
    fisher_divergence,
    gaussian_hsd,
    hamiltonian_score_discrepancy,
    hsd_taylor,
)
from numpyro_hgf.objectives import (
    hamiltonian_score_matching,
    hsm_velocity_loss,
    simulate_phase_space,
)
from numpyro_hgf.train.score import fit_hsm, hsm_optimizer

MU = np.array([1.0, -2.0])
SIGMA = np.array([[1.0, 0.5], [0.5, 0.8]])
PRECISION = np.linalg.inv(SIGMA)
HORIZON = 2.0


class QuadraticEnergy(nn.Module):
    """``E(x) = 1/2 (x - mean)^T L L^T (x - mean)``, ``L`` lower triangular, positive diagonal."""

    dim: int

    @nn.compact
    def __call__(self, x):
        mean = self.param("mean", nn.initializers.zeros, (self.dim,))
        raw = self.param("chol", nn.initializers.zeros, (self.dim, self.dim))
        chol = jnp.tril(raw, -1) + jnp.diag(jnp.exp(jnp.diag(raw)))
        return 0.5 * jnp.sum(((x - mean) @ chol) ** 2, axis=-1)


class LinearForce(nn.Module):
    """``F(x) = -A (x - c)`` with free ``A`` and ``c``."""

    dim: int

    @nn.compact
    def __call__(self, x):
        a = self.param("precision", nn.initializers.zeros, (self.dim, self.dim))
        c = self.param("center", nn.initializers.zeros, (self.dim,))
        return -(x - c) @ a.T


class LegendreVelocity(nn.Module):
    """``V(x, t) = sum_k P_k(2 t / T - 1) (W_k (x - center) + b_k)``, ``k = 0..degree``.

    Affine in ``x`` -- the exact class of ``E[v_t | x_t]`` for a linear force on Gaussian
    data -- with an orthonormal (Legendre) basis in ``t`` and centred ``x``, so the velocity
    player's least-squares problem is well conditioned.
    """

    horizon: float
    center: tuple
    degree: int = 3

    @nn.compact
    def __call__(self, x, t):
        d = x.shape[-1]
        w = self.param("W", nn.initializers.zeros, (self.degree + 1, d, d))
        b = self.param("b", nn.initializers.zeros, (self.degree + 1, d))
        s = 2.0 * jnp.asarray(t) / self.horizon - 1.0
        basis = [jnp.ones_like(s), s]
        for n in range(1, self.degree):
            basis.append(((2 * n + 1) * s * basis[n] - n * basis[n - 1]) / (n + 1))
        scale = jnp.sqrt(2.0 * jnp.arange(self.degree + 1) + 1.0)
        tk = jnp.stack(basis[: self.degree + 1], axis=-1) * scale
        xc = x - jnp.asarray(self.center)
        return jnp.einsum("bk,kij,bj->bi", tk, w, xc) + tk @ b


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


@pytest.fixture(scope="module")
def gaussian_data():
    x = jax.random.multivariate_normal(
        jax.random.key(0), jnp.asarray(MU), jnp.asarray(SIGMA), (10_000,)
    )
    xs = np.asarray(x, dtype=np.float64)
    return x, xs.mean(0), np.linalg.inv(np.cov(xs.T, bias=True))


def _true_score(y):
    return -(y - MU) @ PRECISION


# -------------------------------------------------------------------------------------------
# simulation and the loss
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("time_sampling", ["uniform", "grid"])
def test_simulation_free_motion_and_times(time_sampling):
    """Zero force: x_t = x0 + t v0, v_t = v0, with t in (0, T] (on the grid for "grid")."""
    x0 = jax.random.normal(jax.random.key(1), (300, 2))
    zero = lambda _p, x: jnp.zeros_like(x)
    key = jax.random.key(2)
    x_t, v_t, t = simulate_phase_space(
        zero, None, x0, key, step_size=0.2, num_steps=5, time_sampling=time_sampling
    )
    v0 = jax.random.normal(jax.random.split(key)[0], x0.shape)
    np.testing.assert_allclose(v_t, v0, atol=1e-6)
    np.testing.assert_allclose(x_t, x0 + t[:, None] * v0, atol=1e-5)
    assert float(t.min()) > 0 and float(t.max()) <= 1.0 + 1e-6
    if time_sampling == "grid":
        np.testing.assert_allclose(np.unique(np.round(np.asarray(t), 5)), [0.2, 0.4, 0.6, 0.8, 1.0])
    else:
        assert abs(float(t.mean()) - 0.5) < 0.05


def test_hsm_loss_is_zero_for_zero_velocity(gaussian_data):
    """L(V = 0) = 0 whatever the force (the game's fixed point at the true score)."""
    x = gaussian_data[0][:256]
    force = lambda _p, y: _true_score(y)
    zero_v = lambda _p, y, t: jnp.zeros_like(y)
    loss = hamiltonian_score_matching(
        force, None, x, jax.random.key(3), velocity_fn=zero_v, velocity_params=None
    )
    assert float(loss) == 0.0
    x_t, v_t, t = simulate_phase_space(force, None, x, jax.random.key(4))
    assert float(hsm_velocity_loss(zero_v, None, x_t, v_t, t)) == 0.0


def test_hsm_optimizer_descends_velocity_and_ascends_force():
    """L = phi * theta: the velocity (phi) moves against dL/dphi = theta, the force (theta)
    along dL/dtheta = phi (min_theta max_phi -L)."""
    params = {"force": jnp.array(1.0), "velocity": jnp.array(2.0)}
    grads = jax.grad(lambda p: p["force"] * p["velocity"])(params)
    opt = hsm_optimizer(optax.sgd(0.1), optax.sgd(0.1))
    updates, _ = opt.update(grads, opt.init(params), params)
    assert float(updates["velocity"]) == pytest.approx(-0.1 * 1.0)
    assert float(updates["force"]) == pytest.approx(+0.1 * 2.0)
    # velocity_steps = 3: the force moves once per 3 steps, with the mean gradient
    opt = hsm_optimizer(optax.sgd(0.1), optax.sgd(0.1), velocity_steps=3)
    state = opt.init(params)
    moves = []
    for _ in range(3):
        updates, state = opt.update(grads, state, params)
        moves.append(float(updates["force"]))
    assert moves == pytest.approx([0.0, 0.0, 0.2])


# -------------------------------------------------------------------------------------------
# the Gaussian oracle
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "horizon, force_gradient, force_baseline",
    [(HORIZON, "full", False), (1.0, "taylor", True)],
    ids=["paper", "default"],
)
def test_hsm_gaussian_oracle(gaussian_data, horizon, force_gradient, force_baseline):
    """The paper's form (exact gradient through the leapfrog, plain predictor) at T = 2 and
    fit_hsm's default (baseline t F + V_phi, small-time gradient, Eq. T) at T = 1."""
    x, sample_mean, sample_precision = gaussian_data
    center = tuple(float(c) for c in sample_mean)
    model, (velocity, phi), result = fit_hsm(
        x,
        energy=QuadraticEnergy(2),
        velocity=LegendreVelocity(horizon, center),
        key=jax.random.key(1),
        step_size=horizon / 10,
        num_steps=10,
        force_gradient=force_gradient,
        force_baseline=force_baseline,
        steps=1500,
        batch_size=512,
        learning_rate=0.02,
        velocity_learning_rate=0.1,
        progress=False,
        return_result=True,
    )
    assert isinstance(model, nh.distributions.energy.EnergyBasedModel)
    raw = model.params["chol"]
    chol = jnp.tril(raw, -1) + jnp.diag(jnp.exp(jnp.diag(raw)))
    precision = np.asarray(chol @ chol.T)
    mean = np.asarray(model.params["mean"])
    assert _rel(mean, MU) < 0.05
    assert _rel(precision, PRECISION) < 0.05
    assert _rel(mean, sample_mean) < 0.02
    assert _rel(precision, sample_precision) < 0.03
    # at the end the velocity player finds (almost) nothing: -L ~ D ~ 0
    assert abs(float(np.mean(result.history[-200:]))) < 0.01


def test_force_baseline_reindexes_the_predictor(gaussian_data):
    """V = t F_theta0 + V_phi with theta0 fixed: the same value and the same gradients in
    both players as the plain loss with that predictor written out by hand."""
    x = gaussian_data[0][:128]
    force, velocity = LinearForce(2), LegendreVelocity(1.0, tuple(MU))
    force_fn = lambda p, y: force.apply({"params": p}, y)
    vel_fn = lambda p, y, t: velocity.apply({"params": p}, y, t)
    theta = {"precision": jnp.eye(2) * 0.7, "center": jnp.array([0.5, -1.0])}
    phi = jax.tree.map(
        lambda a: 0.1 * jax.random.normal(jax.random.key(7), a.shape),
        velocity.init(jax.random.key(0), x[:1], jnp.ones(1))["params"],
    )
    opts = dict(step_size=0.25, num_steps=4)
    key = jax.random.key(8)

    def with_baseline(p):
        return hamiltonian_score_matching(
            force_fn, p["f"], x, key, velocity_fn=vel_fn, velocity_params=p["v"],
            force_baseline=True, **opts,
        )  # fmt: skip

    def by_hand(p):
        written = lambda q, y, t: vel_fn(q, y, t) + t[:, None] * force_fn(theta, y)
        return hamiltonian_score_matching(
            force_fn, p["f"], x, key, velocity_fn=written, velocity_params=p["v"], **opts
        )

    params = {"f": theta, "v": phi}
    v1, g1 = jax.value_and_grad(with_baseline)(params)
    v2, g2 = jax.value_and_grad(by_hand)(params)
    assert float(v1) == pytest.approx(float(v2), rel=1e-5)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    plain = hamiltonian_score_matching(
        force_fn, theta, x, key, velocity_fn=vel_fn, velocity_params=phi, **opts
    )
    assert abs(float(plain) - float(v1)) > 1e-3  # the baseline does change the predictor


def test_taylor_force_gradient_is_the_closed_form(gaussian_data):
    """force_gradient="taylor": the value is L_hsm and, for F = -A (x - c), the theta
    gradient is Eq. T written out: dL/dA = 2 E[t V (x_t - c)^T], dL/dc = -2 E[t A^T V]."""
    x = gaussian_data[0][:256]
    force = LinearForce(2)
    force_fn = lambda p, y: force.apply({"params": p}, y)
    vel = lambda p, y, t: p * t[:, None] * (y - jnp.asarray(MU))  # any predictor
    theta = {"precision": jnp.array([[0.8, 0.1], [0.2, 0.6]]), "center": jnp.array([0.5, -1.0])}
    key, opts = jax.random.key(9), dict(step_size=0.1, num_steps=10)

    def loss(p, mode):
        return hamiltonian_score_matching(
            force_fn, p, x, key, velocity_fn=vel, velocity_params=0.3,
            force_gradient=mode, **opts,
        )  # fmt: skip

    value, grad = jax.value_and_grad(loss)(theta, "taylor")
    assert float(value) == pytest.approx(float(loss(theta, "full")), rel=1e-6)
    x_t, _, t = simulate_phase_space(force_fn, theta, x, key, **opts)
    v = np.asarray(vel(0.3, x_t, t), np.float64)
    tt, xc = np.asarray(t, np.float64)[:, None], np.asarray(x_t - theta["center"], np.float64)
    grad_a = 2.0 * np.einsum("ni,nj->ij", tt * v, xc) / len(x)
    grad_c = -2.0 * np.mean(tt * v, 0) @ np.asarray(theta["precision"], np.float64)
    np.testing.assert_allclose(grad["precision"], grad_a, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grad["center"], grad_c, rtol=1e-4, atol=1e-6)
    # "velocity": only the v_t path, so it differs from "full" (which also moves x_t)
    g_vel = jax.grad(loss)(theta, "velocity")
    g_full = jax.grad(loss)(theta, "full")
    assert not np.allclose(g_vel["precision"], g_full["precision"], rtol=1e-3)
    with pytest.raises(ValueError, match="force_gradient"):
        loss(theta, "exact")


# -------------------------------------------------------------------------------------------
# the discrepancy as a metric
# -------------------------------------------------------------------------------------------


def _exact_average(a, c, t_max, order=16):
    nodes, weights = np.polynomial.legendre.leggauss(order)
    ts = (nodes + 1.0) / 2.0 * t_max
    return float(np.sum(weights / 2.0 * np.asarray(gaussian_hsd(a, c, MU, SIGMA, ts))))


def _hsd_results(x, velocity):
    """Three forces of one architecture: one compiled trainer (the HSD cache)."""
    forces = {
        "true": (PRECISION, MU),
        "perturbed": (1.2 * PRECISION, MU + np.array([0.3, 0.0])),
        "slightly": (1.1 * PRECISION, MU),
    }
    out = {}
    for name, (a, c) in forces.items():
        params = {"precision": jnp.asarray(a, jnp.float32), "center": jnp.asarray(c, jnp.float32)}
        result = hamiltonian_score_discrepancy(
            LinearForce(2),
            x,
            force_params=params,
            velocity=velocity,
            key=jax.random.key(5),
            step_size=0.1,
            num_steps=10,
            steps=1000,
            score=_true_score,
            progress=False,
        )
        out[name] = (result, _exact_average(a, c, 1.0))
    return out


@pytest.fixture(scope="module")
def hsd_results(gaussian_data):
    """Fast: the affine-in-x velocity class (exact for linear forces on Gaussian data)."""
    return _hsd_results(gaussian_data[0][:4000], LegendreVelocity(1.0, tuple(MU)))


@pytest.fixture(scope="module")
def hsd_results_default(gaussian_data):
    """The default velocity predictor, a VelocityMLP (t * TimeMLP)."""
    return _hsd_results(gaussian_data[0][:4000], None)


def _check_zero_at_true_score(results):
    result, exact = results["true"]
    assert exact < 1e-5  # the leapfrog error only
    assert abs(result.value) < 3 * result.stderr
    assert result.taylor == pytest.approx(0.0, abs=1e-9)
    assert result.plugin >= 0.0  # the plug-in is biased up: E||V||^2 > 0 always


def _check_positive_and_closed_form(results):
    for name in ("perturbed", "slightly"):
        result, exact = results[name]
        assert result.value - 3 * result.stderr < exact < result.value + 3 * result.stderr + 0.01
    result, exact = results["perturbed"]
    assert result.value > 5 * result.stderr
    assert result.value > 0.5 * exact
    assert result.times.shape == result.per_time.shape == (5,)
    # D(t) grows with t (~ t^2 at small t)
    assert result.per_time[-1] > result.per_time[0]


def test_hsd_is_zero_at_the_true_score(hsd_results):
    _check_zero_at_true_score(hsd_results)


def test_hsd_is_positive_and_matches_the_gaussian_closed_form(hsd_results):
    _check_positive_and_closed_form(hsd_results)


@pytest.mark.slow
def test_hsd_with_the_default_velocity_mlp(hsd_results_default):
    _check_zero_at_true_score(hsd_results_default)
    _check_positive_and_closed_form(hsd_results_default)


def test_taylor_approximation_at_small_times():
    """D(t) / (t^2 FD) -> 1 as t -> 0 (exact Gaussian HSD against the Fisher divergence)."""
    a, c = 1.2 * PRECISION, MU + np.array([0.3, 0.0])
    diff, shift = a - PRECISION, a @ (c - MU)  # F - s = -(A - P)(x - mu) + A (c - mu)
    fd = np.trace(diff @ SIGMA @ diff.T) + shift @ shift
    for t, tol in [(0.02, 0.01), (0.1, 0.03)]:
        ratio = float(gaussian_hsd(a, c, MU, SIGMA, t)) / (t**2 * fd)
        assert abs(ratio - 1.0) < tol
    # and on samples, hsd_taylor with the true score is t^2 times the Fisher divergence
    x = jax.random.multivariate_normal(jax.random.key(6), MU, SIGMA, (20_000,))
    force = lambda y: -(y - c) @ a.T
    got = float(hsd_taylor(force, x, 0.1, score=_true_score))
    assert got == pytest.approx(0.01 * fd, rel=0.05)


def test_taylor_without_the_score_is_integration_by_parts(gaussian_data):
    """Without the score: t^2 (E||F||^2 + 2 E div F); for F = -A (x - c), div F = -tr A."""
    x = gaussian_data[0][:1000]
    a, c = 1.2 * PRECISION, MU + 0.1
    force = lambda y: -(y - c) @ a.T
    f = -(np.asarray(x, np.float64) - c) @ a.T
    expected = 0.25 * (np.mean(np.sum(f**2, -1)) - 2.0 * np.trace(a))
    assert float(hsd_taylor(force, x, 0.5)) == pytest.approx(expected, rel=1e-4)
    # with the score: exactly the Fisher divergence on the samples
    fd = float(fisher_divergence(force, x, _true_score))
    assert float(hsd_taylor(force, x, 0.5, score=_true_score)) == pytest.approx(0.25 * fd)


def test_models_are_accepted_as_forces(gaussian_data):
    """An EnergyBasedModel (or ScoreModel) is a force through its score."""
    x = gaussian_data[0][:500]
    energy = QuadraticEnergy(2)
    params = {"mean": jnp.asarray(MU + 0.2, jnp.float32), "chol": jnp.zeros((2, 2))}
    ebm = nh.distributions.energy.EnergyBasedModel(energy, params, (2,))
    as_lambda = lambda y: -(y - (MU + 0.2))  # chol = 0: A = I
    got = float(hsd_taylor(ebm, x, 0.3, score=_true_score))
    assert got == pytest.approx(float(hsd_taylor(as_lambda, x, 0.3, score=_true_score)), rel=1e-5)


# -------------------------------------------------------------------------------------------
# bad input
# -------------------------------------------------------------------------------------------


def test_bad_step_size_and_options(gaussian_data):
    x = gaussian_data[0][:64]
    key = jax.random.key(0)
    force = lambda _p, y: -y
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="step_size"):
            simulate_phase_space(force, None, x, key, step_size=bad)
        with pytest.raises(ValueError, match="step_size"):
            fit_hsm(x, key=key, step_size=bad)
        with pytest.raises(ValueError, match="step_size"):
            hamiltonian_score_discrepancy(lambda y: -y, x, key=key, step_size=bad)
    with pytest.raises(ValueError, match="num_steps"):
        simulate_phase_space(force, None, x, key, num_steps=0)
    with pytest.raises(ValueError, match="time_sampling"):
        fit_hsm(x, key=key, time_sampling="random")
    with pytest.raises(ValueError, match="holdout"):
        hamiltonian_score_discrepancy(lambda y: -y, x, key=key, holdout=1.5)
    with pytest.raises(ValueError, match="velocity_steps"):
        hsm_optimizer(optax.sgd(0.1), optax.sgd(0.1), velocity_steps=0)
    with pytest.raises(TypeError, match="key"):
        fit_hsm(x)
    with pytest.raises(TypeError, match="force_params"):
        hamiltonian_score_discrepancy(LinearForce(2), x, key=key)


def test_shape_mismatch_names_the_argument(gaussian_data):
    x2 = gaussian_data[0][:64]
    energy = QuadraticEnergy(3)
    params3 = energy.init(jax.random.key(0), jnp.zeros((1, 3)))["params"]
    with pytest.raises(ValueError, match=r"^data: .*\(64, 2\)"):
        fit_hsm(x2, energy=energy, params=params3, key=jax.random.key(0))
    force3 = LinearForce(3)
    f_params = force3.init(jax.random.key(0), jnp.zeros((1, 3)))["params"]
    with pytest.raises(ValueError, match=r"^data: .*\(64, 2\)"):
        hamiltonian_score_discrepancy(force3, x2, force_params=f_params, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"^data: expected an array of shape \(n, d\)"):
        fit_hsm(x2[None], key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"^data: expected an array of shape \(n, d\)"):
        hamiltonian_score_discrepancy(lambda y: -y, x2[:, 0], key=jax.random.key(0))
    # a force that does not return a vector field of x's shape
    with pytest.raises(ValueError, match="force: expected an output of the shape of x"):
        simulate_phase_space(lambda _p, y: y[:, :1], None, x2, jax.random.key(0))
