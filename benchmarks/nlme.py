"""Mixed-effects fits: sleepstudy against statsmodels MixedLM, theophylline fit times.

* sleepstudy ``Reaction ~ Days + (Days | Subject)`` by maximum likelihood:
  ``nlme.fit_laplace`` (exact for this linear Gaussian model) against statsmodels
  ``MixedLM(reml=False)`` in the same process: estimates, log-likelihood, and the ratio of
  wall times (medians over repeats; the first numpyro_hgf repeat includes compilation and is
  reported separately).
* sleepstudy by REML (lme4's default): ``lmm.fit_reml`` against statsmodels
  ``MixedLM(reml=True)`` run here and lme4's published summary (``lmm.LME4_SLEEPSTUDY_REML``),
  every number side by side (``--reml-only`` runs just this).
* theophylline (one compartment, diagonal Omega, additive error, dose in mg): Laplace and
  FOCE-I fits (log-likelihood, wall time including compilation) and the SVI fit (ELBO, time).

    nice -n 10 .venv/bin/python benchmarks/nlme.py [--repeats 5] [--skip-svi] [--reml-only]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("NUMPYRO_HGF_PROGRESS", "0")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from numpyro_hgf.models import lmm, nlme  # noqa: E402


def sleepstudy(repeats: int):
    import pandas as pd
    import statsmodels.formula.api as smf

    from numpyro_hgf.datasets import sleepstudy as load

    s = load()
    df = pd.DataFrame({"Reaction": s.reaction_ms, "Days": s.days, "Subject": s.subject})
    data = lmm.sleepstudy_data()
    model, init = lmm.sleepstudy_model()
    ours, theirs, first = [], [], None
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        fit = nlme.fit_laplace(model, data, init)
        t1 = time.perf_counter()
        ref = smf.mixedlm("Reaction ~ Days", df, groups="Subject", re_formula="~Days").fit(
            reml=False, method=["lbfgs"]
        )
        t2 = time.perf_counter()
        if r == 0:
            first = t1 - t0
        else:
            ours.append(t1 - t0)
            theirs.append(t2 - t1)
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    print("## sleepstudy ML: numpyro_hgf Laplace vs statsmodels MixedLM(reml=False)")
    print(f"log-likelihood: ours {fit.log_likelihood:.4f}, statsmodels {ref.llf:.4f}")
    print(
        f"fixed effects: ours {float(fit.params['theta']['intercept']):.3f}, "
        f"{float(fit.params['theta']['slope']):.4f}; statsmodels {ref.fe_params.values}"
    )
    print(
        f"wall s (median of {repeats}): ours {statistics.median(ours):.3f}, statsmodels "
        f"{statistics.median(theirs):.3f}, ratio ours/statsmodels "
        f"{statistics.median(ratios):.2f}; first call with compilation {first:.1f} s"
    )


def sleepstudy_reml():
    import pandas as pd
    import statsmodels.formula.api as smf

    from numpyro_hgf.datasets import sleepstudy as load

    s = load()
    df = pd.DataFrame({"Reaction": s.reaction_ms, "Days": s.days, "Subject": s.subject})
    t0 = time.perf_counter()
    fit = lmm.fit_reml(*lmm.sleepstudy_design())
    seconds = time.perf_counter() - t0
    ref = smf.mixedlm("Reaction ~ Days", df, groups="Subject", re_formula="~Days").fit(
        reml=True, method=["lbfgs"]
    )
    c = ref.cov_re.values
    sd = np.sqrt(np.diag(c))
    blups = np.array([v.values for v in ref.random_effects.values()])
    lme4 = lmm.LME4_SLEEPSTUDY_REML

    def fmt(*xs):
        return ", ".join(f"{x:.6g}" for x in xs)

    rows = [
        ("fixed effects", lme4["beta"], fit.beta, ref.fe_params.values),
        ("fixed-effect SEs", lme4["beta_se"], fit.beta_se, ref.bse_fe.values),
        ("SD (intercept), SD (Days)", lme4["omega_sd"], fit.omega_sd, sd),
        ("correlation", [lme4["corr"]], [fit.omega_corr[0, 1]], [c[0, 1] / (sd[0] * sd[1])]),
        ("residual SD", [lme4["sigma"]], [fit.sigma], [np.sqrt(ref.scale)]),
        (
            "REML criterion",
            [lme4["reml_criterion"]],
            [-2 * fit.log_likelihood],
            [-2 * ref.llf],
        ),
        (
            "SD of conditional modes",
            lme4["ranef_sd"],
            fit.ranef.std(0, ddof=1),
            blups.std(0, ddof=1),
        ),
    ]
    print("\n## sleepstudy REML: lme4 (published) | lmm.fit_reml | statsmodels reml=True")
    print("| | lme4 | numpyro_hgf | statsmodels | max rel. diff to lme4 |")
    print("|---|---|---|---|---|")
    for name, a, b, c_ in rows:
        rel = np.max(np.abs(np.asarray(b) / np.asarray(a) - 1))
        print(f"| {name} | {fmt(*a)} | {fmt(*b)} | {fmt(*c_)} | {rel:.1e} |")
    print(f"fit_reml: {fit.iterations} L-BFGS iterations, {seconds:.1f} s with compilation")


def theophylline(skip_svi: bool):
    data = nlme.theophylline_data()
    model, init = nlme.theophylline_model()
    print("\n## theophylline")
    for method in ("laplace", "focei"):
        fit = nlme.fit_laplace(model, data, init, method=method)
        print(
            f"{method}: log-likelihood {fit.log_likelihood:.3f}, {fit.iterations} iterations, "
            f"{fit.seconds:.1f} s (including compilation)"
        )
        print(nlme.format_table(nlme.parameter_table(model, fit), nlme.THEOPHYLLINE_FOCEI))
    if not skip_svi:
        res = nlme.fit_svi(model, data, init, guide="mvn", steps=3000, key=jax.random.key(0))
        theta = {k: round(float(np.exp(v)), 3) for k, v in res.params["theta"].items()}
        print(f"svi (mvn): ELBO {res.elbo:.3f}, {res.seconds:.1f} s, {theta}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-svi", action="store_true")
    parser.add_argument("--reml-only", action="store_true", help="only the sleepstudy REML table")
    args = parser.parse_args()
    print(f"jax {jax.__version__}, devices {jax.devices()}, cpus {os.cpu_count()}")
    sleepstudy_reml()
    if args.reml_only:
        return
    sleepstudy(args.repeats)
    theophylline(args.skip_svi)


if __name__ == "__main__":
    main()
