"""The NLME model as a NumPyro program: SVI, NUTS and the importance-weighted likelihood.

:func:`numpyro_model` writes the model of :mod:`numpyro_hgf.models.nlme` (random effects
``eta_i ~ N(0, Omega)``, structural model, residual error) as a NumPyro model, with priors on
the population parameters when it is Bayesian; :func:`fit_svi` maximises its ELBO with a
per-subject or an amortized guide, :func:`fit_nuts` samples it with NumPyro's NUTS, and
:func:`importance_log_likelihood` estimates the marginal likelihood by importance sampling.

"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import partial
from typing import Any, NamedTuple, Unpack

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.transforms import CorrCholeskyTransform
from numpyro.infer import Trace_ELBO
from numpyro.infer.autoguide import AutoMultivariateNormal, AutoNormal
from numpyro.infer.initialization import init_to_value

from numpyro_hgf._checks import (
    check_choice,
    check_hidden_sizes,
    check_instance,
    check_key,
    check_positive_float,
    check_positive_int,
    check_progress,
    progress_enabled,
)
from numpyro_hgf.guides.amortized import AmortizedNormalGuide
from numpyro_hgf.models.nlme._arguments import (
    check_data,
    check_params,
    check_priors,
    check_proposal,
)
from numpyro_hgf.models.nlme.core import (
    NLMEModel,
    _check_model_data,
    _subject_log_joint,
    laplace_log_likelihood,
    residual_sd,
)
from numpyro_hgf.models.nlme.data import NLMEData
from numpyro_hgf.models.svi import adam_cosine
from numpyro_hgf.models.svi import fit_svi as _fit_svi
from numpyro_hgf.train.options import Recipe, TrainKeywords, TrainOptions, resolve_options

__all__ = [
    "SVIResult",
    "NewtonGuide",
    "numpyro_model",
    "fit_svi",
    "fit_nuts",
    "importance_log_likelihood",
    "guide_moments",
    "partial_params",
]


#: The optimisation ``fit_svi`` recommends for NLME models.
SVI_RECIPE = Recipe(
    steps=4_000, batch_size=None, learning_rate=0.02, optimizer=adam_cosine(0.05), clip_norm=None
)


def numpyro_model(
    model: NLMEModel,
    data: NLMEData,
    init: dict | None = None,
    priors: Mapping[str, dist.Distribution] | None = None,
):
    """The NLME model as a NumPyro model.

    Without ``priors`` the population parameters are ``numpyro.param`` sites (point
    estimates: SVI then maximises the ELBO over them, variational EM): ``theta`` (one site
    per top-level key, ``theta_<key>``), ``omega_sd`` (positive), ``omega_corr``
    (correlation Cholesky, full Omega only), ``sigma_add`` / ``sigma_prop`` (positive).
    With ``priors`` (a dict from those site names to distributions; every one is needed)
    they are sample sites and the model is Bayesian (for :func:`fit_nuts`).

    The random effects are the sample site ``eta: (N, d)`` in the plate ``subjects``; the
    observations are ``obs`` (masked ``Normal``, event ``(T,)``).
    """
    _check_model_data(model, data)
    init = model.init_params({}) if init is None else init
    check_params(model, init, "init")
    sites = _param_sites(model, init)
    if priors is not None:
        check_priors(priors, sites)

    def site(name, value, constraint=constraints.real):
        if priors is None:
            return numpyro.param(name, value, constraint=constraint)
        return numpyro.sample(name, priors[name])

    values = {name: site(name, v, c) for name, (v, c) in sites.items()}
    theta = {k: values[f"theta_{k}"] for k in init["theta"]}
    omega_sd = values["omega_sd"]
    if model.omega == "full":
        L = omega_sd[..., :, None] * values["omega_corr"]
    else:
        L = omega_sd[..., None] * jnp.eye(model.eta_dim)
    pop = {"theta": theta}
    for name in ("sigma_add", "sigma_prop"):
        if name in values:
            pop[f"log_{name}"] = jnp.log(values[name])
    a, b = model.sigmas(pop)
    N = data.num_subjects
    with numpyro.plate("subjects", N):
        eta = numpyro.sample("eta", dist.MultivariateNormal(jnp.zeros(model.eta_dim), scale_tril=L))
        pred = jax.vmap(lambda e, c, t: model.structural(theta, e, c, t))(
            eta, data.covariates, data.times
        )
        sd = residual_sd(model.error, pred, a, b)
        numpyro.sample("obs", dist.Normal(pred, sd).mask(data.mask).to_event(1), obs=data.obs)


def _encoder_features(model, data, init=None, priors=None):
    """Per-subject encoder input: observations (0 where masked), times, mask and
    standardised covariates, ``(N, 3 T + num_covariates)``."""
    cov = [
        ((v - jnp.mean(v)) / jnp.maximum(jnp.std(v), 1e-8))[:, None]
        for v in data.covariates.values()
    ]
    scale = jnp.maximum(jnp.max(jnp.abs(data.obs)), 1.0)
    t_scale = jnp.maximum(jnp.max(data.times), 1.0)
    return jnp.concatenate(
        [data.obs / scale, data.times / t_scale, data.mask.astype(data.obs.dtype), *cov],
        axis=-1,
    )


class NewtonGuide:
    """Amortized by optimisation: each subject's Gaussian at its conditional mode.

    ``q(eta_i | y_i) = N(eta_hat_i, diag(s) H_i^{-1} diag(s))``, where ``eta_hat_i`` and the
    Gauss-Newton information ``H_i`` (FOCE-I's) come from the damped Newton mode search of
    :func:`~numpyro_hgf.models.nlme.fit_laplace` run on the subject's data at the current
    population parameters, and ``s: (d,)`` (the site ``newton_scale``, positive, initially
    1) is learned by the ELBO.  The mode search is the encoder: no per-subject parameters,
    so the guide serves held-out and new subjects, and, unlike a network encoder, it has no
    amortization gap to learn away.  The mode and ``H_i`` carry no gradient (EM-style: they
    are recomputed at every step), ``s`` and the population parameters do.

    Called like the model: ``guide(model, data, init)``; ``model`` and ``init`` given here
    are those :func:`guide_moments` uses.
    """

    def __init__(self, model: NLMEModel, init: dict, num_steps: int = 30):
        if not isinstance(model, NLMEModel):
            raise TypeError(f"model: expected an NLMEModel, got {type(model).__name__}")
        check_params(model, init, "init")
        self.model, self.init = model, init
        self.num_steps = check_positive_int("num_steps", num_steps)

    def moments(self, model: NLMEModel, svi_params: dict, data: NLMEData, init: dict):
        """``(loc (N, d), cov (N, d, d))`` of the guide at ``svi_params``."""
        pop = jax.lax.stop_gradient(_pop_from_svi(model, svi_params, init))
        _, per = laplace_log_likelihood(model, pop, data, method="focei", num_steps=self.num_steps)
        s = svi_params.get("newton_scale", jnp.ones((model.eta_dim,), data.obs.dtype))
        cov = jnp.linalg.inv(jax.lax.stop_gradient(per.precision)) * s[:, None] * s[None, :]
        return jax.lax.stop_gradient(per.mode), cov

    def __call__(self, model: NLMEModel, data: NLMEData, init=None, priors=None):
        if priors is not None:
            raise ValueError("priors: NewtonGuide fits point estimates (fit_svi), got priors")
        init = model.init_params({}) if init is None else init
        params = {
            name: numpyro.param(name, value, constraint=constraint)
            for name, (value, constraint) in _param_sites(model, init).items()
        }
        params["newton_scale"] = numpyro.param(
            "newton_scale",
            jnp.ones((model.eta_dim,), data.obs.dtype),
            constraint=constraints.positive,
        )
        loc, cov = self.moments(model, params, data, init)
        with numpyro.plate("subjects", data.num_subjects):
            numpyro.sample("eta", dist.MultivariateNormal(loc, covariance_matrix=cov))


def _param_sites(model: NLMEModel, init: dict) -> dict:
    """``name -> (initial value, constraint)`` of the ``numpyro.param`` sites of
    :func:`numpyro_model` without priors."""
    sites = {f"theta_{k}": (v, constraints.real) for k, v in init["theta"].items()}
    sites["omega_sd"] = (jnp.exp(init["log_omega_sd"]), constraints.positive)
    if model.omega == "full":
        sites["omega_corr"] = (
            CorrCholeskyTransform()(init["omega_corr"]),
            constraints.corr_cholesky,
        )
    a0, b0 = model.sigmas(init)
    if model.error in ("additive", "combined"):
        sites["sigma_add"] = (a0, constraints.positive)
    if model.error in ("proportional", "combined"):
        sites["sigma_prop"] = (b0, constraints.positive)
    return sites


class SVIResult(NamedTuple):
    """Result of :func:`fit_svi`.

    Attributes:
        params: unconstrained population parameters (the dict of
            :meth:`NLMEModel.init_params`), read from the SVI params.
        svi_params: all SVI params (model and guide; for ``guide.sample_posterior``).
        guide: the guide used.
        losses: ``(steps,)`` negative ELBO per step.
        elbo: ELBO at the end, averaged over ``num_eval_particles`` particles.
        seconds: wall time of the fit.
        validation: ``(step, held-out negative ELBO)`` pairs (with ``validation`` subjects).
    """

    params: dict
    svi_params: dict
    guide: Any
    losses: np.ndarray
    elbo: float
    seconds: float
    validation: list | tuple = ()


def fit_svi(
    model: NLMEModel,
    data: NLMEData,
    init: dict,
    *,
    guide: str = "mvn",
    num_particles: int = 4,
    num_eval_particles: int = 2_000,
    hidden=(32,),
    key=None,
    options: TrainOptions | None = None,
    **train_options: Unpack[TrainKeywords],
) -> SVIResult:
    """Variational EM: maximise the ELBO of :func:`numpyro_model` over population
    parameters and the guide of ``eta``.

    Args:
        guide: ``"mvn"`` (per-subject Gaussians with a full joint covariance,
            ``AutoMultivariateNormal``), ``"normal"`` (per-subject diagonal Gaussians,
            ``AutoNormal``), ``"amortized"`` (:class:`~numpyro_hgf.guides.
            AmortizedNormalGuide` on the subject's observations, times and covariates) or
            ``"newton"`` (:class:`NewtonGuide`: amortized by the mode search; on theophylline
            ELBO -180.57, the closest of the four to the marginal likelihood -180.35).
        num_particles: ELBO particles per step.
        num_eval_particles: particles of the final ELBO estimate.
        hidden: encoder widths of the amortized guide.
        key: ``jax.random`` key (required).
        options, **train_options: how to train (:class:`~numpyro_hgf.train.TrainOptions`).
            Recommended: 4,000 Adam steps on all subjects at learning rate 0.02, cosine decay
            to 5 % of it, no clipping.  ``validation``: an :class:`NLMEData` of held-out
            subjects (amortized guide only: per-subject guides have no posterior for new
            subjects); the negative ELBO of those subjects (``num_particles`` fixed draws)
            picks the returned params, and ``patience`` stops early.
    """
    _check_model_data(model, data)
    check_params(model, init, "init")
    check_choice("guide", guide, ("mvn", "normal", "amortized", "newton"))
    num_particles = check_positive_int("num_particles", num_particles)
    num_eval_particles = check_positive_int("num_eval_particles", num_eval_particles)
    hidden = check_hidden_sizes("hidden", hidden)
    key = check_key("key", key)
    options = resolve_options(options, train_options, SVI_RECIPE)
    held_out = options.validation
    if held_out is not None:
        if guide not in ("amortized", "newton"):
            raise ValueError(
                "validation: held-out subjects need guide='amortized' or 'newton' (a "
                f"per-subject guide has no posterior for new subjects), got guide={guide!r}"
            )
        if not isinstance(held_out, NLMEData):
            raise TypeError(
                f"validation: expected an NLMEData of held-out subjects, got "
                f"{type(held_out).__name__}"
            )
        model.check(init, held_out)
        options = options.replace(validation=None)
    model.check(init, data)
    start = time.perf_counter()
    eta0 = {"eta": jnp.zeros((data.num_subjects, model.eta_dim), data.obs.dtype)}
    if guide == "mvn":
        q = AutoMultivariateNormal(
            numpyro_model, init_loc_fn=init_to_value(values=eta0), init_scale=0.05
        )
    elif guide == "normal":
        q = AutoNormal(numpyro_model, init_loc_fn=init_to_value(values=eta0), init_scale=0.05)
    elif guide == "newton":
        q = NewtonGuide(model, init)
    else:
        q = AmortizedNormalGuide(
            numpyro_model,
            None,
            "eta",
            encoder_input=_encoder_features,
            hidden=hidden,
            init_scale=0.05,
        )
    args = (model, data, init)

    def svi_model(_subjects):
        # fit_svi hands the model its data tuple (a dummy axis over subjects); the NLME model
        # and data are closed over
        return numpyro_model(*args)

    def svi_guide(_subjects):
        return q(*args)

    fit = _fit_svi(
        svi_model,
        svi_guide,
        (jnp.zeros((data.num_subjects,)),),
        key=key,
        options=options,
        elbo=Trace_ELBO(num_particles),
        description=f"nlme svi ({guide})",
        validation_fn=_held_out_elbo(q, model, held_out, init, num_particles, key),
    )
    elbo_key = jax.random.fold_in(key, 1)
    elbo = -Trace_ELBO(num_eval_particles).loss(elbo_key, fit.params, numpyro_model, q, *args)
    params = _pop_from_svi(model, fit.params, init)
    seconds = time.perf_counter() - start
    return SVIResult(params, fit.params, q, fit.losses, float(elbo), seconds, fit.result.validation)


def _held_out_elbo(guide, model, held_out, init, num_particles, key):
    """``params -> -ELBO`` of held-out subjects with fixed draws (``None`` without them)."""
    if held_out is None:
        return None
    elbo = Trace_ELBO(num_particles)
    val_key = jax.random.fold_in(key, 0x5EED)
    loss = jax.jit(lambda p: elbo.loss(val_key, p, numpyro_model, guide, model, held_out, init))
    return lambda params: float(loss(params))


def _pop_from_svi(model: NLMEModel, svi_params: dict, init: dict) -> dict:
    out = {"theta": {k: svi_params[f"theta_{k}"] for k in init["theta"]}}
    out["log_omega_sd"] = jnp.log(svi_params["omega_sd"])
    if model.omega == "full":
        out["omega_corr"] = CorrCholeskyTransform().inv(svi_params["omega_corr"])
    if "sigma_add" in svi_params:
        out["log_sigma_add"] = jnp.log(svi_params["sigma_add"])
    if "sigma_prop" in svi_params:
        out["log_sigma_prop"] = jnp.log(svi_params["sigma_prop"])
    return out


def fit_nuts(
    model: NLMEModel,
    data: NLMEData,
    init: dict,
    priors: Mapping[str, dist.Distribution],
    *,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 1,
    key,
    progress: bool | None = None,
):
    """NUTS (NumPyro) on :func:`numpyro_model` with ``priors``.

    ``priors`` maps every population site (``theta_<key>``, ``omega_sd`` ``(d,)``,
    ``omega_corr`` for a full Omega, ``sigma_add`` / ``sigma_prop``) to a distribution of that
    site's shape (e.g. ``dist.HalfNormal(1.0).expand([d])`` for ``omega_sd``).  The chains
    start at ``init`` (population parameters) and ``eta = 0``.

    Returns:
        ``arviz.InferenceData``: ``posterior`` with those sites and ``eta``
        ``(chain, draw, N, d)``, ``sample_stats`` and the pointwise ``log_likelihood`` of
        ``obs``.
    """
    import arviz as az
    from numpyro.infer import MCMC, NUTS

    _check_model_data(model, data)
    check_params(model, init, "init")
    check_priors(priors, _param_sites(model, init))
    key = check_key("key", key)
    check_progress(progress)
    model.check(init, data)
    a0, b0 = model.sigmas(init)
    start = {f"theta_{k}": v for k, v in init["theta"].items()}
    start["omega_sd"] = jnp.exp(init["log_omega_sd"])
    if model.omega == "full":
        start["omega_corr"] = CorrCholeskyTransform()(init["omega_corr"])
    if "log_sigma_add" in init:
        start["sigma_add"] = a0
    if "log_sigma_prop" in init:
        start["sigma_prop"] = b0
    start["eta"] = jnp.zeros((data.num_subjects, model.eta_dim), data.times.dtype)
    mcmc = MCMC(
        NUTS(numpyro_model, init_strategy=init_to_value(values=start)),
        num_warmup=check_positive_int("num_warmup", num_warmup),
        num_samples=check_positive_int("num_samples", num_samples),
        num_chains=check_positive_int("num_chains", num_chains),
        progress_bar=progress_enabled(progress),
        chain_method="sequential",
    )
    # positional: arviz calls numpyro.infer.log_likelihood(model_fn, samples, *args, **kwargs),
    # whose first parameter is also called ``model``
    mcmc.run(key, model, data, init, priors)
    return az.from_numpyro(mcmc)


# ---------------------------------------------------------------------------------------
# marginal likelihood by importance sampling
# ---------------------------------------------------------------------------------------


def importance_log_likelihood(
    model: NLMEModel, params, data: NLMEData, loc, cov, *, num_samples: int, key, df=None
):
    """Importance-sampling estimate of ``log p(y | params)`` (sum over subjects).

    For subject ``i`` the proposal is ``N(loc_i, cov_i)`` (or a Student-t with ``df``
    degrees of freedom: heavier tails, safer weights) and

        log p(y_i) ~= logsumexp_k [log p(y_i, eta_k) - log q(eta_k)] - log K,

    an importance-weighted lower bound in expectation (Burda et al. 2016, eq. 8) that tends
    to ``log p(y_i)`` as ``K`` grows.  Use the Laplace modes and inverse curvatures, or a
    guide's per-subject moments (:func:`guide_moments`).

    Args:
        params: unconstrained population parameters.
        loc: ``(N, d)``; cov: ``(N, d, d)``.
        num_samples: ``K`` per subject.
        df: Student-t degrees of freedom of the proposal (``None``: Gaussian).

    Returns:
        ``(total, per_subject (N,))``.
    """
    _check_model_data(model, data)
    check_params(model, params, "params")
    loc, cov = check_proposal(loc, cov, data.num_subjects, model.eta_dim)
    K = check_positive_int("num_samples", num_samples)
    key = check_key("key", key)
    df = None if df is None else check_positive_float("df", df)
    return _importance(model, params, data, loc, cov, key, K, df)


@partial(jax.jit, static_argnums=(0, 6, 7))
def _importance(model, params, data, loc, cov, key, K, df):
    keys = jax.random.split(key, data.num_subjects)

    def one(k, m, c, covars, t, y, msk):
        log_joint = partial_params(_subject_log_joint(model, covars, t, y, msk), params)
        L = jnp.linalg.cholesky(c)
        q = (
            dist.MultivariateNormal(m, scale_tril=L)
            if df is None
            else dist.MultivariateStudentT(df, m, scale_tril=L)
        )
        eta = q.sample(k, (K,))
        logw = jax.vmap(log_joint)(eta) - q.log_prob(eta)
        return jax.scipy.special.logsumexp(logw) - jnp.log(K)

    per = jax.vmap(one)(keys, loc, cov, data.covariates, data.times, data.obs, data.mask)
    return jnp.sum(per), per


def guide_moments(result: SVIResult, data: NLMEData):
    """Per-subject mean ``(N, d)`` and covariance ``(N, d, d)`` of the guide of ``eta``
    after :func:`fit_svi` (the diagonal blocks for ``"mvn"``)."""
    check_instance("result", result, SVIResult, "an SVIResult (fit_svi)")
    check_data(data)
    q, p = result.guide, result.svi_params
    N = data.num_subjects
    if isinstance(q, AutoMultivariateNormal):
        post = q.get_posterior(p)
        d = post.loc.shape[-1] // N
        loc = post.loc.reshape(N, d)
        full = post.covariance_matrix.reshape(N, d, N, d)
        cov = full[jnp.arange(N), :, jnp.arange(N), :]
        return loc, cov
    if isinstance(q, NewtonGuide):
        return q.moments(q.model, p, data, q.init)
    if isinstance(q, AutoNormal):
        loc, scale = p["eta_auto_loc"], p["eta_auto_scale"]
    else:
        loc, scale = q.encode(p, _encoder_features(None, data))
    return loc, jax.vmap(jnp.diag)(scale**2)


def partial_params(log_joint, params):
    """``(eta, params) -> ...`` with ``params`` fixed: ``eta -> ...``."""
    if not callable(log_joint):
        raise TypeError(f"log_joint: expected a callable, got {type(log_joint).__name__}")
    return lambda eta: log_joint(eta, params)
