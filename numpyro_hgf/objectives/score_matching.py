"""Score-matching objectives: explicit (KDE), implicit (Hyvarinen), sliced, denoising.

Every objective has the one signature

    objective(score_fn, params, x, key, **options) -> scalar

where ``score_fn(params, x) -> (batch, d)`` is the model score ``s_theta(x) ~ grad log p(x)``
evaluated on a batch ``x: (batch, d)`` (rows independent: row ``i`` of the output depends on
row ``i`` of the input only), ``key`` is a ``jax.random`` key (unused by the implicit
objective) and the options are static Python values.  The returned scalar is a Monte Carlo
average over the batch; it is minimised over ``params``.  For an energy model
``p(x) ~ exp(-E(x))`` the score is ``-grad E`` (:func:`score_from_energy`); for a network
that outputs the score directly use :func:`score_from_network`.

Conventions (one factor of 1/2 everywhere), with the Fisher divergence
``FD(theta) = E_p || s_theta(x) - grad log p(x) ||^2``:

* :func:`explicit_score_matching`: ``1/2 E_q || s - grad log q ||^2`` = ``FD(q) / 2``
  (``q`` the kernel density estimate);
* :func:`implicit_score_matching`: ``E [ 1/2 ||s||^2 + tr grad s ]`` = ``FD / 2 - const``;
* :func:`sliced_score_matching`: ``E [ v^T (grad s) v + 1/2 (v^T s)^2 ]`` =
  ``FD / 2 - const`` in expectation over the projections ``v``;
* :func:`denoising_score_matching`: ``1/2 E || s(x + sigma z) + z / sigma ||^2`` =
  ``FD(p_sigma) / 2 + const`` (``p_sigma = p * N(0, sigma^2 I)`` the noised data).
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from numpyro_hgf._checks import (
    call_field,
    check_callable,
    check_choice,
    check_flag,
    check_key,
    check_noise_levels,
    check_points,
    check_positive_float,
    check_positive_int,
    check_positive_scalar,
    describe,
    is_concrete,
)

__all__ = [
    "as_apply",
    "score_from_energy",
    "score_from_network",
    "kde_score",
    "scott_bandwidth",
    "explicit_score_matching",
    "implicit_score_matching",
    "sliced_score_matching",
    "denoising_score_matching",
]

ScoreFn = Callable[..., jax.Array]


# --------------------------------------------------------------------------------------------
# score functions from networks
# --------------------------------------------------------------------------------------------


def as_apply(name: str, field) -> Callable:
    """``(params, *inputs) -> output`` for a ``flax.linen`` module or a plain callable."""
    if isinstance(field, nn.Module):
        return lambda params, *inputs: field.apply({"params": params}, *inputs)
    if callable(field):
        return field
    raise TypeError(
        f"{name}: expected a flax.linen module or a callable (params, x) -> ..., "
        f"got {type(field).__name__}"
    )


def score_from_energy(energy) -> ScoreFn:
    """Score ``s(x) = -grad_x E(x)`` of the energy model ``p(x) ~ exp(-E(x))``.

    Args:
        energy: a ``flax.linen`` module (applied as ``energy.apply({"params": params}, x)``,
            e.g. :class:`~numpyro_hgf.nn.EnergyMLP`) or a callable
            ``energy(params, x, *cond) -> (batch,)``.

    Returns:
        ``score_fn(params, x, *cond) -> (batch, d)``; extra arguments (a noise level for a
        noise-conditional energy ``E(x, sigma)``) are passed through.  The gradient of the
        summed energies equals the per-row gradients because rows are independent.
    """
    apply = as_apply("energy", energy)

    def score_fn(params, x, *cond):
        return -jax.grad(lambda y: jnp.sum(apply(params, y, *cond)))(x)

    return score_fn


def score_from_network(network) -> ScoreFn:
    """Score given directly by a network: ``score_fn(params, x, *cond) = network(x, *cond)``.

    ``network`` is a ``flax.linen`` module (``MLP(out_dim=d)``, ``TimeMLP`` for a
    noise-conditional score ``s(x, sigma)``) or a callable ``(params, x, *cond)``.
    """
    return as_apply("network", network)


# --------------------------------------------------------------------------------------------
# checks and shared pieces
# --------------------------------------------------------------------------------------------


def check_score_fn(name: str, fn) -> None:
    """A score (force, velocity) function is a callable ``(params, x, ...)``: anything else is
    a ``TypeError`` naming it (not the data, as a failed call would)."""
    check_callable(name, fn, f"a callable {name}(params, x, ...) (e.g. score_from_network(net))")


def _check_reference(reference, x) -> jax.Array:
    """KDE centres ``(M, d)`` of the dimension of ``x``."""
    reference = check_points("reference", reference)
    if reference.shape[-1] != x.shape[-1]:
        raise ValueError(
            f"reference: expected points of dimension {x.shape[-1]} (as x), "
            f"got {describe(reference)}"
        )
    return reference


def _linearize(score_fn, params, x, *cond):
    """``(s(x), jvp)`` where ``jvp(u) = (grad s)(x) u`` row by row (forward mode)."""
    return jax.linearize(lambda y: call_field("score_fn", score_fn, params, y, *cond), x)


def _projections(key, shape, kind: str, dtype):
    if kind == "gaussian":
        return jax.random.normal(key, shape, dtype)
    return jax.random.rademacher(key, shape, dtype)


def scott_bandwidth(reference) -> jax.Array:
    """Scott's rule ``h = sd * M^(-1/(d+4))`` (``sd``: mean per-coordinate std) for ``(M, d)``."""
    reference = check_points("reference", reference)
    m, d = reference.shape
    return jnp.mean(jnp.std(reference, axis=0)) * m ** (-1.0 / (d + 4))


