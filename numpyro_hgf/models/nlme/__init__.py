"""Nonlinear mixed-effects (NLME) models (Pinheiro & Bates 2000; Beal & Sheiner's NONMEM).

Subject ``i`` has observations ``y_ij`` at times ``t_ij`` and random effects ``eta_i``::

    eta_i ~ N(0, Omega)                      (Omega diagonal or full)
    y_ij  = f(theta, eta_i, x_i, t_ij) + g_ij eps_ij,   eps_ij ~ N(0, 1)

with a structural model ``f`` (any JAX function) and a residual error model ``g``
(additive, proportional or combined).  The package's rooms for NLME:

======================  ================================================================
:mod:`~.data`           long tables to padded per-subject arrays (:func:`prepare_data`)
:mod:`~.events`         NONMEM event records (doses, resets, ADDL/II) (:func:`read_events`)
:mod:`~.core`           the model, its likelihoods and the Laplace / FOCE-I fit
:mod:`~.inference`      the model as a NumPyro program: SVI, NUTS, importance likelihood
:mod:`~.report`         predictions, parameter tables, VPC and goodness-of-fit plots (PNG)
======================  ================================================================
"""

from numpyro_hgf.models.nlme.core import (
    ERROR_MODELS,
    ETA_SCALES,
    OMEGA_KINDS,
    THEOPHYLLINE_FOCEI,
    LaplaceFit,
    NLMEModel,
    fit_laplace,
    laplace_log_likelihood,
    residual_sd,
    subject_log_likelihood,
    theophylline_model,
)
from numpyro_hgf.models.nlme.data import NLMEData, prepare_data, theophylline_data
from numpyro_hgf.models.nlme.events import (
    EVENT_COLUMNS,
    EventDataError,
    read_events,
    theophylline_events,
)
from numpyro_hgf.models.nlme.inference import (
    NewtonGuide,
    SVIResult,
    fit_nuts,
    fit_svi,
    guide_moments,
    importance_log_likelihood,
    numpyro_model,
    partial_params,
)
from numpyro_hgf.models.nlme.report import (
    GOF_COLUMNS,
    _reporting,  # noqa: F401  (used by the demo)
    format_table,
    gof_table,
    parameter_table,
    plot_gof,
    plot_vpc,
    predict,
)
from numpyro_hgf.models.pk import (
    dose_records,
    one_compartment_iv,
    one_compartment_oral,
    one_compartment_oral_doses,
    power_covariates,
)
from numpyro_hgf.models.pk_ode import (
    michaelis_menten_oral_ode,
    one_compartment_oral_ode,
    two_compartment_oral_ode,
)

__all__ = [
    "NLMEData",
    "NLMEModel",
    "LaplaceFit",
    "SVIResult",
    "prepare_data",
    "theophylline_data",
    "theophylline_model",
    "residual_sd",
    "subject_log_likelihood",
    "laplace_log_likelihood",
    "fit_laplace",
    "numpyro_model",
    "fit_svi",
    "NewtonGuide",
    "fit_nuts",
    "importance_log_likelihood",
    "guide_moments",
    "partial_params",
    "predict",
    "parameter_table",
    "format_table",
    "plot_vpc",
    "gof_table",
    "plot_gof",
    "GOF_COLUMNS",
    "one_compartment_oral",
    "one_compartment_oral_doses",
    "one_compartment_iv",
    "one_compartment_oral_ode",
    "two_compartment_oral_ode",
    "michaelis_menten_oral_ode",
    "dose_records",
    "power_covariates",
    "read_events",
    "theophylline_events",
    "EventDataError",
    "EVENT_COLUMNS",
    "THEOPHYLLINE_FOCEI",
    "ERROR_MODELS",
    "OMEGA_KINDS",
    "ETA_SCALES",
]
