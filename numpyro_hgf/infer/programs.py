"""The compiled programs of the BlackJAX bridge: initialisation, warmup and sampling loops.

:func:`prepared` builds (or takes from a cache) the :class:`~numpyro_hgf.infer.potential.
ModelPotential` of a model and the jitted programs that :func:`numpyro_hgf.infer.run_nuts`
and :func:`numpyro_hgf.infer.run_hmc` dispatch.  The cache key is the model, the static
arguments with the shapes and dtypes of the array arguments, and the sampler settings, so a
second call with new data of the same shapes neither re-traces the model nor recompiles.

:func:`base_space` is the reparameterisation both samplers apply by default: every latent
site drawn from a bijective learned prior (an ODE model -- ``ContinuousFlow``, ``HGFPrior``,
``DiffusionPrior`` -- or a ``NormalizingFlow``) is sampled in its base, ``z ~ base`` at the
site ``{name}_base``, with ``x = T(z)`` recorded as the deterministic site ``name``
(NumPyro's ``TransformReparam`` on the prior's ``TransformedDistribution``).  The likelihood
sees the same ``x``, and the change of variables makes the posterior of ``x`` exactly the
x-space one; no trace estimator enters the potential.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Iterable

import jax
import numpyro.distributions as dist
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.infer.reparam import Reparam, TransformReparam

from numpyro_hgf._checks import check_instance
from numpyro_hgf.distributions.continuous_flow import ContinuousFlow
from numpyro_hgf.flows.flow import NormalizingFlow
from numpyro_hgf.infer import adaptation
from numpyro_hgf.infer import force_field as ff
from numpyro_hgf.infer.potential import model_potential

__all__ = ["BaseSpaceReparam", "base_space", "learned_prior_of", "prepared", "split_keys"]


# -- sampling learned priors in their base ---------------------------------------------------
def learned_prior_of(fn):
    """The bijective learned prior inside ``fn`` (bare, or under ``expand`` / ``to_event``
    wrappers, as plates leave it), or ``None``."""
    while isinstance(fn, dist.ExpandedDistribution | dist.Independent):
        fn = fn.base_dist
    return fn if isinstance(fn, ContinuousFlow | NormalizingFlow) else None


def _as_transformed(fn):
    if isinstance(fn, dist.ExpandedDistribution):
        return _as_transformed(fn.base_dist).expand(fn.batch_shape)
    if isinstance(fn, dist.Independent):
        return _as_transformed(fn.base_dist).to_event(fn.reinterpreted_batch_ndims)
    return fn.as_transformed() if isinstance(fn, ContinuousFlow) else fn


class BaseSpaceReparam(Reparam):
    """``TransformReparam`` on a learned prior's ``TransformedDistribution``: ``z ~ base``
    at ``{name}_base``, ``x = T(z)`` deterministic at ``name``."""

    def __call__(self, name, fn, obs):
        return TransformReparam()(name, _as_transformed(fn), obs)


class _BaseSpaceConfig:
    """The ``config`` of ``numpyro.handlers.reparam``: :class:`BaseSpaceReparam` for the
    latent sites drawn from a learned bijective prior, except ``exclude``; records them."""

    def __init__(self, exclude=()):
        self.exclude = frozenset(exclude)
        self.sites: set[str] = set()

    def __call__(self, msg):
        if msg["type"] != "sample" or msg["is_observed"] or msg["name"] in self.exclude:
            return None
        if learned_prior_of(msg["fn"]) is None:
            return None
        self.sites.add(msg["name"])
        return BaseSpaceReparam()


def base_space(model, exclude=()):
    """``model`` with every latent learned-prior site sampled in its base.

    For NumPyro's own samplers: ``MCMC(NUTS(nh.infer.base_space(model)))`` samples
    ``z ~ base`` at ``{name}_base`` with ``x = T(z)`` the deterministic site ``name``
    (``numpyro.infer.reparam.TransformReparam`` on ``prior.as_transformed()``).  ``exclude``:
    site names to leave in x space.  The returned handler has ``.config.sites``, the names
    reparameterised so far (filled when the model runs).
    """
    check_instance("model", model, Callable, "a callable NumPyro model")
    # a bare string would be read as its characters: exclude="x" must name the site "x"
    if isinstance(exclude, str) or not isinstance(exclude, Iterable):
        raise TypeError(
            f"exclude: expected a collection of site names (e.g. ('x',)), got {exclude!r}"
        )
    exclude = tuple(exclude)
    for name in exclude:
        check_instance("exclude", name, str, "site names (strings)")
    return handlers.reparam(model, config=_BaseSpaceConfig(exclude))


def hutchinson_sites(model_trace) -> list[str]:
    """Latent sites whose density uses a fixed-probe Hutchinson trace."""
    out = []
    for name, site in model_trace.items():
        if site["type"] == "sample" and not site["is_observed"]:
            prior = learned_prior_of(site["fn"])
            if isinstance(prior, ContinuousFlow) and prior.trace == "hutchinson":
                out.append(name)
    return out


_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 32


def _targets(mp, rebuild, spec: dict, unravel, dyn):
    """``(args, kwargs, init_state(q), kernel(key, state, step, imm))`` for the data
    leaves ``dyn``; positions ``q`` are the flat unconstrained vector."""
    import blackjax

    kind, forces, adjusted = spec["kind"], spec["forces"], spec["adjusted"]
    args, kwargs = rebuild(dyn)

    def logdensity(q):
        return mp.logdensity(unravel(q), args, kwargs)

    if kind == "nuts":
        nuts = blackjax.nuts.build_kernel()
        depth = spec["max_tree_depth"]
        return (
            args,
            kwargs,
            lambda q: blackjax.nuts.init(q, logdensity),
            lambda k, s, h, m: nuts(k, s, logdensity, h, m, max_num_doublings=depth),
        )
    n = spec["num_integration_steps"]
    if not forces:
        hmc = blackjax.hmc.build_kernel()
        return (
            args,
            kwargs,
            lambda q: blackjax.hmc.init(q, logdensity),
            lambda k, s, h, m: hmc(k, s, logdensity, h, m, n),
        )
    force_potential = mp.force_potential(forces)

    def force(q):
        return -jax.grad(lambda q: force_potential(unravel(q), args, kwargs))(q)

    target = logdensity if adjusted else None
    kernel = ff.build_kernel()
    return (
        args,
        kwargs,
        lambda q: ff.init(q, force, target),
        lambda k, s, h, m: kernel(k, s, force, target, h, m, n),
    )


def _build_functions(mp, rebuild, spec: dict):
    """Jitted ``init``, warmup and sampling loops, and both in one program, for one model
    and spec."""
    kind, forces = spec["kind"], spec["forces"]
    adapt_init, adapt_update = adaptation.stan_adaptation(
        not spec["dense_mass"], spec["target_accept"]
    )

    # Chains move on the flat unconstrained vector (the mass matrix's coordinates): a dict
    # of sites would be ravelled and unravelled by BlackJAX in every leapfrog step.
    _, unravel = ravel_pytree(mp.prototype)

    targets = functools.partial(_targets, mp, rebuild, spec, unravel)

    @jax.jit
    def init(keys, dyn, step_size, inverse_mass_matrix):
        """Initial points, sampler and adaptation states, validity per chain, and the
        observed values of these arguments (``observed_data``)."""
        args, kwargs, init_state, _ = targets(dyn)
        params, pe, is_valid = mp.init(keys, args, kwargs)
        states = jax.vmap(lambda p: init_state(ravel_pytree(p)[0]))(params)
        adapt = jax.vmap(lambda _: adapt_init(step_size, inverse_mass_matrix))(pe)
        return params, (states, adapt), is_valid, mp.observed_values(args, kwargs)

    def warmup_loop(carry, xs, dyn, padded=True):
        """Adaptation steps: ``xs = (keys (length, chains), schedule)``; returns the new
        carry and the leapfrog steps per step and chain.  ``padded``: the schedule may hold
        padding steps (``adapting`` false) that move the chains without adapting."""
        args, kwargs, _, kernel = targets(dyn)

        def one_chain(key, state, adapt, schedule):
            stage, window_end, last, adapting = schedule
            new, info = kernel(key, state, adapt.step_size, adapt.inverse_mass_matrix)

            def update():
                return adapt_update(
                    adapt, stage, window_end, last, new.position, info.acceptance_rate
                )

            new_adapt = jax.lax.cond(adapting, update, lambda: adapt) if padded else update()
            return new, new_adapt, info.num_integration_steps

        def step(carry, x):
            keys, schedule = x
            new, new_adapt, n_steps = jax.vmap(one_chain, in_axes=(0, 0, 0, None))(
                keys, *carry, schedule
            )
            return (new, new_adapt), n_steps

        return jax.lax.scan(step, carry, xs)

    def sample_loop(carry, keys, dyn):
        """Steps with the adapted step size and mass matrix (no adaptation work in the
        loop): ``keys (length, chains)``; returns the carry and ``(draws, stats)``."""
        args, kwargs, _, kernel = targets(dyn)

        states, adapt = carry

        def one_chain(key, state, step_size, inverse_mass_matrix):
            new, info = kernel(key, state, step_size, inverse_mass_matrix)
            stats = {
                "diverging": info.is_divergent,
                "acceptance_rate": info.acceptance_rate,
                "step_size": step_size,
                "n_steps": info.num_integration_steps,
                "energy": info.energy,
                "lp": new.logdensity,
            }
            if kind == "nuts":
                stats["tree_depth"] = info.num_trajectory_expansions
            if forces:
                stats["is_adjusted"] = info.is_adjusted
            return new, (new.position, stats)

        def step(states, keys):  # step size and mass matrix are loop constants
            return jax.vmap(one_chain)(keys, states, adapt.step_size, adapt.inverse_mass_matrix)

        states, (positions, stats) = jax.lax.scan(step, states, keys)
        # constrained values and deterministic sites, batched over (draw, chain) after the
        # loop rather than replayed inside every transition
        draws = jax.vmap(jax.vmap(lambda q: mp.postprocess(unravel(q), args, kwargs)))(positions)
        return (states, adapt), (draws, stats)

    @jax.jit
    def whole_run(carry, warmup_xs, sample_keys, dyn):
        """Warmup then sampling in one program: one dispatch, no host round trip."""
        carry, n_steps = warmup_loop(carry, warmup_xs, dyn, padded=False)
        carry, out = sample_loop(carry, sample_keys, dyn)
        return carry, n_steps, out

    return init, jax.jit(warmup_loop), jax.jit(sample_loop), whole_run


def prepared(model, args, kwargs, key, rebuild, signature, spec):
    """``(ModelPotential, (init, warmup, sample, whole))`` for this model, argument
    signature and spec: from the cache when possible, so that a repeated call neither
    re-traces the model nor recompiles (models with ``numpyro.param`` sites are not cached:
    their values are frozen at trace time).  With ``spec["base_space"]`` the model is
    :func:`base_space` of itself (the learned priors of ``forces`` stay in x space), and
    ``mp.base_sites`` names the sites sampled in their base."""
    cache_key = None
    if signature is not None:
        cache_key = (model, signature, tuple(sorted((k, _hashable(v)) for k, v in spec.items())))
        try:
            hash(cache_key)
        except TypeError:  # an unhashable model argument: build without caching
            cache_key = None
    hit = _CACHE.pop(cache_key, None) if cache_key is not None else None
    if hit is None:
        sites = frozenset()
        if spec.get("base_space"):
            model = base_space(model, exclude=spec["forces"] or ())
        mp = model_potential(
            model, args, kwargs, key, init_strategy=spec["init_strategy"], forces=spec["forces"]
        )
        if spec.get("base_space"):
            sites = frozenset(model.config.sites)
        mp.base_sites = sites
        hit = (mp, _build_functions(mp, rebuild, spec))
        if cache_key is None or mp.has_params:
            return hit
    _CACHE[cache_key] = hit  # most recently used last
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return hit


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def split_keys(key, num_chains, warmup_length, sample_length):
    """All the keys of one call in one dispatch: ``(trace, init (chains,), warmup
    (warmup_length, chains), sampling (sample_length, chains))``."""
    key_trace, key_init, key_run = jax.random.split(key, 3)
    key_warmup, key_sample = jax.random.split(key_run)
    return (
        key_trace,
        jax.random.split(key_init, num_chains),
        jax.random.split(key_warmup, (warmup_length, num_chains)),
        jax.random.split(key_sample, (sample_length, num_chains)),
    )


def _hashable(value):
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    return value
