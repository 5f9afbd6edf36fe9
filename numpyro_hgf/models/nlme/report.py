"""NLME outputs: predictions, the reported-parameter table and the visual predictive check."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.distributions.transforms import CorrCholeskyTransform

from numpyro_hgf._checks import check_positive_int
from numpyro_hgf.models.nlme.core import residual_sd

if TYPE_CHECKING:
    from numpyro_hgf.models.nlme.core import LaplaceFit, NLMEModel
    from numpyro_hgf.models.nlme.data import NLMEData

__all__ = ["predict", "parameter_table", "format_table", "plot_vpc"]


# ---------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------


def predict(model: NLMEModel, params, data: NLMEData, eta=None, times=None):
    """Predictions ``f(theta, eta_i, x_i, t)``: ``(N, T)``.

    ``eta=None`` gives population predictions (``eta = 0``); pass the conditional modes
    (``LaplaceFit.eta``) for individual predictions.  ``times``: ``(N, T')`` or ``(T',)``
    to predict at other times (default: the observation times).
    """
    N = data.num_subjects
    eta = jnp.zeros((N, model.eta_dim)) if eta is None else jnp.asarray(eta)
    if times is None:
        t = data.times
    else:
        t = jnp.broadcast_to(jnp.asarray(times), (N, np.shape(times)[-1]))
    return jax.vmap(lambda e, c, tt: model.structural(params["theta"], e, c, tt))(
        eta, data.covariates, t
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


def _cell(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def format_table(rows: list[dict], reference: Mapping[str, float] | None = None) -> str:
    """Markdown table of :func:`parameter_table` rows: parameter, estimate, SE, RSE %,
    shrinkage % (blank where a row has none) and an optional reference column."""
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

    num_sims = check_positive_int("num_sims", num_sims)
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
    q = np.asarray(quantiles)
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
