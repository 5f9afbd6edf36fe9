"""Hamiltonian paths: couplings, motions, bases and the Gaussian optimal-velocity oracle.

The oracle ``optimal_velocity_gaussian`` is checked against Monte Carlo: for the Gaussian
paths ``(x_t, v_t)`` is jointly Gaussian, so ``E[v_t | x_t]`` is affine and the least
squares regression of ``v_t`` on ``(1, x_t)`` estimates its coefficients, with standard
errors from the residual covariance.  For reflection, local-bin averages of ``v_t`` are
compared with the oracle, the tolerance being the bin's standard error.  Float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from numpyro_hgf.paths import (
    DiffusionPath,
    FlowMatchingPath,
    OscillationPath,
    ReflectionPath,
    path_from_config,
)

MEAN = np.array([0.6, -0.4])
COV = np.array([[0.5, 0.2], [0.2, 0.3]])
N_MC = 100_000


@pytest.fixture(autouse=True, scope="module")
def x64():
    with jax.enable_x64(True):
        yield


def _data(key, n, mean=MEAN, cov=COV):
    return jax.random.multivariate_normal(key, jnp.asarray(mean), jnp.asarray(cov), (n,))


def _regress(x, v):
    """Least squares ``v ~ a + x B^T``: returns ``(a, B, se_a, se_B)`` (standard errors)."""
    n = x.shape[0]
    design = np.concatenate([np.ones((n, 1)), x], axis=1)
    coef, *_ = np.linalg.lstsq(design, v, rcond=None)  # (1 + d, d)
    resid = v - design @ coef
    resid_var = resid.var(axis=0, ddof=design.shape[1])  # (d,)
    xtx_inv_diag = np.diag(np.linalg.inv(design.T @ design))  # (1 + d,)
    se = np.sqrt(xtx_inv_diag[:, None] * resid_var[None, :])
    return coef[0], coef[1:].T, se[0], se[1:].T


def _oracle_affine(path, t):
    """``V*(x) = a + B x``: read ``a`` and ``B`` off the oracle (it is affine in ``x``)."""
    oracle = lambda x: path.optimal_velocity_gaussian(x, t, jnp.asarray(MEAN), jnp.asarray(COV))
    a = np.asarray(oracle(jnp.zeros(2)))
    B = np.asarray(jax.jacfwd(oracle)(jnp.zeros(2)))
    return a, B


GAUSSIAN_CASES = [
    (FlowMatchingPath(), 0.3),
    (DiffusionPath(T=5.0), 0.5),
    (OscillationPath(omega=2.0), 0.6),
]


@pytest.mark.parametrize(("path", "t"), GAUSSIAN_CASES, ids=lambda c: getattr(c, "name", c))
def test_gaussian_oracle_matches_monte_carlo_regression(path, t):
    x0 = _data(jax.random.key(0), N_MC)
    x_t, v_t = path.sample(x0, jax.random.key(1), jnp.full((N_MC,), t))
    a_hat, B_hat, se_a, se_B = _regress(np.asarray(x_t), np.asarray(v_t))
    a, B = _oracle_affine(path, t)
    z = np.concatenate([((a_hat - a) / se_a).ravel(), ((B_hat - B) / se_B).ravel()])
    print(f"{path.name} t={t}: max |z| = {np.max(np.abs(z)):.2f}, max |B_hat - B| = "
          f"{np.max(np.abs(B_hat - B)):.4f}")  # fmt: skip
    # six coefficients, each within 4.5 standard errors (the seeds are fixed)
    assert np.max(np.abs(z)) < 4.5, (z, a, a_hat, B, B_hat)
    # and the standard errors are small: the check has power
    assert np.max(se_B) < 0.01


@pytest.mark.parametrize(
    "path", [FlowMatchingPath(), DiffusionPath(T=4.0), OscillationPath(omega=1.5)], ids=str
)
def test_exact_base_is_the_x_T_marginal(path):
    x0 = _data(jax.random.key(2), N_MC)
    x_T, _ = path.sample(x0, jax.random.key(3), jnp.full((N_MC,), path.horizon))
    base = path.exact_base_gaussian(jnp.asarray(MEAN), jnp.asarray(COV))
    x_T, cov = np.asarray(x_T), np.asarray(base.covariance_matrix)
    sd = np.sqrt(np.diag(cov))
    # sample mean and covariance within 4.5 standard errors
    np.testing.assert_array_less(np.abs(x_T.mean(0) - base.loc), 4.5 * sd / np.sqrt(N_MC))
    se_cov = np.sqrt((np.outer(sd**2, sd**2) + cov**2) / N_MC)
    np.testing.assert_array_less(np.abs(np.cov(x_T.T) - cov), 4.5 * se_cov)


def test_path_bases():
    """``pi_T`` against the exact ``x_T`` marginal, read off as (loc, covariance)."""
    d = (3,)
    mean, cov = jnp.asarray([1.0, -2.0, 0.5]), 3.0 * jnp.eye(3)

    def loc_cov(base):
        if hasattr(base, "covariance_matrix"):
            return np.asarray(base.loc), np.asarray(base.covariance_matrix)
        normal = base.base_dist  # Normal(loc, scale).to_event(1)
        loc = np.broadcast_to(np.asarray(normal.loc), d)
        return loc, np.diag(np.broadcast_to(np.asarray(normal.scale), d) ** 2)

    # flow matching and oscillation: pi_T is N(0, I) and N(0, I / omega^2) for any data
    for path, var in [(FlowMatchingPath(), 1.0), (OscillationPath(omega=2.0), 0.25)]:
        for base in (path.base(d), path.exact_base_gaussian(mean, cov)):
            loc, c = loc_cov(base)
            np.testing.assert_allclose(loc, 0.0, atol=1e-15)
            np.testing.assert_allclose(c, var * np.eye(3), atol=1e-15)
    # diffusion: N(0, (data_std^2 + T^2) I), exact for data N(0, data_std^2 I)
    diff = DiffusionPath(T=6.0, data_std=0.7)
    for base in (diff.base(d), diff.exact_base_gaussian(jnp.zeros(3), 0.49 * jnp.eye(3))):
        loc, c = loc_cov(base)
        np.testing.assert_allclose(loc, 0.0, atol=1e-15)
        np.testing.assert_allclose(c, 36.49 * np.eye(3), rtol=1e-12)
    # ... and otherwise the exact marginal keeps the data mean: N(mean, cov + T^2 I)
    loc, c = loc_cov(diff.exact_base_gaussian(mean, cov))
    np.testing.assert_allclose(loc, mean, atol=1e-15)
    np.testing.assert_allclose(c, 39.0 * np.eye(3), rtol=1e-12)
    # reflection: uniform on the box
    refl = ReflectionPath(low=-2.0, high=1.0)
    base = refl.base(d)
    assert base.event_shape == d
    np.testing.assert_allclose(base.base_dist.low, -2.0)
    np.testing.assert_allclose(base.base_dist.high, 1.0)
    np.testing.assert_allclose(base.log_prob(jnp.array([-1.9, 0.0, 0.9])), -3 * np.log(3.0))


def test_sample_time_is_uniform_on_0_T():
    for path in (FlowMatchingPath(), DiffusionPath(T=7.0), OscillationPath(omega=3.0)):
        t = np.asarray(path.sample_time(jax.random.key(5), 20_000))
        assert t.shape == (20_000,)
        assert t.min() >= 0.0 and t.max() <= path.horizon
        # mean T/2 within 4.5 standard errors (sd of U(0, T) is T / sqrt(12))
        assert abs(t.mean() - path.horizon / 2) < 4.5 * path.horizon / np.sqrt(12 * 20_000)


def test_flow_matching_coupling_and_motion():
    path = FlowMatchingPath()
    x0 = _data(jax.random.key(6), 1000)
    key = jax.random.key(7)
    v0 = path.couple(x0, key)
    z = jax.random.normal(key, x0.shape, x0.dtype)
    np.testing.assert_allclose(x0 + v0, z, atol=1e-14)  # v0 = z - x0
    t = jnp.linspace(0.0, 1.0, 1000)
    x_t, v_t = path.motion(x0, v0, t)
    np.testing.assert_allclose(x_t, (1 - t[:, None]) * x0 + t[:, None] * z, atol=1e-14)
    np.testing.assert_array_equal(v_t, v0)


def test_minibatch_ot_coupling_is_an_optimal_permutation_under_jit():
    path = FlowMatchingPath(minibatch_ot=True)
    x0 = _data(jax.random.key(8), 64) * 3.0
    key = jax.random.key(9)
    v0 = jax.jit(path.couple)(x0, key)
    z_ot = np.asarray(x0 + v0)
    z = np.asarray(jax.random.normal(key, x0.shape, x0.dtype))
    # the same noise points, re-paired
    np.testing.assert_allclose(np.sort(z_ot, axis=0), np.sort(z, axis=0), atol=1e-12)
    cost = lambda a, b: float(np.sum((a - b) ** 2))
    x = np.asarray(x0)
    rows, cols = linear_sum_assignment(((x[:, None] - z[None]) ** 2).sum(-1))
    np.testing.assert_allclose(cost(x, z_ot), cost(x[rows], z[cols]), rtol=1e-10)
    assert cost(x, z_ot) < 0.8 * cost(x, z)
    with pytest.raises(ValueError, match="minibatch_ot"):
        path.optimal_velocity_gaussian(x0, 0.5, jnp.asarray(MEAN), jnp.asarray(COV))


def test_independent_couplings():
    x0 = _data(jax.random.key(10), 50_000)
    for path, std in [(DiffusionPath(), 1.0), (OscillationPath(2.0), 1.0)]:
        v0 = np.asarray(path.couple(x0, jax.random.key(11)))
        assert abs(v0.std() - std) < 0.01
        # independent of x0
        assert np.max(np.abs(np.corrcoef(np.asarray(x0).T, v0.T)[:2, 2:])) < 0.02
    refl = ReflectionPath(velocity_std=0.3)
    v0 = np.asarray(refl.couple(x0, jax.random.key(11)))
    assert abs(v0.std() - 0.3) < 0.003


def test_reflection_motion_stays_in_box_and_keeps_speed():
    path = ReflectionPath(low=-1.0, high=1.0)
    x0 = jax.random.uniform(jax.random.key(12), (1000, 2), minval=-1.0, maxval=1.0)
    x_t, v_t = path.sample(x0, jax.random.key(13), jnp.full((1000,), path.horizon))
    v0 = path.couple(x0, jax.random.key(13))
    assert float(jnp.min(x_t)) >= -1.0 and float(jnp.max(x_t)) <= 1.0
    np.testing.assert_allclose(jnp.abs(v_t), jnp.abs(v0), atol=0)


def test_reflection_slowest_mode_decays_as_documented():
    """``E cos(pi (x_T - low) / L) = cos(pi (x0 - low) / L) exp(-(pi s T / L)^2 / 2)``."""
    T = 0.5
    path = ReflectionPath(low=-1.0, high=1.0, velocity_std=1.0, T=T)
    n = 200_000
    x0 = jnp.full((n, 1), 0.3)
    x_T, _ = path.sample(x0, jax.random.key(14), jnp.full((n,), T))
    mode = np.cos(np.pi * (np.asarray(x_T)[:, 0] + 1.0) / 2.0)
    expected = np.cos(np.pi * 1.3 / 2.0) * np.exp(-((np.pi * T / 2.0) ** 2) / 2)
    se = mode.std() / np.sqrt(n)
    assert abs(mode.mean() - expected) < 4.5 * se, (mode.mean(), expected, se)
    # the documented default factor at T = 3
    assert np.exp(-((np.pi * 3.0 / 2.0) ** 2) / 2) == pytest.approx(1.5e-5, rel=0.05)


R_MEAN = np.array([0.2, -0.2])
R_COV = np.array([[0.04, 0.015], [0.015, 0.025]])


@pytest.fixture(scope="module")
def reflection_oracle():
    """``V*`` of ``ReflectionPath(T=1)`` for data ``N(R_MEAN, R_COV)``, jitted once for
    ``x: (CHUNK, 2)`` and a traced ``t``."""
    path = ReflectionPath(T=1.0)
    mean, cov = jnp.asarray(R_MEAN), jnp.asarray(R_COV)
    oracle = jax.jit(lambda x, t: path.optimal_velocity_gaussian(x, t, mean, cov))

    def evaluate(x, t):
        x = np.atleast_2d(x)
        out = []
        for start in range(0, len(x), CHUNK):
            part = x[start : start + CHUNK]
            padded = np.concatenate([part, np.zeros((CHUNK - len(part), 2))])
            out.append(np.asarray(oracle(padded, t))[: len(part)])
        return np.concatenate(out)

    return path, evaluate


CHUNK = 2048


def test_reflection_oracle_matches_local_bin_averages(reflection_oracle):
    path, oracle = reflection_oracle
    n = 600_000
    x0 = _data(jax.random.key(15), n, R_MEAN, R_COV)
    t_all = jnp.array([0.3, 0.6, 0.9]).repeat(n // 3)
    x_all, v_all = jax.jit(path.motion)(x0, path.couple(x0, jax.random.key(16)), t_all)
    t_all, x_all, v_all = np.asarray(t_all), np.asarray(x_all), np.asarray(v_all)
    # the data mode, a point the particles reach after bouncing, a point near the wall x1 = 1
    points = np.array([[0.2, -0.2], [0.7, 0.5], [0.95, 0.0]])
    h = 0.03  # bin half-width
    z_max = 0.0
    for t in (0.3, 0.6, 0.9):
        at_t = t_all == np.float64(t)
        x_t, v_t = x_all[at_t], v_all[at_t]
        for point in points:
            sel = np.all(np.abs(x_t - point) < h, axis=1)
            k = int(sel.sum())
            assert k > 50, (t, point, k)
            v_bin = v_t[sel].mean(0)
            se = v_t[sel].std(0) / np.sqrt(k)
            # E[v_t | x_t in bin] = E[V*(x_t) | x_t in bin] exactly (tower property): the
            # only tolerance is the standard error of the bin average
            target = oracle(x_t[sel], t).mean(0)
            z_max = max(z_max, float(np.max(np.abs(v_bin - target) / se)))
            assert np.all(np.abs(v_bin - target) < 4.5 * se), (t, point, v_bin, target, se)
            # and the bin is local: its oracle average is the oracle at the point up to
            # the curvature of V* over the bin
            np.testing.assert_allclose(target, oracle(point, t)[0], atol=0.05)
    print(f"reflection bins: max |z| = {z_max:.2f}")


def test_reflection_oracle_is_zero_at_the_walls_and_at_t0(reflection_oracle):
    _, oracle = reflection_oracle
    # at a wall the two mirror preimages cancel: the normal component of V* vanishes
    v = oracle(np.array([[1.0, 0.3], [-0.4, -1.0]]), 0.7)
    assert abs(v[0, 0]) < 1e-12 and abs(v[1, 1]) < 1e-12
    assert abs(v[0, 1]) > 1e-3 and abs(v[1, 0]) > 1e-3
    # at t = 0 the velocity is independent of the position: E[v0 | x0] = 0
    np.testing.assert_allclose(oracle(np.array([0.1, 0.2]), 0.0), 0.0, atol=1e-14)


def test_gaussian_oracle_accepts_any_batch_shape():
    mean, cov = jnp.asarray(MEAN), jnp.asarray(COV)
    x = jax.random.normal(jax.random.key(17), (4, 5, 2))
    for path in (FlowMatchingPath(), DiffusionPath(), OscillationPath()):
        batched = path.optimal_velocity_gaussian(x, 0.4, mean, cov)
        flat = path.optimal_velocity_gaussian(x.reshape(20, 2), 0.4, mean, cov)
        single = path.optimal_velocity_gaussian(x[2, 3], 0.4, mean, cov)
        assert batched.shape == (4, 5, 2)
        np.testing.assert_allclose(batched.reshape(20, 2), flat, atol=1e-13)
        np.testing.assert_allclose(batched[2, 3], single, atol=1e-13)


def test_flow_matching_oracle_closed_form_endpoints():
    """``V*(x, 0) = -x`` (``x_0 = x0``, ``v = z - x0`` with ``E z = 0``) and
    ``V*(x, 1) = x - mean`` (``x_1 = z``, ``E[x0 | z] = mean``)."""
    path = FlowMatchingPath()
    mean, cov = jnp.asarray(MEAN), jnp.asarray(COV)
    x = jax.random.normal(jax.random.key(18), (6, 2))
    np.testing.assert_allclose(path.optimal_velocity_gaussian(x, 0.0, mean, cov), -x, atol=1e-12)
    np.testing.assert_allclose(
        path.optimal_velocity_gaussian(x, 1.0, mean, cov), x - mean, atol=1e-12
    )


def test_config_round_trip():
    for path in (
        FlowMatchingPath(minibatch_ot=True),
        DiffusionPath(T=4.0, data_std=0.5),
        OscillationPath(omega=2.5),
        ReflectionPath(low=-2.0, high=3.0, velocity_std=0.5, T=7.0),
    ):
        assert path_from_config(path.config()) == path
    with pytest.raises(ValueError, match=r"^config: expected a path name"):
        path_from_config({"name": "brownian"})


@pytest.mark.parametrize(
    "path",
    [FlowMatchingPath(), DiffusionPath(T=2.0), OscillationPath(omega=2.0), ReflectionPath(T=3.0)],
    ids=str,
)
def test_time_outside_0_T_is_an_error(path):
    x0 = jnp.zeros((3, 2))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"^t: expected times in \[0.0, "):
        path.sample(x0, key, jnp.array([0.1, -0.5, 0.2]))
    with pytest.raises(ValueError, match=r"^t: expected times in"):
        path.sample(x0, key, path.horizon + 0.5)
    path.sample(x0, key, jnp.array([0.0, path.horizon / 2, path.horizon]))  # the ends are fine


def test_bad_construction_and_data_name_the_argument():
    with pytest.raises(ValueError, match=r"^omega: expected a positive finite number, got 0"):
        OscillationPath(omega=0)
    with pytest.raises(ValueError, match=r"^omega: "):
        OscillationPath(omega=-2.0)
    with pytest.raises(ValueError, match=r"^T: "):
        DiffusionPath(T=-1.0)
    with pytest.raises(ValueError, match=r"^high: expected a value greater than low"):
        ReflectionPath(low=1.0, high=-1.0)
    with pytest.raises(ValueError, match=r"^velocity_std: "):
        ReflectionPath(velocity_std=0.0)
    path = ReflectionPath()
    with pytest.raises(ValueError, match=r"^x0: expected data inside the reflection box"):
        path.sample(jnp.array([[0.0, 1.5]]), jax.random.key(0), 0.5)
