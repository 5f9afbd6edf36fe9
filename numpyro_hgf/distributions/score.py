"""``ScoreModel``: a trained score (or energy) network that is not a distribution.

Score matching (:func:`numpyro_hgf.train.fit_score`, :func:`numpyro_hgf.train.fit_hsm`) of a
network that outputs the score ``s(x) ~ grad log p(x)`` -- or a noise-conditional score
``s(x, sigma)`` (NCSN) -- learns a vector field with no density attached.  This is its
saveable ``(module, params)`` container; a learned *energy* becomes an
:class:`~numpyro_hgf.distributions.EnergyBasedModel` instead.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks import check_choice, check_event_shape_arg, check_noise_levels, describe
from numpyro_hgf._checks.arrays import check_real_array
from numpyro_hgf.distributions.energy import EnergyBasedModel
from numpyro_hgf.io import register_model
from numpyro_hgf.nn.config import module_config, module_from_config
from numpyro_hgf.objectives.score_matching import score_from_energy, score_from_network

__all__ = ["ScoreModel", "energy_model"]


@register_model("score_model")
@jax.tree_util.register_pytree_node_class
class ScoreModel:
    """A trained score model: a ``flax.linen`` field and its params.

    ``kind="score"``: the network outputs the score, ``s(x) = network(x)`` (or
    ``network(x, sigma)`` when ``sigmas`` is set: a noise-conditional NCSN score).
    ``kind="energy"``: the network is an energy, ``s(x) = -grad E(x)``.

    It unpacks as ``module, params = model`` (the package's ``(module, params)``
    convention), is a pytree whose leaves are the params, and is saveable with
    :func:`numpyro_hgf.save` when the module is one of :mod:`numpyro_hgf.nn`'s registered
    modules.
    """

    def __init__(self, network, params, event_shape, *, kind: str = "score", sigmas=None):
        self.network = network
        self.params = params
        self.event_shape = check_event_shape_arg("event_shape", event_shape)
        self.kind = check_choice("kind", kind, ("score", "energy"))
        if sigmas is not None:
            check_real_array("sigmas", sigmas)  # strings: a TypeError naming sigmas
            check_noise_levels("sigmas", sigmas)
        self.sigmas = None if sigmas is None else tuple(float(s) for s in np.ravel(sigmas))
        apply = score_from_energy(network) if kind == "energy" else score_from_network(network)
        self._score_fn = apply

    def __iter__(self):
        return iter((self.network, self.params))

    # a pytree whose data are the params: passes through jit without recompiling
    def tree_flatten(self):
        return (self.params,), (self.network, self.event_shape, self.kind, self.sigmas)

    @classmethod
    def tree_unflatten(cls, aux, children):
        network, event_shape, kind, sigmas = aux
        return cls(network, children[0], event_shape, kind=kind, sigmas=sigmas)

    def __repr__(self) -> str:
        return (
            f"ScoreModel({type(self.network).__name__}, kind={self.kind!r}, "
            f"event_shape={self.event_shape}, sigmas={self.sigmas})"
        )

    @property
    def score_fn(self) -> Callable:
        """``(params, x, *cond) -> (batch, d)``, as the objectives take it."""
        return self._score_fn

    def score(self, x, sigma=None) -> jax.Array:
        """``s(x)`` for ``x: (batch, d)`` (``sigma``: the level of a noise-conditional score)."""
        x = jnp.asarray(x)
        if x.shape[-len(self.event_shape) :] != self.event_shape:
            raise ValueError(f"x: expected trailing shape {self.event_shape}, got {describe(x)}")
        flat = x.reshape(-1, *self.event_shape)
        cond = ()
        if self.sigmas is not None:
            if sigma is None:
                raise ValueError(
                    f"sigma: this noise-conditional score needs a level (trained on "
                    f"{self.sigmas}), got None"
                )
            cond = (jnp.broadcast_to(jnp.asarray(sigma, flat.dtype), flat.shape[:1]),)
        return self._score_fn(self.params, flat, *cond).reshape(x.shape)

    def energy(self, x) -> jax.Array:
        """``E(x)`` (``kind="energy"`` only), ``x: (batch, d) -> (batch,)``."""
        if self.kind != "energy":
            raise TypeError("energy: this model outputs a score, not an energy")
        return self.network.apply({"params": self.params}, jnp.asarray(x))

    # -- saving ------------------------------------------------------------------------
    def with_params(self, params) -> ScoreModel:
        return ScoreModel(
            self.network, params, self.event_shape, kind=self.kind, sigmas=self.sigmas
        )

    def save_config(self) -> dict:
        return {
            "network": module_config(self.network),
            "event_shape": list(self.event_shape),
            "kind": self.kind,
            "sigmas": None if self.sigmas is None else list(self.sigmas),
        }

    @classmethod
    def from_config(cls, config: dict) -> ScoreModel:
        network = module_from_config(config["network"])
        event_shape = tuple(config["event_shape"])
        x = jnp.zeros((1, *event_shape))
        cond = () if config.get("sigmas") is None else (jnp.ones((1,)),)
        params = network.init(jax.random.key(0), x, *cond)["params"]
        return cls(network, params, event_shape, kind=config["kind"], sigmas=config.get("sigmas"))


def energy_model(energy, params, event_shape):
    """An :class:`~numpyro_hgf.distributions.EnergyBasedModel` for a flax energy (a plain
    callable energy gives a :class:`~numpyro_hgf.distributions.ScoreModel` of kind
    ``"energy"``)."""
    if not hasattr(energy, "apply"):
        return ScoreModel(energy, params, event_shape, kind="energy")
    return EnergyBasedModel(energy, params, event_shape)
