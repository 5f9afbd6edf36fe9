"""Flow guides that find every mode, and NeuTra NUTS in one call.

* :func:`fit_flow_guide` -- SVI on an :class:`~numpyro_hgf.guides.AutoFlowGuide` from
  ``num_starts`` random starts at once (one vectorised program: ``vmap`` over the SVI
  states, ``lax.scan`` over the steps), keeping the start with the highest ELBO, estimated
  afresh from many particles.  Reverse-KL training is mode-seeking: which modes one run
  covers depends on its start, so keeping the best of several is the cheap, honest fix
  (NumPyro's dual moon: docs/benchmarks.md).
* :func:`neutra_nuts` -- neural transport (Hoffman et al. 2019, "NeuTra-lizing bad
  geometry in HMC"): NUTS on the guide's base space ``eps``, where the posterior is
  ``p(T(eps)) |det dT/deps|`` (NumPyro's ``NeuTraReparam``), draws mapped back through
  ``T`` so the ``InferenceData`` holds the model's sites.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.reparam import NeuTraReparam

from numpyro_hgf._checks import (
    as_key,
    check_instance,
    check_positive_int,
    check_progress,
    progress_enabled,
)
from numpyro_hgf.infer.blackjax_bridge import _check_settings, run_nuts

__all__ = ["FlowGuideFit", "fit_flow_guide", "neutra_nuts"]

_CHUNK = 500


class FlowGuideFit(NamedTuple):
    """What :func:`fit_flow_guide` returns.

    Attributes:
        guide: the guide (set up; pass it with ``params`` to ``sample_posterior``).
        params: the best start's constrained params (``SVI.get_params``).
        elbo: its ELBO, from ``elbo_particles`` fresh draws.
        start_elbos: ``(num_starts,)`` the ELBO of every start (``-inf`` where its loss
            went non-finite).
        losses: ``(num_starts, num_steps)`` negative-ELBO traces.
        best: index of the kept start.
    """

    guide: object
    params: dict
    elbo: float
    start_elbos: np.ndarray
    losses: np.ndarray
    best: int


def fit_flow_guide(
    model: Callable,
    *model_args,
    guide=None,
    num_starts: int = 8,
    num_steps: int = 10_000,
    optimizer: optax.GradientTransformation | None = None,
    num_particles: int = 4,
    elbo_particles: int = 4096,
    key=None,
    progress: bool | None = None,
    **model_kwargs,
) -> FlowGuideFit:
    """Fit a flow guide to ``model`` by SVI from ``num_starts`` starts; keep the best.

    Every start is ``SVI.init`` with its own key (its own random flow initialisation) and
    ``num_steps`` of ``optimizer`` on ``Trace_ELBO(num_particles)``; all starts run in one
    vectorised program, in dispatches of up to 500 steps.  The kept start maximises
    ``ELBO = E_q[log p(x, z) - log q(z)]`` estimated from ``elbo_particles`` draws.

    Args:
        model: a NumPyro model with continuous global latent sites.
        *model_args, **model_kwargs: its arguments.
        guide: an ``AutoContinuous`` guide whose params are initialised from the PRNG key
            (default: ``AutoFlowGuide(model)``, one BNAF layer).
        num_starts: independent starts (``>= 1``).
        num_steps: SVI steps per start.
        optimizer: an optax optimizer (default ``optax.adam(3e-3)``).
        num_particles: ELBO particles per step.
        elbo_particles: particles of the final ELBO estimate that ranks the starts.
        key: PRNG key or int seed (default 0).
        progress: progress bar (``None``: on unless ``NUMPYRO_HGF_PROGRESS=0``).

    Returns:
        :class:`FlowGuideFit`.

    Raises:
        FloatingPointError: every start's loss went non-finite.
    """
    from numpyro.infer.autoguide import AutoContinuous

    from numpyro_hgf.guides import AutoFlowGuide

    check_instance("model", model, Callable, "a callable NumPyro model")
    num_starts = check_positive_int("num_starts", num_starts)
    num_steps = check_positive_int("num_steps", num_steps)
    check_positive_int("num_particles", num_particles)
    check_positive_int("elbo_particles", elbo_particles)
    check_instance("guide", guide, (AutoContinuous, type(None)), "an AutoContinuous guide or None")
    _check_optimizer(optimizer)
    check_progress(progress)
    key = as_key(key)
    guide = AutoFlowGuide(model) if guide is None else guide
    svi = SVI(model, guide, optimizer or optax.adam(3e-3), Trace_ELBO(num_particles))
    init_key, elbo_key = jax.random.split(key)
    svi.init(init_key, *model_args, **model_kwargs)  # sets the guide's prototype up, eagerly
    start_keys = jax.random.split(init_key, num_starts)
    locs = _start_locations(guide, model, start_keys, model_args, model_kwargs)

    def init(k, loc):
        return svi.init(k, *model_args, init_params={f"{guide.prefix}_loc": loc}, **model_kwargs)

    states = jax.jit(jax.vmap(init))(start_keys, locs)
    states, losses = _run_starts(svi, states, num_steps, progress, model_args, model_kwargs)
    params = jax.vmap(svi.get_params)(states)
    elbo = Trace_ELBO(elbo_particles)

    def start_elbo(p, k):
        return -elbo.loss(k, p, model, guide, *model_args, **model_kwargs)

    start_elbos = np.asarray(
        jax.jit(jax.vmap(start_elbo))(params, jax.random.split(elbo_key, num_starts))
    )
    finite = np.isfinite(losses).all(axis=1) & np.isfinite(start_elbos)
    if not finite.any():
        raise FloatingPointError(
            f"fit_flow_guide: the loss of every one of the {num_starts} starts went "
            "non-finite; lower the optimizer's learning rate or check the model"
        )
    start_elbos = np.where(finite, start_elbos, -np.inf)
    best = int(np.argmax(start_elbos))
    return FlowGuideFit(
        guide=guide,
        params=jax.tree.map(lambda a: a[best], params),
        elbo=float(start_elbos[best]),
        start_elbos=start_elbos,
        losses=losses,
        best=best,
    )


def _check_optimizer(optimizer) -> None:
    """An optax ``GradientTransformation`` or a NumPyro optimizer (what ``SVI`` takes)."""
    from jax.example_libraries.optimizers import Optimizer
    from numpyro.optim import _NumPyroOptim

    kinds = (optax.GradientTransformation, _NumPyroOptim, Optimizer, type(None))
    check_instance("optimizer", optimizer, kinds, "an optax optimizer (e.g. optax.adam(3e-3))")


def _check_options(name: str, options, fn: Callable, exclude=()) -> dict:
    """``options`` as a dict of keyword-only arguments of ``fn`` (but not ``exclude``):
    an unknown name would otherwise reach the model as a keyword argument."""
    import inspect

    if options is None:
        return {}
    check_instance(name, options, dict, f"a dict of keyword arguments of {fn.__name__}")
    params = inspect.signature(fn).parameters.values()
    allowed = sorted(p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in exclude)
    unknown = sorted(set(options) - set(allowed), key=str)
    if unknown:
        raise TypeError(
            f"{name}: expected keyword arguments of {fn.__name__} among {allowed}, got {unknown}"
        )
    return dict(options)


def _start_locations(guide, model, keys, model_args, model_kwargs):
    """``(num_starts, latent_dim)``: the guide's ``init_loc_fn`` drawn again for every start
    (flattened like ``AutoContinuous`` flattens its initial locations)."""
    from numpyro.infer.autoguide import _ravel_dict
    from numpyro.infer.util import initialize_model

    locs = []
    for k in keys:
        info = initialize_model(
            k, model, init_strategy=guide.init_loc_fn, model_args=model_args,
            model_kwargs=model_kwargs,
        )  # fmt: skip
        locs.append(_ravel_dict(info.param_info.z)[0])
    return jnp.stack(locs)


def _run_starts(svi, states, num_steps, progress, model_args, model_kwargs):
    """``num_steps`` SVI updates of every start (vmapped), in jitted chunks."""
    from tqdm.auto import tqdm

    def chunk(states, length):
        def one(state):
            def body(s, _):
                return svi.update(s, *model_args, **model_kwargs)

            return lax.scan(body, state, None, length=length)

        return jax.vmap(one)(states)

    run = jax.jit(chunk, static_argnums=1)
    traces = []
    with tqdm(total=num_steps, desc="flow guide", disable=not progress_enabled(progress)) as bar:
        done = 0
        while done < num_steps:
            length = min(_CHUNK, num_steps - done)
            states, loss = run(states, length)
            traces.append(np.asarray(loss))
            done += length
            bar.update(length)
            bar.set_postfix(best_loss=f"{np.nanmin(loss[:, -1]):.4g}")
    return states, np.concatenate(traces, axis=1)


def neutra_nuts(
    model: Callable,
    *model_args,
    guide_fit: FlowGuideFit | None = None,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 4,
    key=None,
    progress: bool | None = None,
    fit_options: dict | None = None,
    nuts_options: dict | None = None,
    **model_kwargs,
):
    """NeuTra NUTS: a flow guide fitted by SVI, NUTS in its base space, draws in model space.

    The model is reparameterized by ``NeuTraReparam(guide, params)``: its latent sites
    become deterministic functions ``x = T(eps)`` of one base site
    ``{prefix}_shared_latent`` (standard normal before the likelihood), and
    :func:`~numpyro_hgf.infer.run_nuts` samples ``eps``.  Exact: the potential carries
    ``log |det dT/deps|``, so the draws target the model's posterior whatever the guide's
    quality; a good guide only makes the geometry easy (Hoffman et al. 2019, sec. 3).

    Args:
        model, *model_args, **model_kwargs: the NumPyro model and its arguments.
        guide_fit: a :func:`fit_flow_guide` result; ``None`` fits one first with
            ``fit_options`` (keyword arguments of ``fit_flow_guide``).
        num_warmup, num_samples, num_chains, key, progress: as :func:`run_nuts`.
        nuts_options: further keyword arguments of :func:`run_nuts` (e.g.
            ``target_accept``, ``dense_mass``, ``diagnostics_warn``).

    Returns:
        ``arviz.InferenceData`` as :func:`run_nuts` gives, whose ``posterior`` holds the
        model's latent sites (and the base draws ``{prefix}_shared_latent``), with
        ``attrs["guide_elbo"]`` the guide's ELBO.
    """
    own = ("num_warmup", "num_samples", "num_chains", "key", "progress")
    nuts_options = _check_options("nuts_options", nuts_options, run_nuts, exclude=own)
    fit_options = _check_options("fit_options", fit_options, fit_flow_guide)
    # every option of the sampler, checked before the guide is fitted
    _check_settings("nuts", model, num_warmup=num_warmup, num_samples=num_samples,
                    num_chains=num_chains, progress=progress, **nuts_options)  # fmt: skip
    fit_key, nuts_key = jax.random.split(as_key(key))
    if guide_fit is None:
        options = {"key": fit_key, "progress": progress, **fit_options}
        guide_fit = fit_flow_guide(model, *model_args, **options, **model_kwargs)
    elif not isinstance(guide_fit, FlowGuideFit):
        raise TypeError(
            f"guide_fit: expected a FlowGuideFit (from fit_flow_guide), got "
            f"{type(guide_fit).__name__}"
        )
    neutra = NeuTraReparam(guide_fit.guide, guide_fit.params)
    idata = run_nuts(
        neutra.reparam(model),
        *model_args,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        key=nuts_key,
        progress=progress,
        **nuts_options,
        **model_kwargs,
    )
    idata.attrs["guide_elbo"] = guide_fit.elbo
    return idata
