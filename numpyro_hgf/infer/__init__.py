"""Inference with learned priors.

* :func:`run_nuts`, :func:`run_hmc` -- BlackJAX NUTS / HMC on NumPyro models
  (``numpyro_hgf.infer.blackjax_bridge``), returning ``arviz.InferenceData``;
* :func:`force_field_hmc`, :func:`force_field_langevin` -- BlackJAX-style kernels whose
  dynamics use a learned force field (``numpyro_hgf.infer.force_field``);
* :class:`LearnedForceHMC` -- the same as a NumPyro ``MCMCKernel``
  (``numpyro_hgf.infer.kernel``), for ``numpyro.infer.MCMC``;
* :func:`base_space` -- a model whose learned bijective priors are sampled in their base
  (what ``run_nuts`` / ``run_hmc`` do by default; for ``numpyro.infer.MCMC`` too);
* :func:`fit_flow_guide` -- a flow guide fitted by SVI from several starts at once, the
  best ELBO kept; :func:`neutra_nuts` -- NeuTra NUTS in its base space, results in model
  space (``numpyro_hgf.infer.neutra``);
* :func:`warn_diagnostics` -- R-hat / bulk-ESS / divergence warnings (``SamplingWarning``).
"""

from numpyro_hgf.infer.blackjax_bridge import run_hmc, run_nuts
from numpyro_hgf.infer.diagnostics import (
    SamplingWarning,
    sampling_diagnostics,
    warn_diagnostics,
)
from numpyro_hgf.infer.force_field import (
    ForceFieldHMCInfo,
    ForceFieldLangevinInfo,
    ForceFieldState,
    force_field_hmc,
    force_field_langevin,
)
from numpyro_hgf.infer.kernel import LearnedForceHMC, LearnedForceHMCState
from numpyro_hgf.infer.neutra import FlowGuideFit, fit_flow_guide, neutra_nuts
from numpyro_hgf.infer.programs import BaseSpaceReparam, base_space

__all__ = [
    "BaseSpaceReparam",
    "FlowGuideFit",
    "fit_flow_guide",
    "neutra_nuts",
    "SamplingWarning",
    "base_space",
    "sampling_diagnostics",
    "warn_diagnostics",
    "ForceFieldHMCInfo",
    "ForceFieldLangevinInfo",
    "ForceFieldState",
    "LearnedForceHMC",
    "LearnedForceHMCState",
    "force_field_hmc",
    "force_field_langevin",
    "run_hmc",
    "run_nuts",
]
