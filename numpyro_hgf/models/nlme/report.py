"""NLME outputs: predictions, the reported-parameter table, the visual predictive check and
the goodness-of-fit table and plots (PRED, IPRED, IWRES, CWRES)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.distributions.transforms import CorrCholeskyTransform

from numpyro_hgf._checks import check_instance, check_key, check_path, check_positive_int, describe
from numpyro_hgf.models.nlme._arguments import check_params
from numpyro_hgf.models.nlme.core import (
    LaplaceFit,
    NLMEModel,
    _check_model_data,
    laplace_log_likelihood,
    residual_sd,
)
from numpyro_hgf.models.nlme.data import NLMEData

__all__ = [
    "predict",
    "parameter_table",
    "format_table",
    "plot_vpc",
    "gof_table",
    "plot_gof",
    "GOF_COLUMNS",
]


# ---------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------


def predict(model: NLMEModel, params, data: NLMEData, eta=None, times=None):
    """Predictions ``f(theta, eta_i, x_i, t)``: ``(N, T)``.

    ``eta=None`` gives population predictions (``eta = 0``); pass the conditional modes
    (``LaplaceFit.eta``) for individual predictions.  ``times``: ``(N, T')`` or ``(T',)``
    to predict at other times (default: the observation times).
    """
    _check_model_data(model, data)
    _check_theta(params)
    N = data.num_subjects
    eta = jnp.zeros((N, model.eta_dim)) if eta is None else jnp.asarray(eta)
    if eta.shape != (N, model.eta_dim):
        raise ValueError(
            f"eta: expected shape {(N, model.eta_dim)} (subjects of data, random effects of "
            f"model), got {describe(eta)}"
        )
    if times is None:
        t = data.times
    else:
        times = jnp.asarray(times)
        if times.ndim not in (1, 2) or (times.ndim == 2 and times.shape[0] != N):
            raise ValueError(f"times: expected shape (T',) or ({N}, T'), got {describe(times)}")
        t = jnp.broadcast_to(times, (N, times.shape[-1]))
    return jax.vmap(lambda e, c, tt: model.structural(params["theta"], e, c, tt))(
        eta, data.covariates, t
    )


def _check_theta(params, name: str = "params") -> None:
    if not isinstance(params, Mapping) or not isinstance(params.get("theta"), Mapping):
        raise TypeError(
            f"{name}: expected a params dict with a 'theta' dict (NLMEModel.init_params), "
            f"got {type(params).__name__}"
        )


def _corr(p, j: int, k: int):
    """Entry ``(j, k)`` of the random-effect correlation matrix ``L_c L_c^T``."""
    Lc = CorrCholeskyTransform()(p["omega_corr"])
    return Lc[j] @ Lc[k]


def _reporting(model: NLMEModel, params):
    """Named reported quantities (natural scale) as a flat vector function of params.

    ``(name, fn)`` pairs: scalar ``theta`` entries (``log_x`` as ``x``), ``omega_sd[e]`` per
    random effect, ``cv%[e]`` for the log-normal ones (``model.eta_scale == "log"``),
    ``corr[e,f]`` for a full Omega, and the residual error parameters.
    """
    rows = []
    for k, v in params["theta"].items():
        if not isinstance(v, dict | list | tuple) and np.ndim(v) == 0:  # networks: skipped
            if k.startswith("log_"):
                rows.append((k[4:], lambda p, k=k: jnp.exp(p["theta"][k])))
            else:
                rows.append((k, lambda p, k=k: p["theta"][k]))
    names = model.eta_names
    for j, (name, scale) in enumerate(zip(names, model.eta_scale, strict=True)):
        rows.append((f"omega_sd[{name}]", lambda p, j=j: jnp.exp(p["log_omega_sd"][j])))
        if scale == "log":  # log-normal: CV of exp(eta) = sqrt(exp(omega^2) - 1)
            cv = lambda p, j=j: 100 * jnp.sqrt(jnp.expm1(jnp.exp(2 * p["log_omega_sd"][j])))  # noqa: E731
            rows.append((f"cv%[{name}]", cv))
    if model.omega == "full":
        for j in range(len(names)):
            for k in range(j + 1, len(names)):
                rows.append((f"corr[{names[j]},{names[k]}]", partial(_corr, j=j, k=k)))
    if "log_sigma_add" in params:
        rows.append(("sigma_add", lambda p: jnp.exp(p["log_sigma_add"])))
    if "log_sigma_prop" in params:
        rows.append(("sigma_prop", lambda p: jnp.exp(p["log_sigma_prop"])))
    return rows


def parameter_table(model: NLMEModel, fit: LaplaceFit) -> list[dict]:
    """Reported estimates with standard errors (delta method from the fit's covariance).

    One dict per quantity of :func:`_reporting`: every scalar ``theta`` entry (``log_x``
    entries reported as ``x = exp(log_x)``), each random effect's SD ``omega_sd[e]``, its
    CV% ``100 sqrt(exp(omega^2) - 1)`` only for log-normal random effects
    (``model.eta_scale``; an additive one has no CV), the correlations ``corr[e,f]`` of a
    full Omega, and the residual error parameters.  Keys:

    * ``name``, ``estimate``, ``se`` (NaN where the covariance gives none);
    * ``rse%``: ``100 se / |estimate|``;
    * ``shrinkage%`` (``omega_sd`` rows, when the fit holds the conditional modes ``eta``
      ``(N, d)``): eta shrinkage ``100 (1 - SD(eta_hat_j) / omega_j)`` (Savic & Karlsson
      2009, AAPS J. 11(3), 558), the SD over subjects with ``ddof=1``; ``None`` elsewhere.

    :func:`format_table` renders them as Markdown.
    """
    check_instance("model", model, NLMEModel, "an NLMEModel")
    if not (hasattr(fit, "params") and hasattr(fit, "covariance")):
        raise TypeError(
            f"fit: expected a LaplaceFit (fit_laplace; params and covariance), got "
            f"{type(fit).__name__}"
        )
    check_params(model, fit.params, "fit.params")
    p = sum(np.size(leaf) for leaf in jax.tree.leaves(fit.params))
    if np.shape(fit.covariance) != (p, p):
        raise ValueError(
            f"fit.covariance: expected shape {(p, p)} (the raveled params), got "
            f"{np.shape(fit.covariance)}"
        )
    eta = getattr(fit, "eta", None)
    eta_sd = None if eta is None else np.std(np.asarray(eta, np.float64), axis=0, ddof=1)
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), fit.params)
        x, unravel = ravel_pytree(params)
        out = []
        for name, fn in _reporting(model, params):
            value = float(fn(params))
            g = np.asarray(jax.grad(lambda x, fn=fn: fn(unravel(x)))(x))
            var = float(g @ fit.covariance @ g)
            se = math.sqrt(var) if var > 0 else math.nan
            rse = 100 * se / abs(value) if value != 0 else math.nan
            row = {"name": name, "estimate": value, "se": se, "rse%": rse, "shrinkage%": None}
            if name.startswith("omega_sd[") and eta_sd is not None:
                j = model.eta_names.index(name[len("omega_sd[") : -1])
                row["shrinkage%"] = 100 * (1 - float(eta_sd[j]) / value)
            out.append(row)
        return out


def _numbers(values) -> bool:
    try:
        return np.issubdtype(np.asarray(values).dtype, np.number)
    except (TypeError, ValueError):
        return False


def _cell(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def format_table(rows: list[dict], reference: Mapping[str, float] | None = None) -> str:
    """Markdown table of :func:`parameter_table` rows: parameter, estimate, SE, RSE %,
    shrinkage % (blank where a row has none) and an optional reference column."""
    if isinstance(rows, Mapping | str) or not isinstance(rows, Iterable):
        raise TypeError(f"rows: expected a list of parameter_table rows, got {rows!r}")
    rows = list(rows)
    for i, r in enumerate(rows):
        if not (isinstance(r, Mapping) and {"name", "estimate", "se"} <= set(r)):
            raise TypeError(
                f"rows[{i}]: expected a parameter_table row (a dict with name, estimate, se), "
                f"got {r!r}"
            )
    if reference is not None and not isinstance(reference, Mapping):
        raise TypeError(f"reference: expected a dict name -> value, got {reference!r}")
    head = "| parameter | estimate | SE | RSE % | shrinkage % |" + (
        " reference |" if reference else ""
    )
    sep = "|---|---|---|---|---|" + ("---|" if reference else "")
    lines = [head, sep]
    for r in rows:
        line = (
            f"| {r['name']} | {r['estimate']:.4g} | {r['se']:.3g} | "
            f"{_cell(r.get('rse%'), '.3g')} | {_cell(r.get('shrinkage%'), '.3g')} |"
        )
        if reference:
            line += f" {_cell(reference.get(r['name']), '.4g')} |"
        lines.append(line)
    return "\n".join(lines)


def plot_vpc(
    path,
    model: NLMEModel,
    params,
    data: NLMEData,
    *,
    key,
    num_sims: int = 500,
    num_bins: int = 10,
    quantiles=(0.05, 0.5, 0.95),
    title: str = "visual predictive check",
    xlabel: str = "time",
    ylabel: str = "observation",
):
    """Visual predictive check (PNG): observed 5/50/95 % quantiles per time bin against
    the 90 % intervals of the same quantiles over ``num_sims`` simulated replicates of the
    study (``eta ~ N(0, Omega)``, residual error from the error model).

    Returns ``(path, summary)`` with ``summary`` a dict of the bin centres, observed
    quantiles ``(bins, 3)`` and simulated quantile bands ``(bins, 3, 3)`` (5/50/95 % of each
    quantile), and the fraction of observations outside the simulated 90 % prediction
    interval.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_path("path", path)
    _check_model_data(model, data)
    check_params(model, params, "params")
    key = check_key("key", key)
    num_sims = check_positive_int("num_sims", num_sims)
    num_bins = check_positive_int("num_bins", num_bins)
    q = np.asarray(quantiles, dtype=float) if _numbers(quantiles) else None
    if q is None or q.shape != (3,) or not (np.all((q > 0) & (q < 1)) and np.all(np.diff(q) > 0)):
        raise ValueError(
            f"quantiles: expected 3 increasing numbers in (0, 1) (lower, middle, upper), "
            f"got {quantiles!r}"
        )
    params = jax.tree.map(jnp.asarray, params)
    L = model.omega_scale_tril(params)
    a, b = model.sigmas(params)
    N, T = data.obs.shape

    def simulate(k):
        k1, k2 = jax.random.split(k)
        eta = jax.random.normal(k1, (N, model.eta_dim)) @ L.T
        pred = predict(model, params, data, eta)
        sd = residual_sd(model.error, pred, a, b)
        return pred + sd * jax.random.normal(k2, pred.shape)

    sims = np.asarray(jax.jit(jax.vmap(simulate))(jax.random.split(key, num_sims)))
    mask = np.asarray(data.mask)
    t = np.asarray(data.times)[mask]
    y = np.asarray(data.obs)[mask]
    sims = sims[:, mask]
    edges = np.unique(np.quantile(t, np.linspace(0, 1, num_bins + 1)))
    which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(edges) - 2)
    centres, obs_q, sim_q = [], [], []
    for j in range(len(edges) - 1):
        sel = which == j
        if not sel.any():
            continue
        centres.append(np.median(t[sel]))
        obs_q.append(np.quantile(y[sel], q))
        per_sim = np.quantile(sims[:, sel], q, axis=1).T  # (num_sims, 3)
        sim_q.append(np.quantile(per_sim, [0.05, 0.5, 0.95], axis=0).T)  # (3 quantiles, 3)
    centres, obs_q, sim_q = np.asarray(centres), np.asarray(obs_q), np.asarray(sim_q)
    lo, hi = np.quantile(sims, [0.05, 0.95], axis=0)
    outside = float(np.mean((y < lo) | (y > hi)))

    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    ax.scatter(t, y, s=8, color="0.4", alpha=0.6, label="observed")
    colours = ("tab:blue", "tab:red", "tab:blue")
    for k, c in enumerate(colours):
        ax.fill_between(centres, sim_q[:, k, 0], sim_q[:, k, 2], color=c, alpha=0.2, lw=0)
        ax.plot(centres, obs_q[:, k], color=c, lw=1.5, ls="-" if k == 1 else "--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title} ({num_sims} simulated studies)")
    ax.legend(loc="upper right")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    summary = {"centres": centres, "observed": obs_q, "simulated": sim_q, "outside_90": outside}
    return path, summary


