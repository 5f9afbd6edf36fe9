"""Linear mixed models: ``sleepstudy``, ``Reaction ~ Days + (Days | Subject)``, by ML and REML.

Subject ``i`` (``n_i`` observations) follows the linear Gaussian model::

    y_i = X_i beta + Z_i b_i + e_i,    b_i ~ N(0, Omega),    e_i ~ N(0, sigma^2 I)

so ``y_i ~ N(X_i beta, V_i)`` with ``V_i = Z_i Omega Z_i^T + sigma^2 I``.

* As an NLME model (:func:`sleepstudy_model`, additive random effects) the Laplace
  approximation of :func:`numpyro_hgf.models.nlme.fit_laplace` is the exact
  maximum-likelihood fit (``lme4::lmer(REML = FALSE)``, statsmodels ``MixedLM(reml=False)``).
* :func:`fit_lmm` maximises the profiled ML or the restricted (REML) log-likelihood of the
  linear model directly, ``beta`` replaced by its generalized-least-squares estimate
  ``beta_hat(Omega, sigma)``; :func:`fit_reml` is its REML default, what ``lme4::lmer``
  reports by default (Bates, Maechler, Bolker & Walker 2015, *Fitting linear mixed-effects
  models using lme4*, J. Stat. Softw. 67(1), sec. 3.4, eqs. 34 and 41)::

      l_ML(Omega, sigma)  = -1/2 sum_i [log|V_i| + r_i^T V_i^{-1} r_i] - n/2 log(2 pi)
      l_REML              = l_ML - 1/2 log|sum_i X_i^T V_i^{-1} X_i| + p/2 log(2 pi)

  with ``r_i = y_i - X_i beta_hat`` (``-2 l_REML`` is lme4's "REML criterion").  Standard
  errors of the fixed effects are ``sqrt(diag((sum_i X_i^T V_i^{-1} X_i)^{-1}))`` at the
  estimates, as ``summary(lmer(...))`` prints them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions.transforms import CorrCholeskyTransform

from numpyro_hgf._checks import (
    check_binary,
    check_choice,
    check_instance,
    check_positive_float,
    check_positive_int,
)
from numpyro_hgf.models.nlme.core import NLMEModel
from numpyro_hgf.models.nlme.data import NLMEData, prepare_data
from numpyro_hgf.models.pk import linear_random_slope

__all__ = [
    "LMMFit",
    "sleepstudy_data",
    "sleepstudy_model",
    "sleepstudy_design",
    "covariance",
    "lmm_log_likelihood",
    "fit_lmm",
    "fit_reml",
    "LME4_SLEEPSTUDY_REML",
]

#: lme4's default (REML) fit of ``Reaction ~ Days + (Days | Subject)`` (lme4 1.1,
#: ``summary(fm1)``, ``unclass(VarCorr(fm1))``; Bates et al. 2015, sec. 1 and 5);
#: ``ranef_sd``: ``sd(ranef(fm1)$Subject[, j])``.
LME4_SLEEPSTUDY_REML = {
    "beta": (251.405, 10.467),
    "beta_se": (6.825, 1.546),
    "omega_sd": (24.740448, 5.922133),
    "corr": 0.06555134,
    "sigma": 25.59182,
    "reml_criterion": 1743.6,
    "ranef_sd": (21.595943, 5.455217),
}


def sleepstudy_data() -> NLMEData:
    """The shipped sleepstudy table (18 subjects x 10 days) as :class:`NLMEData`."""
    from numpyro_hgf.datasets import sleepstudy

    s = sleepstudy()
    table = {"subject": s.subject, "days": s.days, "reaction": s.reaction_ms}
    return prepare_data(table, subject="subject", time="days", observation="reaction")


def sleepstudy_model():
    """``(model, init)``: random intercept and slope with a full 2x2 covariance, additive
    error; initial values intercept 250 ms, slope 10 ms/day, SDs 25 and 5, residual 25.
    Both random effects are additive (``eta_scale="additive"``)."""
    model = NLMEModel(
        linear_random_slope, ("intercept", "slope"), omega="full", eta_scale="additive"
    )
    init = model.init_params(
        {"intercept": 250.0, "slope": 10.0}, omega_sd=(25.0, 5.0), sigma_add=25.0
    )
    return model, init


def sleepstudy_design(data: NLMEData | None = None):
    """``(X, Z, y, mask)`` of ``Reaction ~ Days + (Days | Subject)``: ``X = Z = [1, days]``,
    ``(N, T, 2)`` each, ``y`` and ``mask`` ``(N, T)`` (``data``: default
    :func:`sleepstudy_data`)."""
    data = sleepstudy_data() if data is None else data
    check_instance("data", data, NLMEData, "an NLMEData (prepare_data) or None")
    t = np.asarray(data.times, np.float64)
    X = np.stack([np.ones_like(t), t], axis=-1)
    return X, X.copy(), np.asarray(data.obs, np.float64), np.asarray(data.mask, bool)


def covariance(model: NLMEModel, params):
    """``Omega = L L^T`` of the random effects, ``(d, d)``."""
    L = model.omega_scale_tril(params)
    return L @ L.T


# ---------------------------------------------------------------------------------------
# profiled ML / REML of the linear Gaussian model
# ---------------------------------------------------------------------------------------


def _unpack(x, q: int):
    """``x = [log sigma, log omega_sd (q,), omega_corr (q(q-1)/2,)]`` -> ``(sigma, L)``,
    ``L`` the ``(q, q)`` lower Cholesky factor of ``Omega``."""
    sd = jnp.exp(x[1 : 1 + q])
    corr = CorrCholeskyTransform()(x[1 + q :]) if q > 1 else jnp.ones((1, 1), x.dtype)
    return jnp.exp(x[0]), sd[:, None] * corr


def lmm_log_likelihood(x, X, Z, y, mask, *, reml: bool = True):
    """Profiled log-likelihood of the linear mixed model at ``x`` (see :func:`_unpack`).

    Args:
        x: ``(1 + q + q(q-1)/2,)`` unconstrained variance parameters.
        X: ``(N, T, p)`` fixed-effect design; Z: ``(N, T, q)`` random-effect design;
        y: ``(N, T)`` responses; mask: ``(N, T)`` which entries are observed (padding is
            ignored exactly: its rows of ``X``, ``Z`` and ``y`` are zeroed and its
            ``log sigma^2`` terms removed from ``log|V_i|``).
        reml: the restricted likelihood (module docstring) instead of the ML one.

    Returns:
        ``(loglik, beta_hat (p,), A (p, p))`` with ``A = sum_i X_i^T V_i^{-1} X_i`` (the
        inverse covariance of ``beta_hat``).  Pure JAX (jit/grad-able); :func:`fit_lmm`
        calls it on float64 arrays under ``jax.enable_x64(True)``.
    """
    q = Z.shape[-1]
    size = 1 + q + q * (q - 1) // 2
    if jnp.shape(x) != (size,):
        raise ValueError(
            f"x: expected shape ({size},) (log sigma, {q} log SDs, {q * (q - 1) // 2} "
            f"correlations for Z with {q} columns), got shape {jnp.shape(x)}"
        )
    sigma, L = _unpack(x, q)
    m = mask.astype(x.dtype)
    Xm, Zm, ym = X * m[..., None], Z * m[..., None], y * m
    T = y.shape[-1]
    n_i = jnp.sum(m, axis=-1)

    def one(Xi, Zi, yi, ni):
        ZL = Zi @ L
        V = ZL @ ZL.T + sigma**2 * jnp.eye(T, dtype=x.dtype)
        C = jnp.linalg.cholesky(V)
        logdet = 2 * jnp.sum(jnp.log(jnp.diagonal(C))) - (T - ni) * 2 * jnp.log(sigma)
        solve = lambda b: jax.scipy.linalg.cho_solve((C, True), b)  # noqa: E731
        VX, Vy = solve(Xi), solve(yi)
        return logdet, Xi.T @ VX, Xi.T @ Vy, yi @ Vy

    logdet, XVX, XVy, yVy = jax.vmap(one)(Xm, Zm, ym, n_i)
    A, b = jnp.sum(XVX, 0), jnp.sum(XVy, 0)
    beta = jnp.linalg.solve(A, b)
    quad = jnp.sum(yVy) - b @ beta  # sum_i r_i^T V_i^{-1} r_i at beta_hat
    n, p = jnp.sum(m), X.shape[-1]
    ll = -0.5 * (jnp.sum(logdet) + quad + n * math.log(2 * math.pi))
    if reml:
        ll = ll - 0.5 * jnp.linalg.slogdet(A)[1] + 0.5 * p * math.log(2 * math.pi)
    return ll, beta, A


class LMMFit(NamedTuple):
    """Result of :func:`fit_lmm` (NumPy float64).

    Attributes:
        beta: ``(p,)`` fixed effects (GLS at the variance estimates); beta_se: ``(p,)``;
            beta_cov: ``(p, p)`` ``(sum_i X_i^T V_i^{-1} X_i)^{-1}``.
        omega: ``(q, q)`` random-effect covariance; omega_sd: ``(q,)``; omega_corr: ``(q, q)``.
        sigma: residual SD.
        log_likelihood: the maximised ML or REML log-likelihood (``-2 x`` it is lme4's
            deviance or REML criterion).
        ranef: ``(N, q)`` conditional modes (BLUPs) ``Omega Z_i^T V_i^{-1} (y_i - X_i beta)``.
        method: ``"reml"`` or ``"ml"``; iterations, converged: L-BFGS iterations and whether
            the gradient tolerance was met.
    """

    beta: np.ndarray
    beta_se: np.ndarray
    beta_cov: np.ndarray
    omega: np.ndarray
    omega_sd: np.ndarray
    omega_corr: np.ndarray
    sigma: float
    log_likelihood: float
    ranef: np.ndarray
    method: str
    iterations: int
    converged: bool


def _as_float(name: str, a) -> np.ndarray:
    try:
        return np.asarray(a, np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a real array, got {a!r}"[:200]) from None


def _check_design(X, Z, y, mask):
    X, Z, y = (_as_float(name, a) for name, a in (("X", X), ("Z", Z), ("y", y)))
    if mask is not None:
        check_binary("mask", np.asarray(mask))
    mask = np.ones(y.shape, bool) if mask is None else np.asarray(mask, bool)
    if y.ndim != 2:
        raise ValueError(f"y: expected (N, T) responses, got shape {y.shape}")
    for name, a in (("X", X), ("Z", Z)):
        if a.ndim != 3 or a.shape[:2] != y.shape or a.shape[2] < 1:
            raise ValueError(f"{name}: expected shape {y.shape + ('k',)}, k >= 1, got {a.shape}")
    if mask.shape != y.shape:
        raise ValueError(f"mask: expected shape {y.shape}, got {mask.shape}")
    for name, a in (("y", y[..., None]), ("X", X), ("Z", Z)):
        if not np.all(np.isfinite(np.where(mask[..., None], a, 0.0))):
            raise ValueError(f"{name}: expected finite values where mask is true, got NaN or inf")
    # padding (mask false) is ignored: zeroed here so that a NaN there cannot leak in
    X, Z = (np.where(mask[..., None], a, 0.0) for a in (X, Z))
    return X, Z, np.where(mask, y, 0.0), mask


def fit_lmm(X, Z, y, mask=None, *, method: str = "reml", max_iter: int = 500, tol=1e-9):
    """Fit the linear mixed model by REML (default) or ML: SciPy L-BFGS on one jitted
    value-and-grad of :func:`lmm_log_likelihood`, in float64.

    Args:
        X: ``(N, T, p)``, Z: ``(N, T, q)``, y: ``(N, T)``, mask: ``(N, T)`` or ``None``
            (all observed); :func:`sleepstudy_design` builds them for sleepstudy.
        method: ``"reml"`` or ``"ml"``.
        max_iter, tol: L-BFGS iterations at most and the gradient tolerance.

    Starts, like lme4, from ``Omega = sigma^2 I`` with ``sigma`` the OLS residual SD.
    Returns an :class:`LMMFit`.
    """
    from scipy.optimize import minimize

    check_choice("method", method, ("reml", "ml"))
    max_iter = check_positive_int("max_iter", max_iter)
    tol = check_positive_float("tol", tol)
    X, Z, y, mask = _check_design(X, Z, y, mask)
    q = Z.shape[-1]
    rows = mask.reshape(-1)
    Xf, yf = X.reshape(-1, X.shape[-1])[rows], y.reshape(-1)[rows]
    resid = yf - Xf @ np.linalg.lstsq(Xf, yf, rcond=None)[0]
    log_s = math.log(max(float(np.std(resid)), 1e-8))
    x0 = np.concatenate([[log_s], np.full(q, log_s), np.zeros(q * (q - 1) // 2)])
    reml = method == "reml"
    with jax.enable_x64(True):
        args = tuple(jnp.asarray(a) for a in (X, Z, y, mask))
        neg = jax.jit(jax.value_and_grad(lambda x: -lmm_log_likelihood(x, *args, reml=reml)[0]))

        def fun(x):
            v, g = neg(jnp.asarray(x, jnp.float64))
            v, g = float(v), np.asarray(g, np.float64)
            return (v, g) if np.isfinite(v) and np.all(np.isfinite(g)) else (np.inf, 0 * g)

        res = minimize(
            fun,
            x0,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-15, "maxcor": 20},
        )
        x = jnp.asarray(res.x)
        ll, beta, A = lmm_log_likelihood(x, *args, reml=reml)
        sigma, L = _unpack(x, q)
        omega = L @ L.T
        Xm, Zm = args[0] * args[3][..., None], args[1] * args[3][..., None]
        ranef = jax.vmap(lambda Xi, Zi, yi: _blup(Xi, Zi, yi, beta, omega, sigma))(Xm, Zm, args[2])
        cov_beta = np.linalg.inv(np.asarray(A))
        sd = np.sqrt(np.diag(np.asarray(omega)))
        return LMMFit(
            beta=np.asarray(beta),
            beta_se=np.sqrt(np.diag(cov_beta)),
            beta_cov=cov_beta,
            omega=np.asarray(omega),
            omega_sd=sd,
            omega_corr=np.asarray(omega) / np.outer(sd, sd),
            sigma=float(sigma),
            log_likelihood=float(ll),
            ranef=np.asarray(ranef),
            method=method,
            iterations=int(res.nit),
            converged=bool(np.max(np.abs(res.jac)) < max(tol, 1e-5)),
        )


def _blup(Xi, Zi, yi, beta, omega, sigma):
    """``Omega Z_i^T V_i^{-1} (y_i - X_i beta)``: ``(q,)`` (masked rows already zeroed)."""
    V = Zi @ omega @ Zi.T + sigma**2 * jnp.eye(yi.shape[0], dtype=yi.dtype)
    return omega @ Zi.T @ jnp.linalg.solve(V, yi - Xi @ beta)


def fit_reml(X, Z, y, mask=None, **kwargs) -> LMMFit:
    """:func:`fit_lmm` with ``method="reml"`` (lme4's default): e.g.
    ``fit_reml(*sleepstudy_design())``."""
    return fit_lmm(X, Z, y, mask, method="reml", **kwargs)