def kde_score(x, reference, bandwidth) -> jax.Array:
    """``grad log q(x)`` of the Gaussian KDE ``q(x) = 1/M sum_m N(x; x_m, h^2 I)``.

    ``grad log q(x) = sum_m w_m(x) (x_m - x) / h^2`` with
    ``w_m(x) = softmax_m(-||x - x_m||^2 / (2 h^2))`` (Hyvarinen 2005; Song & Ermon 2019, Sec. 2).

    Shapes: ``x: (batch, d)``, ``reference: (M, d)`` -> ``(batch, d)``.
    """
    x = check_points("x", x)
    reference = _check_reference(reference, x)
    check_positive_scalar("bandwidth", bandwidth)
    d2 = jnp.sum(x**2, -1)[:, None] - 2.0 * x @ reference.T + jnp.sum(reference**2, -1)[None, :]
    w = jax.nn.softmax(-d2 / (2.0 * bandwidth**2), axis=-1)
    return (w @ reference - x) / bandwidth**2


# --------------------------------------------------------------------------------------------
# objectives
# --------------------------------------------------------------------------------------------


def explicit_score_matching(
    score_fn: ScoreFn,
    params,
    x,
    key,
    *,
    bandwidth: float | None = None,
    reference=None,
    perturb: bool = True,
) -> jax.Array:
    """Explicit score matching against a kernel density estimate.

    Hyvarinen (2005); Song & Ermon (2019), Sec. 2.

    ``J_ESM(theta) = 1/2 E_{x~q} || s_theta(x) - grad log q(x) ||^2`` with the Gaussian KDE
    ``q(x) = 1/M sum_m N(x; x_m, h^2 I)`` over ``reference`` (:func:`kde_score`).  The
    minimiser is the score of ``q`` (the data smoothed by ``N(0, h^2 I)``), so, as for
    denoising score matching, a Gaussian ``N(mu, Sigma)`` is recovered as
    ``N(mu, Sigma + h^2 I)``.

    Args:
        score_fn: ``(params, x) -> (batch, d)``.
        params: the model params.
        x: ``(batch, d)`` data points.
        key: ``jax.random`` key (for the KDE draw ``x + h z``).
        bandwidth: kernel width ``h > 0``; ``None``: Scott's rule on ``reference``.
        reference: ``(M, d)`` KDE centres (e.g. the full training set); ``None``: the batch.
        perturb: evaluate at ``x + h z``, ``z ~ N(0, I)``, i.e. at draws from ``q`` (the
            expectation of ``J_ESM``); ``False``: at the data points themselves.
    """
    check_score_fn("score_fn", score_fn)
    x = check_points("x", x)
    reference = x if reference is None else _check_reference(reference, x)
    if check_flag("perturb", perturb):
        check_key("key", key)
    if bandwidth is None:
        h = scott_bandwidth(reference)
    else:
        h = check_positive_float("bandwidth", bandwidth) if is_concrete(bandwidth) else bandwidth
    if perturb:
        x = x + h * jax.random.normal(key, x.shape, x.dtype)
    target = jax.lax.stop_gradient(kde_score(x, reference, h))
    s = call_field("score_fn", score_fn, params, x)
    return 0.5 * jnp.mean(jnp.sum((s - target) ** 2, axis=-1))


def implicit_score_matching(score_fn: ScoreFn, params, x, key=None) -> jax.Array:
    """Implicit score matching (Hyvarinen 2005, eq. 4).

    ``J_ISM(theta) = E_p [ 1/2 ||s_theta(x)||^2 + tr grad_x s_theta(x) ]``

    the *one-half* convention: ``J_ISM = 1/2 FD(theta) - 1/2 E||grad log p||^2``, so it is
    half of Hyvarinen's ``||grad E||^2 + 2 Laplacian E`` (for ``s = -grad E``,
    ``tr grad s = -Laplacian E``).  The trace is exact: ``d`` forward-mode products
    ``(grad s) e_j`` (the columns of ``jacfwd``), ``O(d)`` network passes per batch.

    Args:
        score_fn: ``(params, x) -> (batch, d)``.
        x: ``(batch, d)``.
        key: unused (kept for the common signature).
    """
    del key
    check_score_fn("score_fn", score_fn)
    x = check_points("x", x)
    s, jvp = _linearize(score_fn, params, x)
    d = x.shape[-1]
    basis = jnp.broadcast_to(jnp.eye(d, dtype=x.dtype)[:, None, :], (d, *x.shape))
    columns = jax.vmap(jvp)(basis)  # (d, batch, d): columns[j] = (grad s) e_j
    trace = jnp.einsum("jbj->b", columns)
    return jnp.mean(0.5 * jnp.sum(s**2, axis=-1) + trace)


