"""The shared ODE module: solvers, NFE accounting, the ODE log-likelihood, trace estimators.

Oracles: the matrix exponential for linear fields ``f(x) = A x`` (solution and exact
log-likelihood), a runtime counter of field evaluations, the 4th-order convergence of
RK4, the exact Jacobian trace, and the unbiasedness of Hutchinson's estimator.  Float64.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy.linalg import expm

from numpyro_hgf.odeflow import (
    SOLVERS,
    ODESolver,
    divergence_exact,
    divergence_hutchinson,
    ode_log_prob,
    solve_ode,
)

A = np.array([[-0.3, 0.8, 0.1], [-0.6, 0.2, 0.0], [0.2, -0.1, -0.5]])


@pytest.fixture(autouse=True, scope="module")
def x64():
    with jax.enable_x64(True):
        yield


def linear_field(x, t):
    del t
    return x @ jnp.asarray(A).T


@pytest.fixture(scope="module")
def mlp_field():
    """A random time-dependent one-hidden-layer field on ``R^3`` (nonlinear, with a
    non-symmetric Jacobian), ``(batch, 3), () -> (batch, 3)``."""
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(3, 16)) / np.sqrt(3), rng.normal(size=(16, 3)) / 4
    b, c = rng.normal(size=16), rng.normal(size=16)
    return lambda x, t: jnp.tanh(x @ w1 + t * c + b) @ w2


def _y(n=4, seed=1):
    return jax.random.normal(jax.random.key(seed), (n, 3))


@pytest.mark.parametrize(
    ("name", "nfe", "tol"),
    [("euler", 400, 5e-3), ("heun", 200, 1e-4), ("rk4", 200, 1e-8), ("tsit5", 0, 1e-7),
     ("dopri5", 0, 1e-7)],
)  # fmt: skip
def test_each_solver_solves_a_linear_ode_and_reports_its_nfe(name, nfe, tol):
    adaptive = SOLVERS[name][2]
    solver = ODESolver(name, rtol=1e-9, atol=1e-9) if adaptive else ODESolver(name, nfe=nfe)
    calls = []

    def counted(x, t):
        jax.debug.callback(lambda: calls.append(1))
        return linear_field(x, t)

    x = _y()
    result = jax.jit(lambda x: solve_ode(counted, x, 0.2, 1.4, solver))(x)
    exact = np.asarray(x) @ expm(A * 1.2).T
    assert float(jnp.max(jnp.abs(result.value - exact))) < tol
    # the reported NFE is the number of field evaluations that actually ran
    assert int(result.nfe) == len(calls)
    if not adaptive:
        stages = SOLVERS[name][1]
        assert solver.num_steps == nfe // stages
        assert int(result.nfe) == solver.num_steps * stages == nfe
    else:
        assert int(result.nfe) > 6  # at least one step of 6 stages (+1 first evaluation)


def test_fixed_step_nfe_rounds_down_to_whole_steps():
    assert ODESolver("rk4", nfe=10).num_steps == 2
    assert ODESolver("heun", nfe=3).num_steps == 1
    assert ODESolver("rk4", nfe=2).num_steps == 1  # at least one step
    assert ODESolver("euler", nfe=7).num_steps == 7


def test_rk4_converges_at_fourth_order():
    x = _y()
    exact = np.asarray(x) @ expm(A * 2.0).T
    errors = [
        float(jnp.max(jnp.abs(solve_ode(linear_field, x, 0.0, 2.0, ODESolver("rk4", nfe=4 * n))
                              .value - exact)))
        for n in (8, 16)
    ]  # fmt: skip
    ratio = errors[0] / errors[1]
    print(f"rk4 error ratio when halving the step: {ratio:.3f} (errors {errors})")
    assert 14.0 < ratio < 18.0, errors


@partial(jax.jit, static_argnums=(4,))
def _linear_log_prob(y, t0, t1, base, solver):  # times traced: one compilation for both
    return ode_log_prob(linear_field, y, t0, t1, base.log_prob, solver)


@pytest.mark.parametrize(("t0", "t1"), [(0.0, 1.5), (1.0, -0.5)])
def test_linear_field_log_likelihood_closed_form(t0, t1):
    """``log p(y) = log p_{t0}(expm(-A (t1 - t0)) y) - tr(A) (t1 - t0)``."""
    base = dist.Normal(jnp.array([0.3, -0.2, 0.1]), jnp.array([1.0, 0.5, 2.0])).to_event(1)
    y = _y(5)
    solver = ODESolver("tsit5", rtol=1e-10, atol=1e-10)
    result = _linear_log_prob(y, t0, t1, base, solver)
    z = np.asarray(y) @ expm(-A * (t1 - t0)).T
    expected = np.asarray(base.log_prob(jnp.asarray(z))) - np.trace(A) * (t1 - t0)
    np.testing.assert_allclose(result.value, expected, atol=1e-7)
    assert result.value.shape == (5,)
    assert int(result.nfe) > 0


def test_divergence_exact_is_the_jacobian_trace(mlp_field):
    x = _y(3)
    div = divergence_exact(mlp_field, x, 0.37)
    jac = jax.vmap(jax.jacfwd(lambda xi: mlp_field(xi[None], 0.37)[0]))(x)  # (3, 3, 3)
    np.testing.assert_allclose(div, jnp.trace(jac, axis1=1, axis2=2), atol=1e-12)
    assert float(jnp.max(jnp.abs(jac - jnp.swapaxes(jac, 1, 2)))) > 1e-2  # not symmetric
    # event shapes other than vectors: (batch, 2, 2) through a reshaped linear field
    B = jnp.asarray(np.arange(16.0).reshape(4, 4) / 10)
    field = lambda x, t: (x.reshape(-1, 4) @ B.T).reshape(x.shape)
    np.testing.assert_allclose(divergence_exact(field, jnp.ones((2, 2, 2)), 0.0), jnp.trace(B))


def test_divergence_hutchinson_is_exact_with_all_basis_probes(mlp_field):
    """With probes ``sqrt(d) e_i`` (one per axis) the estimator sums the diagonal: exact."""
    x = _y(3)
    probes = jnp.sqrt(3.0) * jnp.broadcast_to(jnp.eye(3)[:, None, :], (3, 3, 3))
    np.testing.assert_allclose(
        divergence_hutchinson(mlp_field, x, 0.2, probes),
        divergence_exact(mlp_field, x, 0.2),
        atol=1e-12,
    )


def test_hutchinson_log_prob_is_unbiased(mlp_field):
    """Hutchinson and exact log_prob agree within 3 standard errors (across probe keys).

    A fixed-step solver makes the comparison exact: the positions do not depend on the
    trace, so the solved Hutchinson integral is an unbiased estimate of the solved exact one.
    """
    y = _y(4)
    base = dist.Normal(jnp.zeros(3), 1.0).to_event(1)
    solver = ODESolver("rk4", nfe=16)
    exact = ode_log_prob(mlp_field, y, 0.0, 1.0, base.log_prob, solver).value
    keys = jax.random.split(jax.random.key(2), 256)
    estimates = jax.jit(
        jax.vmap(
            lambda k: ode_log_prob(
                mlp_field, y, 0.0, 1.0, base.log_prob, solver,
                trace="hutchinson", key=k,
            ).value
        )
    )(keys)  # fmt: skip
    mean = estimates.mean(0)
    se = estimates.std(0, ddof=1) / np.sqrt(len(keys))
    z = (mean - exact) / se
    print(f"Hutchinson vs exact z-scores: {np.asarray(z)}")
    assert np.all(np.abs(z) < 3.0), z
    # the estimator is genuinely random (so the check is not vacuous) ...
    assert float(jnp.min(estimates.std(0))) > 1e-3
    # ... and its standard error is small against the log-density itself
    assert float(jnp.max(se)) < 0.25


def test_bad_input_names_the_argument(mlp_field):
    with pytest.raises(ValueError, match=r"^solver: expected one of 'euler', .*got 'rk45'"):
        ODESolver("rk45")
    with pytest.raises(ValueError, match=r"^nfe: "):
        ODESolver("rk4", nfe=0)
    with pytest.raises(ValueError, match=r"^rtol: "):
        ODESolver("tsit5", rtol=-1.0)
    with pytest.raises(TypeError, match=r"^solver: expected an ODESolver"):
        ODESolver.of(3)
    assert ODESolver.of({"name": "heun", "nfe": 8}) == ODESolver("heun", nfe=8)
    base = dist.Normal(jnp.zeros(3), 1.0).to_event(1)
    with pytest.raises(TypeError, match=r"^key: the Hutchinson trace estimator needs"):
        ode_log_prob(mlp_field, _y(), 0.0, 1.0, base.log_prob, trace="hutchinson")
    with pytest.raises(ValueError, match=r"^trace: expected one of 'exact', 'hutchinson'"):
        ode_log_prob(mlp_field, _y(), 0.0, 1.0, base.log_prob, trace="skilling")


def stiff_field(x, t):
    """``dx/dt = x A / t``: the solution from ``t0`` is ``x0 expm(A log(t / t0))`` (the
    ``1/t`` stiffness of a probability-flow ODE near ``t = eps``)."""
    return x @ jnp.asarray(A).T / t


# relative errors measured at NFE 64, log / uniform: rk4 4.8e-4 / 28, heun 0.021 / 56,
# euler 0.13 / 1.08; log spacing converges at the method's order (rk4 NFE 32: 6.5e-3)
@pytest.mark.parametrize("name, tol", [("rk4", 1e-3), ("heun", 0.05), ("euler", 0.3)])
def test_log_spacing_integrates_a_one_over_t_field(name, tol):
    """Steps uniform in log t make ``x A / t`` a constant-coefficient ODE in the unit time:
    at 64 evaluations from t = 1 to 1e-4 the log-spaced solve is accurate, where uniform
    steps are off by more than the solution's size; RK4's map inverts."""
    nfe = 64
    x0 = jnp.array([[1.0, -0.5, 0.3]])
    exact = np.asarray(x0) @ expm(A * np.log(1e-4)).T
    log = ODESolver(name, nfe=nfe, spacing="log")
    uniform = ODESolver(name, nfe=nfe)
    err_log = np.abs(np.asarray(solve_ode(stiff_field, x0, 1.0, 1e-4, log).value) - exact).max()
    err_uniform = np.abs(np.asarray(solve_ode(stiff_field, x0, 1.0, 1e-4, uniform).value) - exact)
    assert err_log < tol * np.abs(exact).max(), err_log
    assert err_uniform.max() > np.abs(exact).max()
    if name == "rk4":
        back = solve_ode(stiff_field, jnp.asarray(exact), 1e-4, 1.0, log).value
        np.testing.assert_allclose(np.asarray(back), np.asarray(x0), rtol=1e-2, atol=1e-3)


def test_log_spacing_needs_one_sign_and_no_zero():
    solver = ODESolver("rk4", nfe=8, spacing="log")
    with pytest.raises(ValueError, match="spacing: 'log' needs t0 and t1 of one sign"):
        solve_ode(linear_field, jnp.ones((1, 3)), 1.0, 0.0, solver)
    with pytest.raises(ValueError, match="spacing: expected one of 'uniform', 'log'"):
        ODESolver("rk4", spacing="quadratic")
    assert ODESolver.of(vars(solver)) == solver  # the saved form round-trips