# ---------------------------------------------------------------------------------------
# goodness of fit
# ---------------------------------------------------------------------------------------

GOF_COLUMNS = ("ID", "TIME", "DV", "PRED", "IPRED", "IWRES", "CWRES")


def _gof_inputs(model, fit, data):
    """Check the arguments of :func:`gof_table`: ``(params, eta or None)``."""
    _check_model_data(model, data)
    if isinstance(fit, LaplaceFit):
        params, eta = fit.params, fit.eta
        want = (data.num_subjects, model.eta_dim)
        if eta is not None and np.shape(eta) != want:
            raise ValueError(
                f"fit.eta: expected the conditional modes of shape {want} (subjects of data, "
                f"random effects of model), got {np.shape(eta)}"
            )
    elif isinstance(fit, Mapping) and "theta" in fit:
        params, eta = fit, None
        check_params(model, params, "fit")
    else:
        raise TypeError(
            "fit: expected a LaplaceFit (fit_laplace) or a params dict with a 'theta' entry "
            f"(NLMEModel.init_params), got {type(fit).__name__}"
        )
    return params, eta


def gof_table(model: NLMEModel, fit, data: NLMEData, *, num_steps: int = 30) -> dict:
    """Goodness-of-fit quantities, one entry per counted observation (float64 NumPy).

    Args:
        model: the :class:`NLMEModel`.
        fit: a :class:`LaplaceFit` (its ``params`` and conditional modes ``eta``) or a
            params dict (:meth:`NLMEModel.init_params`; the modes are then found here by the
            inner mode search of :func:`fit_laplace`, e.g. at known true parameters).
        data: the :class:`NLMEData` the fit used.
        num_steps: Newton iterations of the mode search (only for a params dict).

    Returns:
        dict of ``(n,)`` arrays, ``n = data.num_obs``, subject by subject in time order
        (masked entries left out):

        * ``ID``, ``TIME``, ``DV``: subject id, time and observation;
        * ``PRED``: population prediction ``f(theta, 0)``;
        * ``IPRED``: individual prediction ``f(theta, eta_i)`` at the conditional mode;
        * ``IWRES``: ``(DV - IPRED) / g(IPRED)`` with ``g`` the residual SD of the error model;
        * ``CWRES``: conditional weighted residuals (Hooker, Staatz & Karlsson 2007, *Pharm.
          Res.* 24(12), 2187): per subject, ``f`` linearised around ``eta_i`` with
          ``G_i = df/deta (eta_i)`` ``(n_i, d)`` (``jax.jacfwd``), ``E_i = f(eta_i) - G_i
          eta_i``, ``C_i = G_i Omega G_i^T + R_i(eta_i)`` with ``R_i = diag(g(IPRED)^2)``,
          and ``CWRES_i = L_i^{-1} (y_i - E_i)`` with ``C_i = L_i L_i^T`` (Cholesky).  For a
          model linear in ``eta`` these are the whitened marginal residuals, N(0, I)
          at the true parameters.
    """
    num_steps = check_positive_int("num_steps", num_steps)
    params, eta = _gof_inputs(model, fit, data)
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        d64 = data.astype(jnp.float64)
        eta = None if eta is None else jnp.asarray(eta, jnp.float64)
        arrays = (d64.times, d64.obs, d64.mask, d64.covariates)
        pred, ipred, iwres, cwres = _gof_arrays(model, params, arrays, eta, num_steps)
    mask = np.asarray(data.mask)
    ids = np.repeat(np.asarray(data.subjects)[:, None], mask.shape[1], axis=1)
    cols = (ids, d64.times, d64.obs, pred, ipred, iwres, cwres)
    out = {k: np.asarray(v)[mask] for k, v in zip(GOF_COLUMNS, cols, strict=True)}
    for k in GOF_COLUMNS[1:]:
        out[k] = out[k].astype(np.float64)
    return out


