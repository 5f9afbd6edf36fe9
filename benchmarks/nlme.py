"""Mixed-effects fits: sleepstudy against statsmodels MixedLM, theophylline fit times.

* sleepstudy ``Reaction ~ Days + (Days | Subject)`` by maximum likelihood:
  ``nlme.fit_laplace`` (exact for this linear Gaussian model) against statsmodels
  ``MixedLM(reml=False)`` in the same process: estimates, log-likelihood, and the ratio of
  wall times (medians over repeats; the first numpyro_hgf repeat includes compilation and is
  reported separately).
* theophylline (one compartment, diagonal Omega, additive error, dose in mg): Laplace and
  FOCE-I fits (log-likelihood, wall time including compilation) and the SVI fit (ELBO, time).

    nice -n 10 .venv/bin/python benchmarks/nlme.py [--repeats 5] [--skip-svi]
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
    args = parser.parse_args()
    print(f"jax {jax.__version__}, devices {jax.devices()}, cpus {os.cpu_count()}")
    sleepstudy(args.repeats)
    theophylline(args.skip_svi)


if __name__ == "__main__":
    main()
