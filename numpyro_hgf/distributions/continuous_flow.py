"""``ContinuousFlow`` and ``HGFPrior``: ODE models as NumPyro distributions.

Rows "continuous flow" and "HGF" of the package's table: the learned field is a velocity
``v(x, t)`` (a ``flax.linen`` module and its params), the path is the ODE
``dx/dt = v(x, t)`` between a base at ``t0`` and the data at ``t1``, and sampling and the
log-likelihood go through the one shared ODE module :mod:`numpyro_hgf.samplers.ode`.

Both are pytrees whose data are the params (and the base's arrays); the module, the
times, the solver and the trace settings are static, so they pass through ``jit``,
``vmap`` and ``lax.map`` and do not recompile when only the params change.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions import constraints

from numpyro_hgf._checks import (
    check_choice,
    check_event_shape,
    check_event_shape_arg,
    check_field_fits,
    check_finite_float,
    check_key,
    check_positive_int,
)
from numpyro_hgf.flows._batched_params import (
    leading_batch_shape,
    map_over_param_batch,
    register_param_batch,
    sample_over_param_batch,
)
from numpyro_hgf.flows.ode_map import ODEMapTransform
from numpyro_hgf.io import register_model
from numpyro_hgf.nn.config import module_config, module_from_config
from numpyro_hgf.paths.base import path_from_config
from numpyro_hgf.paths.hamiltonian import HamiltonianPath, ReflectionPath
from numpyro_hgf.samplers.ode import TRACE_ESTIMATORS, ODESolver, ode_log_prob, solve_ode

__all__ = ["ContinuousFlow", "HGFPrior"]

EXACT_TRACE_MAX_DIM = 16


def event_shape_of(module, event_shape, role: str) -> tuple[int, ...]:
    """``event_shape`` as a tuple, or ``(module.out_dim,)`` when it is ``None``."""
    if event_shape is None:
        out_dim = getattr(module, "out_dim", None)
        if out_dim is None:
            raise ValueError(
                f"event_shape: expected the data shape (the {role} module does not state its "
                "out_dim), got None"
            )
        event_shape = (out_dim,)
    return check_event_shape_arg("event_shape", event_shape)


def _flatten_batch(value, event_shape):
    batch_shape = value.shape[: value.ndim - len(event_shape)]
    return value.reshape((-1, *event_shape)), batch_shape


# The solves run through ``jax.jit`` with the flow itself as a (pytree) argument: its
# params and base arrays are traced, its module, times and solver settings are static
# (hashable aux data).  Without this, every eager ``log_prob`` / ``sample`` call would
# hand diffrax a fresh closure and recompile the whole solve (seconds per call); with
# it, calls on flows of the same configuration reuse one compiled function.  Inside a
# user's ``jit`` / ``grad`` / ``vmap`` the inner ``jit`` is inlined as usual.
def masked_log_prob(distribution, value):
    """``distribution.log_prob(value)``, ``-inf`` outside its support (a uniform base's
    ``log_prob`` is a constant everywhere; the density of the model is not)."""
    inside = distribution.support(value)
    return jnp.where(inside, distribution.log_prob(value), -jnp.inf)


def _inside_point(flow):
    """A point of the support (the base's mean when it has one, else 0)."""
    try:
        point = jnp.broadcast_to(flow.base.mean, flow.event_shape)
    except (NotImplementedError, AttributeError, TypeError, ValueError):
        point = jnp.zeros(flow.event_shape)
    return jnp.where(flow.support(point), point, jnp.zeros_like(point))


@partial(jax.jit, static_argnums=(2,))
def _jit_log_prob(flow, flat, solver):
    # Values outside the support (inf and NaN included) are solved at a point inside it and
    # masked after: a solve through inf (or out of a box whose field grows outside it)
    # would exhaust the adaptive solver for the whole batch, and a NaN cotangent would
    # poison the gradient.
    inside = flow.support(flat)
    expand = (slice(None),) + (None,) * (flat.ndim - 1)
    safe = jnp.where(inside[expand], flat, _inside_point(flow).astype(flat.dtype))
    result = ode_log_prob(
        flow.field,
        safe,
        flow.t0,
        flow.t1,
        partial(masked_log_prob, flow.base),
        solver,
        trace=flow.trace,
        key=flow.probe_key,
        num_probes=flow.num_probes,
    )
    # zero density outside the support; NaN in, NaN out
    lp = jnp.where(inside, result.value, -jnp.inf)
    lp = jnp.where(jnp.any(jnp.isnan(flat.reshape(flat.shape[0], -1)), axis=-1), jnp.nan, lp)
    return result._replace(value=lp)


@partial(jax.jit, static_argnums=(2, 3))
def _jit_map(flow, flat, solver, direction):
    """The ODE map on a flat batch: ``"forward"`` (z -> x), ``"inverse"`` (x -> z), or
    ``"log_det"`` (``log |det dT/dz|`` at ``z = T^{-1}(x)``, exact trace)."""
    if direction == "forward":
        return solve_ode(flow.field, flat, flow.t0, flow.t1, solver).value
    if direction == "inverse":
        return solve_ode(flow.field, flat, flow.t1, flow.t0, solver).value
    zero = lambda z: jnp.zeros(z.shape[:1], z.dtype)
    # log p(x) = log p_base(z) - log|det dT/dz|, so the integral alone is -log|det|
    return -ode_log_prob(flow.field, flat, flow.t0, flow.t1, zero, solver, trace="exact").value


@partial(jax.jit, static_argnums=(2, 3))
def _jit_sample(flow, key, sample_shape, solver):
    z = flow.base.sample(key, sample_shape)
    flat, batch_shape = _flatten_batch(z, flow.event_shape)
    result = solve_ode(flow.field, flat, flow.t0, flow.t1, solver)
    return result.value.reshape(*batch_shape, *flow.event_shape), result.nfe


@register_model("continuous_flow")
@register_param_batch
class ContinuousFlow(dist.Distribution):
    """Continuous normalizing flow ``dx/dt = v(x, t)`` with base ``p_{t0}`` at ``t0``.

    ``sample`` draws ``z ~ base`` and integrates from ``t0`` to ``t1``; ``log_prob``
    integrates the data back to ``t0`` with the instantaneous change of variables
    (:func:`numpyro_hgf.samplers.ode.ode_log_prob`)::

        log p(y) = log p_{t0}(z) - int_{t0}^{t1} tr(dv/dx)(x_t, t) dt

    Args:
        velocity: a ``flax.linen`` module, ``velocity.apply({"params": params}, x, t)``
            with ``x: (batch, *event_shape)``, ``t: ()``.
        params: its inner params pytree.
        base: the base distribution (event shape = the model's event shape).
        t0, t1: base and data times (``t1 < t0`` allowed).
        trace: ``"exact"``, ``"hutchinson"``, or ``None`` for exact when the event has at
            most 16 dimensions, Hutchinson otherwise.
        solver: :class:`~numpyro_hgf.samplers.ode.ODESolver` (or a name) used by ``log_prob``.
        sample_solver: solver used by ``sample`` (default: ``solver``).
        num_probes: Hutchinson probes.
        probe_key: key of the Hutchinson probes; fixed, so ``log_prob`` is a deterministic
            function of the value (as NUTS needs).  Change it with :meth:`with_probe_key`.

    ``log_prob`` is differentiable in the value and the params (diffrax adjoint), so the
    flow works as a prior under NUTS and SVI, and ``fit_flow`` trains it by maximum
    likelihood (FFJORD); :func:`numpyro_hgf.train.fit_velocity` trains it by flow matching.

    The flow exposes its bijection: :attr:`transform` is the ODE map ``z -> x`` as a NumPyro
    ``Transform`` (:class:`~numpyro_hgf.flows.ode_map.ODEMapTransform`, solved with
    ``solver``, its log-Jacobian from the exact trace) and :meth:`as_transformed` is
    ``TransformedDistribution(base, transform)``, on which
    ``numpyro.infer.reparam.TransformReparam`` samples the prior in its base (``z ~ base``,
    ``x = T(z)`` deterministic); :func:`numpyro_hgf.infer.run_nuts` does so by default
    (:func:`numpyro_hgf.infer.base_space`).  The flow itself is not a
    ``TransformedDistribution`` on purpose: NumPyro flattens
    ``TransformedDistribution(flow, t)`` into ``base`` and the flow's transforms, which
    would swap the flow's own ``sample`` (a diffusion sampler) and ``log_prob`` (its
    trace estimator) for the ODE map's.
    """

    arg_constraints = {}
    _field_role = "velocity"  # the network's name in the messages of check_field_fits
    pytree_data_fields = ("params", "base", "probe_key")
    pytree_aux_fields = (
        "velocity",
        "_param_ndims",
        "t0",
        "t1",
        "trace",
        "solver",
        "sample_solver",
        "num_probes",
    )

    def __init__(
        self,
        velocity,
        params,
        base,
        t0=0.0,
        t1=1.0,
        *,
        trace: str | None = None,
        solver="tsit5",
        sample_solver=None,
        num_probes: int = 1,
        probe_key=None,
        validate_args=None,
    ):
        if not isinstance(base, dist.Distribution):
            raise TypeError(f"base: expected a numpyro Distribution, got {type(base).__name__}")
        if base.batch_shape != ():
            raise ValueError(f"base: expected batch_shape (), got {base.batch_shape}")
        if not hasattr(velocity, "apply"):
            raise TypeError(
                f"velocity: expected a flax.linen module, got {type(velocity).__name__}"
            )
        t0, t1 = check_finite_float("t0", t0), check_finite_float("t1", t1)
        if t0 == t1:
            raise ValueError(f"t1: expected a time different from t0={t0}, got {t1}")
        dim = math.prod(base.event_shape)
        if trace is None:
            trace = "exact" if dim <= EXACT_TRACE_MAX_DIM else "hutchinson"
        self.velocity = velocity
        self.params = params
        self._param_ndims = tuple(int(jnp.ndim(x)) for x in jax.tree.leaves(params))
        self.base = base
        self.t0, self.t1 = float(t0), float(t1)
        self.trace = check_choice("trace", trace, TRACE_ESTIMATORS)
        self.solver = ODESolver.of(solver)
        self.sample_solver = self.solver if sample_solver is None else ODESolver.of(sample_solver)
        self.num_probes = check_positive_int("num_probes", num_probes)
        if probe_key is not None:
            check_key("probe_key", probe_key)
        self.probe_key = jax.random.key(0) if probe_key is None else probe_key
        if params is not None:  # None: a template whose settings a trainer checks first
            check_field_fits(self._field_role, velocity, params, base.event_shape, self.t1)
        super().__init__(batch_shape=(), event_shape=base.event_shape, validate_args=validate_args)

    # -- the bijection -----------------------------------------------------------------------
    @property
    def transform(self) -> ODEMapTransform:
        """The ODE map ``z -> x`` as a NumPyro ``Transform`` (base support -> support)."""
        return ODEMapTransform(self)

    def as_transformed(self) -> dist.TransformedDistribution:
        """``TransformedDistribution(base, transform)``: the same prior as a NumPyro
        transformed distribution (``numpyro.infer.reparam.TransformReparam`` samples it in
        its base).  Its ``log_prob`` is the exact-trace density (two solves: ``inv`` and the
        log-Jacobian); it samples with ``solver``, through the ODE map."""
        return dist.TransformedDistribution(self.base, self.transform)

    def _map(self, value, direction):
        check_event_shape("value", value, self.event_shape)
        flat, batch_shape = _flatten_batch(jnp.asarray(value), self.event_shape)
        out = _jit_map(self, flat, self.solver, direction)
        return out.reshape(batch_shape + out.shape[1:])

    def map_forward(self, z):
        """``x = T(z)``: ``z: (*batch, *event_shape)`` solved from ``t0`` to ``t1``."""
        return self._map(z, "forward")

    def map_inverse(self, x):
        """``z = T^{-1}(x)``: solved from ``t1`` back to ``t0``."""
        return self._map(x, "inverse")

    def map_log_abs_det(self, x):
        """``log |det dT/dz|`` at ``z = T^{-1}(x)`` (exact trace): ``(*batch,)``."""
        return self._map(x, "log_det")

    @constraints.dependent_property(is_discrete=False)
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    # -- the field ----------------------------------------------------------------------
    def field(self, x, t):
        """``v(x, t)``: ``x: (batch, *event_shape)``, ``t: ()`` -> ``(batch, *event_shape)``."""
        return self.velocity.apply({"params": self.params}, x, t)

    def with_params(self, params):
        """The same flow with new ``params`` (differentiable; no re-initialisation)."""
        data, aux = self.tree_flatten()
        names = type(self).gather_pytree_data_fields()
        data = tuple(params if n == "params" else v for n, v in zip(names, data, strict=True))
        return type(self).tree_unflatten(aux, data)

    def with_probe_key(self, key):
        """The same flow with other Hutchinson probes."""
        data, aux = self.tree_flatten()
        names = type(self).gather_pytree_data_fields()
        data = tuple(key if n == "probe_key" else v for n, v in zip(names, data, strict=True))
        return type(self).tree_unflatten(aux, data)

    def with_solver(self, solver=None, sample_solver=None):
        """The same flow with another ``solver`` (``log_prob`` and the ODE map) and/or
        ``sample_solver`` (an :class:`~numpyro_hgf.samplers.ode.ODESolver` or a solver name;
        ``None`` keeps the current one).  A ``DiffusionPrior``'s own sampler is unchanged."""
        data, aux = self.tree_flatten()
        names = type(self).gather_pytree_aux_fields()
        new = {"solver": solver, "sample_solver": sample_solver}
        aux = tuple(
            ODESolver.of(new[n]) if new.get(n) is not None else v
            for n, v in zip(names, aux, strict=True)
        )
        return type(self).tree_unflatten(aux, data)

    @property
    def param_batch_shape(self) -> tuple[int, ...]:
        """Leading dims of the params beyond the network's own (``()`` for one flow): what
        ``numpyro.contrib.control_flow.scan`` stacks; ``batch_shape`` then starts with it."""
        return leading_batch_shape(self.params, self._param_ndims)

    # -- sampling and density -----------------------------------------------------------
    def sample_with_nfe(self, key, sample_shape=(), solver=None):
        """``(samples: (*sample_shape, *event_shape), nfe)``; ``solver`` overrides the default."""
        check_key("key", key)
        solver = self.sample_solver if solver is None else ODESolver.of(solver)
        return _jit_sample(self, key, tuple(sample_shape), solver)

    def sample(self, key, sample_shape=()):
        """``(*sample_shape, *param_batch_shape, *event_shape)`` draws (independent keys per
        stacked flow)."""
        check_key("key", key)
        batch = self.param_batch_shape
        if batch:
            return sample_over_param_batch(self, batch, type(self).sample, key, sample_shape)
        return self.sample_with_nfe(key, sample_shape)[0]

    def log_prob_with_nfe(self, value, solver=None):
        """``(log_prob: value.shape[:-event_dim], nfe)``; ``solver`` overrides the default."""
        check_event_shape("value", value, self.event_shape)
        solver = self.solver if solver is None else ODESolver.of(solver)
        flat, batch_shape = _flatten_batch(jnp.asarray(value), self.event_shape)
        result = _jit_log_prob(self, flat, solver)
        return result.value.reshape(batch_shape), result.nfe

    def log_prob(self, value):
        """``log p(value)``: ``-inf`` outside the support (and where the backward solve
        leaves the base's support), ``nan`` for a NaN value, ``nan`` when the solve fails;
        never raises.  With ``validate_args=True`` an out-of-support or non-finite value
        warns (NumPyro's ``validate_sample``)."""
        batch = self.param_batch_shape
        if batch:  # stacked flows: value (..., *batch, *event) -> (..., *batch)
            lp = map_over_param_batch(self, batch, type(self).log_prob, value, self.event_dim)
        else:
            lp = self.log_prob_with_nfe(value)[0]
        if self._validate_args:
            self._validate_sample(value)
        return lp

    # -- saving ------------------------------------------------------------------------
    def _common_config(self) -> dict:
        return {
            "velocity": module_config(self.velocity),
            "event_shape": list(self.event_shape),
            "trace": self.trace,
            "solver": vars(self.solver),
            "sample_solver": vars(self.sample_solver),
            "num_probes": self.num_probes,
        }

    def save_config(self) -> dict:
        if not isinstance(self.base, dist.Independent) or not isinstance(
            self.base.base_dist, dist.Normal
        ):
            raise TypeError(
                "model: expected a ContinuousFlow with a Normal(loc, scale).to_event() base "
                f"to save, got base {type(self.base).__name__}"
            )
        normal = self.base.base_dist
        return {
            **self._common_config(),
            "t0": self.t0,
            "t1": self.t1,
            "base_loc": jnp.broadcast_to(normal.loc, self.event_shape).tolist(),
            "base_scale": jnp.broadcast_to(normal.scale, self.event_shape).tolist(),
        }

    @staticmethod
    def _from_common_config(config: dict) -> tuple:
        """``(field module, template params, event_shape, options)`` from a saved config:
        the part every ODE model (this class, ``HGFPrior``, ``DiffusionPrior``) shares."""
        velocity = module_from_config(config["velocity"])
        event_shape = tuple(config["event_shape"])
        x = jnp.zeros((1, *event_shape))
        params = velocity.init(jax.random.key(0), x, jnp.zeros(()))["params"]
        keys = ("trace", "solver", "sample_solver", "num_probes")
        return velocity, params, event_shape, {k: config[k] for k in keys}

    @classmethod
    def from_config(cls, config: dict):
        velocity, params, event_shape, options = cls._from_common_config(config)
        base = dist.Normal(jnp.asarray(config["base_loc"]), jnp.asarray(config["base_scale"]))
        base = base.to_event(len(event_shape))
        return cls(velocity, params, base, config["t0"], config["t1"], **options)


@register_model("hgf_prior")
class HGFPrior(ContinuousFlow):
    """Hamiltonian generative flow prior (Holderrieth et al., NeurIPS 2024, Sec. 5).

    ``x_T ~ pi_T`` (the path's base at ``T``), then ``dx/dt = V(x, t)`` from ``T`` back to
    ``0``, where ``V`` is the learned optimal velocity predictor ``E[v_t | x_t = x]`` of
    the path (see :mod:`numpyro_hgf.paths` and :func:`numpyro_hgf.train.fit_velocity`).

    Args:
        velocity, params: the velocity network and its params.
        path: a :class:`~numpyro_hgf.paths.HamiltonianPath`.
        event_shape: the data shape; inferred from ``velocity.out_dim`` when it has one.
        base: override the path's ``pi_T`` (e.g. the exact ``x_T`` marginal in tests).
        Other keyword arguments as for :class:`ContinuousFlow`.

    The reflection path has a uniform base on its box, and the prior's support is the box.
    """

    pytree_aux_fields = ("path",)

    def __init__(self, velocity, params, path, *, event_shape=None, base=None, **kwargs):
        if not isinstance(path, HamiltonianPath):
            raise TypeError(f"path: expected a HamiltonianPath, got {type(path).__name__}")
        event_shape = event_shape_of(velocity, event_shape, "velocity")
        self.path = path
        if base is not None and not isinstance(base, dist.Distribution):
            raise TypeError(f"base: expected a numpyro Distribution, got {type(base).__name__}")
        if base is not None and tuple(base.event_shape) != event_shape:
            raise ValueError(
                f"base: expected event_shape {event_shape}, got {tuple(base.event_shape)}"
            )
        base = path.base(tuple(event_shape)) if base is None else base
        super().__init__(velocity, params, base, path.horizon, 0.0, **kwargs)

    @constraints.dependent_property(is_discrete=False)
    def support(self):
        if isinstance(self.path, ReflectionPath):
            box = constraints.interval(self.path.low, self.path.high)
            return constraints.independent(box, len(self.event_shape))
        return super().support

    def save_config(self) -> dict:
        return {**self._common_config(), "path": self.path.config()}

    @classmethod
    def from_config(cls, config: dict):
        velocity, params, event_shape, options = cls._from_common_config(config)
        path = path_from_config(config["path"])
        return cls(velocity, params, path, event_shape=event_shape, **options)
