"""``NormalizingFlow``: a finite chain of learned bijections as a NumPyro distribution.

Row "normalizing flow" of the package's table: learned field = conditioner nets of the
bijections (:mod:`numpyro_hgf.flows`), path = the chain itself, objective = maximum
likelihood::

    flow = nh.flows.build_flow("spline", 2, num_layers=4, hidden=(64, 64), key=key)
    loss = lambda params: -flow.with_params(params).log_prob(x).mean()

By the change of variables (Rezende & Mohamed 2015, eq. 1; Papamakarios et al. 2021,
eq. 2), for ``y = T_L o ... o T_1(u)`` with ``u ~ base``::

    log p(y) = log p_base(T^{-1}(y)) - sum_l log |det J_{T_l}(x_{l-1})|
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.contrib.module import flax_module
from numpyro.distributions import Distribution, TransformedDistribution
from numpyro.distributions.transforms import Transform

from numpyro_hgf._checks import (
    as_key,
    check_choice,
    check_event_shape,
    check_flag,
    check_hidden_sizes,
    check_instance,
    check_positive_float,
    check_positive_int,
)
from numpyro_hgf.flows._batched_params import (
    map_over_param_batch,
    register_param_batch,
    sample_over_param_batch,
)
from numpyro_hgf.flows.autoregressive import MaskedAutoregressiveTransform
from numpyro_hgf.flows.base import BuilderConfig, NetworkTransform
from numpyro_hgf.flows.block_autoregressive import BlockAutoregressiveTransform
from numpyro_hgf.flows.coupling import AffineCouplingTransform, check_coupling_dim
from numpyro_hgf.flows.planar import PlanarTransform
from numpyro_hgf.flows.radial import RadialTransform
from numpyro_hgf.flows.spline import SplineCouplingTransform, check_num_bins
from numpyro_hgf.io import register_model

__all__ = ["NormalizingFlow", "FLOW_KINDS", "build_flow", "flax_flow"]


@register_model("normalizing_flow")
@register_param_batch
class NormalizingFlow(BuilderConfig, TransformedDistribution):
    """A ``TransformedDistribution`` whose transforms are learned bijections.

    Args:
        base: base distribution, typically ``Normal(jnp.zeros(d), 1).to_event(1)``.
        transforms: a transform or a list of them, applied base -> data in order
            (:class:`~numpyro_hgf.flows.base.NetworkTransform` layers hold the params;
            other NumPyro transforms, e.g. ``PermuteTransform``, may be mixed in).
        config: the :func:`~numpyro_hgf.flows.build_flow` arguments (set by
            ``build_flow``; needed to save the flow).
        validate_args: NumPyro's argument validation.

    Shapes: ``sample(key, sample_shape) -> (*sample_shape, *batch_shape, *event_shape)``;
    ``log_prob(value)`` with ``value: (..., *event_shape)`` -> ``(...)``.  The event shape is
    always checked (a static check, jit-safe).  Params with extra leading dims ``B`` (as
    ``numpyro.contrib.control_flow.scan`` stacks them) are a batch of flows:
    ``param_batch_shape = B`` leads ``batch_shape`` once NumPyro promotes it, and the networks
    are mapped over ``B`` (:mod:`numpyro_hgf.flows._batched_params`).

    The sample is reparameterized (``has_rsample``: a differentiable map of the base draw).
    With ``validate_args=True`` (or ``numpyro.enable_validation()`` before
    :func:`build_flow`), ``log_prob`` of a value outside ``real_vector`` (NaN, inf) warns and
    gives ``-inf``; unchecked, a NaN gives NaN and an inf gives NaN or ``-inf`` (never an
    exception; under NUTS a divergence).

    It is a pytree: the params are data, the modules and the config are static, so it can
    be an argument of ``jit``/``vmap``/``lax.map`` and changing only the params never
    recompiles.
    """

    pytree_aux_fields = ("_config",)
    CONFIG_KEYS = ("kind", "event_dim", "num_layers", "hidden", "opts")
    BUILDER = "numpyro_hgf.flows.build_flow"

    def __init__(self, base, transforms, *, config=None, validate_args=None):
        if not isinstance(base, Distribution):
            raise TypeError(f"base: expected a numpyro Distribution, got {type(base).__name__}")
        if isinstance(transforms, Transform):
            transforms = [transforms]
        if not isinstance(transforms, list | tuple) or not all(
            isinstance(t, Transform) for t in transforms
        ):
            raise TypeError(
                "transforms: expected a Transform or a list of Transforms, got "
                f"{type(transforms).__name__}"
            )
        if not transforms:
            raise ValueError("transforms: expected at least one Transform, got an empty list")
        # canonical JSON string: hashable and comparable, so it is safe static aux data
        self._config = self._encode_config(config)
        super().__init__(base, list(transforms), validate_args=validate_args)

    # -- config and params --------------------------------------------------------------
    @property
    def params(self) -> tuple:
        """Tuple of the params of every network transform, in order."""
        return tuple(t.params for t in self.transforms if isinstance(t, NetworkTransform))

    def with_params(self, params) -> NormalizingFlow:
        """A new flow with the same modules, base and config and the given ``params``
        (a sequence like :attr:`params`); differentiable in ``params``."""
        params = tuple(params)
        n = sum(isinstance(t, NetworkTransform) for t in self.transforms)
        if len(params) != n:
            raise ValueError(
                f"params: expected a sequence of {n} per-transform params, got {len(params)}"
            )
        it = iter(params)
        transforms = [
            t.with_params(next(it)) if isinstance(t, NetworkTransform) else t
            for t in self.transforms
        ]
        names = type(self).gather_pytree_data_fields()
        data, aux = self.tree_flatten()
        data = tuple(
            transforms if k == "transforms" else v for k, v in zip(names, data, strict=True)
        )
        return type(self).tree_unflatten(aux, data)

    def register(self, name: str) -> NormalizingFlow:
        """Register the networks in the current NumPyro model/guide (see
        :func:`numpyro_hgf.flows.flax_flow`) and return the flow with the registered params."""
        return flax_flow(name, self)

    @property
    def param_batch_shape(self) -> tuple[int, ...]:
        """Extra leading dims of the network params (``()`` for one flow)."""
        shapes = [t.param_batch_shape for t in self.transforms if isinstance(t, NetworkTransform)]
        return tuple(jnp.broadcast_shapes(*shapes)) if shapes else ()

    # -- densities -----------------------------------------------------------------------
    def log_prob(self, value, intermediates=None):
        """``log p(value)``; ``value: (..., *event_shape)`` -> ``(...)``."""
        check_event_shape("value", value, self.event_shape)
        batch = self.param_batch_shape
        if batch:  # a batch of flows: map the networks (recomputes any intermediates)
            if self._validate_args:
                self._validate_sample(value)
            event_ndim = len(self.event_shape)
            return map_over_param_batch(self, batch, _log_prob, value, event_ndim)
        return super().log_prob(value, intermediates)

    def sample(self, key, sample_shape=()):
        batch = self.param_batch_shape
        if batch:
            return sample_over_param_batch(self, batch, _sample, key, sample_shape)
        return super().sample(key, sample_shape)

    def sample_with_intermediates(self, key, sample_shape=()):
        if self.param_batch_shape:
            return self.sample(key, sample_shape), []
        return super().sample_with_intermediates(key, sample_shape)

    # -- saving ----------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict) -> NormalizingFlow:
        """Rebuild the architecture (template params from key 0) from :meth:`save_config`."""
        config = cls._checked_config(config)
        return build_flow(
            config["kind"],
            config["event_dim"],
            num_layers=config["num_layers"],
            hidden=tuple(config["hidden"]),
            key=0,
            **config["opts"],
        )

    def __repr__(self) -> str:
        cfg = self.config
        what = (
            f"{cfg['kind']}, {cfg['num_layers']} layers"
            if cfg
            else f"{len(self.transforms)} transforms"
        )
        return f"NormalizingFlow({what}, event_shape={self.event_shape})"


def _log_prob(d, value):
    return d.log_prob(value)


def _sample(d, key, sample_shape):
    return d.sample(key, sample_shape)


# -- building flows from a few hyper-parameters ---------------------------------------------
FLOW_KINDS = ("planar", "radial", "realnvp", "maf", "spline", "bnaf")

# kind -> {option: (default, validator)}; all options are JSON-serialisable scalars
_OPTIONS = {
    "planar": {},
    "radial": {},
    "realnvp": {"log_scale_bound": (3.0, check_positive_float)},
    "maf": {"log_scale_bound": (3.0, check_positive_float)},
    "spline": {"num_bins": (8, check_num_bins), "bound": (5.0, check_positive_float)},
    "bnaf": {"min_slope": (0.01, check_positive_float)},
}


def _check_opts(kind: str, opts: dict) -> dict:
    allowed = _OPTIONS[kind]
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise TypeError(
            f"opts: unexpected option(s) {unknown} for flow kind {kind!r}; expected some of "
            f"{sorted(allowed) or '(none)'}, got {sorted(opts)}"
        )
    return {
        name: check(name, opts.get(name, default)) for name, (default, check) in allowed.items()
    }


def build_flow(
    kind: str,
    event_dim: int,
    num_layers: int = 4,
    hidden=(64, 64),
    key=None,
    validate_args=None,
    **opts,
):
    """Build a :class:`~numpyro_hgf.distributions.NormalizingFlow` on ``R^event_dim``.

    The base is ``Normal(0, 1)`` on ``(event_dim,)``; layers alternate which half is
    transformed (couplings) or reverse the autoregressive order (MAF) from one layer to
    the next.  Coupling and MAF conditioners start at the identity (zero output layer).

    Args:
        kind: one of ``"planar"``, ``"radial"``, ``"realnvp"``, ``"maf"``, ``"spline"``,
            ``"bnaf"`` (block neural autoregressive, De Cao et al. 2019: one-pass sampling
            and density of its draws, a numerical inverse for other values).
        event_dim: dimension ``d`` of the event (``>= 2`` for ``"realnvp"``/``"spline"``).
        num_layers: number of transforms.
        hidden: hidden widths of the conditioner nets (ignored by planar/radial, but
            validated); for ``"bnaf"`` the per-coordinate block widths ``hidden_factors``
            (a hidden layer has ``event_dim * h`` units).
        key: PRNG key (or int seed; ``None`` means 0) for the initial params.
        validate_args: NumPyro's argument validation of the flow; ``None`` (default) takes
            NumPyro's global flag (``numpyro.enable_validation()``) at the time of the call.
        **opts: kind-specific options: ``log_scale_bound`` (realnvp, maf; default 3.0),
            ``num_bins`` (spline; 8), ``bound`` (spline; 5.0) and ``min_slope`` (bnaf; 0.01, the
            leaky-tanh slope).

    Returns:
        A ``NormalizingFlow`` with event shape ``(event_dim,)`` whose ``config`` records
        these arguments (so it can be saved with ``numpyro_hgf.io.save``).
    """
    check_choice("kind", kind, FLOW_KINDS)
    event_dim = check_positive_int("event_dim", event_dim)
    if kind in ("realnvp", "spline"):
        check_coupling_dim(event_dim)
    num_layers = check_positive_int("num_layers", num_layers)
    hidden = check_hidden_sizes("hidden", hidden)
    opts = _check_opts(kind, opts)
    if validate_args is not None:
        check_flag("validate_args", validate_args)
    # read outside jit: inside, the global flag of the first trace would be baked in
    validate_args = bool(Distribution._validate_args if validate_args is None else validate_args)
    # one compiled initialisation per architecture (eager flax init dispatches op by op)
    build = _compiled_builder(
        kind, event_dim, num_layers, hidden, tuple(sorted(opts.items())), validate_args
    )
    return build(as_key(key))


@functools.lru_cache(maxsize=64)
def _compiled_builder(kind, event_dim, num_layers, hidden, opts, validate_args=False):
    build = functools.partial(_build, kind, event_dim, num_layers, hidden, dict(opts))
    return jax.jit(functools.partial(build, validate_args=validate_args))


def _build(kind, event_dim, num_layers, hidden, opts, key, validate_args=False):
    keys = jax.random.split(key, num_layers)
    reverse = tuple(range(event_dim - 1, -1, -1))
    transforms = []
    for i, k in enumerate(keys):
        odd = i % 2 == 1
        if kind == "planar":
            t = PlanarTransform.create(k, event_dim)
        elif kind == "radial":
            t = RadialTransform.create(k, event_dim)
        elif kind == "realnvp":
            t = AffineCouplingTransform.create(k, event_dim, hidden, swap=odd, **opts)
        elif kind == "maf":
            t = MaskedAutoregressiveTransform.create(
                k, event_dim, hidden, order=reverse if odd else None, **opts
            )
        elif kind == "bnaf":
            t = BlockAutoregressiveTransform.create(k, event_dim, hidden, reverse=odd, **opts)
        else:
            t = SplineCouplingTransform.create(k, event_dim, hidden, swap=odd, **opts)
        transforms.append(t)

    base = dist.Normal(jnp.zeros(event_dim), 1.0).to_event(1)
    config = {
        "kind": kind,
        "event_dim": event_dim,
        "num_layers": num_layers,
        "hidden": list(hidden),
        "opts": opts,
    }
    return NormalizingFlow(base, transforms, config=config, validate_args=validate_args)


def flax_flow(name: str, flow, *, fresh_init: bool = False):
    """Register the networks of ``flow`` in the current NumPyro model or guide.

    For every network transform ``i`` (in order) this declares the module with
    :func:`numpyro.contrib.module.flax_module` under the name ``f"{name}_{i}"`` (param site
    ``f"{name}_{i}$params"``), using the flow's current params as initial values (not a
    random re-initialisation), and returns the flow rebuilt with the params NumPyro hands
    back, so ``numpyro.infer.SVI`` optimises them::

        def guide():
            q = nh.flows.flax_flow("q", template_flow)
            numpyro.sample("x", q)

    Outside any handler it returns the flow unchanged.  ``fresh_init=True`` initialises
    the param sites by ``flax_module``'s own ``module.init`` from the current NumPyro PRNG
    key instead (so ``SVI.init`` with different keys gives different starting flows: what
    a multi-start fit needs; the zero-output layers of couplings and MAF still start at the
    identity).
    """
    check_instance("name", name, str, "a site name (str)")
    check_instance("flow", flow, NormalizingFlow, "a NormalizingFlow (e.g. from build_flow)")
    check_flag("fresh_init", fresh_init)
    transforms, params = list(flow.transforms), []
    for i, t in enumerate(transforms):
        if not isinstance(t, NetworkTransform):
            continue
        site = f"{name}_{i}"
        if fresh_init and numpyro.primitives._PYRO_STACK:  # under a handler: a PRNG key
            params.append(flax_module(site, t.module, *t.init_args()).args[0])
            continue
        # an inner substitute provides the initial value of the param site; outer handlers
        # (SVI's substitute of the optimised params) still override it
        with numpyro.handlers.substitute(data={site + "$params": t.params}):
            net = flax_module(site, t.module, *t.init_args())
        params.append(net.args[0])
    return flow.with_params(tuple(params))
