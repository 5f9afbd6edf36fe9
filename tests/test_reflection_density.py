"""The reflection HGF prior's density is zero outside its box and integrates to one.

The prior is the push-forward of ``U(box)`` by the ODE map, so its exact density is
``U(z) |det dz/dx|`` with ``z`` the backward solve of ``x``: zero wherever ``z`` leaves the
box, and zero outside the box (the support).  A field that vanishes on the walls,
``v = (x - low)(high - x) g(x, t)``, keeps the box invariant, so the density integrates to
one over the box and is zero outside it; quadrature on a grid that covers a larger box checks
both.  Negative control: the unmasked density (the uniform base's constant ``log_prob``
wherever ``z`` lands, the old behaviour) integrates to far more than one on the same grid.
"""

import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest

from numpyro_hgf.distributions import HGFPrior
from numpyro_hgf.nn import TimeMLP
from numpyro_hgf.paths import ReflectionPath
from numpyro_hgf.samplers.ode import ODESolver, ode_log_prob, solve_ode

LOW, HIGH = -1.0, 1.0
SOLVER = ODESolver("rk4", nfe=64)


class WallField(nn.Module):
    """``(x - low)(high - x) * g(x, t)``: zero normal velocity on the walls."""

    dim: int

    @nn.compact
    def __call__(self, x, t):
        g = TimeMLP(hidden=(8,), out_dim=self.dim, embed_dim=4, time_scale=1.0)(x, t)
        return 0.25 * (x - LOW) * (HIGH - x) * g


def wall_prior(dim, seed=0):
    net = WallField(dim)
    params = net.init(jax.random.key(seed), jnp.zeros((1, dim)), jnp.zeros(()))["params"]
    path = ReflectionPath(low=LOW, high=HIGH, T=3.0)
    return HGFPrior(net, params, path, event_shape=(dim,), solver=SOLVER)


def unmasked_log_prob(prior, x):
    """The old density without validation: the uniform base's constant ``log_prob``
    wherever ``z`` lands, and no mask on ``x``."""
    dim = x.shape[-1]
    constant = lambda z: jnp.full(z.shape[:1], -dim * np.log(HIGH - LOW), z.dtype)
    return ode_log_prob(prior.field, x, prior.t0, prior.t1, constant, SOLVER).value


@pytest.fixture(autouse=True)
def no_validation():
    """NumPyro validates by default, and a validated ``Uniform`` masks its own ``log_prob``;
    the prior must not depend on that (the old code did): validation off."""
    before = numpyro.distributions.distribution._VALIDATION_ENABLED
    numpyro.enable_validation(False)
    yield
    numpyro.enable_validation(before)


def grid(dim, half_width, n):
    """Midpoints of ``n`` cells per axis on ``[-half_width, half_width]`` (the walls are cell
    boundaries, so the midpoint rule does not straddle the jump)."""
    h = 2 * half_width / n
    axis = -half_width + h * (np.arange(n) + 0.5)
    cell = h**dim
    mesh = np.stack(np.meshgrid(*([axis] * dim), indexing="ij"), -1).reshape(-1, dim)
    return jnp.asarray(mesh, jnp.float32), cell


@pytest.mark.parametrize("dim, n", [(1, 3000), (2, 120)])
def test_reflection_density_integrates_to_one_and_is_zero_outside_the_box(dim, n):
    prior = wall_prior(dim)
    x, cell = grid(dim, 1.5, n)
    lp = np.asarray(jax.jit(lambda d, v: d.log_prob(v))(prior, x))
    outside = np.any(np.abs(np.asarray(x)) > HIGH, axis=-1)
    assert np.all(lp[outside] == -np.inf)
    assert np.all(np.isfinite(lp[~outside]))
    integral = float(np.sum(np.exp(lp)) * cell)
    print(f"d={dim}: integral of the density over [-1.5, 1.5]^{dim}: {integral:.5f}")
    # the field is not trivial: the density is far from uniform inside the box
    inside = np.exp(lp[~outside])
    assert inside.max() / inside.min() > 1.5
    # midpoint rule on a smooth density inside the box (cells of 1e-3 and 1/40)
    assert abs(integral - 1.0) < 5e-3


def random_prior(scale=0.5, seed=4):
    """A random MLP field: it does not keep the box, and is finite outside it."""
    net = TimeMLP(hidden=(8,), out_dim=1, embed_dim=4, time_scale=1.0)
    params = net.init(jax.random.key(seed), jnp.zeros((1, 1)), jnp.zeros(()))["params"]
    params = jax.tree.map(lambda p: scale * p, params)
    return HGFPrior(net, params, ReflectionPath(low=LOW, high=HIGH, T=3.0), solver=SOLVER)


def test_reflection_density_is_the_mass_the_prior_puts_in_the_box():
    """With a field that does not keep the box, the density is zero where the backward
    solve leaves the box, and its integral is the probability that a prior draw lands in
    the box (estimated by sampling); the unmasked density (negative control) integrates to
    far more than one."""
    prior = random_prior()
    x, cell = grid(1, 1.5, 3000)
    z = np.asarray(solve_ode(prior.field, x, prior.t1, prior.t0, SOLVER).value)[:, 0]
    lp = np.asarray(prior.log_prob(x))
    inside = np.abs(np.asarray(x)[:, 0]) <= HIGH
    left = (z < LOW) | (z > HIGH)
    assert (left & inside).any() and (~left & inside).any()  # the check is not vacuous
    assert np.all(lp[left | ~inside] == -np.inf)
    assert np.all(np.isfinite(lp[~left & inside]))
    integral = float(np.sum(np.exp(lp)) * cell)
    draws = np.asarray(prior.sample(jax.random.key(0), (20000,)))[:, 0]
    in_box = float(np.mean(np.abs(draws) <= HIGH))
    se = np.sqrt(in_box * (1 - in_box) / draws.size)
    old = float(np.sum(np.exp(np.asarray(unmasked_log_prob(prior, x)))) * cell)
    print(f"integral {integral:.4f}, P(draw in box) {in_box:.4f} +- {se:.4f}, unmasked {old:.3f}")
    assert abs(integral - in_box) < 4 * se + 5e-3
    assert old > 1.5  # negative control


def test_out_of_box_value_warns_under_validate_args():
    prior = wall_prior(1)
    checked = HGFPrior(
        prior.velocity, prior.params, prior.path, event_shape=(1,), solver=SOLVER,
        validate_args=True,
    )  # fmt: skip
    with pytest.warns(UserWarning, match="Out-of-support"):
        lp = checked.log_prob(jnp.array([[1.5]]))
    assert float(lp[0]) == -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(float(checked.log_prob(jnp.array([[0.5]]))[0]))
