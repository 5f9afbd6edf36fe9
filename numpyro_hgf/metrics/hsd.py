"""The Hamiltonian score discrepancy (HSD) of a force field, as a metric.

For data ``x0 ~ pi``, ``v0 ~ N(0, I)`` and the PH-ODE ``dx = v, dv = F(x)`` run to
``t ~ U(0, T]`` (Holderrieth, Xu & Jaakkola 2024, Theorem 1)::

    D(F) = E_t E || E[v_t | x_t] ||^2 = - min_V E [ ||V(x_t, t)||^2 - 2 V(x_t, t)^T v_t ],

zero iff ``F = grad log pi``.  :func:`hamiltonian_score_discrepancy` estimates it by
training a fresh velocity predictor ``V_phi`` (a small ``t * TimeMLP``) for the fixed force on
one part of the data, through the trainer core, and evaluating on the held-out part.

Which estimator
---------------
With ``V*(x, t) = E[v_t | x_t = x]`` and a trained ``V = V* + e``, two plug-ins exist:

* ``value = E[ 2 V^T v_t - ||V||^2 ]`` (the negated HSM loss) has expectation
  ``E||V*||^2 - E||e||^2 = D - E||V - V*||^2`` on held-out samples (``V`` independent of
  them): a **lower bound** on ``D`` for every ``V``, tight at ``V = V*``, consistent as
  ``V -> V*``, and with an honest standard error (the mean of i.i.d. per-point terms).
  At the true score (``D = 0``) it is ``-E||e||^2 <= 0``, about zero.  This is the
  reported estimate.
* ``plugin = E||V||^2`` has expectation ``D + 2 E[V*^T e] + E||e||^2``: at ``D = 0`` it is
  ``E||e||^2 > 0`` -- biased up by the fitting error, so it never certifies ``D = 0``.  It
  is returned for reference.

Taylor approximation (small times)
----------------------------------
By Liouville, ``(x_t, v_t)`` has density ``pi_BG(Phi_{-t}(x, v))`` with
``Phi_{-t}(x, v) = (x - t v, v - t F(x)) + O(t^2)``, so
``log p(v | x_t = x) = -||v||^2 / 2 + t v^T (F(x) - grad log pi(x)) + O(t^2) + const``:
the conditional of ``v_t`` is ``N(t (F - grad log pi), I)`` to first order and

    E[v_t | x_t = x] = t (F(x) - grad log pi(x)) + O(t^2),
    D(F | t) = t^2 E_pi || F - grad log pi ||^2 + O(t^3)
             = t^2 FD(F)         (the Fisher divergence; Holderrieth et al. 2024, Proposition 2),

and averaged over ``t ~ U(0, T]``: ``D ~ (T^2 / 3) FD``.  Without the true score,
integration by parts (``E_pi[F^T grad log pi] = -E_pi[div F]``) gives
``FD = E||F||^2 + 2 E[div F] + E||grad log pi||^2`` -- known up to the constant
``E||grad log pi||^2`` (:func:`hsd_taylor`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from numpyro_hgf._checks import (
    call_field,
    check_choice,
    check_data_matrix,
    check_finite,
    check_fits,
    check_fraction,
    check_key,
    check_positive_float,
    check_positive_int,
    check_positive_scalar,
    check_progress,
    describe,
)
from numpyro_hgf._checks.arrays import check_real_array
from numpyro_hgf.nn.mlp import VelocityMLP
from numpyro_hgf.objectives.hamiltonian import (
    TIME_SAMPLING,
    hamiltonian_score_matching,
    simulate_phase_space,
)
from numpyro_hgf.objectives.score_matching import as_apply
from numpyro_hgf.paths.dynamics import leapfrog
from numpyro_hgf.train.trainer import Trainer

__all__ = [
    "HSDResult",
    "hamiltonian_score_discrepancy",
    "hsd_taylor",
    "fisher_divergence",
    "gaussian_hsd",
]


class HSDResult(NamedTuple):
    """What :func:`hamiltonian_score_discrepancy` returns (floats and numpy arrays).

    Attributes:
        value: held-out estimate of ``D`` (``E[2 V^T v_t - ||V||^2]``; a lower bound in
            expectation, see the module docstring).
        stderr: its standard error (over held-out points).
        plugin: ``E||V||^2`` on the same samples (biased up by the fitting error).
        horizon: ``T``.
        num_samples: number of held-out points.
        taylor: ``E[t^2] E_pi||F - grad log pi||^2`` when ``score`` was given, else ``None``.
        times: ``(bins,)`` centres of the time bins.
        per_time: ``(bins,)`` estimate of ``D(F | t)`` in each bin.
        per_time_stderr: ``(bins,)`` their standard errors.
        velocity: ``(module, params)`` of the trained predictor.
    """

    value: float
    stderr: float
    plugin: float
    horizon: float
    num_samples: int
    taylor: float | None
    times: np.ndarray
    per_time: np.ndarray
    per_time_stderr: np.ndarray
    velocity: Any


def _as_force(force, force_params):
    """``(force_fn, params, token)``: ``force_fn(params, x) -> (batch, d)``, its params, and a
    hashable token such that equal tokens mean the same ``force_fn`` (for the cache)."""
    if force_params is not None:
        return as_apply("force", force), force_params, ("apply", force)
    if isinstance(force, nn.Module):
        raise TypeError("force_params: a flax.linen module force needs its params, got None")
    if hasattr(force, "score") and hasattr(force, "with_params") and hasattr(force, "params"):
        # EnergyBasedModel / ScoreModel: pytrees whose data are the params, so models of one
        # architecture share a token (the tree structure holds the module and settings)
        template = force

        def force_fn(params, x):
            return template.with_params(params).score(x)

        return force_fn, force.params, ("model", jax.tree_util.tree_structure(force))
    if callable(force):
        return (lambda _p, x: force(x)), None, ("callable", force)
    raise TypeError(
        f"force: expected a callable F(x) -> (batch, d), a module with force_params, or a "
        f"model with .score, got {type(force).__name__}"
    )


def _mean_t2(horizon: float, step_size: float, num_steps: int, time_sampling: str) -> float:
    if time_sampling == "uniform":
        return horizon**2 / 3.0
    return step_size**2 * (num_steps + 1) * (2 * num_steps + 1) / 6.0


def _divergence(fn: Callable, x) -> jax.Array:
    """Exact ``div F`` row by row: ``d`` forward-mode products, ``x: (n, d) -> (n,)``."""
    _, jvp = jax.linearize(fn, x)
    d = x.shape[-1]
    basis = jnp.broadcast_to(jnp.eye(d, dtype=x.dtype)[:, None, :], (d, *x.shape))
    return jnp.einsum("jbj->b", jax.vmap(jvp)(basis))


def _check_score(score, required: bool = False) -> None:
    """``score`` is a callable (or ``None`` when optional): a string would otherwise fail
    inside :func:`call_field` and be reported as a wrong data dimension."""
    if score is None and not required:
        return
    if not callable(score):
        raise TypeError(
            f"score: expected a callable grad log pi: x -> (n, d), got {type(score).__name__}"
        )


def fisher_divergence(force, data, score, *, force_params=None) -> jax.Array:
    """``E_data || F(x) - score(x) ||^2`` (``score``: the true ``grad log pi``, ``x -> (n, d)``)."""
    x = check_data_matrix("data", data)
    _check_score(score, required=True)
    fn, params, _ = _as_force(force, force_params)
    f = call_field("force", fn, params, x, arg="data")
    s = call_field("score", lambda _p, y: score(y), None, x, arg="data")
    return jnp.mean(jnp.sum((f - s) ** 2, axis=-1))


def hsd_taylor(force, data, t, *, score=None, force_params=None) -> jax.Array:
    """Small-``t`` approximation of the HSD at time ``t``: ``t^2 E_pi||F - grad log pi||^2``.

    Args:
        force: ``F(x) -> (n, d)`` (or ``F(params, x)`` with ``force_params``, or a model
            with ``.score``).
        data: ``(n, d)`` samples of ``pi``.
        t: time(s) ``>= 0``, any shape; the result has its shape.
        score: the true ``grad log pi`` (``x -> (n, d)``) if known.  Without it the
            result is ``t^2 (E||F||^2 + 2 E[div F])`` -- the approximation **minus the
            unknown constant** ``t^2 E||grad log pi||^2`` (integration by parts; ``div F``
            exact by forward mode).  Averaged over ``t ~ U(0, T]``, use ``t^2 -> T^2/3``.
    """
    x = check_data_matrix("data", data)
    _check_score(score)
    t = check_real_array("t", t)
    check_finite("t", t)
    if np.any(np.asarray(t) < 0):
        raise ValueError(f"t: expected times >= 0, got {t}")
    if score is not None:
        return t**2 * fisher_divergence(force, x, score, force_params=force_params)
    fn, params, _ = _as_force(force, force_params)
    f = call_field("force", fn, params, x, arg="data")
    div = _divergence(lambda y: fn(params, y), x)
    return t**2 * (jnp.mean(jnp.sum(f**2, axis=-1)) + 2.0 * jnp.mean(div))


# Trainers and evaluators by (force token, velocity module, options): measuring the HSD of
# one architecture at many params (checkpoints, perturbations) compiles once.  The force
# params travel in the trained pytree with their updates set to zero (and no gradient).
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 8


def _compiled(cache_key, force_fn, velocity_fn):
    try:
        hit = _CACHE.get(cache_key)
    except TypeError:  # an unhashable token: no caching
        cache_key, hit = None, None
    if hit is not None:
        _CACHE.move_to_end(cache_key)
        return hit
    token, velocity, options, steps, batch_size, learning_rate, num_draws, progress = cache_key
    options = dict(options)

    def loss_fn(params, batch, k):
        return hamiltonian_score_matching(
            force_fn,
            jax.lax.stop_gradient(params["force"]),
            batch,
            k,
            velocity_fn=velocity_fn,
            velocity_params=params["velocity"],
            **options,
        )

    def labels(params):
        return {
            "velocity": jax.tree.map(lambda _: "velocity", params["velocity"]),
            "force": jax.tree.map(lambda _: "force", params["force"]),
        }

    optimizer = optax.multi_transform(
        {
            "velocity": optax.adam(optax.cosine_decay_schedule(learning_rate, steps)),
            "force": optax.set_to_zero(),
        },
        labels,
    )
    trainer = Trainer(
        loss_fn,
        optimizer,
        batch_size=batch_size,
        clip_norm=1.0,
        progress=progress,
        description="hamiltonian_score_discrepancy",
    )

    @jax.jit
    def evaluate(phi, theta, x0, key):
        def one(k):
            x_t, v_t, t = simulate_phase_space(force_fn, theta, x0, k, **options)
            pred = velocity_fn(phi, x_t, t)
            est = jnp.sum(2.0 * pred * v_t - pred**2, axis=-1)
            return est, jnp.sum(pred**2, axis=-1), t

        return jax.lax.map(one, jax.random.split(key, num_draws))

    if cache_key is not None:
        _CACHE[cache_key] = (trainer, evaluate)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return trainer, evaluate


def _per_time_bin(est, t, horizon: float, time_bins: int):
    """``(edges, mean, stderr)`` of the per-draw estimates ``est`` in bins of their times."""
    edges = np.linspace(0.0, horizon, time_bins + 1)
    which = np.clip(np.digitize(t.ravel(), edges[1:-1]), 0, time_bins - 1)
    flat = est.ravel()
    per_time = np.full(time_bins, np.nan)
    per_time_se = np.full(time_bins, np.nan)
    for b in range(time_bins):
        sel = flat[which == b]
        if sel.size >= 2:
            per_time[b] = sel.mean()
            per_time_se[b] = sel.std(ddof=1) / np.sqrt(sel.size)
    return edges, per_time, per_time_se


def hamiltonian_score_discrepancy(
    force,
    data,
    *,
    key,
    force_params=None,
    step_size: float = 0.1,
    num_steps: int = 10,
    time_sampling: str = "uniform",
    velocity=None,
    velocity_params=None,
    hidden=(64, 64),
    steps: int = 2_000,
    batch_size: int = 256,
    learning_rate: float = 2e-3,
    holdout: float = 0.5,
    num_draws: int = 8,
    time_bins: int = 5,
    score=None,
    progress: bool | None = None,
) -> HSDResult:
    """Estimate the Hamiltonian score discrepancy of ``force`` on ``data``, with its error.

    A fresh velocity predictor ``V_phi(x, t)`` is trained (Adam, cosine decay, on the
    :class:`~numpyro_hgf.train.Trainer` core) to minimise the HSM loss
    ``E[||V||^2 - 2 V^T v_t]`` for the *fixed* force, on the first ``1 - holdout`` of the
    data; the estimate ``E[2 V^T v_t - ||V||^2]`` and its standard error come from the
    other ``holdout`` share, ``num_draws`` fresh ``(v0, t)`` per point (see the module
    docstring for why this estimator).  ``D = 0`` iff ``F = grad log pi``.

    Args:
        force: ``F(x) -> (n, d)``; or a ``flax.linen`` module / ``F(params, x)`` with
            ``force_params``; or a model with ``.score`` (``EnergyBasedModel``,
            ``ScoreModel``).
        data: ``(n, d)`` samples of ``pi`` (shuffled with ``key`` before the split).
        key: ``jax.random`` key (required).
        step_size, num_steps, time_sampling: the leapfrog simulation,
            ``T = num_steps * step_size``.
        velocity: ``flax.linen`` module ``(x, t) -> (n, d)``; default a
            :class:`~numpyro_hgf.objectives.VelocityMLP` (``t * TimeMLP``) with ``hidden``
            widths, time scaled to ``T``.
        steps, batch_size, learning_rate: training of ``V_phi``.
        holdout: share of the data held out for the estimate, in ``(0, 1)``.
        num_draws: ``(v0, t)`` draws per held-out point.
        time_bins: number of equal bins of ``(0, T]`` for ``per_time``.
        score: the true score ``grad log pi`` if known; fills ``taylor``.

    Returns:
        :class:`HSDResult`.
    """
    key = check_key("key", key)
    data = check_data_matrix("data", data)
    _check_score(score)
    check_positive_scalar("step_size", step_size)
    step_size = float(step_size)
    num_steps = check_positive_int("num_steps", num_steps)
    check_choice("time_sampling", time_sampling, TIME_SAMPLING)
    steps = check_positive_int("steps", steps)
    num_draws = check_positive_int("num_draws", num_draws)
    time_bins = check_positive_int("time_bins", time_bins)
    holdout = check_fraction("holdout", holdout)
    batch_size = check_positive_int("batch_size", batch_size)
    learning_rate = check_positive_float("learning_rate", learning_rate)
    check_progress(progress)
    n = data.shape[0]
    n_eval = int(round(holdout * n))
    if n_eval < 2 or n - n_eval < 2:
        raise ValueError(
            f"data: expected enough points for a train / held-out split with "
            f"holdout={holdout}, got {n}"
        )
    force_fn, theta, token = _as_force(force, force_params)
    check_fits("force", force_fn, theta, data)  # a wrong data dimension names ``data``
    if score is not None:  # checked now: it is first called after the training
        check_fits("score", lambda _p, y: score(y), None, data)
    horizon = num_steps * step_size
    if velocity is None:
        velocity = VelocityMLP(hidden=hidden, horizon=horizon)
    velocity_fn = as_apply("velocity", velocity)

    split_key, init_key, train_key, eval_key = jax.random.split(key, 4)
    data = data[jax.random.permutation(split_key, n)]
    train, held = data[: n - n_eval], data[n - n_eval :]
    if velocity_params is None:
        velocity_params = velocity.init(init_key, data[:1], jnp.full((1,), horizon))["params"]
    options = (("step_size", step_size), ("num_steps", num_steps), ("time_sampling", time_sampling))
    batch_size = min(batch_size, train.shape[0])
    cache_key = (token, velocity, options, steps, batch_size, learning_rate, num_draws, progress)
    trainer, evaluate = _compiled(cache_key, force_fn, velocity_fn)
    params = {"velocity": velocity_params, "force": theta}
    phi = trainer.fit(params, train, steps, train_key).params["velocity"]
    est, plug, t = (np.asarray(a, dtype=np.float64) for a in evaluate(phi, theta, held, eval_key))
    per_point = est.mean(axis=0)  # (n_eval,): i.i.d. across points given phi
    value = float(per_point.mean())
    stderr = float(per_point.std(ddof=1) / np.sqrt(n_eval))

    edges, per_time, per_time_se = _per_time_bin(est, t, horizon, time_bins)

    taylor = None
    if score is not None:
        fd = float(fisher_divergence(force, held, score, force_params=force_params))
        taylor = _mean_t2(horizon, step_size, num_steps, time_sampling) * fd
    return HSDResult(
        value=value,
        stderr=stderr,
        plugin=float(plug.mean()),
        horizon=horizon,
        num_samples=n_eval,
        taylor=taylor,
        times=0.5 * (edges[1:] + edges[:-1]),
        per_time=per_time,
        per_time_stderr=per_time_se,
        velocity=(velocity, phi),
    )


def gaussian_hsd(precision, center, mean, cov, t, *, num_steps: int = 10) -> jax.Array:
    """Exact HSD at time ``t`` of the linear force ``F(x) = -precision (x - center)`` on
    Gaussian data ``N(mean, cov)`` -- an oracle for tests.

    Leapfrog with ``num_steps`` steps of size ``t / num_steps`` (the ``"uniform"`` time
    sampling of :func:`~numpyro_hgf.objectives.simulate_phase_space`) is an affine map
    ``z = (x, v) -> M z + c``, so ``(x_t, v_t)`` is jointly Gaussian and
    ``E[v_t | x_t] = m_v + K (x_t - m_x)``, ``K = C_vx C_xx^{-1}``, whence
    ``D(t) = ||m_v||^2 + tr(K C_xx K^T)``.  It is zero at ``precision = cov^{-1}``,
    ``center = mean`` up to the leapfrog error (``O(t^2 / num_steps^2)`` relative).

    Args:
        precision: ``(d, d)``; center, mean: ``(d,)``; cov: ``(d, d)``.
        t: scalar or ``(m,)`` times ``> 0``.

    Returns:
        ``D(t)`` with the shape of ``t``.
    """
    num_steps = check_positive_int("num_steps", num_steps)
    mean = check_real_array("mean", mean)
    if mean.ndim != 1 or mean.shape[0] < 1:
        raise ValueError(f"mean: expected a vector of shape (d,), got {describe(mean)}")
    d = mean.shape[0]
    for name, value, shape in (
        ("precision", precision, (d, d)),
        ("center", center, (d,)),
        ("cov", cov, (d, d)),
    ):
        arr = check_real_array(name, value)
        if arr.shape != shape:
            raise ValueError(f"{name}: expected shape {shape} (d = {d}), got {describe(arr)}")
        check_finite(name, arr)
    check_finite("mean", mean)
    t = check_real_array("t", t).astype(mean.dtype)
    check_finite("t", t)
    if np.any(np.asarray(t) < 0):
        raise ValueError(f"t: expected times >= 0, got {t}")
    out = _gaussian_hsd(
        jnp.asarray(precision, mean.dtype),
        jnp.asarray(center, mean.dtype),
        mean,
        jnp.asarray(cov, mean.dtype),
        t.reshape(-1),
        num_steps,
    )
    return out.reshape(t.shape)


@partial(jax.jit, static_argnums=(5,))
def _gaussian_hsd(precision, center, mean, cov, ts, num_steps):
    d = mean.shape[0]

    def force(x):
        return -(x - center) @ precision.T

    def one(t):
        def flow(z):
            x, v = leapfrog(force, z[..., :d], z[..., d:], t / num_steps, num_steps)
            return jnp.concatenate([x, v], axis=-1)

        c = flow(jnp.zeros(2 * d, mean.dtype))
        m = (flow(jnp.eye(2 * d, dtype=mean.dtype)) - c).T  # flow(z) = m z + c
        mean0 = jnp.concatenate([mean, jnp.zeros(d, mean.dtype)])
        cov0 = jax.scipy.linalg.block_diag(cov, jnp.eye(d, dtype=mean.dtype))
        mean_t, cov_t = m @ mean0 + c, m @ cov0 @ m.T
        k = jnp.linalg.solve(cov_t[:d, :d], cov_t[:d, d:]).T  # C_vx C_xx^{-1}
        m_v = mean_t[d:]
        return m_v @ m_v + jnp.trace(k @ cov_t[:d, :d] @ k.T)

    return jax.vmap(one)(ts)
