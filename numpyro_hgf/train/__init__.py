"""Training: one jitted trainer core and the objective-specific trainers built on it."""

from numpyro_hgf.train.trainer import (
    NonFiniteLossError,
    Trainer,
    TrainResult,
    TrainState,
    build_dispatch,
    init_train_state,
)

__all__ = [
    "NonFiniteLossError",
    "Trainer",
    "TrainResult",
    "TrainState",
    "build_dispatch",
    "init_train_state",
]
from numpyro_hgf.train.flow import fit_flow, flow_nll  # noqa: E402

__all__ += ["fit_flow", "flow_nll"]
from numpyro_hgf.train.velocity import fit_velocity, velocity_matching_loss  # noqa: E402

__all__ += ["fit_velocity", "velocity_matching_loss"]
from numpyro_hgf.train.rbm import fit_boltzmann_exact, fit_rbm  # noqa: E402

__all__ += ["fit_boltzmann_exact", "fit_rbm"]
from numpyro_hgf.train.hamiltonian_flow import (  # noqa: E402
    fit_hamiltonian_flow,
    hamiltonian_flow_loss,
)

__all__ += ["fit_hamiltonian_flow", "hamiltonian_flow_loss"]
from numpyro_hgf.train.score import ScoreModel, fit_hsm, fit_score, hsm_optimizer  # noqa: E402

__all__ += ["ScoreModel", "fit_hsm", "fit_score", "hsm_optimizer"]
from numpyro_hgf.train.diffusion import (  # noqa: E402
    diffusion_score_matching_loss,
    fit_diffusion,
)

__all__ += ["diffusion_score_matching_loss", "fit_diffusion"]
from numpyro_hgf.train.images import IMAGE_MODELS, fit_images  # noqa: E402
from numpyro_hgf.train.trainer import data_parallel_mesh  # noqa: E402

__all__ += ["IMAGE_MODELS", "fit_images", "data_parallel_mesh"]
