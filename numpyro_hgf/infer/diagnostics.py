"""Warnings after sampling: R-hat, bulk ESS and divergences (Vehtari et al. 2021).

:func:`warn_diagnostics` reads ``arviz.summary`` of the posterior and the ``diverging``
statistic and emits one :class:`SamplingWarning` line per failed check:

* rank-normalised split R-hat above ``1.01`` (chains disagree, or a chain is stuck);
* bulk ESS below ``100`` per chain;
* any divergent transition.

:func:`numpyro_hgf.infer.run_nuts` and :func:`~numpyro_hgf.infer.run_hmc` call it after
sampling (``diagnostics_warn=False`` silences it).  Each line names the worst variable and
its number, and how many variables fail.
"""

from __future__ import annotations

import warnings

import numpy as np

from numpyro_hgf._checks import check_instance, check_nonnegative_float, describe

__all__ = ["SamplingWarning", "sampling_diagnostics", "warn_diagnostics"]

RHAT_MAX = 1.01
ESS_PER_CHAIN = 100


class SamplingWarning(UserWarning):
    """A convergence diagnostic failed (R-hat, bulk ESS, divergences)."""


def sampling_diagnostics(idata) -> dict:
    """``{"r_hat": {var: worst}, "ess_bulk": {var: worst}, "divergences": n, "chains": c,
    "draws": d}`` over the posterior's variables (each variable's worst element; elements
    that are constant across draws are skipped: their R-hat is undefined)."""
    import arviz as az

    if not isinstance(idata, az.InferenceData) or "posterior" not in idata.groups():
        got = type(idata).__name__
        if isinstance(idata, az.InferenceData):
            got = f"an InferenceData with the groups {idata.groups()}"
        raise TypeError(f"idata: expected an arviz.InferenceData with a posterior group, got {got}")
    posterior = idata.posterior
    chains, draws = int(posterior.sizes["chain"]), int(posterior.sizes["draw"])
    r_hat, ess = {}, {}
    if posterior.data_vars and draws >= 4:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # arviz's own warnings on constant variables
            summary = az.summary(idata, kind="diagnostics", round_to="none")
        for label, row in summary.iterrows():
            var = str(label).split("[")[0]
            if np.isfinite(row["r_hat"]):
                r_hat[var] = max(r_hat.get(var, -np.inf), float(row["r_hat"]))
            if np.isfinite(row["ess_bulk"]):
                ess[var] = min(ess.get(var, np.inf), float(row["ess_bulk"]))
    divergences = 0
    if "sample_stats" in idata and "diverging" in idata.sample_stats:
        divergences = int(np.sum(np.asarray(idata.sample_stats["diverging"])))
    return {
        "r_hat": r_hat,
        "ess_bulk": ess,
        "divergences": divergences,
        "chains": chains,
        "draws": draws,
    }


def warn_diagnostics(
    idata, sampler: str = "sampling", rhat_max: float = RHAT_MAX, ess_per_chain=ESS_PER_CHAIN
) -> list[str]:
    """Warn (:class:`SamplingWarning`, one line each) when R-hat > ``rhat_max``, bulk ESS <
    ``ess_per_chain`` per chain, or a transition diverged; returns the messages
    (``rhat_max=inf`` / ``ess_per_chain=0`` switch a check off)."""
    check_instance("sampler", sampler, str, "a name (a string)")
    if isinstance(rhat_max, bool) or not isinstance(rhat_max, int | float | np.number):
        raise TypeError(f"rhat_max: expected a number > 1, got {describe(rhat_max)}")
    if not rhat_max > 1:  # NaN too: every comparison with it is false, nothing would warn
        raise ValueError(f"rhat_max: expected a number > 1, got {rhat_max}")
    check_nonnegative_float("ess_per_chain", ess_per_chain)
    d = sampling_diagnostics(idata)
    chains, total = d["chains"], d["chains"] * d["draws"]
    messages = []
    bad = {k: v for k, v in d["r_hat"].items() if v > rhat_max}
    if bad:
        worst = max(bad, key=bad.get)
        messages.append(
            f"{sampler}: R-hat {bad[worst]:.3f} > {rhat_max} for '{worst}' ({len(bad)} of "
            f"{len(d['r_hat'])} variables above {rhat_max}): the {chains} chains disagree; "
            "run longer or reparameterise."
        )
    floor = ess_per_chain * chains
    low = {k: v for k, v in d["ess_bulk"].items() if v < floor}
    if low:
        worst = min(low, key=low.get)
        messages.append(
            f"{sampler}: bulk ESS {low[worst]:.0f} < {floor} ({ess_per_chain} per chain) for "
            f"'{worst}' ({len(low)} of {len(d['ess_bulk'])} variables below)."
        )
    if d["divergences"]:
        messages.append(
            f"{sampler}: {d['divergences']} of {total} transitions diverged; the posterior "
            "may be biased (raise target_accept or reparameterise)."
        )
    for message in messages:
        warnings.warn(message, SamplingWarning, stacklevel=3)
    return messages
