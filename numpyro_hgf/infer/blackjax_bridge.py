"""BlackJAX NUTS / HMC on NumPyro models, returning ``arviz.InferenceData``.

:func:`run_nuts` and :func:`run_hmc` turn a model into a potential on unconstrained space
(:mod:`numpyro_hgf.infer.potential`), adapt the step size and a diagonal (or dense) mass
matrix per chain by Stan's windowed scheme (the schedule and pieces of
``blackjax.window_adaptation``), and sample with ``blackjax.nuts`` / ``blackjax.hmc`` with
the chains vectorised by ``jax.vmap``.  Chains move on the flat unconstrained vector; warmup
and sampling are separate compiled loops (one program when there is no progress bar), so
sampling does no adaptation work.  The kept draws are mapped back through the model
(constrained values and deterministic sites) in one batch after the loop.

With ``forces={"x": F}``, :func:`run_hmc` runs force-field HMC
(:func:`numpyro_hgf.infer.force_field_hmc`): the leapfrog uses the learned force for the
learned-prior site ``x`` and autodiff for the rest of the model, and the Metropolis step
uses the exact model log density unless ``adjusted=False`` (then the result is flagged
unadjusted in ``sample_stats["is_adjusted"]`` and in ``attrs``).

Learned bijective priors (``ContinuousFlow``, ``HGFPrior``, ``DiffusionPrior``,
``NormalizingFlow``) are sampled in their base by default (``base_space=True``,
:func:`numpyro_hgf.infer.programs.base_space`): ``z ~ base``, ``x = T(z)`` a deterministic
site, the same likelihood on ``x``; exact by the change of variables, with no trace
estimator in the potential.  The posterior holds ``x`` (and ``z`` as ``{name}_base`` with
``return_base=True``).  After sampling, R-hat, bulk ESS and divergences are checked
(:mod:`numpyro_hgf.infer.diagnostics`; ``diagnostics_warn=False`` silences the warnings).

Compiled samplers and the model's trace are cached per (model, static arguments, shapes and
dtypes of the array arguments, settings): array arguments are passed as data, so a second call
with new data of the same shapes neither re-traces the model nor recompiles, and data of
another shape gets its own trace and programs.  Models with ``numpyro.param`` sites are not
cached (their values are frozen at trace time).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.initialization import init_to_uniform
from tqdm.auto import tqdm

from numpyro_hgf._checks import (
    check_flag,
    check_fraction,
    check_instance,
    check_key,
    check_positive_float,
    check_positive_int,
    check_progress,
    progress_enabled,
)
from numpyro_hgf._checks.arrays import check_inverse_mass_matrix
from numpyro_hgf.infer import adaptation
from numpyro_hgf.infer.diagnostics import warn_diagnostics
from numpyro_hgf.infer.inference_data import inference_data
from numpyro_hgf.infer.potential import diagnose_initial_point
from numpyro_hgf.infer.programs import hutchinson_sites, prepared, split_keys

__all__ = ["run_nuts", "run_hmc"]


# -- arguments as data ---------------------------------------------------------------------
def _split_arguments(args, kwargs):
    """Array leaves of ``(args, kwargs)`` become data; the rest is static.

    Returns ``(dynamic_leaves, rebuild, signature)``; ``signature`` (the static leaves and
    the shapes and dtypes of the data leaves: everything the traced model and the compiled
    samplers depend on) is hashable, or ``None`` when a static leaf is not;
    ``rebuild(dynamic_leaves) -> (args, kwargs)``.
    """
    leaves, treedef = jax.tree.flatten((tuple(args), dict(kwargs)))
    is_data = tuple(isinstance(leaf, jax.Array | np.ndarray) for leaf in leaves)
    static = tuple(None if d else leaf for leaf, d in zip(leaves, is_data, strict=True))
    dynamic = [jnp.asarray(leaf) for leaf, d in zip(leaves, is_data, strict=True) if d]

    def rebuild(dyn):
        it = iter(dyn)
        merged = [next(it) if d else s for s, d in zip(static, is_data, strict=True)]
        return jax.tree.unflatten(treedef, merged)

    try:
        shapes = tuple((a.shape, a.dtype) for a in dynamic)
        signature = (treedef, static, is_data, shapes)
        hash(signature)
    except TypeError:
        signature = None
    return dynamic, rebuild, signature


def _check_counts(num_warmup, num_samples, num_chains):
    check_positive_int("num_samples", num_samples)
    check_positive_int("num_chains", num_chains)
    if isinstance(num_warmup, bool) or not isinstance(num_warmup, int | np.integer):
        raise TypeError(f"num_warmup: expected a non-negative integer, got {num_warmup!r}")
    if num_warmup < 0:
        raise ValueError(f"num_warmup: expected a non-negative integer, got {num_warmup}")
    return int(num_warmup), int(num_samples), int(num_chains)


# -- the compiled pieces -------------------------------------------------------------------
def _sample_phases(kind, carry, dynamic, keys, programs, *, num_warmup, num_samples,
                   num_chains, adapt, single, chunk, show):  # fmt: skip
    """Run warmup and sampling (one dispatch, or chunks under a progress bar); returns the
    per-chunk leapfrog counts of warmup and the per-chunk draws and statistics."""
    (warmup_keys, sample_keys), (warmup_fn, sample_fn, whole_fn) = keys, programs
    total = num_warmup + num_samples
    warmup_length, sample_length = warmup_keys.shape[0], sample_keys.shape[0]
    warmup_counts = []  # leapfrog steps (gradient evaluations) before the kept draws
    draws, stats = [], []
    with tqdm(
        total=total,
        desc=f"{kind} ({num_chains} chains)",
        disable=not show,
        leave=False,
        dynamic_ncols=True,
    ) as bar:
        if single:
            schedule = adaptation.schedule(num_warmup, num_warmup, adapt)
            carry, n_steps, (d, s) = whole_fn(carry, (warmup_keys, schedule), sample_keys, dynamic)
            warmup_counts.append(n_steps)
            draws.append(d)
            stats.append(s)
        elif num_warmup:
            size = chunk(num_warmup)
            schedule = adaptation.schedule(num_warmup, warmup_length, adapt)
            for start in range(0, warmup_length, size):
                sl = slice(start, start + size)
                if adapt:  # padding steps past num_warmup do not adapt
                    carry, n_steps = warmup_fn(
                        carry, (warmup_keys[sl], tuple(a[sl] for a in schedule)), dynamic
                    )
                else:  # fixed step size: warmup is burn-in
                    carry, (_, s) = sample_fn(carry, warmup_keys[sl], dynamic)
                    n_steps = s["n_steps"]
                warmup_counts.append(n_steps)  # summed after sampling: no host sync here
                bar.update(min(size, num_warmup - start))
        if not draws:
            size = chunk(num_samples)
            for start in range(0, sample_length, size):
                carry, (d, s) = sample_fn(carry, sample_keys[start : start + size], dynamic)
                draws.append(d)
                stats.append(s)
                bar.update(min(size, num_samples - start))
    return warmup_counts, draws, stats


def _collect(kind, warmup_counts, draws, stats, observed, *, num_warmup, num_samples,
             adjusted, forces, drop=()):  # fmt: skip
    """The chunks of draws and statistics as ``arviz.InferenceData`` (without the
    posterior sites named in ``drop``)."""
    draws = [{k: v for k, v in d.items() if k not in drop} for d in draws]

    def stack(parts, length):
        # chunks of (draw, chain, ...) -> (chain, draw, ...), padding dropped
        out = jax.tree.map(lambda *a: np.concatenate(a, axis=0)[:length], *parts)
        return jax.tree.map(lambda a: np.swapaxes(a, 0, 1), out)

    posterior = stack(draws, num_samples)
    sample_stats = stack(stats, num_samples)
    warmup_stats = {"n_steps": stack(warmup_counts, num_warmup)} if num_warmup else {}
    warmup_steps = int(np.sum(warmup_stats["n_steps"], dtype=np.int64)) if num_warmup else 0
    attrs = {
        "inference_library": "blackjax",
        "sampler": kind if not forces else "force_field_hmc",
        "num_warmup": num_warmup,
        "adjusted": int(bool(adjusted)),
        "warmup_n_steps": warmup_steps,
    }
    if forces:
        attrs["force_sites"] = ",".join(sorted(forces))
    observed = {k: np.asarray(v) for k, v in observed.items()}
    return inference_data(posterior, sample_stats, observed, attrs, warmup_stats)


# -- the driver ---------------------------------------------------------------------------
def _check_settings(
    kind,
    model,
    *,
    num_warmup,
    num_samples,
    num_chains,
    key=None,
    target_accept=0.8,
    max_tree_depth=10,
    num_integration_steps=10,
    dense_mass=False,
    step_size=None,
    inverse_mass_matrix=None,
    forces=None,
    adjusted=True,
    init_strategy=init_to_uniform,
    progress=None,
    base_space=True,
    return_base=False,
    diagnostics_warn=True,
) -> SimpleNamespace:
    """Every option of :func:`run_nuts` / :func:`run_hmc`, checked before anything is traced
    (:func:`~numpyro_hgf.infer.neutra_nuts` calls it too, before it fits its guide); returns
    them normalised, with ``adapt`` (whether warmup adapts) and ``key`` a typed key."""
    check_instance("model", model, Callable, "a callable NumPyro model")
    num_warmup, num_samples, num_chains = _check_counts(num_warmup, num_samples, num_chains)
    key = jax.random.key(0) if key is None else check_key("key", key)
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))
    flags = {"dense_mass": dense_mass, "adjusted": adjusted, "base_space": base_space}
    flags |= {"return_base": return_base, "diagnostics_warn": diagnostics_warn}
    for name, value in flags.items():
        flags[name] = check_flag(name, value)
    check_progress(progress)
    check_instance("init_strategy", init_strategy, Callable, "a numpyro.infer init strategy")
    if forces is not None and not isinstance(forces, dict):
        raise TypeError(f"forces: expected a dict {{site: F}}, got {type(forces).__name__}")
    for name, force in (forces or {}).items():
        check_instance("forces", name, str, "site names (strings) as keys")
        check_instance(f"forces[{name!r}]", force, Callable, "a callable F(x)")
    forces = dict(forces) if forces else None
    if not flags["adjusted"] and not forces:
        raise ValueError("adjusted: adjusted=False needs learned forces, got forces=None")
    adapt = num_warmup > 0 and flags["adjusted"] and step_size is None
    if kind == "nuts" and not adapt:
        step_size = 1.0  # run_nuts without warmup: unit step size (documented)
    if step_size is None and not adapt:
        raise ValueError(
            "step_size: expected a positive step size when there is no adaptation "
            f"(num_warmup={num_warmup}, adjusted={adjusted}), got None"
        )
    if inverse_mass_matrix is not None:
        check_inverse_mass_matrix("inverse_mass_matrix", inverse_mass_matrix)
    return SimpleNamespace(
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        key=key,
        target_accept=check_fraction("target_accept", target_accept),
        max_tree_depth=check_positive_int("max_tree_depth", max_tree_depth),
        num_integration_steps=check_positive_int("num_integration_steps", num_integration_steps),
        step_size=None if step_size is None else check_positive_float("step_size", step_size),
        inverse_mass_matrix=inverse_mass_matrix,
        forces=forces,
        init_strategy=init_strategy,
        progress=progress,
        adapt=adapt,
        **flags,
    )


def _run(kind, model, args, kwargs, **options):
    o = _check_settings(kind, model, **options)
    num_warmup, num_samples, num_chains = o.num_warmup, o.num_samples, o.num_chains
    adapt, dense_mass, step_size = o.adapt, o.dense_mass, o.step_size

    total = num_warmup + num_samples
    show = progress_enabled(o.progress)
    # with a progress bar, both phases run in chunks of one length (about a tenth of the
    # run; one compiled program per phase); without one, warmup and sampling are one call
    length = math.ceil(total / min(10, total)) if show else None
    single = bool(num_warmup) and adapt and not show  # the common case: one dispatch

    def chunk(n):  # steps per call of a phase of n steps
        return length or n

    def padded(n):  # the phase's steps rounded up to whole chunks (padding steps are dropped)
        return math.ceil(n / chunk(n)) * chunk(n) if n else 0

    warmup_length, sample_length = padded(num_warmup), padded(num_samples)
    key_trace, init_keys, warmup_keys, sample_keys = split_keys(
        o.key, num_chains, warmup_length, sample_length
    )

    dynamic, rebuild, signature = _split_arguments(args, kwargs)
    spec = {
        "kind": kind,
        "target_accept": o.target_accept,
        "max_tree_depth": o.max_tree_depth,
        "num_integration_steps": o.num_integration_steps,
        "dense_mass": dense_mass,
        "forces": o.forces,
        "adjusted": o.adjusted,
        "init_strategy": o.init_strategy,
        "base_space": o.base_space,
    }
    mp, (init_fn, warmup_fn, sample_fn, whole_fn) = prepared(
        model, args, kwargs, key_trace, rebuild, signature, spec
    )
    _warn_hutchinson(mp)

    dim = sum(int(np.size(v)) for v in mp.prototype.values())
    dtype = np.dtype(jnp.result_type(*jax.tree.leaves(mp.prototype), float))
    imm = o.inverse_mass_matrix
    if imm is None:
        imm = np.eye(dim, dtype=dtype) if dense_mass else np.ones(dim, dtype)
    imm = np.asarray(imm, dtype)
    if imm.shape != ((dim, dim) if dense_mass else (dim,)):
        raise ValueError(
            f"inverse_mass_matrix: expected shape {(dim, dim) if dense_mass else (dim,)} for "
            f"the {dim} unconstrained coordinates (dense_mass={dense_mass}), got {imm.shape}"
        )
    step0 = np.asarray(1.0 if step_size is None else step_size, dtype)

    params, carry, is_valid, observed = init_fn(init_keys, dynamic, step0, imm)
    is_valid = np.asarray(is_valid)
    if not is_valid.all():
        chain = int(np.argmin(is_valid))
        one = jax.tree.map(lambda a: a[chain], params)
        raise diagnose_initial_point(mp, one, *rebuild(dynamic))

    warmup_counts, draws, stats = _sample_phases(
        kind, carry, dynamic, (warmup_keys, sample_keys), (warmup_fn, sample_fn, whole_fn),
        num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
        adapt=adapt, single=single, chunk=chunk, show=show,
    )  # fmt: skip

    drop = () if o.return_base else {f"{name}_base" for name in mp.base_sites}
    idata = _collect(
        kind, warmup_counts, draws, stats, observed, num_warmup=num_warmup,
        num_samples=num_samples, adjusted=o.adjusted, forces=o.forces, drop=drop,
    )  # fmt: skip
    if o.diagnostics_warn:
        warn_diagnostics(idata, sampler=f"run_{kind}")
    return idata


def _warn_hutchinson(mp):
    """x-space sampling of a density whose trace is a fixed-probe Hutchinson estimate."""
    sites = hutchinson_sites(mp.trace)
    if sites:
        warnings.warn(
            f"run_nuts/run_hmc: the latent site(s) {sites} are sampled in x space with a "
            "fixed-probe Hutchinson trace in their log_prob: that density is one random draw "
            "of an unbiased estimator of log p, not log p, so the posterior is biased. Use "
            "base_space=True (the default; exact, no trace estimator) or trace='exact'.",
            UserWarning,
            stacklevel=4,
        )


def run_nuts(
    model: Callable,
    *model_args,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 4,
    key=None,
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    dense_mass: bool = False,
    init_strategy=init_to_uniform,
    progress: bool | None = None,
    base_space: bool = True,
    return_base: bool = False,
    diagnostics_warn: bool = True,
    **model_kwargs,
):
    """BlackJAX NUTS on a NumPyro model; returns ``arviz.InferenceData``.

    The model becomes the potential ``U(z) = -log p(x(z), y) - log|det dx/dz|`` on
    unconstrained space (``numpyro.infer.util``); each chain is initialised by
    ``init_strategy`` (retrying invalid points like NumPyro), adapted by
    Stan's windowed scheme (``blackjax.window_adaptation``'s schedule and pieces:
    dual-averaging step size towards ``target_accept``, Welford mass matrix) and sampled by
    ``blackjax.nuts`` (Hoffman & Gelman 2014, multinomial variant; Betancourt 2017),
    chains vectorised.

    Args:
        model: a NumPyro model with continuous latent sites.
        *model_args, **model_kwargs: the model's arguments (arrays are passed as data).
        num_warmup: adaptation steps per chain (``0``: no adaptation, unit step size).
        num_samples: draws kept per chain (``>= 1``).
        num_chains: independent chains (``>= 1``).
        key: ``jax.random`` key (default ``jax.random.key(0)``).
        target_accept: acceptance rate the step size adapts to.
        max_tree_depth: maximum number of trajectory doublings.
        dense_mass: adapt a dense instead of a diagonal mass matrix.
        init_strategy: a ``numpyro.infer.initialization`` strategy.
        progress: progress bar (``None``: on unless ``NUMPYRO_HGF_PROGRESS=0``).
        base_space: sample every latent site drawn from a bijective learned prior
            (``ContinuousFlow``, ``HGFPrior``, ``DiffusionPrior``, ``NormalizingFlow``) in
            its base: ``z ~ base`` at ``{name}_base``, ``x = T(z)`` deterministic at
            ``name`` (:func:`numpyro_hgf.infer.programs.base_space`).  ``False``: x space
            (a prior whose ``log_prob`` uses a fixed-probe Hutchinson trace then warns:
            its posterior is biased).
        return_base: keep the base draws ``{name}_base`` in ``posterior``.
        diagnostics_warn: warn when a split R-hat exceeds 1.01, a bulk ESS is below 100 per
            chain, or a transition diverged (:mod:`numpyro_hgf.infer.diagnostics`).

    Returns:
        ``arviz.InferenceData`` with ``posterior`` (constrained latent values and
        deterministic sites, ``(chain, draw, *shape)``), ``sample_stats`` (``diverging``,
        ``acceptance_rate``, ``step_size``, ``tree_depth`` = number of doublings,
        ``n_steps`` = leapfrog steps = gradient evaluations, ``energy``, ``lp``) and
        ``observed_data``; with warmup, ``warmup_sample_stats["n_steps"]`` (``(chain,
        num_warmup)``) holds the leapfrog steps of each warmup transition and
        ``attrs["warmup_n_steps"]`` their sum (gradient evaluations spent in warmup).

    Raises:
        ValueError: ``num_samples`` / ``num_chains`` < 1, a discrete or ``Delta`` latent
            site (named), a non-finite initial potential (names the site).
    """
    return _run(
        "nuts",
        model,
        model_args,
        model_kwargs,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        key=key,
        target_accept=target_accept,
        max_tree_depth=max_tree_depth,
        dense_mass=dense_mass,
        init_strategy=init_strategy,
        progress=progress,
        base_space=base_space,
        return_base=return_base,
        diagnostics_warn=diagnostics_warn,
    )


def run_hmc(
    model: Callable,
    *model_args,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 4,
    key=None,
    num_integration_steps: int = 10,
    target_accept: float = 0.8,
    dense_mass: bool = False,
    step_size: float | None = None,
    inverse_mass_matrix=None,
    forces: dict[str, Callable] | None = None,
    adjusted: bool = True,
    init_strategy=init_to_uniform,
    progress: bool | None = None,
    base_space: bool = True,
    return_base: bool = False,
    diagnostics_warn: bool = True,
    **model_kwargs,
):
    """Static-trajectory HMC on a NumPyro model, optionally with learned forces.

    Like :func:`run_nuts`, with ``blackjax.hmc`` (``num_integration_steps`` leapfrog steps
    per draw).  With ``forces={"site": F}`` the leapfrog force of that site is the learned
    ``F(x)`` (``x`` the constrained site value, ``F: shape of x -> shape of x``, e.g. an EBM
    score or a diffusion score at small ``t``) while every other term of ``-grad U`` stays
    autodiff (:func:`numpyro_hgf.infer.force_field_hmc`).  ``adjusted=True`` keeps the exact
    Metropolis step on the model's log density (the site's distribution must have a
    ``log_prob``); ``adjusted=False`` takes every proposal (needs ``step_size``; the result
    has ``sample_stats["is_adjusted"] == False`` and ``attrs["adjusted"] == 0``).

    Args:
        step_size, inverse_mass_matrix: fixed values used when there is no adaptation
            (``num_warmup=0`` or ``adjusted=False``); ignored otherwise.
        base_space, return_base, diagnostics_warn: as for :func:`run_nuts` (the sites of
            ``forces`` stay in x space).

    Returns:
        ``arviz.InferenceData`` as :func:`run_nuts` (without ``tree_depth``; with
        ``is_adjusted`` when ``forces`` are given).  With forces, ``n_steps`` counts the
        leapfrog steps; the force is evaluated ``n_steps + 2`` times per draw.
    """
    return _run(
        "hmc",
        model,
        model_args,
        model_kwargs,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        key=key,
        target_accept=target_accept,
        num_integration_steps=num_integration_steps,
        dense_mass=dense_mass,
        step_size=step_size,
        inverse_mass_matrix=inverse_mass_matrix,
        forces=forces,
        adjusted=adjusted,
        init_strategy=init_strategy,
        progress=progress,
        base_space=base_space,
        return_base=return_base,
        diagnostics_warn=diagnostics_warn,
    )
