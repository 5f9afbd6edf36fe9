"""Theophylline population PK: Laplace (and optionally SVI) fit, parameter table, VPC.

One compartment, first-order absorption, log-normal IIV on ka, CL and V (diagonal Omega),
additive error, dose in mg (``Dose * Wt``).  Writes ``theophylline_parameters.md`` (estimates,
standard errors and the published FOCE-I values) and ``theophylline_vpc.png``.

    python examples/theophylline_nlme.py [--method laplace|focei] [--svi] [--out DIR]
    python examples/theophylline_nlme.py --smoke     # a few iterations, for CI
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp

from numpyro_hgf.models import nlme


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="laplace", choices=("laplace", "focei"))
    parser.add_argument("--svi", action="store_true", help="also fit by SVI (variational EM)")
    parser.add_argument("--out", default="runs/theophylline", help="output directory")
    parser.add_argument("--smoke", action="store_true", help="tiny run (CI)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    data = nlme.theophylline_data()
    model, init = nlme.theophylline_model()
    fit = nlme.fit_laplace(model, data, init, method=args.method, max_iter=5 if args.smoke else 300)
    rows = nlme.parameter_table(model, fit)
    pub = nlme.THEOPHYLLINE_FOCEI
    lines = [
        f"# Theophylline, one compartment, {args.method} fit",
        "",
        f"log-likelihood {fit.log_likelihood:.2f} (published FOCE-I {pub['log_likelihood']}),"
        f" {fit.iterations} L-BFGS iterations, {fit.seconds:.1f} s",
        "",
        nlme.format_table(rows, pub),
    ]
    if args.svi:
        res = nlme.fit_svi(
            model, data, init, steps=200 if args.smoke else 3000, key=jax.random.key(0)
        )
        theta = {k: float(jnp.exp(v)) for k, v in res.params["theta"].items()}
        lines += ["", f"SVI (mvn guide): ELBO {res.elbo:.2f}, {res.seconds:.1f} s, {theta}"]
    (out / "theophylline_parameters.md").write_text("\n".join(lines) + "\n")
    params = jax.tree.map(jnp.asarray, fit.params)
    nlme.plot_vpc(
        out / "theophylline_vpc.png",
        model,
        params,
        data,
        key=jax.random.key(1),
        num_sims=50 if args.smoke else 1000,
        title="theophylline VPC",
        xlabel="time (h)",
        ylabel="concentration (mg/L)",
    )
    nlme.plot_gof(
        out / "theophylline_gof.png",
        model,
        fit,
        data,
        title="theophylline goodness of fit",
        xlabel="time (h)",
        ylabel="concentration (mg/L)",
    )
    print("\n".join(lines))
    print(f"wrote {out / 'theophylline_parameters.md'}, theophylline_vpc.png, theophylline_gof.png")


if __name__ == "__main__":
    main()
