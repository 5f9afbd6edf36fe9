"""Training: one trainer core, one fit skeleton, and a thin ``fit_*`` per objective.

* :class:`Trainer` -- jitted optax training of any ``loss_fn(params, batch, key)`` (dispatch
  in ``lax.scan`` blocks, EMA, clipping, mixed precision, data-parallel devices, orbax
  checkpoints with resume, progress, callbacks, non-finite-loss guard);
* :class:`TrainOptions` -- how to train, taken whole (``options=``) or field by field by every
  ``fit_*`` under the same names and defaults (:data:`RECOMMENDED` fields come from each
  objective's :class:`Recipe`);
* :func:`~numpyro_hgf.train.fit.fit_objective` -- the one skeleton under every ``fit_*``;
* the ``fit_*`` functions, one per objective:

=============================  ====================================================================
``fit_flow``                   maximum likelihood of a normalizing / continuous flow
``fit_velocity``               velocity regression along a Hamiltonian path -> ``HGFPrior``
``fit_diffusion``              denoising score matching along an SDE -> ``DiffusionPrior``
``fit_score``                  explicit / implicit / sliced / denoising score matching
``fit_hsm``                    Hamiltonian score matching (force and velocity players)
``fit_rbm``                    contrastive divergence (CD-k, PCD) for an RBM
``fit_boltzmann_exact``        exact maximum likelihood of a small Boltzmann machine
``fit_dbm``                    greedy pre-training + mean-field / PCD for a deep Boltzmann machine
``fit_hamiltonian_flow``       ELBO / IWAE of a neural Hamiltonian flow
``fit_images``                 any of the above with a ``UNet`` on images
``fit_gan``                    GAN / WGAN / WGAN-GP game -> ``GeneratorPrior``
=============================  ====================================================================
"""

# the losses and the model container, importable here as in earlier releases
from numpyro_hgf.distributions.score import ScoreModel  # noqa: E402, F401, I001
from numpyro_hgf.train.diffusion import (
    diffusion_score_matching_loss,  # noqa: E402, F401
    fit_diffusion,
)
from numpyro_hgf.train.dbm import fit_dbm, pretrain_dbn
from numpyro_hgf.train.dispatch import data_parallel_mesh
from numpyro_hgf.train.fit import fit_objective
from numpyro_hgf.train.flow import (
    fit_flow,
    flow_nll,  # noqa: E402, F401
)
from numpyro_hgf.train.hamiltonian_flow import (
    fit_hamiltonian_flow,
    hamiltonian_flow_loss,  # noqa: E402, F401
)
from numpyro_hgf.train.gan import fit_gan, gan_optimizer
from numpyro_hgf.train.hsm import fit_hsm, hsm_optimizer
from numpyro_hgf.train.images import IMAGE_MODELS, fit_images
from numpyro_hgf.train.options import RECOMMENDED, Recipe, TrainKeywords, TrainOptions
from numpyro_hgf.train.rbm import fit_boltzmann_exact, fit_rbm
from numpyro_hgf.train.score import fit_score
from numpyro_hgf.train.trainer import (
    NonFiniteLossError,
    Trainer,
    TrainResult,
    TrainState,
    build_dispatch,
    init_train_state,
)
from numpyro_hgf.train.velocity import (
    fit_velocity,
    velocity_matching_loss,  # noqa: E402, F401
)

__all__ = [
    "Trainer",
    "TrainResult",
    "TrainState",
    "NonFiniteLossError",
    "TrainOptions",
    "TrainKeywords",
    "Recipe",
    "RECOMMENDED",
    "fit_objective",
    "fit_flow",
    "fit_velocity",
    "fit_diffusion",
    "fit_score",
    "fit_hsm",
    "fit_rbm",
    "fit_boltzmann_exact",
    "fit_dbm",
    "pretrain_dbn",
    "fit_hamiltonian_flow",
    "fit_images",
    "IMAGE_MODELS",
    "hsm_optimizer",
    "fit_gan",
    "gan_optimizer",
    "build_dispatch",
    "init_train_state",
    "data_parallel_mesh",
]
