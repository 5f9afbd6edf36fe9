"""Samplers: how a path is run to draw from (or score) a model.

==============================  ===============================================================
module                          samplers
==============================  ===============================================================
:mod:`~.ode`                    the one ODE module: sampling and log-likelihood of every ODE
                                model (CNF, HGF, PF-ODE), exact or Hutchinson trace
:mod:`~.mcmc`                   ULA, MALA, HMC, annealed Langevin (score or log density)
:mod:`~.diffusion`              reverse SDE, predictor--corrector, PF-ODE, DDPM ancestral
:mod:`~.block_gibbs`            block Gibbs driver; the sweeps of RBMs, Boltzmann machines and
                                deep Boltzmann machines
:mod:`~.ais`                    annealed importance sampling of log normalisers
==============================  ===============================================================

All are pure functions of explicit ``jax.random`` keys (the same key gives the same draws),
with their loops in ``lax.scan``, over a batch of independent chains.
"""

from numpyro_hgf.samplers import ais as ais
from numpyro_hgf.samplers import block_gibbs as block_gibbs
from numpyro_hgf.samplers import diffusion as diffusion
from numpyro_hgf.samplers import mcmc as mcmc
from numpyro_hgf.samplers import ode as ode
from numpyro_hgf.samplers.ais import AISResult, annealed_importance_sampling
from numpyro_hgf.samplers.block_gibbs import (
    bm_gibbs_sweep,
    dbm_gibbs_sweep,
    gibbs,
    rbm_gibbs_sweep,
)
from numpyro_hgf.samplers.diffusion import (
    ddpm_ancestral,
    ode_sample,
    predictor_corrector,
    reverse_sde,
)
from numpyro_hgf.samplers.mcmc import (
    MCMCResult,
    annealed_langevin,
    geometric_sigmas,
    hmc,
    langevin,
    mala,
)
from numpyro_hgf.samplers.ode import ODEResult, ODESolver, ode_log_prob, solve_ode

__all__ = [
    "MCMCResult",
    "langevin",
    "mala",
    "hmc",
    "annealed_langevin",
    "geometric_sigmas",
    "gibbs",
    "rbm_gibbs_sweep",
    "bm_gibbs_sweep",
    "dbm_gibbs_sweep",
    "reverse_sde",
    "predictor_corrector",
    "ode_sample",
    "ddpm_ancestral",
    "ODESolver",
    "ODEResult",
    "solve_ode",
    "ode_log_prob",
    "AISResult",
    "annealed_importance_sampling",
]
