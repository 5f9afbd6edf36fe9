"""Latent-variable models fitted with SVI, Laplace and MCMC (PPCA, NLME, VAE).

* :mod:`~numpyro_hgf.models.ppca` -- probabilistic PCA: closed-form MLE and SVI;
* :mod:`~numpyro_hgf.models.nlme` -- nonlinear mixed effects (one-compartment oral PK, LMM),
  fitted by Laplace/FOCE, SVI or NUTS;
* :mod:`~numpyro_hgf.models.growth` -- Orange and Indometh (Pinheiro & Bates 2000) with
  nlme's published fits;
* :mod:`~numpyro_hgf.models.vae` -- variational autoencoders (flax decoder, amortized guide);
* :mod:`~numpyro_hgf.models.svi` -- ``fit_svi``: NumPyro's ELBO on the trainer core.
"""

from numpyro_hgf.models import growth, laplace, lmm, nlme, pk, pk_ode, ppca, svi, vae
from numpyro_hgf.models.svi import SVIFit, fit_svi

__all__ = [
    "SVIFit",
    "fit_svi",
    "growth",
    "laplace",
    "lmm",
    "nlme",
    "pk",
    "pk_ode",
    "ppca",
    "svi",
    "vae",
]
