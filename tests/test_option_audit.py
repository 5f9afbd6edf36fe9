"""Option audit of infer/, guides/, metrics/, preprocessing and plots: a bad option fails at the
top of the call, before anything is traced, fitted or sampled, with a message that names it.

Each case below reproduced a defect: a JAX-internal or NumPyro-internal error, a misleading
message (naming another argument), a silently wrong result, or a failure only after expensive
work (a guide fitted, a velocity predictor trained, earlier NFEs sampled).  The controls at the
end show that valid calls still pass the checks.
"""

from __future__ import annotations

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import numpyro_hgf as nh
from numpyro_hgf import plots
from numpyro_hgf._checks import check_fraction
from numpyro_hgf.infer import adaptation, force_field
from numpyro_hgf.infer.potential import ForceSite, model_potential
from numpyro_hgf.metrics.images import nfe_quality_curve

KEY = jax.random.key(0)
X = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
Y = np.random.default_rng(1).normal(size=(12, 2)).astype(np.float32)
EYE, ZERO = np.eye(2), np.zeros(2)
RUN = {"num_warmup": 0, "num_samples": 2, "num_chains": 1, "progress": False}
NEVER = {"num_steps": 10**9}  # a fit that would never finish: checks must come first


def model(y=None):
    x = numpyro.sample("x", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    numpyro.sample("y", dist.Normal(x, 1.0).to_event(1), obs=y)


def local_model(x):
    with numpyro.plate("data", x.shape[0]):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        numpyro.sample("x", dist.Normal(z.sum(-1, keepdims=True), 0.5).to_event(1), obs=x)


def force(x):
    return -x


def idata():
    draws = np.random.default_rng(2).normal(size=(2, 50))
    return az.from_dict(posterior={"x": draws})


def normal_guide():
    return nh.guides.AmortizedNormalGuide(local_model, None, "z")


def no_sampling(key, nfe):
    raise AssertionError("sample_fn was called before the options were checked")


def untouchable(*args, **kwargs):
    raise AssertionError("the model ran (a guide was fitted) before the options were checked")


def no_training(params, x, t):
    raise AssertionError("the velocity predictor was trained before the options were checked")


def log_density(x):
    return -0.5 * jnp.sum(x**2, axis=-1)


def png(name):
    return f"/nonexistent-dir/{name}.png"  # never written: the checks fail first


I = nh.infer  # noqa: E741
M = nh.metrics
G = nh.guides

# (id, call, exception, argument named at the start of the message)
CASES = [
    # -- run_nuts / run_hmc: internal errors, silently accepted values ---------------------
    ("run_nuts-model-str", lambda: I.run_nuts("m", ZERO, **RUN), TypeError, "model"),
    ("run_nuts-key-int", lambda: I.run_nuts(model, ZERO, key=0, **RUN), TypeError, "key"),
    ("run_nuts-key-str", lambda: I.run_nuts(model, ZERO, key="k", **RUN), TypeError, "key"),
    (
        "run_nuts-target_accept-str",
        lambda: I.run_nuts(model, ZERO, target_accept="high", **RUN),
        TypeError,
        "target_accept",
    ),
    (
        "run_nuts-target_accept-None",
        lambda: I.run_nuts(model, ZERO, target_accept=None, **RUN),
        TypeError,
        "target_accept",
    ),
    (
        "run_nuts-init_strategy-str",
        lambda: I.run_nuts(model, ZERO, init_strategy="uniform", **RUN),
        TypeError,
        "init_strategy",
    ),
    (
        "run_nuts-dense_mass-str",
        lambda: I.run_nuts(model, ZERO, dense_mass="no", **RUN),
        TypeError,
        "dense_mass",
    ),
    (
        "run_nuts-progress-str",
        lambda: I.run_nuts(model, ZERO, **{**RUN, "progress": "off"}),
        TypeError,
        "progress",
    ),
    (
        "run_hmc-inverse_mass_matrix-negative",
        lambda: I.run_hmc(model, ZERO, step_size=0.1, inverse_mass_matrix=-np.ones(2), **RUN),
        ValueError,
        "inverse_mass_matrix",
    ),
    (
        "run_hmc-inverse_mass_matrix-nan",
        lambda: I.run_hmc(model, ZERO, step_size=0.1, inverse_mass_matrix=[np.nan, 1.0], **RUN),
        ValueError,
        "inverse_mass_matrix",
    ),
    # -- base_space, diagnostics ------------------------------------------------------------
    ("base_space-model-int", lambda: I.base_space(3), TypeError, "model"),
    ("base_space-exclude-str", lambda: I.base_space(model, exclude="x"), TypeError, "exclude"),
    ("base_space-exclude-ints", lambda: I.base_space(model, exclude=[1]), TypeError, "exclude"),
    ("sampling_diagnostics-None", lambda: I.sampling_diagnostics(None), TypeError, "idata"),
    ("warn_diagnostics-dict", lambda: I.warn_diagnostics({"x": 1}), TypeError, "idata"),
    (
        "warn_diagnostics-rhat_max-nan",
        lambda: I.warn_diagnostics(idata(), rhat_max=float("nan")),
        ValueError,
        "rhat_max",
    ),
    (
        "warn_diagnostics-rhat_max-str",
        lambda: I.warn_diagnostics(idata(), rhat_max="1.01"),
        TypeError,
        "rhat_max",
    ),
    (
        "warn_diagnostics-ess_per_chain-negative",
        lambda: I.warn_diagnostics(idata(), ess_per_chain=-1),
        ValueError,
        "ess_per_chain",
    ),
    # -- force-field kernels -----------------------------------------------------------------
    (
        "force_field_hmc-step_size-str",
        lambda: I.force_field_hmc(force, step_size="0.1", num_integration_steps=3),
        TypeError,
        "step_size",
    ),
    (
        "force_field_hmc-step_size-None",
        lambda: I.force_field_hmc(force, step_size=None, num_integration_steps=3),
        TypeError,
        "step_size",
    ),
    (
        "force_field_hmc-divergence_threshold-negative",
        lambda: I.force_field_hmc(
            force, step_size=0.1, num_integration_steps=3, divergence_threshold=-1.0
        ),
        ValueError,
        "divergence_threshold",
    ),
    (
        "force_field_hmc-divergence_threshold-nan",
        lambda: I.force_field_hmc(
            force, step_size=0.1, num_integration_steps=3, divergence_threshold=float("nan")
        ),
        ValueError,
        "divergence_threshold",
    ),
    (
        "force_field_langevin-step_size-str",
        lambda: I.force_field_langevin(force, step_size="a"),
        TypeError,
        "step_size",
    ),
    (
        "with_force-logdensity_fn-str",
        lambda: force_field.with_force("p", force),
        TypeError,
        "logdensity_fn",
    ),
    ("with_force-force-None", lambda: force_field.with_force(force, None), TypeError, "force"),
    ("ForceSite-force-str", lambda: ForceSite(dist.Normal(), "F"), TypeError, "force"),
    (
        "model_potential-init_strategy-str",
        lambda: model_potential(model, (ZERO,), {}, KEY, init_strategy="u"),
        TypeError,
        "init_strategy",
    ),
    (
        "stan_adaptation-target_accept",
        lambda: adaptation.stan_adaptation(True, 1.5),
        ValueError,
        "target_accept",
    ),  # fmt: skip
    ("schedule-total-short", lambda: adaptation.schedule(10, 5, True), ValueError, "total"),
    (
        "LearnedForceHMC-target_accept_prob-str",
        lambda: I.LearnedForceHMC(model, {"x": force}, target_accept_prob="x"),
        TypeError,
        "target_accept_prob",
    ),
    (
        "LearnedForceHMC-inverse_mass_matrix-negative",
        lambda: I.LearnedForceHMC(model, {"x": force}, inverse_mass_matrix=-np.ones(2)),
        ValueError,
        "inverse_mass_matrix",
    ),
    (
        "LearnedForceHMC-force-str",
        lambda: I.LearnedForceHMC(model, {"x": "F"}),
        TypeError,
        r"forces\['x'\]",
    ),
    (
        "LearnedForceHMC-init_strategy-str",
        lambda: I.LearnedForceHMC(model, {"x": force}, init_strategy="u"),
        TypeError,
        "init_strategy",
    ),
    (
        "LearnedForceHMC-adjusted-str",
        lambda: I.LearnedForceHMC(model, {"x": force}, adjusted="no"),
        TypeError,
        "adjusted",
    ),
    # -- fit_flow_guide / neutra_nuts: fail before the (long) fit ----------------------------
    ("fit_flow_guide-model-str", lambda: I.fit_flow_guide("m", **NEVER), TypeError, "model"),
    (
        "fit_flow_guide-guide-str",
        lambda: I.fit_flow_guide(model, ZERO, guide="bnaf", **NEVER),
        TypeError,
        "guide",
    ),
    (
        "fit_flow_guide-optimizer-str",
        lambda: I.fit_flow_guide(model, ZERO, optimizer="adam", **NEVER),
        TypeError,
        "optimizer",
    ),
    (
        "neutra_nuts-nuts_options-typo",
        lambda: I.neutra_nuts(untouchable, ZERO, nuts_options={"target_acept": 0.9}),
        TypeError,
        "nuts_options",
    ),
    (
        "neutra_nuts-nuts_options-bad-value",
        lambda: I.neutra_nuts(untouchable, ZERO, nuts_options={"target_accept": 2.0}),
        ValueError,
        "target_accept",
    ),
    (
        "neutra_nuts-num_chains-zero",
        lambda: I.neutra_nuts(untouchable, ZERO, num_chains=0),
        ValueError,
        "num_chains",
    ),
    (
        "neutra_nuts-fit_options-typo",
        lambda: I.neutra_nuts(untouchable, ZERO, fit_options={"num_step": 5}),
        TypeError,
        "fit_options",
    ),
    # -- guides ----------------------------------------------------------------------------
    ("AutoFlowGuide-model-str", lambda: G.AutoFlowGuide("m"), TypeError, "model"),
    ("AutoFlowGuide-prefix-int", lambda: G.AutoFlowGuide(model, prefix=3), TypeError, "prefix"),
    (
        "AutoFlowGuide-init_loc_fn-str",
        lambda: G.AutoFlowGuide(model, init_loc_fn="u"),
        TypeError,
        "init_loc_fn",
    ),
    (
        "AutoFlowGuide-flow_options-unknown",
        lambda: G.AutoFlowGuide(model, bins=4),
        TypeError,
        "flow_options",
    ),
    (
        "AutoFlowGuide-flow_options-value",
        lambda: G.AutoFlowGuide(model, flow="spline", num_bins=0),
        ValueError,
        "num_bins",
    ),
    ("Amortized-model-str", lambda: G.AmortizedNormalGuide("m", None, "z"), TypeError, "model"),
    (
        "Amortized-prefix-int",
        lambda: G.AmortizedNormalGuide(local_model, None, "z", prefix=3),
        TypeError,
        "prefix",
    ),
    (
        "Amortized-create_plates-str",
        lambda: G.AmortizedFlowGuide(local_model, None, "z", create_plates="data"),
        TypeError,
        "create_plates",
    ),
    (
        "Amortized-sample_posterior-rng_key-int",
        lambda: normal_guide().sample_posterior(0, {}, X[:, :1]),
        TypeError,
        "rng_key",
    ),
    (
        "Amortized-sample_posterior-sample_shape-negative",
        lambda: normal_guide().sample_posterior(KEY, {}, X[:, :1], sample_shape=(-1,)),
        ValueError,
        "sample_shape",
    ),
    (
        "Amortized-sample_posterior-sample_shape-int",
        lambda: normal_guide().sample_posterior(KEY, {}, X[:, :1], sample_shape=3),
        TypeError,
        "sample_shape",
    ),
    # -- sample distances -----------------------------------------------------------------
    ("mmd-complex", lambda: M.mmd(X + 1j, Y), TypeError, "x"),
    ("mmd-strings", lambda: M.mmd(X, np.full((3, 2), "a")), TypeError, "y"),
    ("mmd-objects", lambda: M.mmd(np.full((3, 2), None), Y), TypeError, "x"),
    ("mmd-empty-event", lambda: M.mmd(np.zeros((5, 0)), np.zeros((5, 0))), ValueError, "x"),
    ("energy_distance-complex", lambda: M.energy_distance(X, Y + 1j), TypeError, "y"),
    ("wasserstein2-complex", lambda: M.wasserstein2(X + 1j, X), TypeError, "x"),
    ("sliced_wasserstein-key-int", lambda: M.sliced_wasserstein(X, Y, 0), TypeError, "key"),
    ("sliced_wasserstein-key-None", lambda: M.sliced_wasserstein(X, Y, None), TypeError, "key"),
    # -- HSD, Fisher divergence ---------------------------------------------------------------
    (
        "fisher_divergence-score-str",
        lambda: M.fisher_divergence(force, X, "s"),
        TypeError,
        "score",
    ),  # fmt: skip
    ("hsd_taylor-score-str", lambda: M.hsd_taylor(force, X, 0.1, score="s"), TypeError, "score"),
    ("hsd_taylor-t-nan", lambda: M.hsd_taylor(force, X, float("nan")), ValueError, "t"),
    ("hsd_taylor-t-str", lambda: M.hsd_taylor(force, X, "t"), TypeError, "t"),
    (
        "hsd-key-int",
        lambda: M.hamiltonian_score_discrepancy(force, X, key=0),
        TypeError,
        "key",
    ),
    (
        "hsd-score-wrong-shape-before-training",
        lambda: M.hamiltonian_score_discrepancy(
            force, X, key=KEY, score=lambda x: x[:, :1], velocity=no_training, velocity_params={}
        ),
        ValueError,
        "score",
    ),
    (
        "hsd-progress-str",
        lambda: M.hamiltonian_score_discrepancy(force, X, key=KEY, progress="no"),
        TypeError,
        "progress",
    ),
    (
        "gaussian_hsd-precision-shape",
        lambda: M.gaussian_hsd(np.eye(3), ZERO, ZERO, EYE, 0.5),
        ValueError,
        "precision",
    ),  # fmt: skip
    (
        "gaussian_hsd-cov-shape",
        lambda: M.gaussian_hsd(EYE, ZERO, ZERO, np.eye(3), 0.5),
        ValueError,
        "cov",
    ),  # fmt: skip
    ("gaussian_hsd-mean-2d", lambda: M.gaussian_hsd(EYE, ZERO, EYE, EYE, 0.5), ValueError, "mean"),
    ("gaussian_hsd-t-nan", lambda: M.gaussian_hsd(EYE, ZERO, ZERO, EYE, np.nan), ValueError, "t"),
    (
        "gaussian_hsd-t-negative",
        lambda: M.gaussian_hsd(EYE, ZERO, ZERO, EYE, -1.0),
        ValueError,
        "t",
    ),  # fmt: skip
    # -- image metrics ------------------------------------------------------------------------
    ("frechet-strings", lambda: M.frechet_distance(np.full((3, 2), "a"), Y), TypeError, "x"),
    ("frechet-complex", lambda: M.frechet_distance(X, Y + 1j), TypeError, "y"),
    (
        "classifier_frechet-classifier-str",
        lambda: M.classifier_frechet_distance(X, Y, "clf"),
        TypeError,
        "classifier",
    ),
    (
        "nearest_training-test-pixels",
        lambda: M.nearest_training_distance(X, X, np.ones((3, 3))),
        ValueError,
        "test",
    ),
    (
        "nearest_training-train-empty",
        lambda: M.nearest_training_distance(X, np.zeros((0, 2)), Y),
        ValueError,
        "train",
    ),
    (
        "nearest_training-samples-nan",
        lambda: M.nearest_training_distance(X * np.nan, X, Y),
        ValueError,
        "samples",
    ),
    (
        "train_digits_classifier-steps-zero",
        lambda: M.train_digits_classifier(KEY, steps=0),
        ValueError,
        "steps",
    ),
    (
        "train_digits_classifier-key-int",
        lambda: M.train_digits_classifier(0, steps=1),
        TypeError,
        "key",
    ),
    (
        "train_digits_classifier-hidden-zero",
        lambda: M.train_digits_classifier(KEY, steps=1, hidden=(0,)),
        ValueError,
        "hidden",
    ),
    (
        "nfe_quality_curve-later-nfe-before-sampling",
        lambda: nfe_quality_curve(no_sampling, [2, 0], Y, KEY),
        ValueError,
        "nfes",
    ),
    (
        "nfe_quality_curve-num_projections-before-sampling",
        lambda: nfe_quality_curve(no_sampling, [2], Y, KEY, num_projections=0),
        ValueError,
        "num_projections",
    ),
    (
        "nfe_quality_curve-reference-before-sampling",
        lambda: nfe_quality_curve(no_sampling, [2], np.ones(3), KEY),
        ValueError,
        "reference",
    ),
    (
        "nfe_quality_curve-key-int",
        lambda: nfe_quality_curve(no_sampling, [2], Y, 0),
        TypeError,
        "key",
    ),  # fmt: skip
    (
        "nfe_quality_curve-sample_fn-str",
        lambda: nfe_quality_curve("f", [2], Y, KEY),
        TypeError,
        "sample_fn",
    ),
    (
        "nfe_quality_curve-nfes-int",
        lambda: nfe_quality_curve(no_sampling, 3, Y, KEY),
        TypeError,
        "nfes",
    ),  # fmt: skip
    # -- preprocessing ------------------------------------------------------------------------
    (
        "logit_coordinates-strings",
        lambda: nh.preprocessing.logit_coordinates(np.full((3, 1), "a")),
        TypeError,
        "data01",
    ),
    (
        "logit_coordinates-empty-event",
        lambda: nh.preprocessing.logit_coordinates(np.zeros((3, 0))),
        ValueError,
        "data01",
    ),
    # -- plots --------------------------------------------------------------------------------
    (
        "plot_density_2d-lim-negative",
        lambda: plots.plot_density_2d(png("a"), log_density, X, Y, lim=-1),
        ValueError,
        "lim",
    ),  # fmt: skip
    (
        "plot_density_2d-lim-nan",
        lambda: plots.plot_density_2d(png("a"), log_density, X, Y, lim=np.nan),
        ValueError,
        "lim",
    ),  # fmt: skip
    (
        "plot_density_2d-data-3-columns",
        lambda: plots.plot_density_2d(png("a"), log_density, np.ones((3, 3)), Y),
        ValueError,
        "data",
    ),
    (
        "plot_density_2d-samples-1d",
        lambda: plots.plot_density_2d(png("a"), log_density, X, np.ones(3)),
        ValueError,
        "samples",
    ),
    (
        "plot_density_2d-path-None",
        lambda: plots.plot_density_2d(None, log_density, X, Y),
        TypeError,
        "path",
    ),  # fmt: skip
    (
        "plot_density_2d-log_prob_fn-output",
        lambda: plots.plot_density_2d(png("a"), force, X, Y),  # (n, 2) -> (n, 2), not (n,)
        ValueError,
        "log_prob_fn",
    ),
    ("density_grid-num-zero", lambda: plots.density_grid(log_density, num=0), ValueError, "num"),
    ("plot_loss-2d", lambda: plots.plot_loss(png("b"), np.ones((60, 2))), ValueError, "history"),
    ("plot_loss-strings", lambda: plots.plot_loss(png("b"), ["a", "b"]), TypeError, "history"),
    ("plot_loss-path-None", lambda: plots.plot_loss(None, np.ones(5)), TypeError, "path"),
]


@pytest.mark.parametrize(
    ("call", "error", "name"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_option_names_itself(call, error, name):
    with pytest.raises(error, match=rf"^{name}: expected"):
        call()


# -- controls: valid calls pass the checks ---------------------------------------------------
def test_valid_options_pass():
    assert check_fraction("target_accept", np.float32(0.9)) == pytest.approx(0.9)
    handler = I.base_space(model, exclude=("x",))
    assert handler.config.exclude == frozenset({"x"})
    algorithm = I.force_field_hmc(
        force, step_size=jnp.asarray(0.1), num_integration_steps=np.int64(3),
        inverse_mass_matrix=np.ones(2), divergence_threshold=500,
    )  # fmt: skip
    assert callable(algorithm.step)
    kernel = I.LearnedForceHMC(
        model, {"x": force}, target_accept_prob=0.7, adjusted=np.bool_(True),
        inverse_mass_matrix=np.eye(2),
    )  # fmt: skip
    assert kernel.target_accept_prob == pytest.approx(0.7)
    guide = G.AutoFlowGuide(model, flow="spline", num_bins=4, prefix="g")
    assert guide.flow_options == {"num_bins": 4}
    G.AmortizedFlowGuide(local_model, None, "z", create_plates=None, prefix="q")
    assert adaptation.schedule(10, 12, True)[0].shape == (12,)


def test_valid_arrays_pass():
    ints = np.arange(12).reshape(6, 2)
    assert np.isfinite(float(M.mmd(ints, ints[::-1].tolist())))  # integers and lists
    check = M.nearest_training_distance(X.tolist(), X, Y)
    assert check.sample_distances.shape == (10,)
    assert np.allclose(check.sample_distances, 0.0, atol=1e-3)
    assert M.frechet_distance(X.astype(np.float64), X) == pytest.approx(0.0, abs=1e-6)
    assert float(M.hsd_taylor(force, X, 0.1, score=force)) == pytest.approx(0.0)
    rows = nh.preprocessing.logit_coordinates(np.linspace(0.05, 0.9, 6).reshape(3, 2))
    assert rows is not None
    messages = I.warn_diagnostics(idata(), rhat_max=np.inf, ess_per_chain=0)
    assert messages == []