@partial(jax.jit, static_argnums=(0, 4))
def _gof_arrays(model: NLMEModel, params, arrays, eta, num_steps: int):
    """``(PRED, IPRED, IWRES, CWRES)``, each ``(N, T)``, of :func:`gof_table` (padding: 0
    residuals); ``eta=None``: the conditional modes of the FOCE-I inner search."""
    times, obs, mask, covariates = arrays
    if eta is None:
        data = NLMEData(times, obs, mask, covariates, None)
        _, per = laplace_log_likelihood(model, params, data, method="focei", num_steps=num_steps)
        eta = per.mode
    a, b = model.sigmas(params)
    L = model.omega_scale_tril(params)
    omega = L @ L.T

    def one(e, cov, t, y, m):
        def f(e):
            return model.structural(params["theta"], e, cov, t)

        ipred, G = f(e), jax.jacfwd(f)(e)  # (T,), (T, d)
        sd = residual_sd(model.error, ipred, a, b)
        G = jnp.where(m[:, None], G, 0.0)  # padding: its own N(0, 1) block, zero residual
        C = G @ omega @ G.T + jnp.diag(jnp.where(m, sd**2, 1.0))
        r = jnp.where(m, y - (ipred - G @ e), 0.0)
        cwres = jax.scipy.linalg.solve_triangular(jnp.linalg.cholesky(C), r, lower=True)
        iwres = jnp.where(m, (y - ipred) / sd, 0.0)
        return f(jnp.zeros_like(e)), ipred, iwres, cwres

    return jax.vmap(one)(eta, covariates, times, obs, mask)


