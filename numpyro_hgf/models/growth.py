"""Two of Pinheiro & Bates' (2000) nonlinear mixed models on shipped data, with nlme's fits.

* **Orange** (P&B sec. 8.2, ``fm2Oran.nlme``): logistic growth of five trees, a random
  asymptote, additive error::

      circumference_ij = (Asym + b_i) / (1 + exp((xmid - age_ij) / scal)) + e_ij

  Linear in ``b_i``, so the marginal likelihood is Gaussian and the Laplace approximation of
  :func:`~numpyro_hgf.models.nlme.fit_laplace` is exact.
* **Indometh** (P&B sec. 6.2, ``fm2Indom.nlme``): bi-exponential decay after an IV bolus
  (nlme's ``SSbiexp``), diagonal random effects on ``A1``, ``lrc1`` and ``A2``::

      conc_ij = (A1 + b_i1) exp(-exp(lrc1 + b_i2) t_ij) + (A2 + b_i3) exp(-exp(lrc2) t_ij) + e_ij

``ORANGE_NLME`` and ``INDOMETH_NLME`` are nlme's maximum-likelihood fits of these models, the
references of ``tests/test_growth.py`` and ``docs/benchmarks.md``.  nlme fits by the
Lindstrom-Bates (1990) alternating linearisation, not by maximising the Laplace or FOCE-I
likelihood, so its estimates are not the maximisers of the likelihoods fitted here: see
docs/benchmarks.md for the measured differences.
"""

from __future__ import annotations

import jax.numpy as jnp

from numpyro_hgf.models.nlme.core import NLMEModel
from numpyro_hgf.models.nlme.data import NLMEData, prepare_data

__all__ = [
    "ORANGE_NLME",
    "INDOMETH_NLME",
    "logistic_growth",
    "biexponential",
    "orange_data",
    "orange_model",
    "indometh_data",
    "indometh_model",
]

#: nlme's ML fit ``fm2Oran.nlme`` = ``nlme(circumference ~ SSlogis(age, Asym, xmid, scal),
#: Orange, fixed = Asym + xmid + scal ~ 1, random = Asym ~ 1)`` as printed in Pinheiro & Bates
#: (2000), *Mixed-Effects Models in S and S-PLUS*, sec. 8.2 (5 significant digits).  The
#: exact log-likelihood at these estimates is -131.5846 (``tests/test_growth.py``), nlme's
#: printed value.
ORANGE_NLME = {
    "theta": {"Asym": 191.05, "xmid": 722.56, "scal": 344.16},
    "omega_sd": (31.483,),
    "sigma": 7.8461,
    "log_likelihood": -131.58,
}

#: nlme's ML fit ``fm1Indom.nlme`` = ``nlme(nlsList(conc ~ SSbiexp(time, A1, lrc1, A2, lrc2),
#: Indometh), random = pdDiag(A1 + lrc1 + A2 + lrc2 ~ 1))`` as printed by nlme's own book
#: scripts (``inst/scripts/ch06.R``; output in nlme's ``tests/extras/scripts.Rout.save``,
#: R 4.6.0, 3-4 significant digits; P&B 2000 sec. 6.2).  Its SD of ``lrc2`` is 7e-6, so it is
#: the 3-effect model ``fm2Indom.nlme`` (log-likelihood 54.6 in both, likelihood-ratio
#: statistic 0.009).
INDOMETH_NLME = {
    "theta": {"A1": 2.828, "lrc1": 0.774, "A2": 0.461, "lrc2": -1.344},
    "omega_sd": (0.571, 0.158, 0.112),
    "sigma": 0.0815,
    "log_likelihood": 54.6,
}


def logistic_growth(theta, eta, covariates, times):
    """nlme's ``SSlogis`` with a random asymptote: ``(Asym + eta_0) / (1 + exp((xmid - t) /
    scal))``.  ``theta``: dict with ``Asym``, ``xmid``, ``scal``; ``eta: (1,)``; ``(T,)``."""
    del covariates
    return (theta["Asym"] + eta[0]) / (1.0 + jnp.exp((theta["xmid"] - times) / theta["scal"]))


def biexponential(theta, eta, covariates, times):
    """nlme's ``SSbiexp`` with random ``A1``, ``lrc1``, ``A2``: ``(A1 + eta_0) exp(-exp(lrc1 +
    eta_1) t) + (A2 + eta_2) exp(-exp(lrc2) t)``.  ``eta: (3,)``; returns ``(T,)``."""
    del covariates
    fast = (theta["A1"] + eta[0]) * jnp.exp(-jnp.exp(theta["lrc1"] + eta[1]) * times)
    slow = (theta["A2"] + eta[2]) * jnp.exp(-jnp.exp(theta["lrc2"]) * times)
    return fast + slow


def orange_data() -> NLMEData:
    """The shipped Orange table (5 trees x 7 ages) as :class:`NLMEData` (time: age in days)."""
    from numpyro_hgf.datasets import orange

    o = orange()
    table = {"tree": o.tree, "age": o.age_days, "circumference": o.circumference_mm}
    return prepare_data(table, subject="tree", time="age", observation="circumference")


def orange_model():
    """``(model, init)``: :func:`logistic_growth`, one additive random effect, additive error;
    initial values Asym 170, xmid 700, scal 350 (P&B's starting values), SDs 20 and 10."""
    model = NLMEModel(logistic_growth, ("Asym",), eta_scale="additive")
    theta = {"Asym": 170.0, "xmid": 700.0, "scal": 350.0}
    return model, model.init_params(theta, omega_sd=20.0, sigma_add=10.0)


def indometh_data() -> NLMEData:
    """The shipped Indometh table (6 subjects x 11 times) as :class:`NLMEData` (time in h)."""
    from numpyro_hgf.datasets import indometh

    d = indometh()
    table = {"subject": d.subject, "time": d.time_h, "conc": d.conc_mcg_per_ml}
    return prepare_data(table, subject="subject", time="time", observation="conc")


def indometh_model():
    """``(model, init)``: :func:`biexponential`, diagonal additive random effects on ``A1``,
    ``lrc1``, ``A2``, additive error; initial values nlme's pooled ``nls`` fit (A1 2.77,
    lrc1 0.886, A2 0.607, lrc2 -1.09), SDs 0.5, 0.2, 0.2, residual 0.1."""
    model = NLMEModel(biexponential, ("A1", "lrc1", "A2"), eta_scale="additive")
    theta = {"A1": 2.773, "lrc1": 0.886, "A2": 0.607, "lrc2": -1.092}
    return model, model.init_params(theta, omega_sd=(0.5, 0.2, 0.2), sigma_add=0.1)
