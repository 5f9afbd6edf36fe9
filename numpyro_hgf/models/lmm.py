"""Linear mixed models as NLME models: ``sleepstudy``, ``Reaction ~ Days + (Days | Subject)``.

A linear structural model with additive Gaussian error makes the integral over the random
effects Gaussian, so the Laplace approximation of :func:`numpyro_hgf.models.nlme.fit_laplace`
is the exact maximum-likelihood fit (what ``lme4::lmer(REML = FALSE)`` and statsmodels
``MixedLM(reml=False)`` compute).
"""

from __future__ import annotations

from numpyro_hgf.models.nlme.core import NLMEModel
from numpyro_hgf.models.nlme.data import NLMEData, prepare_data
from numpyro_hgf.models.pk import linear_random_slope

__all__ = ["sleepstudy_data", "sleepstudy_model", "covariance"]


def sleepstudy_data() -> NLMEData:
    """The shipped sleepstudy table (18 subjects x 10 days) as :class:`NLMEData`."""
    from numpyro_hgf.datasets import sleepstudy

    s = sleepstudy()
    table = {"subject": s.subject, "days": s.days, "reaction": s.reaction_ms}
    return prepare_data(table, subject="subject", time="days", observation="reaction")


def sleepstudy_model():
    """``(model, init)``: random intercept and slope with a full 2x2 covariance, additive
    error; initial values intercept 250 ms, slope 10 ms/day, SDs 25 and 5, residual 25."""
    model = NLMEModel(linear_random_slope, ("intercept", "slope"), omega="full")
    init = model.init_params(
        {"intercept": 250.0, "slope": 10.0}, omega_sd=(25.0, 5.0), sigma_add=25.0
    )
    return model, init


def covariance(model: NLMEModel, params):
    """``Omega = L L^T`` of the random effects, ``(d, d)``."""
    L = model.omega_scale_tril(params)
    return L @ L.T