def sliced_score_matching(
    score_fn: ScoreFn,
    params,
    x,
    key,
    *,
    num_projections: int = 1,
    projection: str = "rademacher",
    variance_reduction: bool = False,
) -> jax.Array:
    """Sliced score matching (Song, Garg, Shi & Ermon 2019, eq. 7; SSM-VR eq. 8).

    ``J_SSM(theta) = E_v E_p [ v^T (grad_x s_theta(x)) v + 1/2 (v^T s_theta(x))^2 ]``

    with ``v`` Hutchinson projections (``E[v v^T] = I``), ``num_projections`` per point.
    With ``variance_reduction=True`` (SSM-VR) ``1/2 (v^T s)^2`` is replaced by its
    expectation ``1/2 ||s||^2``.  Both equal :func:`implicit_score_matching` in expectation
    (the one-half convention); ``v^T (grad s) v`` costs one forward-mode product.

    Args:
        score_fn: ``(params, x) -> (batch, d)``.
        x: ``(batch, d)``.
        key: ``jax.random`` key for the projections.
        num_projections: projections per point ``k >= 1``.
        projection: ``"rademacher"`` (entries +-1, lower variance) or ``"gaussian"``.
        variance_reduction: use SSM-VR.
    """
    check_score_fn("score_fn", score_fn)
    x = check_points("x", x)
    k = check_positive_int("num_projections", num_projections)
    check_choice("projection", projection, ("rademacher", "gaussian"))
    variance_reduction = check_flag("variance_reduction", variance_reduction)
    check_key("key", key)
    s, jvp = _linearize(score_fn, params, x)
    v = _projections(key, (k, *x.shape), projection, x.dtype)
    vjv = jnp.sum(v * jax.vmap(jvp)(v), axis=-1)  # (k, batch)
    if variance_reduction:
        second = 0.5 * jnp.sum(s**2, axis=-1)[None]
    else:
        second = 0.5 * jnp.sum(v * s[None], axis=-1) ** 2
    return jnp.mean(vjv + second)


def denoising_score_matching(
    score_fn: ScoreFn,
    params,
    x,
    key,
    *,
    sigma=0.1,
) -> jax.Array:
    """Denoising score matching (Vincent 2011, eq. 8) and its multi-noise form
    (NCSN, Song & Ermon 2019, eqs. 5-6).

    Single noise level (``sigma`` a number), with ``x~ = x + sigma z``, ``z ~ N(0, I)``::

        J_DSM(theta) = 1/2 E || s_theta(x~) + z / sigma ||^2

    minimised by the score of ``p_sigma = p * N(0, sigma^2 I)`` -- for Gaussian data
    ``N(mu, Sigma)`` that is ``N(mu, Sigma + sigma^2 I)``, so subtract ``sigma^2 I`` from
    the fitted covariance (or use a small ``sigma``).

    Several levels (``sigma`` a 1-D sequence ``sigma_1..sigma_L``): a noise-conditional
    score ``score_fn(params, x, sigma) -> (batch, d)`` (``sigma: (batch,)``, e.g. a
    ``TimeMLP`` with ``t = sigma``), one level drawn uniformly per example, weighted by
    ``lambda(sigma) = sigma^2``::

        J_NCSN(theta) = 1/L sum_i sigma_i^2 1/2 E || s_theta(x~, sigma_i) + z / sigma_i ||^2
                      = 1/2 E_i E || sigma_i s_theta(x~, sigma_i) + z ||^2

    Args:
        score_fn: ``(params, x) -> (batch, d)``, or ``(params, x, sigma)`` for several levels.
        x: ``(batch, d)``.
        key: ``jax.random`` key for the noise (and the levels).
        sigma: noise level ``> 0``, or a 1-D sequence of them.
    """
    check_score_fn("score_fn", score_fn)
    x = check_points("x", x)
    check_noise_levels("sigma", sigma)
    check_key("key", key)
    z_key, level_key = jax.random.split(key)
    z = jax.random.normal(z_key, x.shape, x.dtype)
    if jnp.ndim(sigma) == 0:
        s = call_field("score_fn", score_fn, params, x + sigma * z)
        return 0.5 * jnp.mean(jnp.sum((s + z / sigma) ** 2, axis=-1))
    sigmas = jnp.asarray(sigma, x.dtype)
    level = jax.random.randint(level_key, (x.shape[0],), 0, sigmas.shape[0])
    sig = sigmas[level]
    s = call_field("score_fn", score_fn, params, x + sig[:, None] * z, sig)
    return 0.5 * jnp.mean(jnp.sum((sig[:, None] * s + z) ** 2, axis=-1))
