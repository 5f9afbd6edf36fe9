"""Builders: ``build_flow`` (a :class:`NormalizingFlow` from a few hyper-parameters) and
``flax_flow`` (register a flow's networks inside a NumPyro model or guide)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpyro.distributions as dist

from numpyro_hgf._checks import (
    check_choice,
    check_hidden_sizes,
    check_positive_float,
    check_positive_int,
)
from numpyro_hgf.flows.autoregressive import MaskedAutoregressiveTransform
from numpyro_hgf.flows.base import NetworkTransform, as_key
from numpyro_hgf.flows.coupling import AffineCouplingTransform, check_coupling_dim
from numpyro_hgf.flows.planar import PlanarTransform
from numpyro_hgf.flows.radial import RadialTransform
from numpyro_hgf.flows.spline import SplineCouplingTransform

__all__ = ["FLOW_KINDS", "build_flow", "flax_flow"]

FLOW_KINDS = ("planar", "radial", "realnvp", "maf", "spline")

# kind -> {option: (default, validator)}; all options are JSON-serialisable scalars
_OPTIONS = {
    "planar": {},
    "radial": {},
    "realnvp": {"log_scale_bound": (3.0, check_positive_float)},
    "maf": {"log_scale_bound": (3.0, check_positive_float)},
    "spline": {"num_bins": (8, check_positive_int), "bound": (5.0, check_positive_float)},
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


def build_flow(kind: str, event_dim: int, num_layers: int = 4, hidden=(64, 64), key=None, **opts):
    """Build a :class:`~numpyro_hgf.distributions.NormalizingFlow` on ``R^event_dim``.

    The base is ``Normal(0, 1)`` on ``(event_dim,)``; layers alternate which half is
    transformed (couplings) or reverse the autoregressive order (MAF) from one layer to
    the next.  Coupling and MAF conditioners start at the identity (zero output layer).

    Args:
        kind: one of ``"planar"``, ``"radial"``, ``"realnvp"``, ``"maf"``, ``"spline"``.
        event_dim: dimension ``d`` of the event (``>= 2`` for ``"realnvp"``/``"spline"``).
        num_layers: number of transforms.
        hidden: hidden widths of the conditioner nets (ignored by planar/radial, but
            validated).
        key: PRNG key (or int seed; ``None`` means 0) for the initial params.
        **opts: kind-specific options: ``log_scale_bound`` (realnvp, maf; default 3.0),
            ``num_bins`` (spline; 8) and ``bound`` (spline; 5.0).

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
    # one compiled initialisation per architecture (eager flax init dispatches op by op)
    build = _compiled_builder(kind, event_dim, num_layers, hidden, tuple(sorted(opts.items())))
    return build(as_key(key))


@functools.lru_cache(maxsize=64)
def _compiled_builder(kind, event_dim, num_layers, hidden, opts):
    return jax.jit(functools.partial(_build, kind, event_dim, num_layers, hidden, dict(opts)))


def _build(kind, event_dim, num_layers, hidden, opts, key):
    from numpyro_hgf.distributions.normalizing_flow import NormalizingFlow

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
    return NormalizingFlow(base, transforms, config=config)


def flax_flow(name: str, flow):
    """Register the networks of ``flow`` in the current NumPyro model or guide.

    For every network transform ``i`` (in order) this declares the module with
    :func:`numpyro.contrib.module.flax_module` under the name ``f"{name}_{i}"`` (param site
    ``f"{name}_{i}$params"``), using the flow's current params as initial values (not a
    random re-initialisation), and returns the flow rebuilt with the params NumPyro hands
    back, so ``numpyro.infer.SVI`` optimises them::

        def guide():
            q = nh.flows.flax_flow("q", template_flow)
            numpyro.sample("x", q)

    Outside any handler it returns the flow unchanged.
    """
    import numpyro
    from numpyro.contrib.module import flax_module

    transforms, params = list(flow.transforms), []
    for i, t in enumerate(transforms):
        if not isinstance(t, NetworkTransform):
            continue
        site = f"{name}_{i}"
        # an inner substitute provides the initial value of the param site; outer handlers
        # (SVI's substitute of the optimised params) still override it
        with numpyro.handlers.substitute(data={site + "$params": t.params}):
            net = flax_module(site, t.module, *t.init_args())
        params.append(net.args[0])
    return flow.with_params(tuple(params))
