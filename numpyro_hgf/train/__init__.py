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
