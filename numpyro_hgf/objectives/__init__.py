"""Objectives: the *objective* column of the design table, as pure loss functions.

=======================  ====================================================================
module                   losses
=======================  ====================================================================
:mod:`~.likelihood`      negative log-likelihood (flows, CNFs), ELBO / IWAE of neural
                         Hamiltonian flows, bits per dimension
:mod:`~.velocity`        velocity regression along any Hamiltonian path (FM, diffusion,
                         oscillation, reflection HGFs)
:mod:`~.score_matching`  explicit (KDE), implicit, sliced and denoising score matching
:mod:`~.diffusion`       continuous-time denoising score matching along an SDE; DDPM's loss
:mod:`~.hamiltonian`     Hamiltonian score matching (the force / velocity game)
:mod:`~.contrastive`     contrastive divergence (CD-k, persistent CD) for RBMs
:mod:`~.adversarial`     GAN (Bernoulli discriminator, non-saturating generator), WGAN,
                         WGAN-GP (gradient penalty)
:mod:`~.deep_boltzmann`  DBM pre-training modules (doubled CD) and mean-field + PCD
=======================  ====================================================================

Score matching shares one signature, ``objective(score_fn, params, x, key, **options) ->
scalar`` with ``score_fn(params, x) -> (batch, d)``; every loss is a Monte Carlo average over
its batch, to be minimised (the HSM loss is the one two-player exception, see
:mod:`~.hamiltonian`).  The trainers of :mod:`numpyro_hgf.train` close them over a network
and hand them to the one trainer core.
"""

from numpyro_hgf.nn.mlp import VelocityMLP  # noqa: F401  (its documented place before 0.2)
from numpyro_hgf.objectives.adversarial import (
    adversarial_game_loss,
    adversarial_losses,
    discriminator_log_likelihood,
    discriminator_loss,
    gradient_penalty,
    nonsaturating_generator_loss,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from numpyro_hgf.objectives.contrastive import contrastive_divergence, rbm_cd_loss, rbm_pcd_loss
from numpyro_hgf.objectives.deep_boltzmann import dbm_pcd_loss, scaled_rbm_cd_loss
from numpyro_hgf.objectives.diffusion import ddpm_noise_loss, diffusion_score_matching
from numpyro_hgf.objectives.hamiltonian import (
    hamiltonian_score_matching,
    hsm_velocity_loss,
    simulate_phase_space,
)
from numpyro_hgf.objectives.likelihood import (
    bits_per_dim,
    hamiltonian_flow_loss,
    negative_log_likelihood,
)
from numpyro_hgf.objectives.score_matching import (
    denoising_score_matching,
    explicit_score_matching,
    implicit_score_matching,
    kde_score,
    score_from_energy,
    score_from_network,
    scott_bandwidth,
    sliced_score_matching,
)
from numpyro_hgf.objectives.velocity import velocity_matching

__all__ = [
    "negative_log_likelihood",
    "hamiltonian_flow_loss",
    "bits_per_dim",
    "velocity_matching",
    "explicit_score_matching",
    "implicit_score_matching",
    "sliced_score_matching",
    "denoising_score_matching",
    "score_from_energy",
    "score_from_network",
    "kde_score",
    "scott_bandwidth",
    "diffusion_score_matching",
    "ddpm_noise_loss",
    "hamiltonian_score_matching",
    "hsm_velocity_loss",
    "simulate_phase_space",
    "contrastive_divergence",
    "rbm_cd_loss",
    "rbm_pcd_loss",
    "discriminator_log_likelihood",
    "discriminator_loss",
    "nonsaturating_generator_loss",
    "wasserstein_critic_loss",
    "wasserstein_generator_loss",
    "gradient_penalty",
    "adversarial_losses",
    "adversarial_game_loss",
    "scaled_rbm_cd_loss",
    "dbm_pcd_loss",
]