def plot_gof(
    path,
    model: NLMEModel,
    fit,
    data: NLMEData,
    *,
    title: str = "goodness of fit",
    xlabel: str = "time",
    ylabel: str = "observation",
):
    """Goodness-of-fit plots (PNG, four panels) from :func:`gof_table`: DV against PRED and
    against IPRED (identity line), CWRES against TIME and against PRED (lines at 0 and
    +/-2).  ``fit``: a :class:`LaplaceFit` or a params dict, as for :func:`gof_table`.
    Returns ``path``."""
    check_path("path", path)
    table = gof_table(model, fit, data)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9, 7.5), constrained_layout=True)
    dv, pred, ipred, cwres = (table[k] for k in ("DV", "PRED", "IPRED", "CWRES"))
    lo = min(dv.min(), pred.min(), ipred.min())
    hi = max(dv.max(), pred.max(), ipred.max())
    for ax, x, name in ((axes[0, 0], pred, "PRED"), (axes[0, 1], ipred, "IPRED")):
        ax.scatter(x, dv, s=10, color="0.3", alpha=0.6)
        ax.plot([lo, hi], [lo, hi], color="tab:red", lw=1)
        ax.set_xlabel(f"{name} ({ylabel})")
        ax.set_ylabel(f"DV ({ylabel})")
        ax.set_title(f"DV vs {name}")
    right = (
        (axes[1, 0], table["TIME"], xlabel, "TIME"),
        (axes[1, 1], pred, f"PRED ({ylabel})", "PRED"),
    )
    for ax, x, label, name in right:
        ax.scatter(x, cwres, s=10, color="0.3", alpha=0.6)
        ax.axhline(0.0, color="tab:red", lw=1)
        for v in (-2.0, 2.0):
            ax.axhline(v, color="tab:blue", lw=1, ls="--")
        ax.set_xlabel(label)
        ax.set_ylabel("CWRES")
        ax.set_title(f"CWRES vs {name}")
    fig.suptitle(
        f"{title} ({len(dv)} observations; CWRES mean {cwres.mean():.2f}, SD {cwres.std():.2f})"
    )
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path
