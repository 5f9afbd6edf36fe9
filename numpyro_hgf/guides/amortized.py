"""Amortized encoder guides for local latent variables.

Kingma & Welling (2014); Gershman & Goodman (2014).

A model with one latent ``z_i`` per datum inside a plate (a VAE, PPCA, an NLME model's
random effects) gets a guide whose per-datum variational parameters are the output of one
shared encoder of the observed data, ``phi_i = phi(y_i; psi)``:

* :class:`AmortizedNormalGuide`: ``q(z_i | y_i) = N(mu(y_i), diag sigma(y_i)^2)``;
* :class:`AmortizedFlowGuide`: ``z_i = T(xi_i; phi(y_i))``, ``xi_i ~ N(0, I)``, with ``T`` a
  masked autoregressive flow (MAF layers whose MADE conditioners take the encoder's context
  vector) followed by the affine map ``loc(y_i) + scale(y_i) * .`` (Rezende & Mohamed
  2015: per-subject invertible transforms, density by the change of variables).

The encoder is a ``flax.linen`` module registered with
:func:`numpyro.contrib.module.flax_module`, so ``numpyro.infer.SVI`` optimises it.  The guide
re-creates the model's plates (from a prototype trace, as NumPyro's autoguides do; pass
``create_plates`` to control subsampling), and with a subsampled plate it encodes only the
rows of the minibatch.  Latent sites with a constrained support are sampled in the
unconstrained space and pushed through ``biject_to(support)``.

Only ``latent_site`` is handled: global latent variables of the model need another guide
(combine them with :class:`numpyro.infer.autoguide.AutoGuideList`) or are ``numpyro.param``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import ExitStack

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.contrib.module import flax_module
from numpyro.distributions import constraints
from numpyro.distributions.transforms import (
    AffineTransform,
    IndependentTransform,
    ReshapeTransform,
    biject_to,
)
from numpyro.infer.autoguide import AutoGuide

from numpyro_hgf._checks import (
    check_hidden_sizes,
    check_instance,
    check_key,
    check_positive_float,
    check_positive_int,
)

__all__ = ["AmortizedNormalGuide", "AmortizedFlowGuide"]


def _first_arg(*args, **kwargs):
    if not args:
        raise TypeError(
            "encoder_input: the default takes the model's first positional argument, but the "
            "model was called without positional arguments; pass encoder_input=..."
        )
    return args[0]


def _is_real(support) -> bool:
    if support is constraints.real:
        return True
    return isinstance(support, constraints.independent) and support.base_constraint is (
        constraints.real
    )


class _AmortizedGuide(AutoGuide):
    """Shared machinery: prototype, plates, encoder registration and subsampling."""

    def __init__(
        self,
        model,
        encoder: nn.Module | None,
        latent_site: str,
        *,
        encoder_input: Callable | None = None,
        hidden=(32, 32),
        init_scale: float = 0.1,
        prefix: str = "amortized",
        create_plates=None,
    ):
        check_instance("model", model, Callable, "a callable NumPyro model")
        check_instance("prefix", prefix, str, "a string")
        if create_plates is not None and not callable(create_plates):
            raise TypeError(f"create_plates: expected a callable or None, got {create_plates!r}")
        if not isinstance(latent_site, str):
            raise TypeError(
                f"latent_site: expected the name of a sample site, got {type(latent_site)}"
            )
        if encoder is not None and not isinstance(encoder, nn.Module):
            raise TypeError(
                f"encoder: expected a flax.linen Module (or None), got {type(encoder).__name__}"
            )
        if encoder_input is not None and not callable(encoder_input):
            raise TypeError(f"encoder_input: expected a callable, got {type(encoder_input)}")
        self.encoder = encoder
        self.latent_site = latent_site
        self.encoder_input = _first_arg if encoder_input is None else encoder_input
        self.hidden = check_hidden_sizes("hidden", hidden)
        self._init_scale = check_positive_float("init_scale", init_scale)
        super().__init__(model, prefix=prefix, create_plates=create_plates)

    # -- prototype -----------------------------------------------------------------------
    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        site = self.prototype_trace.get(self.latent_site)
        if site is None or site["type"] != "sample" or site["is_observed"]:
            latents = [
                k
                for k, s in self.prototype_trace.items()
                if s["type"] == "sample" and not s["is_observed"]
            ]
            raise ValueError(
                f"latent_site: expected the name of a latent sample site of the model, one of "
                f"{latents}, got {self.latent_site!r}"
            )
        if not site["cond_indep_stack"]:
            raise ValueError(
                f"latent_site: expected {self.latent_site!r} to be a local latent inside a "
                "plate (one value per datum), got a site outside every plate"
            )
        fn = site["fn"]
        self._support = fn.support
        self._event_shape = tuple(fn.event_shape)
        unconstrained = biject_to(fn.support).inv(site["value"])
        self._latent_shape = tuple(jnp.shape(unconstrained))[len(fn.batch_shape) :]
        self._latent_dim = int(math.prod(self._latent_shape))
        self._frames = list(site["cond_indep_stack"])
        x = jnp.asarray(self.encoder_input(*args, **kwargs))
        self._input_event_dim = x.ndim - len(self._frames)
        if self._input_event_dim < 0:
            raise ValueError(
                f"encoder_input: expected an array with a leading axis per plate of "
                f"{self.latent_site!r} ({len(self._frames)}), got shape {x.shape}"
            )
        if self.encoder is None:
            from numpyro_hgf.nn import MLP

            # zero output layer: q starts at N(0, init_scale^2) whatever the input scale
            self.encoder = MLP(self.hidden, self._encoder_out_dim(), zero_init_output=True)
        self._check_encoder(x)

    def _encoder_out_dim(self) -> int:
        raise NotImplementedError

    def _check_encoder(self, x):
        rows = x.reshape((-1,) + x.shape[x.ndim - self._input_event_dim :])[:1]
        shape = jax.eval_shape(
            lambda r: self.encoder.apply(self.encoder.init(jax.random.key(0), r), r), rows
        ).shape
        if shape[-1:] != (self._encoder_out_dim(),):
            raise ValueError(
                f"encoder: expected an output of width {self._encoder_out_dim()} for latent "
                f"{self.latent_site!r} of shape {self._latent_shape}, got output shape {shape}"
            )

    def _create_plates(self, *args, **kwargs) -> dict:
        """The plates of the latent site as the model makes them for *these* arguments.

        NumPyro's autoguides freeze the plate sizes seen at the prototype; here the model's
        plate statements are re-read on every call (under ``jax.eval_shape``: tracing only,
        nothing runs), so the same guide serves a subsampled SVI step and a full-data
        ``sample_posterior`` / ``Predictive`` call.  ``create_plates`` overrides this.
        """
        if self.create_plates is not None:
            return super()._create_plates(*args, **kwargs)
        found = {}

        def read_plates():
            with handlers.block():
                tr = handlers.trace(handlers.seed(self.model, 0)).get_trace(*args, **kwargs)
            for name, site in tr.items():
                if site["type"] == "plate":
                    found[name] = site["args"]
            return jnp.zeros(())

        jax.eval_shape(read_plates)
        plates = {}
        for frame in self._frames:
            size, subsample_size = found.get(frame.name, (frame.size, None))
            plates[frame.name] = numpyro.plate(
                frame.name, size, dim=frame.dim, subsample_size=subsample_size
            )
        return plates

    # -- encoding ------------------------------------------------------------------------
    def _subsample_input(self, x, plates):
        """Rows of ``x`` for the current (sub)sample of every plate of the latent site."""
        for frame in self._frames:
            plate = plates[frame.name]
            axis = x.ndim + frame.dim - self._input_event_dim
            if axis < 0:
                raise ValueError(
                    f"encoder_input: shape {x.shape} has no axis for plate {frame.name!r}"
                )
            size = x.shape[axis]
            if size == plate.size and plate.subsample_size < plate.size:
                x = jnp.take(x, plate._indices, axis=axis)
            elif size not in (plate.subsample_size, 1):
                raise ValueError(
                    f"encoder_input: expected {plate.size} (full data) or {plate.subsample_size} "
                    f"(minibatch) rows on the axis of plate {frame.name!r}, got {size}"
                )
        return x

    def _encode(self, x):
        """``x: (*batch, *input_event) -> (*batch, out_dim)`` through the registered encoder."""
        net = flax_module(f"{self.prefix}_encoder", self.encoder, x)
        return net(x)

    def _split_loc_scale(self, out, d=None):
        d = self._latent_dim if d is None else d
        loc = out[..., :d]
        scale = jax.nn.softplus(out[..., d : 2 * d] + _softplus_inv(self._init_scale))
        return loc, scale + 1e-6

    def _unflatten(self, flat_dist):
        """A distribution on ``(*batch, latent_dim)`` -> on the site's unconstrained shape,
        then on its support."""
        transforms = []
        if self._latent_shape != (self._latent_dim,):
            transforms.append(ReshapeTransform(self._latent_shape, (self._latent_dim,)))
        if not _is_real(self._support):
            transforms.append(biject_to(self._support))
        return dist.TransformedDistribution(flat_dist, transforms) if transforms else flat_dist

    def _posterior(self, out):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        plates = self._create_plates(*args, **kwargs)
        x = jnp.asarray(self.encoder_input(*args, **kwargs))
        with ExitStack() as stack:
            for frame in self._frames:
                stack.enter_context(plates[frame.name])
            x = self._subsample_input(x, plates)
            q = self._posterior(self._encode(x))
            value = numpyro.sample(self.latent_site, q)
        return {self.latent_site: value}

    # -- posterior -----------------------------------------------------------------------
    def sample_posterior(self, rng_key, params, *args, sample_shape=(), **kwargs):
        """Draws of ``latent_site`` from ``q(z | data)``: ``(*sample_shape, *site_shape)``.

        Call it with the full data (no subsampling) to get one draw per datum.
        """
        check_key("rng_key", rng_key)
        if not isinstance(sample_shape, tuple | list):
            raise TypeError(f"sample_shape: expected a tuple of sizes, got {sample_shape!r}")
        sample_shape = tuple(check_positive_int("sample_shape", n) for n in sample_shape)
        if self.prototype_trace is None:
            with handlers.seed(rng_seed=0), handlers.block():
                self._setup_prototype(*args, **kwargs)
        num = int(np.prod(sample_shape)) if sample_shape else 1
        keys = jax.random.split(rng_key, num)

        def one(key):
            guide = handlers.substitute(handlers.seed(self, key), data=params)
            return handlers.block(guide)(*args, **kwargs)[self.latent_site]

        draws = jax.jit(jax.vmap(one))(keys)
        return {self.latent_site: draws.reshape(tuple(sample_shape) + draws.shape[1:])}

    def get_posterior(self, params, *args, **kwargs):
        """``q(z | data)`` as a NumPyro distribution (full data; batch = the plates)."""
        if self.prototype_trace is None:
            with handlers.seed(rng_seed=0), handlers.block():
                self._setup_prototype(*args, **kwargs)
        x = jnp.asarray(self.encoder_input(*args, **kwargs))
        with handlers.block(), handlers.substitute(data=params), handlers.seed(rng_seed=0):
            return self._posterior(self._encode(x))


def _softplus_inv(y: float) -> float:
    return float(np.log(np.expm1(y)))


class AmortizedNormalGuide(_AmortizedGuide):
    """Diagonal Gaussian ``q(z_i | y_i) = N(mu(y_i), diag sigma(y_i)^2)`` from an encoder.

    Usage::

        def model(x, num_total=None):
            W = numpyro.param("W", ...)
            with numpyro.plate("data", x.shape[0]):
                z = numpyro.sample("z", dist.Normal(0, 1).expand([2]).to_event(1))
                numpyro.sample("x", dist.Normal(z @ W, 0.5).to_event(1), obs=x)

        guide = nh.guides.AmortizedNormalGuide(model, None, "z", hidden=(32,))
        svi = SVI(model, guide, optax.adam(1e-2), Trace_ELBO())

    Args:
        model: the NumPyro model.
        encoder: a ``flax.linen`` module mapping an encoder input row
            ``(*batch, *input_event)`` to ``(*batch, 2 * latent_dim)`` (location, raw scale);
            ``None`` builds ``nh.nn.MLP(hidden, 2 * latent_dim, zero_init_output=True)``.
        latent_site: name of the local latent site (inside the data plate(s)).
        encoder_input: ``(*model_args, **model_kwargs) -> array`` whose leading axes are the
            plates of the latent site (default: the model's first positional argument).
        hidden: widths of the default encoder.
        init_scale: posterior scale when the raw scale output is 0 (``softplus``
            parametrisation, ``sigma = softplus(raw + softplus^{-1}(init_scale))``).
        prefix: prefix of the encoder's param site (``f"{prefix}_encoder$params"``).
        create_plates: as in NumPyro's autoguides (control subsampling of the guide's plates).
    """

    def _encoder_out_dim(self) -> int:
        return 2 * self._latent_dim

    def _posterior(self, out):
        loc, scale = self._split_loc_scale(out)
        return self._unflatten(dist.Normal(loc, scale).to_event(1))

    def encode(self, params, x):
        """Per-datum ``(loc, scale)``, each ``(*batch, latent_dim)``, in the unconstrained space.

        ``x`` is an encoder input ``(*batch, *input_event)``; ``params`` the SVI params.
        """
        name = f"{self.prefix}_encoder$params"
        if name not in params:
            raise ValueError(f"params: expected a param site {name!r}, got {sorted(params)}")
        out = self.encoder.apply({"params": params[name]}, jnp.asarray(x))
        return self._split_loc_scale(out, out.shape[-1] // 2)


class AmortizedFlowGuide(_AmortizedGuide):
    """Conditional-flow guide ``z_i = loc(y_i) + scale(y_i) * T(xi_i; c(y_i))``, ``xi ~ N(0, I)``.

    ``T`` is ``num_layers`` masked autoregressive layers
    (:class:`~numpyro_hgf.flows.MaskedAutoregressiveTransform`, alternating orders) whose MADE
    conditioners read the context ``c(y_i)``; the encoder outputs
    ``(loc, raw scale, context)`` of widths ``(latent_dim, latent_dim, context_dim)``.  The MAF
    layers start at the identity, so the guide starts as :class:`AmortizedNormalGuide`.
    Density: ``log q(z) = log N(xi) - log|det dT/dxi| - sum log scale`` (change of variables).

    Args (beyond :class:`AmortizedNormalGuide`):
        num_layers: MAF layers.
        flow_hidden: MADE widths (each ``>= latent_dim - 1``).
        context_dim: width of the context vector fed to every MADE.
        log_scale_bound: soft clamp of the MAF log-scales.
    """

    def __init__(
        self,
        model,
        encoder: nn.Module | None,
        latent_site: str,
        *,
        num_layers: int = 2,
        flow_hidden=(32, 32),
        context_dim: int = 8,
        log_scale_bound: float = 3.0,
        **kwargs,
    ):
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.flow_hidden = check_hidden_sizes("flow_hidden", flow_hidden)
        self.context_dim = check_positive_int("context_dim", context_dim)
        self.log_scale_bound = check_positive_float("log_scale_bound", log_scale_bound)
        self._layers = None
        super().__init__(model, encoder, latent_site, **kwargs)

    def _encoder_out_dim(self) -> int:
        return 2 * self._latent_dim + self.context_dim

    def _setup_prototype(self, *args, **kwargs):
        from numpyro_hgf.flows import MaskedAutoregressiveTransform

        super()._setup_prototype(*args, **kwargs)
        d = self._latent_dim
        reverse = tuple(range(d - 1, -1, -1))
        keys = jax.random.split(jax.random.key(0), self.num_layers)
        context = jnp.zeros((self.context_dim,))
        self._layers = [
            MaskedAutoregressiveTransform.create(
                k,
                d,
                self.flow_hidden,
                order=reverse if i % 2 else None,
                log_scale_bound=self.log_scale_bound,
                context=context,
            )
            for i, k in enumerate(keys)
        ]

    def _posterior(self, out):
        d = self._latent_dim
        loc, scale = self._split_loc_scale(out)
        context = out[..., 2 * d :]
        layers = []
        for i, layer in enumerate(self._layers):
            site = f"{self.prefix}_maf_{i}"
            with handlers.substitute(data={site + "$params": layer.params}):
                net = flax_module(site, layer.module, *layer.init_args())
            layers.append(layer.with_params(net.args[0]).with_context(context))
        base = dist.Normal(jnp.zeros_like(loc), 1.0).to_event(1)
        affine = IndependentTransform(AffineTransform(loc, scale), 1)
        flat = dist.TransformedDistribution(base, [*layers, affine])
        return self._unflatten(flat)
