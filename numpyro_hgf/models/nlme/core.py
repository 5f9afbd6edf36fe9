"""Nonlinear mixed-effects (NLME) models (Beal & Sheiner 1982; Pinheiro & Bates 2000).

Subject ``i`` has observations ``y_ij`` at times ``t_ij`` and random effects ``eta_i``::

    eta_i ~ N(0, Omega)                      (Omega diagonal or full)
    y_ij  = f(theta, eta_i, x_i, t_ij) + g_ij eps_ij,   eps_ij ~ N(0, 1)

with a structural model ``f`` (any JAX function, e.g. :func:`~numpyro_hgf.models.pk.
one_compartment_oral`, or one with a neural network inside: ``theta`` is a pytree and may
hold flax params) and a residual error model ``g``: additive ``g = a``, proportional
``g = b f`` or combined ``g = sqrt(a^2 + b^2 f^2)``.

The marginal likelihood ``p(y | theta, Omega, sigma) = prod_i int p(y_i | eta) p(eta) d eta``
is fitted by

* :func:`fit_laplace` -- the Laplace approximation (inner mode search per subject, outer
  L-BFGS; ``method="laplace"`` uses the exact Hessian, ``"focei"`` the
  Gauss-Newton information of FOCE-I), with standard errors from the Hessian of the
  objective;
* :func:`fit_svi` -- the ELBO of :func:`numpyro_model` with a per-subject (``"mvn"``,
  ``"normal"``) or an amortized guide (:class:`~numpyro_hgf.guides.AmortizedNormalGuide`);
* :func:`fit_nuts` -- NumPyro's NUTS on the model with priors, returning
  ``arviz.InferenceData``.

:func:`importance_log_likelihood` estimates the marginal likelihood by importance sampling
(an importance-weighted bound, Burda et al. 2016), :func:`predict` gives population and
individual predictions, :func:`plot_vpc` a visual predictive check PNG,
:func:`gof_table` / :func:`plot_gof` the goodness-of-fit residuals (PRED, IPRED, IWRES, CWRES)
and their four-panel PNG, and :func:`parameter_table` the estimates with standard errors.

Data handling (:func:`prepare_data`): a long table (one row per observation) is reshaped to
padded ``(num_subjects, max_obs)`` arrays with a mask.  Missing columns, negative times or
doses and a structural model returning the wrong shape are ``ValueError``\\ s; NaN
observations are an error by default, and with ``missing="drop"`` they are masked out
(they contribute nothing to the likelihood).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.distributions.transforms import CorrCholeskyTransform
from tqdm.auto import tqdm

from numpyro_hgf._checks import (
    check_choice,
    check_instance,
    check_positive_float,
    check_positive_int,
    check_progress,
    progress_enabled,
)
from numpyro_hgf.models.laplace import laplace_log_marginal
from numpyro_hgf.models.nlme._arguments import (
    check_data,
    check_init_values,
    check_params,
)
from numpyro_hgf.models.nlme.data import NLMEData
from numpyro_hgf.models.pk import one_compartment_oral

__all__ = [
    "NLMEModel",
    "LaplaceFit",
    "theophylline_model",
    "residual_sd",
    "subject_log_likelihood",
    "laplace_log_likelihood",
    "fit_laplace",
    "THEOPHYLLINE_FOCEI",
    "ERROR_MODELS",
    "OMEGA_KINDS",
    "ETA_SCALES",
]

ERROR_MODELS = ("additive", "proportional", "combined")
OMEGA_KINDS = ("diagonal", "full")
ETA_SCALES = ("log", "additive")

# ---------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NLMEModel:
    """An NLME model: structural function, random effects and residual error.

    Attributes:
        structural: ``f(theta, eta, covariates, times) -> (T,)`` (see module docstring).
        eta_names: names of the random effects (their number is ``d``).
        omega: ``"diagonal"`` or ``"full"`` covariance of ``eta``.
        error: ``"additive"``, ``"proportional"`` or ``"combined"``.
        eta_scale: how each random effect enters ``f``, one string for all or a tuple of
            ``d``: ``"log"`` (log-normal, ``x_i = exp(log_x + eta_i)``; tables report the CV
            ``sqrt(exp(omega^2) - 1)``) or ``"additive"`` (``x_i = x + eta_i``, as in a linear
            mixed model; tables report SDs and correlations).  Stored as a ``(d,)`` tuple.
    """

    structural: Callable
    eta_names: tuple[str, ...]
    omega: str = "diagonal"
    error: str = "additive"
    eta_scale: str | tuple[str, ...] = "log"

    def __post_init__(self):
        if not callable(self.structural):
            raise TypeError(f"structural: expected a callable, got {type(self.structural)}")
        names = self.eta_names
        if isinstance(names, str) or not isinstance(names, list | tuple):
            raise TypeError(f"eta_names: expected a tuple of names (strings), got {names!r}")
        object.__setattr__(self, "eta_names", tuple(names))
        if not self.eta_names:
            raise ValueError("eta_names: expected at least one random effect, got none")
        if not all(isinstance(n, str) for n in names):
            raise TypeError(f"eta_names: expected names (strings), got {tuple(names)!r}")
        if len(set(names)) < len(names):
            raise ValueError(f"eta_names: expected distinct names, got {tuple(names)!r}")
        check_choice("omega", self.omega, OMEGA_KINDS)
        check_choice("error", self.error, ERROR_MODELS)
        scale = self.eta_scale
        if not isinstance(scale, str | list | tuple):
            raise TypeError(f"eta_scale: expected a string or a tuple of strings, got {scale!r}")
        scale = (scale,) * len(self.eta_names) if isinstance(scale, str) else tuple(scale)
        if len(scale) != len(self.eta_names):
            raise ValueError(
                f"eta_scale: expected one string or {len(self.eta_names)} (one per eta_names "
                f"entry), got {len(scale)}: {scale!r}"
            )
        for s in scale:
            check_choice("eta_scale", s, ETA_SCALES)
        object.__setattr__(self, "eta_scale", scale)

    @property
    def eta_dim(self) -> int:
        return len(self.eta_names)

    # -- parameters ------------------------------------------------------------------------
    def init_params(self, theta, omega_sd=0.3, sigma_add=1.0, sigma_prop=0.1) -> dict:
        """Unconstrained population parameters (what the fits optimise).

        ``{"theta": theta, "log_omega_sd": (d,), "omega_corr": (d(d-1)/2,) (full only),
        "log_sigma_add": () (additive/combined), "log_sigma_prop": () (proportional/combined)}``
        """
        d = self.eta_dim
        check_init_values(self, theta, omega_sd, sigma_add, sigma_prop)
        theta = jax.tree.map(jnp.asarray, theta)
        p = {
            "theta": theta,
            "log_omega_sd": jnp.log(jnp.broadcast_to(jnp.asarray(omega_sd, float), (d,))),
        }
        if self.omega == "full":
            p["omega_corr"] = jnp.zeros((d * (d - 1) // 2,))
        if self.error in ("additive", "combined"):
            p["log_sigma_add"] = jnp.log(jnp.asarray(sigma_add, float))
        if self.error in ("proportional", "combined"):
            p["log_sigma_prop"] = jnp.log(jnp.asarray(sigma_prop, float))
        return p

    def omega_scale_tril(self, params) -> jax.Array:
        """Lower Cholesky factor of ``Omega``: ``diag(sd) @ L_corr``, ``(d, d)``."""
        sd = jnp.exp(params["log_omega_sd"])
        if self.omega == "diagonal":
            return jnp.diag(sd)
        corr = CorrCholeskyTransform()(params["omega_corr"])
        return sd[:, None] * corr

    def sigmas(self, params) -> tuple[jax.Array, jax.Array]:
        """``(a, b)`` of the error model (0 where unused)."""
        zero = jnp.zeros(())
        a = jnp.exp(params["log_sigma_add"]) if "log_sigma_add" in params else zero
        b = jnp.exp(params["log_sigma_prop"]) if "log_sigma_prop" in params else zero
        return a, b

    def check(self, params, data: NLMEData) -> None:
        """Raise early if the structural model does not return ``(T,)`` for one subject."""
        check_data(data)
        check_params(self, params, "params")
        cov0 = {k: v[0] for k, v in data.covariates.items()}
        eta0 = jnp.zeros((self.eta_dim,), data.times.dtype)
        try:
            out = jax.eval_shape(self.structural, params["theta"], eta0, cov0, data.times[0])
        except Exception as err:  # noqa: BLE001 -- re-raised with the argument's name
            raise ValueError(
                f"structural: calling it as f(theta, eta ({self.eta_dim},), covariates "
                f"{sorted(cov0)}, times {tuple(data.times[0].shape)}) failed: {err}"
            ) from err
        T = data.times.shape[1]
        if getattr(out, "shape", None) != (T,):
            raise ValueError(
                f"structural: expected predictions of shape ({T},) for times of shape ({T},), "
                f"got {getattr(out, 'shape', type(out))}"
            )


def _check_model_data(model, data) -> None:
    check_instance("model", model, NLMEModel, "an NLMEModel")
    check_data(data)


def residual_sd(error: str, pred, sigma_add, sigma_prop):
    """Residual standard deviation ``g``: additive ``a``, proportional ``b |f|``, combined
    ``sqrt(a^2 + b^2 f^2)``.  Shape of ``pred``."""
    check_choice("error", error, ERROR_MODELS)
    if error == "additive":
        return jnp.broadcast_to(sigma_add, jnp.shape(pred))
    if error == "proportional":
        return sigma_prop * jnp.abs(pred) + 1e-12
    return jnp.sqrt(sigma_add**2 + (sigma_prop * pred) ** 2)


def subject_log_likelihood(model: NLMEModel, params, eta, covariates, times, obs, mask):
    """``log p(y_i | eta_i)``: masked sum of Gaussian log densities (a scalar)."""
    pred = model.structural(params["theta"], eta, covariates, times)
    sd = residual_sd(model.error, pred, *model.sigmas(params))
    lp = -0.5 * ((obs - pred) / sd) ** 2 - jnp.log(sd) - 0.5 * math.log(2 * math.pi)
    return jnp.sum(jnp.where(mask, lp, 0.0))


def _eta_log_prior(model: NLMEModel, params, eta):
    """``log N(eta | 0, Omega)`` with ``Omega = L L^T`` (a triangular solve)."""
    L = model.omega_scale_tril(params)
    z = jax.scipy.linalg.solve_triangular(L, eta, lower=True)
    d = model.eta_dim
    return -0.5 * z @ z - jnp.sum(jnp.log(jnp.diagonal(L))) - 0.5 * d * math.log(2 * math.pi)


def _subject_log_joint(model, covariates, times, obs, mask):
    """``(eta, params) -> log p(y_i | eta) + log N(eta | 0, Omega)``."""

    def log_joint(eta, params):
        return subject_log_likelihood(
            model, params, eta, covariates, times, obs, mask
        ) + _eta_log_prior(model, params, eta)

    return log_joint


def _focei_curvature(model, covariates, times, mask):
    """Gauss-Newton (Fisher) information of FOCE-I, ``(eta, params) -> (d, d)``:
    ``J_f^T W J_f + 1/2 J_v^T W^2 J_v + Omega^{-1}``, ``W = diag(mask / v)``, ``v = g^2``."""

    def curvature(eta, params):
        a, b = model.sigmas(params)
        L = model.omega_scale_tril(params)
        omega_inv = jax.scipy.linalg.cho_solve((L, True), jnp.eye(model.eta_dim, dtype=L.dtype))

        def fv(e):
            f = model.structural(params["theta"], e, covariates, times)
            return f, residual_sd(model.error, f, a, b) ** 2

        _, v = fv(eta)
        jf, jv = jax.jacfwd(fv)(eta)
        w = jnp.where(mask, 1.0 / v, 0.0)
        return jf.T @ (w[:, None] * jf) + 0.5 * jv.T @ ((w**2)[:, None] * jv) + omega_inv

    return curvature


def laplace_log_likelihood(
    model: NLMEModel, params, data: NLMEData, *, method: str = "laplace", num_steps: int = 30
):
    """Laplace approximation of ``log p(y | params)`` summed over subjects.

    Args:
        model, params: the model and its unconstrained parameters.
        data: :class:`NLMEData`.
        method: ``"laplace"`` (exact Hessian) or ``"focei"`` (Gauss-Newton information).
        num_steps: Newton iterations of the inner mode search.

    Returns:
        ``(total, per_subject)``: a scalar and a
        :class:`~numpyro_hgf.models.laplace.LaplaceResult` batched over subjects.
    """
    _check_model_data(model, data)
    check_choice("method", method, ("laplace", "focei"))
    num_steps = check_positive_int("num_steps", num_steps)
    check_params(model, params, "params")

    def one(cov, t, y, m):
        log_joint = _subject_log_joint(model, cov, t, y, m)
        gauss_newton = _focei_curvature(model, cov, t, m)
        curvature = "exact" if method == "laplace" else gauss_newton
        eta0 = jnp.zeros((model.eta_dim,), t.dtype)
        return laplace_log_marginal(
            log_joint,
            params,
            eta0,
            curvature=curvature,
            search_curvature=gauss_newton,
            num_steps=num_steps,
        )

    res = jax.vmap(one)(data.covariates, data.times, data.obs, data.mask)
    return jnp.sum(res.log_marginal), res


# ---------------------------------------------------------------------------------------
# Laplace / FOCE fit
# ---------------------------------------------------------------------------------------


class LaplaceFit(NamedTuple):
    """Result of :func:`fit_laplace` (NumPy float64 arrays).

    Attributes:
        params: unconstrained estimates (the dict of :meth:`NLMEModel.init_params`).
        log_likelihood: the Laplace log-likelihood at the estimates.
        se: standard errors of ``params`` (same structure), ``sqrt(diag(H^{-1}))`` with ``H``
            the Hessian of the negative log-likelihood (central differences of its exact
            gradient); NaN where ``H`` is not positive definite.
        covariance: ``(p, p)`` ``H^{-1}`` over the raveled params.
        eta: ``(N, d)`` conditional modes (empirical Bayes estimates).
        eta_precision: ``(N, d, d)`` curvature at the modes.
        iterations, converged, seconds: outer L-BFGS iterations, whether the gradient
            tolerance was met, and wall time.
        method: ``"laplace"`` or ``"focei"``.
    """

    params: dict
    log_likelihood: float
    se: dict
    covariance: np.ndarray
    eta: np.ndarray
    eta_precision: np.ndarray
    iterations: int
    converged: bool
    seconds: float
    method: str


def fit_laplace(
    model: NLMEModel,
    data: NLMEData,
    init: dict,
    *,
    method: str = "laplace",
    max_iter: int = 300,
    tol: float = 1e-6,
    num_steps: int = 30,
    progress: bool | None = None,
) -> LaplaceFit:
    """Maximise the Laplace (or FOCE-I) log-likelihood with L-BFGS (SciPy), in float64.

    Args:
        model: the :class:`NLMEModel`.
        data: :class:`NLMEData`.
        init: initial unconstrained parameters (:meth:`NLMEModel.init_params`).
        method: ``"laplace"`` or ``"focei"`` (see :func:`laplace_log_likelihood`).
        max_iter: outer iterations at most; stops when the largest gradient entry is below
            ``tol`` (nats per unit of the unconstrained parameters).  The objective and its
            exact gradient are one jitted function, reused for the Hessian.
        num_steps: inner Newton iterations per evaluation.
        progress: progress bar (``None``: ``NUMPYRO_HGF_PROGRESS``).
    """
    from scipy.optimize import minimize

    _check_model_data(model, data)
    check_params(model, init, "init")
    check_choice("method", method, ("laplace", "focei"))
    max_iter = check_positive_int("max_iter", max_iter)
    tol = check_positive_float("tol", tol)
    num_steps = check_positive_int("num_steps", num_steps)
    check_progress(progress)
    start = time.perf_counter()
    with jax.enable_x64(True):
        data64 = data.astype(jnp.float64)
        init64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), init)
        model.check(init64, data64)
        x0, unravel = ravel_pytree(init64)

        # one compiled function (cached across fits of the same model) serves the optimiser,
        # the Hessian and the final summaries
        def value_and_grad(x):
            (value, per), grad = _neg_laplace_value_and_grad(
                model, unravel(x), data64, method, num_steps
            )
            return (value, per), ravel_pytree(grad)[0]

        def fun(x):
            (value, _), grad = value_and_grad(jnp.asarray(x))
            value, grad = float(value), np.asarray(grad, np.float64)
            if not np.isfinite(value) or not np.all(np.isfinite(grad)):
                return np.inf, np.zeros_like(grad)
            return value, grad

        with tqdm(
            total=max_iter,
            desc=f"{method} fit",
            disable=not progress_enabled(progress),
            leave=False,
            dynamic_ncols=True,
        ) as bar:
            res = minimize(
                fun,
                np.asarray(x0),
                jac=True,
                method="L-BFGS-B",
                callback=lambda *_: bar.update(1),
                options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-14, "maxcor": 20},
            )
        x = jnp.asarray(res.x)
        (value, per), grad = value_and_grad(x)
        if not np.isfinite(float(value)):
            raise FloatingPointError(
                f"{method} fit: the objective is not finite at the end ({res.message}); "
                "try other initial values (init)"
            )
        converged = bool(np.max(np.abs(np.asarray(grad))) < max(tol, 1e-4))
        hessian = _fd_hessian(lambda x: value_and_grad(jnp.asarray(x))[1], x)
        try:
            cov = np.linalg.inv(hessian)
            se_flat = np.sqrt(np.where(np.diag(cov) > 0, np.diag(cov), np.nan))
            if not np.all(np.linalg.eigvalsh(hessian) > 0):
                se_flat = np.full_like(se_flat, np.nan)
        except np.linalg.LinAlgError:
            cov = np.full_like(hessian, np.nan)
            se_flat = np.full(x.shape, np.nan)
        params = jax.tree.map(np.asarray, unravel(x))
        se = jax.tree.map(np.asarray, unravel(jnp.asarray(se_flat)))
        return LaplaceFit(
            params,
            -float(value),
            se,
            cov,
            np.asarray(per.mode),
            np.asarray(per.precision),
            int(res.nit),
            converged,
            time.perf_counter() - start,
            method,
        )


@partial(jax.jit, static_argnums=(0, 3, 4))
def _neg_laplace_value_and_grad(model, params, data, method, num_steps):
    """``((-log L, per-subject results), d(-log L)/d params)`` of the Laplace objective."""

    def objective(p):
        total, per = laplace_log_likelihood(model, p, data, method=method, num_steps=num_steps)
        return -total, per

    return jax.value_and_grad(objective, has_aux=True)(params)


def _fd_hessian(grad_fn, x, rel: float = 1e-5) -> np.ndarray:
    """Central differences of an exact gradient: ``(p, p)``, symmetrised."""
    x = np.asarray(x, np.float64)
    p = x.size
    H = np.zeros((p, p))
    for j in range(p):
        h = rel * max(1.0, abs(x[j]))
        e = np.zeros(p)
        e[j] = h
        H[:, j] = (np.asarray(grad_fn(x + e)) - np.asarray(grad_fn(x - e))) / (2 * h)
    return 0.5 * (H + H.T)


# ---------------------------------------------------------------------------------------
# theophylline
# ---------------------------------------------------------------------------------------

#: Published FOCE-I estimates (dose in mg; nlmixr2 ``theo_sd``; ../shared/data/README.md).
THEOPHYLLINE_FOCEI = {
    "ka": 1.594,
    "cl": 2.751,
    "v": 31.81,
    "cv%[ka]": 70.0,
    "cv%[cl]": 26.8,
    "cv%[v]": 13.9,
    "sigma_add": 0.695,
    "log_likelihood": -179.70,
    "se_log_ka": 0.19,
}


def theophylline_model(omega: str = "diagonal", error: str = "additive"):
    """The published theophylline model and initial values: ``(model, init)``.

    One compartment, first-order absorption (:func:`~numpyro_hgf.models.pk.
    one_compartment_oral`), log-normal IIV on ka, CL and V, additive error; initial values
    ka 1.5 /h, CL 3 L/h, V 30 L, IIV SD 0.3, residual SD 1 mg/L.
    """
    model = NLMEModel(one_compartment_oral, ("ka", "cl", "v"), omega=omega, error=error)
    theta = {"log_ka": math.log(1.5), "log_cl": math.log(3.0), "log_v": math.log(30.0)}
    return model, model.init_params(theta, omega_sd=0.3, sigma_add=1.0, sigma_prop=0.1)
