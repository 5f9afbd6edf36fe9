"""``AutoFlowGuide``: an :class:`~numpyro.infer.autoguide.AutoContinuous` guide on any flow.

The posterior over the flattened unconstrained latent ``z: (latent_dim,)`` is

    z = loc + scale * T(eps),    eps ~ N(0, I),

where ``T`` is a flow from :func:`numpyro_hgf.flows.build_flow` (bnaf by default; planar,
radial, realnvp, maf or spline) whose params are registered with
``numpyro.contrib.module.flax_module``, and ``loc`` / ``scale`` are guide params initialised
from the model's
``init_loc_fn`` (as in ``AutoDiagonalNormal``).  The flow's params are initialised from
the key ``SVI.init`` is given (``flax_module``'s own init), so different keys give
different starts.  Coupling and MAF flows start at the identity (the guide starts as a
diagonal Normal centred at the init locations); a BNAF layer starts as a random monotone
map.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.transforms import AffineTransform, IndependentTransform
from numpyro.infer.autoguide import AutoContinuous
from numpyro.infer.initialization import init_to_uniform

from numpyro_hgf._checks import (
    check_hidden_sizes,
    check_instance,
    check_positive_float,
    check_positive_int,
)

__all__ = ["AutoFlowGuide"]


class AutoFlowGuide(AutoContinuous):
    """Flow guide over the whole unconstrained latent space.

    Usage::

        guide = AutoFlowGuide(model)                     # one BNAF layer, (16, 16) blocks
        guide = AutoFlowGuide(model, flow="spline", num_layers=4, hidden=(32, 32))
        svi = SVI(model, guide, optax.adam(3e-3), Trace_ELBO())

    The default flow is a block neural autoregressive flow (``"bnaf"``, De Cao et al. 2019;
    twice as wide as NumPyro's ``AutoBNAFNormal``): on NumPyro's dual-moon target it is the
    only kind of the package that represents both moons at the example's budget (coupling
    and MAF guides settle on one moon; docs/benchmarks.md).  Which moon(s) a single run
    finds depends on its seed; :func:`numpyro_hgf.infer.fit_flow_guide` runs several starts
    in one vectorised program and keeps the best ELBO.

    Args:
        model: a NumPyro model (no local latent variables, as for every
            ``AutoContinuous`` guide).
        flow: flow kind for :func:`numpyro_hgf.flows.build_flow`.
        num_layers, hidden: flow depth and conditioner widths (``None``: 1 layer of
            ``(16, 16)`` blocks for ``"bnaf"``, else 3 layers of ``(32, 32)``).
        init_scale: initial ``scale`` of the diagonal affine part (``None``: 1.0 for
            ``"bnaf"``, whose random initial layer already has unit-order spread; 0.1 for
            the kinds that start at the identity).
        prefix, init_loc_fn: as in NumPyro's autoguides.
        flow_options: extra keyword arguments for ``build_flow`` (e.g. ``num_bins``).
    """

    def __init__(
        self,
        model,
        *,
        flow: str = "bnaf",
        num_layers: int | None = None,
        hidden=None,
        init_scale: float | None = None,
        prefix: str = "auto",
        init_loc_fn=init_to_uniform,
        **flow_options,
    ):
        from numpyro_hgf.flows import FLOW_KINDS
        from numpyro_hgf.flows.flow import _OPTIONS, _check_opts

        check_instance("model", model, Callable, "a callable NumPyro model")
        if not isinstance(flow, str) or flow not in FLOW_KINDS:
            raise ValueError(f"flow: expected one of {FLOW_KINDS}, got {flow!r}")
        check_instance("prefix", prefix, str, "a string")
        check_instance("init_loc_fn", init_loc_fn, Callable, "a numpyro.infer init strategy")
        unknown = sorted(set(flow_options) - set(_OPTIONS[flow]))
        if unknown:  # else only SVI.init, which builds the flow, would find them
            raise TypeError(
                f"flow_options: expected options of flow kind {flow!r} among "
                f"{sorted(_OPTIONS[flow])}, got {unknown}"
            )
        _check_opts(flow, flow_options)  # their values
        bnaf = flow == "bnaf"
        self.flow_kind = flow
        self.num_layers = check_positive_int(
            "num_layers", (1 if bnaf else 3) if num_layers is None else num_layers
        )
        self.hidden = check_hidden_sizes(
            "hidden", ((16, 16) if bnaf else (32, 32)) if hidden is None else hidden
        )
        self._init_scale = check_positive_float(
            "init_scale", (1.0 if bnaf else 0.1) if init_scale is None else init_scale
        )
        self.flow_options = flow_options
        self._template = None
        super().__init__(model, prefix=prefix, init_loc_fn=init_loc_fn)

    def _setup_prototype(self, *args, **kwargs):
        from numpyro_hgf.flows import build_flow

        super()._setup_prototype(*args, **kwargs)
        key = numpyro.prng_key()
        self._template = build_flow(
            self.flow_kind,
            self.latent_dim,
            num_layers=self.num_layers,
            hidden=self.hidden,
            key=jax.random.key(0) if key is None else key,
            **self.flow_options,
        )

    def get_base_dist(self):
        return dist.Normal(jnp.zeros(self.latent_dim), 1.0).to_event(1)

    def _get_posterior(self):
        from numpyro_hgf.flows import flax_flow

        flow = flax_flow(f"{self.prefix}_flow", self._template, fresh_init=True)
        loc = numpyro.param(f"{self.prefix}_loc", self._init_latent)
        scale = numpyro.param(
            f"{self.prefix}_scale",
            jnp.full(self.latent_dim, self._init_scale),
            constraint=constraints.softplus_positive,
        )
        affine = IndependentTransform(AffineTransform(loc, scale), 1)
        transforms = [*flow.transforms, affine]
        return dist.TransformedDistribution(self.get_base_dist(), transforms)
