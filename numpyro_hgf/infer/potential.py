"""A NumPyro model as a potential on unconstrained space, for BlackJAX and force fields.

:func:`model_potential` traces a model once and returns a :class:`ModelPotential` whose
pure functions take the model arguments *as data*, so one jitted sampler serves every call
with arrays of the same shapes:

* ``potential(params, args, kwargs)`` -- ``U(z) = -log p(x(z), y) - log|det dx/dz|``
  (``numpyro.infer.util.potential_energy``), ``z`` the unconstrained latent values;
* ``postprocess(params, args, kwargs)`` -- constrained latent values *and* deterministic
  sites, by replaying the model (``numpyro.infer.util.constrain_fn`` with
  ``return_deterministic=True``): what people calling BlackJAX on NumPyro models by hand
  usually forget;
* ``force_potential(forces)`` -- the same potential with the log density of chosen
  learned-prior sites replaced by a zero-valued term whose gradient is the learned force
  ``F(x)`` (:class:`ForceSite`): the chain rule through the site's bijection and every other
  site of the model stay autodiff;
* ``init(keys, args, kwargs)`` -- valid initial points per chain
  (``numpyro.infer.util.find_valid_initial_params``).

Bad models fail early: a discrete latent site, a ``Delta`` latent site, or a non-finite
potential at the initial point raise ``ValueError`` naming the site.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer.initialization import init_to_uniform
from numpyro.infer.util import (
    compute_log_probs,
    constrain_fn,
    find_valid_initial_params,
    potential_energy,
)
from numpyro.primitives import Messenger

from numpyro_hgf._checks import check_instance

__all__ = ["ModelPotential", "ForceSite", "model_potential", "diagnose_initial_point"]


class ForceSite(dist.Distribution):
    """Stand-in for a learned-prior site: ``log_prob`` is ``0`` with gradient ``F(value)``.

    Used only inside the potential that drives leapfrog, so that the site's contribution
    to ``-grad U`` is the learned force while the bijection of its support and the rest of
    the model are differentiated as usual.  ``force: (*batch, *event) -> same shape``.
    """

    def __init__(self, base: dist.Distribution, force: Callable):
        check_instance("base", base, dist.Distribution, "a numpyro Distribution")
        check_instance("force", force, Callable, "a callable F(x)")
        self.base = base
        self.force = force
        super().__init__(base.batch_shape, base.event_shape, validate_args=False)

    @property
    def support(self):
        return self.base.support

    def sample(self, key, sample_shape=()):
        return self.base.sample(key, sample_shape)

    def log_prob(self, value):
        batch = jnp.shape(value)[: jnp.ndim(value) - len(self.event_shape)]
        axes = tuple(range(len(batch), jnp.ndim(value)))
        force = self.force

        @jax.custom_jvp
        def zero(v):
            return jnp.zeros(batch, jnp.result_type(v))

        @zero.defjvp
        def _jvp(primals, tangents):
            (v,), (dv,) = primals, tangents
            return zero(v), jnp.sum(force(v) * dv, axis=axes)

        return zero(value)


class _UseForces(Messenger):
    def __init__(self, fn, forces):
        self.forces = forces
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["name"] in self.forces and not msg["is_observed"]:
            msg["fn"] = ForceSite(msg["fn"], self.forces[msg["name"]])


class ModelPotential:
    """What :func:`model_potential` returns (see the module docstring).

    Attributes:
        model: the prepared model (param sites substituted, default PRNG key).
        latent_sites: names of the continuous latent sites (the keys of ``params``).
        deterministic_sites: names of ``numpyro.deterministic`` sites.
        observed: ``{name: value}`` of the observed sites at trace time (see
            :meth:`observed_values` for other arguments of the same signature).
        prototype: unconstrained values of one prior draw, ``{name: array}``.
        has_params: the model has ``numpyro.param`` sites (their values are frozen at the
            traced values).
    """

    def __init__(self, model, model_trace, prototype, init_strategy):
        self.model = model
        self.trace = model_trace
        self.prototype = prototype
        self.init_strategy = init_strategy
        self.latent_sites = tuple(prototype)
        self.deterministic_sites = tuple(
            k for k, s in model_trace.items() if s["type"] == "deterministic"
        )
        self.observed = {
            k: s["value"]
            for k, s in model_trace.items()
            if s["type"] == "sample" and s["is_observed"]
        }
        self.has_params = any(s["type"] in ("param", "mutable") for s in model_trace.values())
        self._plates = {k: s["value"] for k, s in model_trace.items() if s["type"] == "plate"}

    def potential(self, params, args, kwargs):
        """``U(z)``, a scalar; ``params: {site: unconstrained value}`` (one chain)."""
        return potential_energy(self.model, args, kwargs, params)

    def logdensity(self, params, args, kwargs):
        """``-U(z)``."""
        return -self.potential(params, args, kwargs)

    def force_potential(self, forces: dict[str, Callable]):
        """``U_F(params, args, kwargs)``: the potential whose gradient uses ``forces``."""
        model = _UseForces(self.model, forces)
        return lambda params, args, kwargs: potential_energy(model, args, kwargs, params)

    def observed_values(self, args, kwargs):
        """``{name: value}`` of the observed sites for these arguments (traceable: under
        ``jit`` only the observed values are computed)."""
        model_trace = handlers.trace(handlers.seed(self.model, 0)).get_trace(*args, **kwargs)
        return {
            k: s["value"]
            for k, s in model_trace.items()
            if s["type"] == "sample" and s["is_observed"]
        }

    def postprocess(self, params, args, kwargs):
        """Constrained latent values and deterministic sites of one chain position."""
        return constrain_fn(self.model, args, kwargs, params, return_deterministic=True)

    def init(self, keys, args, kwargs):
        """Initial unconstrained points ``(params, potential, is_valid)`` for ``keys:
        (num_chains,)`` typed keys (or ``(num_chains, 2)`` raw keys)."""
        if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
            keys = jax.random.key_data(keys)
        model = handlers.substitute(self.model, data=self._plates)
        (params, pe, _), is_valid = find_valid_initial_params(
            keys,
            model,
            init_strategy=self.init_strategy,
            model_args=args,
            model_kwargs=kwargs,
            prototype_params=self.prototype,
        )
        return params, pe, is_valid


def model_potential(
    model, args, kwargs, key, *, init_strategy=init_to_uniform, forces=None
) -> ModelPotential:
    """Trace ``model(*args, **kwargs)`` once and build its :class:`ModelPotential`.

    Raises:
        TypeError: ``model`` is not callable.
        ValueError: a latent site is discrete or a ``Delta``; a name in ``forces`` is not a
            continuous latent site of the model.
    """
    from numpyro.infer.util import _prepare_model_for_potential

    if not callable(model):
        raise TypeError(f"model: expected a callable NumPyro model, got {type(model).__name__}")
    check_instance("init_strategy", init_strategy, Callable, "a numpyro.infer init strategy")
    init_strategy = init_strategy if isinstance(init_strategy, partial) else init_strategy()
    seeded = handlers.substitute(handlers.seed(model, key), substitute_fn=init_strategy)
    model_trace = handlers.trace(seeded).get_trace(*args, **kwargs)
    prototype = {}
    for name, site in model_trace.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        fn = site["fn"]
        if fn.support.is_discrete:
            raise ValueError(
                f"model: site '{name}' is a discrete latent variable "
                f"({type(fn).__name__}); gradient-based samplers need continuous latent "
                "sites. Marginalise it out in the model or observe it."
            )
        if isinstance(fn, dist.Delta):
            raise ValueError(
                f"model: site '{name}' is a latent Delta distribution; use "
                "numpyro.deterministic for derived values."
            )
        prototype[name] = biject_to(fn.support).inv(site["value"])
    if not prototype:
        raise ValueError("model: expected at least one continuous latent site, got none")
    for name, force in (forces or {}).items():
        if name not in prototype:
            raise ValueError(
                f"forces: expected names of continuous latent sites {sorted(prototype)}, "
                f"got {name!r}"
            )
        if not callable(force):
            raise TypeError(f"forces[{name!r}]: expected a callable F(x), got {type(force)}")
    prepared = _prepare_model_for_potential(model, model_trace, enum=False)
    return ModelPotential(prepared, model_trace, prototype, init_strategy)


def diagnose_initial_point(mp: ModelPotential, params, args, kwargs) -> ValueError:
    """A ``ValueError`` naming the site that makes the potential (or its gradient) at
    ``params`` (one chain, unconstrained) non-finite."""

    def terms(params):  # one compiled program rather than op-by-op dispatch
        constrained = constrain_fn(mp.model, args, kwargs, params)
        log_probs, _ = compute_log_probs(mp.model, args, kwargs, constrained)
        return log_probs, jax.grad(mp.potential)(params, args, kwargs)

    log_probs, grads = jax.jit(terms)(params)
    for name, value in log_probs.items():
        if not np.isfinite(np.asarray(value)):
            kind = "observed" if name in mp.observed else "latent"
            return ValueError(
                f"model: the initial potential is not finite: the log density of {kind} "
                f"site '{name}' is {float(value)} at the initial point. Check the data and "
                "the parameters of that site's distribution."
            )
    for name, g in grads.items():
        if not np.all(np.isfinite(np.asarray(g))):
            return ValueError(
                f"model: the gradient of the initial potential with respect to site "
                f"'{name}' is not finite."
            )
    for name, value in params.items():
        if not np.all(np.isfinite(np.asarray(value))):
            return ValueError(f"model: the initial value of site '{name}' is not finite.")
    return ValueError(
        "model: the initial potential is not finite (the change-of-variables terms of the "
        f"latent sites {sorted(params)} overflow)."
    )
