"""Option audit of distributions/, flows/, paths/, nn/ and objectives/: a bad option fails at the
top of the call (a constructor, a sampler, a loss), before anything is traced or solved, with a
message that names it.

Each case below reproduced a defect: a JAX- or flax-internal error (``'str' object is not
callable``, ``invalid PRNG key data``, ``could not convert string to float``), a misleading
message (a non-callable score reported as data of the wrong dimension), a silently wrong result
(a misspelt ``objective`` or ``output`` running the other loss, decreasing AIS temperatures, a
NaN time of a flow, a short ``weights`` vector indexed out of range) or a failure only at the
first ``log_prob`` / ``sample`` (a velocity net of the wrong output size).  The controls at the
end show that valid calls, and the ``jit`` / ``vmap`` / ``tree_unflatten`` round trips of the
pytree distributions and transforms, still pass.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import numpyro_hgf as nh
from numpyro_hgf import flows, paths
from numpyro_hgf import nn as hnn
from numpyro_hgf import objectives as O  # noqa: N812
from numpyro_hgf.distributions import (
    BernoulliRBM,
    BoltzmannMachine,
    ContinuousFlow,
    DeepBeliefNet,
    DeepBoltzmannMachine,
    DequantizedCategorical,
    DiffusionPrior,
    EnergyBasedModel,
    GeneratorPrior,
    HGFPrior,
    ScoreModel,
)
from numpyro_hgf.objectives import adversarial
from numpyro_hgf.paths import ddpm, dynamics
from numpyro_hgf.samplers.ais import AISResult

KEY = jax.random.key(0)
D = 2
X = np.zeros((2, D), np.float32)
T = np.full((2,), 0.5, np.float32)
BASE = dist.Normal(np.zeros(D, np.float32), 1.0).to_event(1)


def zero_params(module, *inputs):
    """Params of the right shapes (zeros) by abstract initialisation: no op runs."""
    shapes = jax.eval_shape(module.init, KEY, *inputs)["params"]
    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)


VEL = hnn.TimeMLP(hidden=(3,), out_dim=D, embed_dim=4)
VEL_P = zero_params(VEL, X, T)
WIDE = hnn.TimeMLP(hidden=(3,), out_dim=3, embed_dim=4)  # 3 outputs for 2-d points
WIDE_P = zero_params(WIDE, X, T)
IN3_P = zero_params(VEL, np.zeros((2, 3), np.float32), T)  # made for 3-d points
ENERGY = hnn.EnergyMLP(hidden=(3,))
ENERGY_P = zero_params(ENERGY, X)
GEN = hnn.MLP((3,), D)
GEN_P = zero_params(GEN, np.zeros((1, 3), np.float32))
SDE = paths.VPSDE()
FM = paths.FlowMatchingPath()
RBM = BernoulliRBM(np.zeros((3, 2), np.float32), num_gibbs_steps=2)
BM = BoltzmannMachine(np.zeros((3, 3), np.float32), num_gibbs_steps=2)
LAYERS = [np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32)]
EBM = EnergyBasedModel(ENERGY, ENERGY_P, (D,), num_steps=2)
SCHEDULE = ddpm.linear_beta_schedule(10)


@functools.cache
def nhf():
    net, encoder, q = hnn.HamiltonianNet(D, (3,)), hnn.MLP((3,), 2 * D), np.zeros(D, np.float32)
    layer = flows.HamiltonianTransform(net, zero_params(net, q), dim=D, num_steps=1)
    return flows.NeuralHamiltonianFlow([layer], encoder, zero_params(encoder, q))


@functools.cache
def planar_flow():
    module = flows.PlanarParams(D)
    return flows.NormalizingFlow(BASE, [flows.PlanarTransform(module, zero_params(module))])


def flow(**kwargs):
    return ContinuousFlow(VEL, VEL_P, BASE, **kwargs)


def prior(**kwargs):
    return DiffusionPrior(VEL, VEL_P, SDE, event_shape=(D,), **kwargs)


def critic(params, x):
    return x[:, 0]


def score(params, x, *cond):
    return -x


def velocity(params, x, t):
    return x


def never_run(params, z):
    raise AssertionError("the generator ran before the options were checked")


# (id, call, exception, argument named at the start of the message)
CASES = [
    # -- ContinuousFlow / HGFPrior / DiffusionPrior ---------------------------------------------
    ("ContinuousFlow-t0-str", lambda: flow(t0="a"), TypeError, "t0"),
    ("ContinuousFlow-t0-nan", lambda: flow(t0=float("nan")), ValueError, "t0"),
    ("ContinuousFlow-t1-inf", lambda: flow(t1=float("inf")), ValueError, "t1"),
    ("ContinuousFlow-t0-array", lambda: flow(t0=jnp.zeros(2)), TypeError, "t0"),
    ("ContinuousFlow-probe_key-int", lambda: flow(probe_key=3), TypeError, "probe_key"),
    (
        "ContinuousFlow-velocity-output-size",
        lambda: ContinuousFlow(WIDE, WIDE_P, BASE),
        ValueError,
        "velocity",
    ),
    (
        "ContinuousFlow-params-other-input",
        lambda: ContinuousFlow(VEL, IN3_P, BASE),
        ValueError,
        "params",
    ),
    ("ContinuousFlow-sample-key-int", lambda: flow().sample(0), TypeError, "key"),
    ("ContinuousFlow-sample_with_nfe-key", lambda: flow().sample_with_nfe(None), TypeError, "key"),
    (
        "HGFPrior-event_shape-zero",
        lambda: HGFPrior(VEL, VEL_P, FM, event_shape=(0,)),
        ValueError,
        "event_shape",
    ),
    (
        "HGFPrior-event_shape-float",
        lambda: HGFPrior(VEL, VEL_P, FM, event_shape=(2.5,)),
        ValueError,
        "event_shape",
    ),
    (
        "HGFPrior-base-event_shape",
        lambda: HGFPrior(
            VEL, VEL_P, FM, event_shape=(D,), base=dist.Normal(jnp.zeros(3), 1.0).to_event(1)
        ),
        ValueError,
        "base",
    ),
    (
        "DiffusionPrior-event_shape-str",
        lambda: DiffusionPrior(VEL, VEL_P, SDE, event_shape="ab"),
        ValueError,
        "event_shape",
    ),
    ("DiffusionPrior-base-str", lambda: prior(base="normal"), TypeError, "base"),
    (
        "DiffusionPrior-score-output-size",
        lambda: DiffusionPrior(WIDE, WIDE_P, SDE, event_shape=(D,)),
        ValueError,
        "score",
    ),
    (
        "DiffusionPrior-bits_per_dim-key-int",
        lambda: prior().bits_per_dim(jnp.zeros((1, D), int), 0),
        TypeError,
        "key",
    ),
    ("DiffusionPrior-sample_with_nfe-key", lambda: prior().sample_with_nfe(0), TypeError, "key"),
    # -- EnergyBasedModel, RBM, BM, DBM, DBN ------------------------------------------------
    ("EBM-sample-key-int", lambda: EBM.sample(0, (2,)), TypeError, "key"),
    ("EBM-sample-key-None", lambda: EBM.sample(None, (2,)), TypeError, "key"),
    ("EBM-log_normalizer_ais-key-int", lambda: EBM.log_normalizer_ais(0), TypeError, "key"),
    (
        "EBM-log_normalizer_quadrature-bounds-str",
        lambda: EBM.log_normalizer_quadrature(bounds="ab", resolution=5),
        ValueError,
        "bounds",
    ),
    ("RBM-W-str", lambda: BernoulliRBM("abc"), TypeError, "W"),
    ("RBM-W-complex", lambda: BernoulliRBM(jnp.zeros((2, 2), complex)), TypeError, "W"),
    (
        "RBM-b_hidden-str",
        lambda: BernoulliRBM(jnp.zeros((2, 2)), b_hidden=["a", "b"]),
        TypeError,
        "b_hidden",
    ),
    ("RBM-sample-key-int", lambda: RBM.sample(0, (2,)), TypeError, "key"),
    ("RBM-ais-key-int", lambda: RBM.log_normalizer("ais", key=0), TypeError, "key"),
    (
        "RBM-ais-betas-not-from-0",
        lambda: RBM.log_normalizer("ais", key=KEY, betas=[0.5, 1.0]),
        ValueError,
        "betas",
    ),
    (
        "RBM-ais-betas-decreasing",
        lambda: RBM.log_normalizer("ais", key=KEY, betas=[0.0, 0.7, 0.3, 1.0]),
        ValueError,
        "betas",
    ),
    (
        "RBM-return_result-str",
        lambda: RBM.log_normalizer(return_result="yes"),
        TypeError,
        "return_result",
    ),
    ("BM-b-str", lambda: BoltzmannMachine(jnp.zeros((2, 2)), b="ab"), TypeError, "b"),
    ("BM-sample-key-int", lambda: BM.sample(0, (2,)), TypeError, "key"),
    ("BM-ais-key-int", lambda: BM.log_normalizer("ais", key=0), TypeError, "key"),
    (
        "BM-return_result-str",
        lambda: BM.log_normalizer(return_result="no"),
        TypeError,
        "return_result",
    ),
    (
        "DBM-weights-str",
        lambda: DeepBoltzmannMachine([np.zeros((2, 2)), np.array([["a"]])]),
        TypeError,
        r"weights\[1\]",
    ),
    (
        "DBM-sample-key-int",
        lambda: DeepBoltzmannMachine(LAYERS, num_gibbs_steps=1).sample(0, (2,)),
        TypeError,
        "key",
    ),
    (
        "DBM-sample_layers-key-int",
        lambda: DeepBoltzmannMachine(LAYERS).sample_layers(0, 2),
        TypeError,
        "key",
    ),
    ("DBN-sample-key-int", lambda: DeepBeliefNet(LAYERS).sample(0, (2,)), TypeError, "key"),
    # -- other distributions ----------------------------------------------------------------
    (
        "DequantizedCategorical-logits-str",
        lambda: DequantizedCategorical(np.array(["a", "b"])),
        TypeError,
        "logits",
    ),
    (
        "GeneratorPrior-sample-key-int",
        lambda: GeneratorPrior(GEN, GEN_P, 3).sample(0),
        TypeError,
        "key",
    ),
    ("ScoreModel-event_shape-zero", lambda: ScoreModel(GEN, None, (0,)), ValueError, "event_shape"),
    (
        "ScoreModel-sigmas-negative",
        lambda: ScoreModel(GEN, None, (D,), sigmas=[-1.0]),
        ValueError,
        "sigmas",
    ),
    (
        "ScoreModel-sigmas-str",
        lambda: ScoreModel(GEN, None, (D,), sigmas=["a"]),
        TypeError,
        "sigmas",
    ),
    # -- flows ------------------------------------------------------------------------------
    (
        "AffineCoupling-module-str",
        lambda: flows.AffineCouplingTransform("m", {}, dim=D),
        TypeError,
        "module",
    ),
    (
        "AffineCoupling-swap-str",
        lambda: flows.AffineCouplingTransform.create(KEY, D, (3,), swap="no"),
        TypeError,
        "swap",
    ),
    (
        "SplineCoupling-swap-int",
        lambda: flows.SplineCouplingTransform.create(KEY, D, (3,), swap=1),
        TypeError,
        "swap",
    ),
    (
        "SplineCoupling-num_bins-too-many",
        lambda: flows.SplineCouplingTransform.create(KEY, D, (3,), num_bins=2000),
        ValueError,
        "num_bins",
    ),
    (
        "build_flow-num_bins-too-many",
        lambda: flows.build_flow("spline", D, num_layers=1, num_bins=2000),
        ValueError,
        "num_bins",
    ),
    (
        "MAF-order-str",
        lambda: flows.MaskedAutoregressiveTransform.create(KEY, D, (3,), order="ab"),
        TypeError,
        "order",
    ),
    ("MADE-order-repeated", lambda: hnn.MADE(2, order=(1, 1)), ValueError, "order"),
    (
        "BNAF-reverse-str",
        lambda: flows.BlockAutoregressiveTransform.create(KEY, D, (3,), reverse="no"),
        TypeError,
        "reverse",
    ),
    (
        "HamiltonianTransform-module-str",
        lambda: flows.HamiltonianTransform("m", {}, dim=D),
        TypeError,
        "module",
    ),
    (
        "Planar-init_scale-nan",
        lambda: flows.PlanarTransform.create(KEY, D, init_scale=float("nan")),
        ValueError,
        "init_scale",
    ),
    (
        "Radial-init_scale-str",
        lambda: flows.RadialTransform.create(KEY, D, init_scale="a"),
        TypeError,
        "init_scale",
    ),
    (
        "NormalizingFlow-transforms-empty",
        lambda: flows.NormalizingFlow(BASE, []),
        ValueError,
        "transforms",
    ),
    (
        "build_flow-validate_args-str",
        lambda: flows.build_flow("planar", D, num_layers=1, validate_args="no"),
        TypeError,
        "validate_args",
    ),
    ("flax_flow-flow-str", lambda: flows.flax_flow("q", "flow"), TypeError, "flow"),
    (
        "flax_flow-name-int",
        lambda: flows.flax_flow(3, planar_flow()),
        TypeError,
        "name",
    ),
    (
        "NHF-encoder-str",
        lambda: flows.NeuralHamiltonianFlow(nhf().transforms, "encoder", {}),
        TypeError,
        "encoder",
    ),
    (
        "NHF-log_prob_key-int",
        lambda: flows.NeuralHamiltonianFlow(
            nhf().transforms, nhf().encoder, nhf().encoder_params, log_prob_key=3
        ),
        TypeError,
        "log_prob_key",
    ),
    ("NHF-elbo-key-int", lambda: nhf().elbo(X, 0), TypeError, "key"),
    (
        "NHF-log_weights-shared-str",
        lambda: nhf().log_weights(X, KEY, shared="yes"),
        TypeError,
        "shared",
    ),
    ("NHF-sample-key-int", lambda: nhf().sample(0), TypeError, "key"),
    ("ODEMapTransform-model-str", lambda: flows.ODEMapTransform("model"), TypeError, "model"),
    (
        "spline_params-min_bin_width-too-wide",
        lambda: flows.spline_params(jnp.zeros(5), min_bin_width=0.6),
        ValueError,
        "min_bin_width",
    ),
    (
        "rational_quadratic_spline-bound-negative",
        lambda: flows.rational_quadratic_spline(
            jnp.zeros(3), jnp.full((3, 2), 0.5), jnp.full((3, 2), 0.5), jnp.ones((3, 3)), -1.0
        ),
        ValueError,
        "bound",
    ),
    ("soft_clamp-bound-zero", lambda: flows.soft_clamp(jnp.ones(2), 0.0), ValueError, "bound"),
    # -- nn -------------------------------------------------------------------------------------
    ("MLP-activation-str", lambda: hnn.MLP((3,), 2, activation="relu"), TypeError, "activation"),
    ("MADE-activation-str", lambda: hnn.MADE(2, activation="gelu"), TypeError, "activation"),
    ("UNet-activation-str", lambda: hnn.UNet(activation="silu"), TypeError, "activation"),
    (
        "TimeMLP-time_scale-nan",
        lambda: hnn.TimeMLP(time_scale=float("nan")),
        ValueError,
        "time_scale",
    ),
    ("TimeMLP-embed_dim-one", lambda: hnn.TimeMLP(embed_dim=1), ValueError, "embed_dim"),
    ("VelocityMLP-horizon-zero", lambda: hnn.VelocityMLP(horizon=0.0), ValueError, "horizon"),
    ("VelocityMLP-hidden-zero", lambda: hnn.VelocityMLP((0,)), ValueError, "hidden"),
    (
        "sinusoidal_embedding-dim-odd",
        lambda: hnn.sinusoidal_embedding(jnp.ones(3), 5),
        ValueError,
        "dim",
    ),
    (
        "sinusoidal_embedding-dim-float",
        lambda: hnn.sinusoidal_embedding(jnp.ones(3), 4.0),
        TypeError,
        "dim",
    ),
    ("UNet-time_scale-negative", lambda: hnn.UNet(time_scale=-1.0), ValueError, "time_scale"),
    ("ResBlock-features-zero", lambda: hnn.ResBlock(0), ValueError, "features"),
    (
        "FlatImageField-image_shape-zero",
        lambda: hnn.FlatImageField(hnn.UNet(), (0, 8)),
        ValueError,
        "image_shape",
    ),
    (
        "FlatImageField-network-str",
        lambda: hnn.FlatImageField("net", (8, 8, 1)),
        TypeError,
        "network",
    ),
    (
        "HamiltonianNet-init_log_mass-nan",
        lambda: hnn.HamiltonianNet(2, init_log_mass=float("nan")),
        ValueError,
        "init_log_mass",
    ),
    ("BlockAutoregressiveNet-dim-zero", lambda: hnn.BlockAutoregressiveNet(0), ValueError, "dim"),
    (
        "BlockAutoregressiveNet-min_slope-negative",
        lambda: hnn.BlockAutoregressiveNet(2, min_slope=-1.0),
        ValueError,
        "min_slope",
    ),
    (
        "BlockAutoregressiveNet-hidden_factors-zero",
        lambda: hnn.BlockAutoregressiveNet(2, (0,)),
        ValueError,
        "hidden_factors",
    ),
    (
        "BlockMaskedDense-num_blocks-zero",
        lambda: hnn.BlockMaskedDense(0, 1, 1),
        ValueError,
        "num_blocks",
    ),
    ("made_degrees-dim-zero", lambda: hnn.made_degrees(0, (4,)), ValueError, "dim"),
    ("module_from_config-str", lambda: hnn.module_from_config("MLP"), TypeError, "config"),
    (
        "module_from_config-activation-unknown",
        lambda: hnn.module_from_config(
            {"class": "MLP", "fields": {"activation": {"activation": "f"}}}
        ),
        ValueError,
        "activation",
    ),
    ("register_module-str", lambda: hnn.register_module("MLP"), TypeError, "cls"),
    # -- paths ----------------------------------------------------------------------------------
    (
        "FlowMatchingPath-minibatch_ot-str",
        lambda: paths.FlowMatchingPath(minibatch_ot="no"),
        TypeError,
        "minibatch_ot",
    ),
    ("ReflectionPath-low-str", lambda: paths.ReflectionPath(low="a"), TypeError, "low"),
    ("ReflectionPath-high-inf", lambda: paths.ReflectionPath(high=np.inf), ValueError, "high"),
    ("sample_time-n-float", lambda: FM.sample_time(KEY, 2.5), TypeError, "n"),
    ("sample_time-t_min-beyond-T", lambda: FM.sample_time(KEY, 3, t_min=2.0), ValueError, "t_min"),
    ("sample_time-key-int", lambda: FM.sample_time(0, 3), TypeError, "key"),
    ("HamiltonianPath-sample-key-int", lambda: FM.sample(X, 0, T), TypeError, "key"),
    ("path_from_config-str", lambda: paths.path_from_config("vp"), TypeError, "config"),
    ("sde_from_config-str", lambda: paths.sde_from_config("vp"), TypeError, "config"),
    (
        "cosine_beta_schedule-s-nan",
        lambda: ddpm.cosine_beta_schedule(10, s=np.nan),
        ValueError,
        "s",
    ),
    (
        "cosine_beta_schedule-max_beta-above-1",
        lambda: ddpm.cosine_beta_schedule(10, max_beta=2.0),
        ValueError,
        "max_beta",
    ),
    ("reverse_variance-schedule-str", lambda: ddpm.reverse_variance("s"), TypeError, "schedule"),
    ("leapfrog-force-str", lambda: dynamics.leapfrog("F", X, X, 0.1, 2), TypeError, "force"),
    # -- objectives -----------------------------------------------------------------------------
    (
        "negative_log_likelihood-model-str",
        lambda: O.negative_log_likelihood("m", None, X),
        TypeError,
        "model",
    ),
    (
        "hamiltonian_flow_loss-objective-typo",
        lambda: O.hamiltonian_flow_loss(nhf(), nhf().params, X, KEY, objective="iwea"),
        ValueError,
        "objective",
    ),
    (
        "velocity_matching-path-sde",
        lambda: O.velocity_matching(VEL, VEL_P, SDE, X, KEY),
        TypeError,
        "path",
    ),
    (
        "velocity_matching-velocity-str",
        lambda: O.velocity_matching("v", VEL_P, FM, X, KEY),
        TypeError,
        "velocity",
    ),
    (
        "velocity_matching-key-int",
        lambda: O.velocity_matching(VEL, VEL_P, FM, X, 0),
        TypeError,
        "key",
    ),
    (
        "diffusion_score_matching-output-typo",
        lambda: O.diffusion_score_matching(VEL, VEL_P, SDE, X, KEY, output="scores"),
        ValueError,
        "output",
    ),
    (
        "diffusion_score_matching-eps-beyond-T",
        lambda: jax.jit(lambda k: O.diffusion_score_matching(VEL, VEL_P, SDE, X, k, eps=2.0))(KEY),
        ValueError,
        "eps",
    ),
    (
        "diffusion_score_matching-sde-str",
        lambda: O.diffusion_score_matching(VEL, VEL_P, "vp", X, KEY),
        TypeError,
        "sde",
    ),
    (
        "ddpm_noise_loss-weights-short",
        lambda: O.ddpm_noise_loss(velocity, SCHEDULE, X, KEY, weights=jnp.ones(3)),
        ValueError,
        "weights",
    ),
    (
        "ddpm_noise_loss-schedule-str",
        lambda: O.ddpm_noise_loss(velocity, "s", X, KEY),
        TypeError,
        "schedule",
    ),
    ("rbm_cd_loss-k-zero", lambda: O.rbm_cd_loss(k=0), ValueError, "k"),
    (
        "rbm_cd_loss-weight_decay-str",
        lambda: O.rbm_cd_loss(weight_decay="a"),
        TypeError,
        "weight_decay",
    ),
    (
        "rbm_pcd_loss-weight_decay-nan",
        lambda: O.rbm_pcd_loss(weight_decay=np.nan),
        ValueError,
        "weight_decay",
    ),
    (
        "contrastive_divergence-v_data-width",
        lambda: O.contrastive_divergence(RBM.params, jnp.zeros((2, 4)), KEY),
        ValueError,
        "v_data",
    ),
    (
        "contrastive_divergence-key-int",
        lambda: O.contrastive_divergence(RBM.params, jnp.zeros((2, 3)), 0),
        TypeError,
        "key",
    ),
    (
        "scaled_rbm_cd_loss-up_scale-str",
        lambda: O.scaled_rbm_cd_loss(up_scale="a"),
        TypeError,
        "up_scale",
    ),
    (
        "dbm_pcd_loss-weight_decay-negative",
        lambda: O.dbm_pcd_loss(weight_decay=-1.0),
        ValueError,
        "weight_decay",
    ),
    (
        "adversarial_losses-gp_weight-negative",
        lambda: O.adversarial_losses("wgan-gp", critic, None, X, X, KEY, gp_weight=-1.0),
        ValueError,
        "gp_weight",
    ),
    (
        "adversarial_losses-key-missing",
        lambda: O.adversarial_losses("wgan-gp", critic, None, X, X),
        TypeError,
        "key",
    ),
    (
        "adversarial_game_loss-loss-typo",
        lambda: O.adversarial_game_loss("gan", critic, never_run, {}, X, KEY, latent_dim=2),
        ValueError,
        "loss",
    ),
    (
        "adversarial_game_loss-latent_dim-zero",
        lambda: O.adversarial_game_loss("ns", critic, never_run, {}, X, KEY, latent_dim=0),
        ValueError,
        "latent_dim",
    ),
    (
        "gradient_penalty-weight-nan",
        lambda: O.gradient_penalty(critic, None, X, X, KEY, weight=np.nan),
        ValueError,
        "weight",
    ),
    (
        "clip_params-clip_value-negative",
        lambda: adversarial.clip_params({}, -1.0),
        ValueError,
        "clip_value",
    ),
    (
        "generator_energy_distance-latent_dim-zero",
        lambda: adversarial.generator_energy_distance(never_run, None, X, KEY, latent_dim=0),
        ValueError,
        "latent_dim",
    ),
    (
        "simulate_phase_space-force_fn-str",
        lambda: O.simulate_phase_space("F", None, X, KEY),
        TypeError,
        "force_fn",
    ),
    (
        "simulate_phase_space-antithetic-str",
        lambda: O.simulate_phase_space(score, None, X, KEY, antithetic="no"),
        TypeError,
        "antithetic",
    ),
    (
        "hamiltonian_score_matching-velocity_fn-str",
        lambda: O.hamiltonian_score_matching(
            score, None, X, KEY, velocity_fn="V", velocity_params=None
        ),
        TypeError,
        "velocity_fn",
    ),
    (
        "hamiltonian_score_matching-force_baseline-str",
        lambda: O.hamiltonian_score_matching(
            score, None, X, KEY, velocity_fn=velocity, velocity_params=None, force_baseline="no"
        ),
        TypeError,
        "force_baseline",
    ),
    (
        "hsm_velocity_loss-velocity_fn-str",
        lambda: O.hsm_velocity_loss("V", None, X, X, T),
        TypeError,
        "velocity_fn",
    ),
    (
        "implicit_score_matching-score_fn-str",
        lambda: O.implicit_score_matching("s", None, X),
        TypeError,
        "score_fn",
    ),
    (
        "sliced_score_matching-variance_reduction-str",
        lambda: O.sliced_score_matching(score, None, X, KEY, variance_reduction="no"),
        TypeError,
        "variance_reduction",
    ),
    (
        "explicit_score_matching-perturb-str",
        lambda: O.explicit_score_matching(score, None, X, KEY, perturb="no", bandwidth=1.0),
        TypeError,
        "perturb",
    ),
    (
        "denoising_score_matching-key-int",
        lambda: O.denoising_score_matching(score, None, X, 0),
        TypeError,
        "key",
    ),
    (
        "kde_score-bandwidth-negative",
        lambda: O.kde_score(X, jnp.ones((3, D)), -1.0),
        ValueError,
        "bandwidth",
    ),
    (
        "kde_score-reference-dimension",
        lambda: O.kde_score(X, jnp.ones((3, 3)), 1.0),
        ValueError,
        "reference",
    ),
    (
        "scott_bandwidth-reference-1d",
        lambda: O.scott_bandwidth(jnp.ones(3)),
        ValueError,
        "reference",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "name"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_option_names_itself(call, error, name):
    with pytest.raises(error, match=rf"^{name}: expected"):
        call()


# -- silently wrong results that are now right ------------------------------------------------
def test_boltzmann_exact_log_normalizer_honours_return_result():
    value = BM.log_normalizer("exact")
    result = BM.log_normalizer("exact", return_result=True)  # was the bare value
    assert isinstance(result, AISResult)
    assert float(result.log_normalizer_ratio) == pytest.approx(float(value))
    assert float(result.stderr) == 0.0


# -- controls: valid calls pass the checks ---------------------------------------------------
def test_valid_options_pass():
    assert flow(t0=np.float32(0.0), t1=1, probe_key=jax.random.PRNGKey(1)).t1 == 1.0
    assert HGFPrior(VEL, VEL_P, FM, event_shape=D).event_shape == (D,)
    assert ContinuousFlow(VEL, None, BASE).params is None  # a trainer's settings template
    assert ScoreModel(GEN, None, [D], sigmas=np.array([1.0, 0.5])).sigmas == (1.0, 0.5)
    net, kept = hnn.MLP((3,), 2), np.zeros(1, np.float32)
    layer = flows.AffineCouplingTransform(net, zero_params(net, kept), dim=D, swap=np.bool_(True))
    assert layer.swap is True
    net = hnn.MLP((3,), 11)  # 1 coordinate x (3 * 4 - 1) spline params
    spline = flows.SplineCouplingTransform(net, zero_params(net, kept), dim=D, num_bins=np.int64(4))
    assert spline.num_bins == 4
    assert hnn.MADE(3, order=np.array([2, 0, 1])).order == (2, 0, 1)
    assert hnn.BlockAutoregressiveNet(2, [4], reverse=np.bool_(False)).hidden_factors == (4,)
    assert hnn.FlatImageField(hnn.UNet(), [8, 8, 1]).image_shape == (8, 8, 1)
    embedding = jax.eval_shape(lambda t: hnn.sinusoidal_embedding(t, np.int64(4)), T)
    assert embedding.shape == (2, 4)
    assert paths.ReflectionPath(low=0, high=1).high == 1
    assert FM.sample_time(jax.random.PRNGKey(0), 0).shape == (0,)
    assert jax.eval_shape(lambda k: FM.sample_time(k, 5, t_min=0.5), KEY).shape == (5,)
    assert O.rbm_cd_loss(k=np.int64(2), weight_decay=0) is not None
    assert O.scaled_rbm_cd_loss(2, 1) is not None
    assert jax.eval_shape(lambda w: adversarial.clip_params(w, 0.5), {"w": T})["w"].shape == (2,)
    assert ddpm.cosine_beta_schedule(10, s=0.0).num_steps == 10
    bm = BM.log_normalizer("exact", return_result=np.bool_(False))
    assert np.ndim(bm) == 0


def test_odd_embed_dim_keeps_its_embedding():
    # embed_dim 5 has 2 frequencies (the even width 4 below it), as before the checks
    params = jax.eval_shape(hnn.TimeMLP((3,), embed_dim=5).init, KEY, X, jnp.zeros(()))["params"]
    assert params["Dense_0"]["kernel"].shape == (4, 5)


def test_valid_arrays_pass():
    rbm = BernoulliRBM(np.eye(3, 2, dtype=np.int32), b_visible=[0, 1, 0], b_hidden=[True, False])
    assert rbm.W.dtype == jnp.float32 and rbm.b_hidden.dtype == jnp.float32
    assert DequantizedCategorical(jnp.zeros((3,), jnp.int32)).num_levels == 3
    betas = jnp.linspace(0.0, 1.0, 3)  # checked concretely; the key is a tracer here
    ais = jax.eval_shape(lambda k: RBM.log_normalizer("ais", key=k, num_chains=2, betas=betas), KEY)
    assert ais.shape == ()
    h = jnp.asarray(0.5)  # a concrete 0-d array: checked
    assert jax.eval_shape(lambda: O.kde_score(X, np.ones((3, D), np.float32), h)).shape == X.shape


# -- controls: the checks never see tracers or placeholders as errors -----------------------
def test_construction_under_jit_and_vmap():
    built = jax.jit(lambda p, k: ContinuousFlow(VEL, p, BASE, probe_key=k).params)(VEL_P, KEY)
    assert jax.tree.structure(built) == jax.tree.structure(VEL_P)
    stacked = jax.vmap(lambda W: BernoulliRBM(W).W)(jnp.zeros((4, 3, 2)))
    assert stacked.shape == (4, 3, 2)
    keys = jax.random.split(KEY, 2)
    draws = jax.eval_shape(jax.vmap(lambda k: RBM.sample(k)), keys)
    assert draws.shape == (2, 3)
    loss = jax.eval_shape(
        lambda k: O.diffusion_score_matching(VEL, VEL_P, SDE, X, k, eps=1e-3), KEY
    )
    assert loss.shape == ()
    assert jax.eval_shape(lambda k: O.velocity_matching(VEL, VEL_P, FM, X, k), KEY).shape == ()
    assert jax.eval_shape(jax.vmap(lambda k: nhf().sample(k)), keys).shape == (2, D)


@pytest.mark.parametrize(
    "make",
    [
        flow,
        prior,
        lambda: HGFPrior(VEL, VEL_P, FM, event_shape=(D,)),
        lambda: flow().transform,
        nhf,
        planar_flow,
        lambda: ScoreModel(GEN, GEN_P, (D,), sigmas=[1.0]),
        lambda: RBM,
        lambda: EBM,
    ],
    ids=[
        "ContinuousFlow",
        "DiffusionPrior",
        "HGFPrior",
        "ODEMap",
        "NHF",
        "NF",
        "Score",
        "RBM",
        "EBM",
    ],
)
def test_tree_unflatten_with_placeholders(make):
    model = make()
    leaves, treedef = jax.tree.flatten(model)
    jax.tree.unflatten(treedef, [object()] * len(leaves))  # jax does this inside jit
    again = jax.tree.unflatten(treedef, leaves)
    assert type(again) is type(model)


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: nh.dynamics.harmonic(jnp.zeros(2), jnp.ones(2), 1.0, "fast"), TypeError, "omega"),
        (lambda: nh.dynamics.harmonic(jnp.zeros(2), jnp.ones(2), 1.0, True), TypeError, "omega"),
        (lambda: nh.dynamics.harmonic(jnp.zeros(2), jnp.ones(2), 1.0, 1j), ValueError, "omega"),
        (lambda: nh.dynamics.reflect(jnp.zeros(2), jnp.ones(2), 1.0, "a", 1.0), TypeError, "low"),
        (lambda: nh.dynamics.reflect(jnp.zeros(2), jnp.ones(2), 1.0, -1.0, "b"), TypeError, "high"),
        (lambda: nh.train.TrainOptions(progress="no"), TypeError, "progress"),
    ],
)
def test_dynamics_and_trainer_options_name_the_argument(call, error, name):
    with pytest.raises(error, match=f"^{name}: expected"):
        call()


def test_dynamics_and_trainer_options_accept_good_values():
    x, v = nh.dynamics.harmonic(jnp.zeros(2), jnp.ones(2), 0.5, 2.0)
    assert x.shape == v.shape == (2,)
    y, w = nh.dynamics.reflect(jnp.zeros(2), jnp.ones(2), 0.5, -1, jnp.ones(2))
    assert y.shape == w.shape == (2,)
    assert nh.train.TrainOptions(progress=np.bool_(False)).progress is not None
