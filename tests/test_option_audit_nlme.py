"""Option audit of models/ (NLME, LMM, Laplace, PPCA, SVI, VAE, PK) and datasets/: a bad option
fails at the top of the call, before anything is traced, fitted or simulated, with a message
that names it.

Each case below reproduced a defect: a JAX-, SciPy- or flax-internal error, a misleading
message (naming another argument, or a string split into characters), a silently wrong result
(NaN estimates, a typo read as another error model, a bad ``progress`` read as on), or a
failure only after expensive work (an SVI fit run before its final ELBO, a VPC simulated before
its plot).  The fits take a structural model that raises when called (``boom``), so a check
that came after the work would fail with another message.  The controls at the end show that
valid calls still pass the checks.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import numpyro_hgf as nh
from numpyro_hgf.models import laplace, lmm, nlme, pk, pk_ode, ppca, svi, vae
from numpyro_hgf.models.nlme._arguments import check_params, check_proposal

KEY = jax.random.key(0)
D = nh.datasets
NO = {"progress": False}
TABLE = {
    "id": [1, 1, 1, 2, 2, 2],
    "t": [0.5, 1.0, 2.0, 0.5, 1.0, 2.0],
    "y": [1.0, 2.0, 1.5, 0.8, 1.9, 1.2],
    "dose": [4.0, 4.0, 4.0, 3.0, 3.0, 3.0],
}
DATA = nlme.prepare_data(TABLE, subject="id", time="t", observation="y", covariates=("dose",))
N = DATA.num_subjects
MODEL, INIT = nlme.theophylline_model()
NAMES = ("ka", "cl", "v")


def boom(theta, eta, covariates, times):
    raise AssertionError("the structural model ran before the options were checked")


BOOM = nlme.NLMEModel(boom, NAMES)
SVI = {"key": KEY, "steps": 10**9, **NO}  # a fit that would never finish: checks come first
NUTS = {"key": KEY, "num_warmup": 1, "num_samples": 1, **NO}
PRIORS = {
    **{f"theta_log_{k}": dist.Normal(0.0, 5.0) for k in NAMES},
    "omega_sd": dist.HalfNormal(1.0).expand([3]),
    "sigma_add": dist.HalfNormal(2.0),
}
EYES = np.tile(np.eye(3), (N, 1, 1))
ZEROS = np.zeros((N, 3))
COV1 = {"dose_time": jnp.zeros(1), "dose_amt": jnp.ones(1)}
X, Z, Y, MASK = lmm.sleepstudy_design()
Y3 = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
PP = ppca.PPCAParams(jnp.ones((3, 1)), jnp.zeros(3), jnp.asarray(1.0))
FITTED = vae.VAE(2, 3, "gaussian", (4,), {})  # params never used: the checks fail first


def without(d, key):
    return {k: v for k, v in d.items() if k != key}


def png(name):
    return f"/nonexistent-dir/{name}.png"  # never written: the checks fail first


def quadratic(eta, params):
    return -0.5 * jnp.sum(eta**2)


def ppca_model(y):
    loc = numpyro.param("loc", jnp.zeros(3))
    numpyro.sample("y", dist.Normal(loc, 1.0).to_event(1), obs=y)


def no_guide(y):
    pass


FULL_INIT = nlme.NLMEModel(boom, NAMES, omega="full").init_params(INIT["theta"])
NAN_SIGMA = {**INIT, "log_sigma_add": jnp.asarray(jnp.nan)}
FIT_BAD_COV = nlme.LaplaceFit(INIT, 0.0, INIT, np.eye(2), None, None, 0, True, 0.0, "laplace")

# (id, call, exception, argument named at the start of the message)
CASES = [
    # -- NLMEModel and its init_params -------------------------------------------------------
    ("NLMEModel-eta_names-str", lambda: nlme.NLMEModel(boom, "ka"), TypeError, "eta_names"),
    ("NLMEModel-eta_names-None", lambda: nlme.NLMEModel(boom, None), TypeError, "eta_names"),
    ("NLMEModel-eta_names-ints", lambda: nlme.NLMEModel(boom, (1, 2)), TypeError, "eta_names"),
    (
        "NLMEModel-eta_names-duplicate",
        lambda: nlme.NLMEModel(boom, ("ka", "ka")),
        ValueError,
        "eta_names",
    ),
    (
        "NLMEModel-eta_scale-None",
        lambda: nlme.NLMEModel(boom, ("ka",), eta_scale=None),
        TypeError,
        "eta_scale",
    ),
    (
        "init_params-omega_sd-negative",
        lambda: MODEL.init_params(INIT["theta"], omega_sd=-1.0),
        ValueError,
        "omega_sd",
    ),
    (
        "init_params-omega_sd-length",
        lambda: MODEL.init_params(INIT["theta"], omega_sd=(1.0, 2.0)),
        ValueError,
        "omega_sd",
    ),
    (
        "init_params-sigma_add-zero",
        lambda: MODEL.init_params(INIT["theta"], sigma_add=0.0),
        ValueError,
        "sigma_add",
    ),
    ("init_params-theta-list", lambda: MODEL.init_params([1.0, 2.0]), TypeError, "theta"),
    (
        "residual_sd-error-typo",
        lambda: nlme.residual_sd("additve", jnp.ones(2), 1.0, 0.1),
        ValueError,
        "error",
    ),
    # -- laplace_log_likelihood, fit_laplace ----------------------------------------------------
    (
        "laplace_log_likelihood-num_steps-float",
        lambda: nlme.laplace_log_likelihood(BOOM, INIT, DATA, num_steps=2.5),
        TypeError,
        "num_steps",
    ),
    (
        "laplace_log_likelihood-params-missing",
        lambda: nlme.laplace_log_likelihood(BOOM, {"theta": INIT["theta"]}, DATA),
        ValueError,
        "params",
    ),
    (
        "laplace_log_likelihood-data-dict",
        lambda: nlme.laplace_log_likelihood(BOOM, INIT, {"times": 1}),
        TypeError,
        "data",
    ),
    ("fit_laplace-model-str", lambda: nlme.fit_laplace("m", DATA, INIT), TypeError, "model"),
    ("fit_laplace-data-dict", lambda: nlme.fit_laplace(BOOM, {}, INIT), TypeError, "data"),
    (
        "fit_laplace-tol-str",
        lambda: nlme.fit_laplace(BOOM, DATA, INIT, tol="1e-6", **NO),
        TypeError,
        "tol",
    ),
    (
        "fit_laplace-tol-negative",
        lambda: nlme.fit_laplace(BOOM, DATA, INIT, tol=-1.0, **NO),
        ValueError,
        "tol",
    ),
    (
        "fit_laplace-num_steps-float",
        lambda: nlme.fit_laplace(BOOM, DATA, INIT, num_steps=2.5, **NO),
        TypeError,
        "num_steps",
    ),
    (
        "fit_laplace-progress-str",
        lambda: nlme.fit_laplace(BOOM, DATA, INIT, progress="no"),
        TypeError,
        "progress",
    ),
    (
        "fit_laplace-init-nan",
        lambda: nlme.fit_laplace(BOOM, DATA, NAN_SIGMA, **NO),
        ValueError,
        "init['log_sigma_add']",
    ),
    (
        "fit_laplace-init-missing-sigma",
        lambda: nlme.fit_laplace(BOOM, DATA, without(INIT, "log_sigma_add"), **NO),
        ValueError,
        "init",
    ),
    (
        "fit_laplace-init-missing-theta",
        lambda: nlme.fit_laplace(BOOM, DATA, without(INIT, "theta"), **NO),
        ValueError,
        "init",
    ),
    (
        "fit_laplace-init-omega-shape",
        lambda: nlme.fit_laplace(BOOM, DATA, {**INIT, "log_omega_sd": jnp.zeros(2)}, **NO),
        ValueError,
        "init['log_omega_sd']",
    ),
    (
        "fit_laplace-init-of-another-model",
        lambda: nlme.fit_laplace(BOOM, DATA, FULL_INIT, **NO),
        ValueError,
        "init",
    ),
    # -- NewtonGuide, fit_svi, fit_nuts ---------------------------------------------------------
    (
        "NewtonGuide-init-missing",
        lambda: nlme.NewtonGuide(BOOM, {"theta": {}}),
        ValueError,
        "init",
    ),
    (
        "fit_svi-num_particles-zero",
        lambda: nlme.fit_svi(BOOM, DATA, INIT, num_particles=0, **SVI),
        ValueError,
        "num_particles",
    ),
    (
        "fit_svi-num_eval_particles-str",
        lambda: nlme.fit_svi(BOOM, DATA, INIT, num_eval_particles="5", **SVI),
        TypeError,
        "num_eval_particles",
    ),
    (
        "fit_svi-init-missing",
        lambda: nlme.fit_svi(BOOM, DATA, without(INIT, "log_sigma_add"), **SVI),
        ValueError,
        "init",
    ),
    (
        "fit_nuts-key-int",
        lambda: nlme.fit_nuts(BOOM, DATA, INIT, PRIORS, **{**NUTS, "key": 0}),
        TypeError,
        "key",
    ),
    (
        "fit_nuts-priors-list",
        lambda: nlme.fit_nuts(BOOM, DATA, INIT, [], **NUTS),
        TypeError,
        "priors",
    ),
    (
        "fit_nuts-priors-unknown-site",
        lambda: nlme.fit_nuts(
            BOOM, DATA, INIT, {**PRIORS, "sigma_prop": dist.HalfNormal()}, **NUTS
        ),
        ValueError,
        "priors",
    ),
    (
        "fit_nuts-priors-not-a-distribution",
        lambda: nlme.fit_nuts(BOOM, DATA, INIT, {**PRIORS, "sigma_add": 2.0}, **NUTS),
        TypeError,
        "priors['sigma_add']",
    ),
    (
        "fit_nuts-progress-str",
        lambda: nlme.fit_nuts(BOOM, DATA, INIT, PRIORS, **{**NUTS, "progress": "no"}),
        TypeError,
        "progress",
    ),
    # -- importance_log_likelihood, guide_moments, partial_params -------------------------------
    (
        "importance-key-int",
        lambda: nlme.importance_log_likelihood(BOOM, INIT, DATA, ZEROS, EYES, num_samples=2, key=0),
        TypeError,
        "key",
    ),
    (
        "importance-df-negative",
        lambda: nlme.importance_log_likelihood(
            BOOM, INIT, DATA, ZEROS, EYES, num_samples=2, key=KEY, df=-1.0
        ),
        ValueError,
        "df",
    ),
    (
        "importance-loc-shape",
        lambda: nlme.importance_log_likelihood(
            BOOM, INIT, DATA, ZEROS[:, :2], EYES, num_samples=2, key=KEY
        ),
        ValueError,
        "loc",
    ),
    (
        "importance-cov-not-positive-definite",
        lambda: nlme.importance_log_likelihood(
            BOOM, INIT, DATA, ZEROS, -EYES, num_samples=2, key=KEY
        ),
        ValueError,
        "cov",
    ),
    ("guide_moments-None", lambda: nlme.guide_moments(None, DATA), TypeError, "result"),
    ("partial_params-str", lambda: nlme.partial_params("f", INIT), TypeError, "log_joint"),
    # -- prepare_data ---------------------------------------------------------------------------
    (
        "prepare_data-covariates-str",
        lambda: nlme.prepare_data(
            TABLE, subject="id", time="t", observation="y", covariates="dose"
        ),
        TypeError,
        "covariates",
    ),
    (
        "prepare_data-nonnegative-str",
        lambda: nlme.prepare_data(
            TABLE, subject="id", time="t", observation="y", nonnegative="dose"
        ),
        TypeError,
        "nonnegative",
    ),
    (
        "prepare_data-empty",
        lambda: nlme.prepare_data(
            {"id": [], "t": [], "y": []}, subject="id", time="t", observation="y"
        ),
        ValueError,
        "table",
    ),
    (
        "prepare_data-table-list",
        lambda: nlme.prepare_data([1], subject="id", time="t", observation="y"),
        TypeError,
        "table",
    ),
    (
        "prepare_data-table-None",
        lambda: nlme.prepare_data(None, subject="id", time="t", observation="y"),
        TypeError,
        "table",
    ),
    (
        "prepare_data-observation-strings",
        lambda: nlme.prepare_data(
            {**TABLE, "y": ["a"] * 6}, subject="id", time="t", observation="y"
        ),
        TypeError,
        "y",
    ),
    # -- report ---------------------------------------------------------------------------------
    (
        "predict-eta-shape",
        lambda: nlme.predict(BOOM, INIT, DATA, eta=np.zeros((N, 2))),
        ValueError,
        "eta",
    ),
    (
        "predict-times-shape",
        lambda: nlme.predict(BOOM, INIT, DATA, times=np.zeros((N + 1, 4))),
        ValueError,
        "times",
    ),
    ("parameter_table-dict", lambda: nlme.parameter_table(MODEL, INIT), TypeError, "fit"),
    (
        "parameter_table-covariance-shape",
        lambda: nlme.parameter_table(MODEL, FIT_BAD_COV),
        ValueError,
        "fit.covariance",
    ),
    ("format_table-dict", lambda: nlme.format_table({"name": 1}), TypeError, "rows"),
    (
        "plot_vpc-key-int",
        lambda: nlme.plot_vpc(png("vpc"), BOOM, INIT, DATA, key=0, num_sims=2),
        TypeError,
        "key",
    ),
    (
        "plot_vpc-num_bins-zero",
        lambda: nlme.plot_vpc(png("vpc"), BOOM, INIT, DATA, key=KEY, num_sims=2, num_bins=0),
        ValueError,
        "num_bins",
    ),
    (
        "plot_vpc-quantiles-two",
        lambda: nlme.plot_vpc(png("vpc"), BOOM, INIT, DATA, key=KEY, quantiles=(0.1, 0.9)),
        ValueError,
        "quantiles",
    ),
    (
        "plot_vpc-quantiles-outside",
        lambda: nlme.plot_vpc(png("vpc"), BOOM, INIT, DATA, key=KEY, quantiles=(0.1, 0.5, 1.5)),
        ValueError,
        "quantiles",
    ),
    (
        "plot_vpc-path-None",
        lambda: nlme.plot_vpc(None, BOOM, INIT, DATA, key=KEY),
        TypeError,
        "path",
    ),  # fmt: skip
    (
        "gof_table-params-missing",
        lambda: nlme.gof_table(BOOM, {"theta": INIT["theta"]}, DATA),
        ValueError,
        "fit",
    ),
    # -- structural models and covariate models ------------------------------------------------
    (
        "power_covariates-effects-list",
        lambda: pk.power_covariates(pk.one_compartment_oral, [1]),
        TypeError,
        "effects",
    ),
    (
        "power_covariates-reference-str",
        lambda: pk.power_covariates(pk.one_compartment_oral, {"log_cl": ("wt", "70", 0.75)}),
        TypeError,
        "effects['log_cl']",
    ),
    (
        "power_covariates-reference-inf",
        lambda: pk.power_covariates(pk.one_compartment_oral, {"log_cl": ("wt", math.inf, 0.75)}),
        ValueError,
        "effects['log_cl']",
    ),
    (
        "power_covariates-covariate-int",
        lambda: pk.power_covariates(pk.one_compartment_oral, {"log_cl": (3, 70.0, 0.75)}),
        TypeError,
        "effects['log_cl']",
    ),
    (
        "neural_covariates-centres-scalar",
        lambda: pk.neural_covariates(
            pk.one_compartment_oral, ["log_cl"], ["wt"], centres=70.0, scales=[10.0]
        ),
        TypeError,
        "centres",
    ),
    (
        "neural_covariates-centres-nan",
        lambda: pk.neural_covariates(
            pk.one_compartment_oral, ["log_cl"], ["wt"], centres=[math.nan], scales=[10.0]
        ),
        ValueError,
        "centres",
    ),
    (
        "neural_covariates-targets-str",
        lambda: pk.neural_covariates(
            pk.one_compartment_oral, "log_cl", ["wt"], centres=[70.0], scales=[10.0]
        ),
        TypeError,
        "targets",
    ),
    (
        "one_compartment_oral-covariates-no-dose",
        lambda: pk.one_compartment_oral(INIT["theta"], jnp.zeros(3), {}, jnp.ones(3)),
        ValueError,
        "covariates",
    ),
    (
        "one_compartment_oral-theta-missing",
        lambda: pk.one_compartment_oral({}, jnp.zeros(3), {"dose": 1.0}, jnp.ones(3)),
        ValueError,
        "theta",
    ),
    (
        "one_compartment_oral_doses-no-dose_time",
        lambda: pk.one_compartment_oral_doses(
            INIT["theta"], jnp.zeros(3), {"dose_amt": jnp.ones(1)}, jnp.ones(3)
        ),
        ValueError,
        "covariates",
    ),
    (
        "solve_compartments-num_compartments-float",
        lambda: pk_ode.solve_compartments(boom, (), 2.5, COV1, jnp.ones(2)),
        TypeError,
        "num_compartments",
    ),
    (
        "solve_compartments-num_compartments-zero",
        lambda: pk_ode.solve_compartments(boom, (), 0, COV1, jnp.ones(2)),
        ValueError,
        "num_compartments",
    ),
    (
        "solve_compartments-rtol-negative",
        lambda: pk_ode.solve_compartments(boom, (), 2, COV1, jnp.ones(2), rtol=-1.0),
        ValueError,
        "rtol",
    ),
    (
        "solve_compartments-max_steps-zero",
        lambda: pk_ode.solve_compartments(boom, (), 2, COV1, jnp.ones(2), max_steps=0),
        ValueError,
        "max_steps",
    ),
    (
        "solve_compartments-kinetics-str",
        lambda: pk_ode.solve_compartments("k", (), 2, COV1, jnp.ones(2)),
        TypeError,
        "kinetics",
    ),
    # -- the Laplace approximation -------------------------------------------------------------
    (
        "laplace_log_marginal-eta0-scalar",
        lambda: laplace.laplace_log_marginal(quadratic, {}, 0.0),
        ValueError,
        "eta0",
    ),
    (
        "laplace_log_marginal-num_steps-float",
        lambda: laplace.laplace_log_marginal(quadratic, {}, jnp.zeros(2), num_steps=2.5),
        TypeError,
        "num_steps",
    ),
    (
        "laplace_log_marginal-num_steps-negative",
        lambda: laplace.laplace_log_marginal(quadratic, {}, jnp.zeros(2), num_steps=-1),
        ValueError,
        "num_steps",
    ),
    (
        "laplace_log_marginal-log_joint-str",
        lambda: laplace.laplace_log_marginal("f", {}, jnp.zeros(2)),
        TypeError,
        "log_joint",
    ),
    (
        "laplace_log_marginal-search_curvature-str",
        lambda: laplace.laplace_log_marginal(quadratic, {}, jnp.zeros(2), search_curvature="gn"),
        TypeError,
        "search_curvature",
    ),
    (
        "find_mode-eta0-matrix",
        lambda: laplace.find_mode(lambda e: -jnp.sum(e**2), jnp.zeros((2, 2))),
        ValueError,
        "eta0",
    ),
    (
        "find_mode-curvature-str",
        lambda: laplace.find_mode(lambda e: -jnp.sum(e**2), jnp.zeros(2), curvature="exact"),
        TypeError,
        "curvature",
    ),
    # -- linear mixed models ---------------------------------------------------------------------
    (
        "fit_lmm-X-nan-observed",
        lambda: lmm.fit_lmm(np.where(np.arange(2) == 1, np.nan, X), Z, Y, MASK),
        ValueError,
        "X",
    ),
    ("fit_lmm-Z-no-columns", lambda: lmm.fit_lmm(X, Z[..., :0], Y, MASK), ValueError, "Z"),
    ("fit_lmm-X-no-columns", lambda: lmm.fit_lmm(X[..., :0], Z, Y, MASK), ValueError, "X"),
    (
        "fit_lmm-mask-weights",
        lambda: lmm.fit_lmm(X, Z, Y, np.full(Y.shape, 0.5)),
        ValueError,
        "mask",
    ),  # fmt: skip
    (
        "lmm_log_likelihood-x-shape",
        lambda: lmm.lmm_log_likelihood(jnp.zeros(2), X, Z, Y, MASK),
        ValueError,
        "x",
    ),
    ("sleepstudy_design-dict", lambda: lmm.sleepstudy_design({"a": 1}), TypeError, "data"),
    # -- PPCA, fit_svi -------------------------------------------------------------------------
    ("ppca-log_likelihood-pair", lambda: ppca.log_likelihood((1, 2), Y3), TypeError, "params"),
    (
        "ppca-log_likelihood-dimension",
        lambda: ppca.log_likelihood(PP, Y3[:, :2]),
        ValueError,
        "params.W",
    ),
    (
        "ppca-log_likelihood-sigma2-negative",
        lambda: ppca.log_likelihood(PP._replace(sigma2=jnp.asarray(-1.0)), Y3),
        ValueError,
        "params.sigma2",
    ),
    ("ppca-posterior-dimension", lambda: ppca.posterior(PP, Y3[:, :2]), ValueError, "params.W"),
    (
        "ppca-fit_svi-num_particles-zero",
        lambda: ppca.fit_svi(Y3, 1, key=KEY, num_particles=0, steps=10**9, **NO),
        ValueError,
        "num_particles",
    ),
    (
        "ppca-fit_svi-num_particles-str",
        lambda: ppca.fit_svi(Y3, 1, key=KEY, num_particles="2", steps=10**9, **NO),
        TypeError,
        "num_particles",
    ),
    (
        "ppca-model-latent_dim-zero",
        lambda: numpyro.handlers.seed(ppca.model, 0)(jnp.asarray(Y3), 0),
        ValueError,
        "latent_dim",
    ),
    (
        "fit_svi-model-str",
        lambda: svi.fit_svi("m", no_guide, (Y3,), key=KEY, **NO),
        TypeError,
        "model",
    ),  # fmt: skip
    (
        "fit_svi-elbo-str",
        lambda: svi.fit_svi(ppca_model, no_guide, (Y3,), elbo="trace", key=KEY, **NO),
        TypeError,
        "elbo",
    ),
    (
        "fit_svi-model_kwargs-list",
        lambda: svi.fit_svi(ppca_model, no_guide, (Y3,), model_kwargs=[1], key=KEY, **NO),
        TypeError,
        "model_kwargs",
    ),
    (
        "fit_svi-validation_fn-str",
        lambda: svi.fit_svi(ppca_model, no_guide, (Y3,), validation_fn="v", key=KEY, **NO),
        TypeError,
        "validation_fn",
    ),
    (
        "fit_svi-init_params-list",
        lambda: svi.fit_svi(ppca_model, no_guide, (Y3,), init_params=[1], key=KEY, **NO),
        TypeError,
        "init_params",
    ),
    # -- VAE -------------------------------------------------------------------------------------
    (
        "vae-model-likelihood-typo",
        lambda: numpyro.handlers.seed(vae.model, 0)(jnp.asarray(Y3), 2, likelihood="gauss"),
        ValueError,
        "likelihood",
    ),
    ("vae-make_guide-latent_dim-zero", lambda: vae.make_guide(0), ValueError, "latent_dim"),
    ("vae-make_guide-hidden-str", lambda: vae.make_guide(2, hidden="64"), TypeError, "hidden"),
    (
        "vae-iwae-vae-str",
        lambda: vae.iwae_log_likelihood("v", Y3, k=2, key=KEY),
        TypeError,
        "vae",
    ),  # fmt: skip
    (
        "vae-iwae-batch-zero",
        lambda: vae.iwae_log_likelihood(FITTED, Y3, k=2, key=KEY, batch=0),
        ValueError,
        "batch",
    ),
    (
        "vae-iwae-key-int",
        lambda: vae.iwae_log_likelihood(FITTED, Y3, k=2, key=0),
        TypeError,
        "key",
    ),  # fmt: skip
    (
        "vae-iwae-x-width",
        lambda: vae.iwae_log_likelihood(FITTED, Y3[:, :2], k=2, key=KEY),
        ValueError,
        "x",
    ),
    (
        "vae-plot_reconstructions-num-zero",
        lambda: vae.plot_reconstructions(png("recon"), FITTED, Y3, shape=(3,), num=0),
        ValueError,
        "num",
    ),
    (
        "vae-plot_reconstructions-shape",
        lambda: vae.plot_reconstructions(png("recon"), FITTED, Y3, num=2),
        ValueError,
        "shape",
    ),
    (
        "vae-plot_latents-labels",
        lambda: vae.plot_latents(png("latents"), FITTED, Y3, np.zeros(3)),
        ValueError,
        "labels",
    ),
    # -- datasets --------------------------------------------------------------------------------
    ("toy2d-key-int", lambda: D.toy2d("moons", 10, 0), TypeError, "key"),
    ("toy2d-key-None", lambda: D.toy2d("moons", 10, None), TypeError, "key"),
    (
        "toy2d-standardize-str",
        lambda: D.toy2d("moons", 10, KEY, standardize="no"),
        TypeError,
        "standardize",
    ),
    ("standardize-axis-float", lambda: D.standardize(Y3, axis=0.5), TypeError, "axis"),
    ("standardize-axis-str", lambda: D.standardize(Y3, axis="0"), TypeError, "axis"),
    ("standardize-strings", lambda: D.standardize(np.full((3, 2), "a")), TypeError, "x"),
    ("dequantize-key-int", lambda: D.dequantize(0, np.zeros(3)), TypeError, "key"),
]


@pytest.mark.parametrize(
    ("call", "error", "name"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_option_names_itself(call, error, name):
    with pytest.raises(error, match=rf"^{re.escape(name)}: expected"):
        call()


# -- controls: valid calls pass the checks ---------------------------------------------------
def test_valid_nlme_options_pass():
    model = nlme.NLMEModel(boom, ["ka", "cl"], omega="full", error="combined")
    assert model.eta_names == ("ka", "cl") and model.eta_scale == ("log", "log")
    init = model.init_params({"a": 1.0}, omega_sd=(0.3, 0.2), sigma_add=np.float32(1.0))
    check_params(model, init)
    assert "log_sigma_prop" not in MODEL.init_params(INIT["theta"], sigma_prop=None)  # unused
    # keys and shapes are static: traced params (inside a user's jit) pass
    assert jax.eval_shape(lambda p: (check_params(model, p), 0.0)[1], init).shape == ()
    check_params(MODEL, jax.tree.map(np.asarray, INIT), "fit.params")  # NumPy leaves
    loc, cov = check_proposal(ZEROS.tolist(), EYES, N, 3)
    assert loc.shape == (N, 3) and cov.shape == (N, 3, 3)
    # an object column of numbers still reads as numbers, a tuple of covariates is fine
    table = {**TABLE, "dose": np.asarray(TABLE["dose"], object)}
    data = nlme.prepare_data(table, subject="id", time="t", observation="y", covariates=["dose"])
    np.testing.assert_allclose(data.covariates["dose"], [4.0, 3.0])
    rows = [{"name": "ka", "estimate": 1.5, "se": 0.1}]
    assert "| ka |" in nlme.format_table(iter(rows), {"ka": 1.6})


def test_valid_structural_options_pass():
    theta = {"log_ka": 0.4, "log_cl": 1.0, "log_v": 3.4}
    t = jnp.linspace(0.5, 5.0, 4)
    out = jax.eval_shape(pk.one_compartment_oral, theta, jnp.zeros(3), {"dose": 1.0}, t)
    assert out.shape == (4,)
    effects = {"log_cl": ("wt", np.float32(70.0), "beta"), "log_v": ("wt", 70, 1)}
    power = pk.power_covariates(pk.one_compartment_oral, effects)
    out = jax.eval_shape(power, {**theta, "beta": 0.75}, jnp.zeros(3), {"dose": 1.0, "wt": 60.0}, t)
    assert out.shape == (4,)
    f, init_net = pk.neural_covariates(
        pk.one_compartment_oral, ("log_cl",), ("wt",), centres=np.asarray([70.0]), scales=(10,)
    )
    assert callable(f) and callable(init_net)
    eta = laplace.find_mode(lambda e: -jnp.sum(e**2), jnp.ones(2), num_steps=0)
    np.testing.assert_allclose(eta, 1.0)  # zero Newton steps: the start


def test_valid_other_options_pass():
    mean, _ = ppca.posterior(list(PP), Y3)  # a plain (W, mu, sigma2) list
    assert mean.shape == (20, 1)
    assert vae.make_guide(np.int64(2), hidden=[4]) is not None
    f = jax.jit(D.toy2d, static_argnames=("name", "n", "standardize"))
    raw_key = jax.random.PRNGKey(0)  # a raw key, traced inside the user's jit
    assert f("moons", 4, raw_key, standardize=np.bool_(True)).shape == (4, 2)
    assert D.standardize(np.arange(6).reshape(3, 2), axis=np.int64(-2)).shape == (3, 2)
    assert D.dequantize(KEY, np.zeros(3)).shape == (3,)
