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

import json

from numpyro.distributions import Distribution, TransformedDistribution
from numpyro.distributions.transforms import Transform

from numpyro_hgf._checks import check_event_shape
from numpyro_hgf.io import register_model

__all__ = ["NormalizingFlow"]

_CONFIG_KEYS = ("kind", "event_dim", "num_layers", "hidden", "opts")


def _network_transform_type():
    from numpyro_hgf.flows.base import NetworkTransform

    return NetworkTransform


@register_model("normalizing_flow")
class NormalizingFlow(TransformedDistribution):
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
    always checked (a static check, jit-safe).

    It is a pytree: the params are data, the modules and the config are static, so it can
    be an argument of ``jit``/``vmap``/``lax.map`` and changing only the params never
    recompiles.
    """

    pytree_aux_fields = ("_config",)

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
        # canonical JSON string: hashable and comparable, so it is safe static aux data
        self._config = None if config is None else json.dumps(config, sort_keys=True)
        super().__init__(base, list(transforms), validate_args=validate_args)

    # -- config and params --------------------------------------------------------------
    @property
    def config(self) -> dict | None:
        """The ``build_flow`` arguments (a fresh dict), or ``None`` for a hand-built flow."""
        return None if self._config is None else json.loads(self._config)

    @property
    def params(self) -> tuple:
        """Tuple of the params of every network transform, in order."""
        kind = _network_transform_type()
        return tuple(t.params for t in self.transforms if isinstance(t, kind))

    def with_params(self, params) -> NormalizingFlow:
        """A new flow with the same modules, base and config and the given ``params``
        (a sequence like :attr:`params`); differentiable in ``params``."""
        kind = _network_transform_type()
        params = tuple(params)
        n = sum(isinstance(t, kind) for t in self.transforms)
        if len(params) != n:
            raise ValueError(
                f"params: expected a sequence of {n} per-transform params, got {len(params)}"
            )
        it = iter(params)
        transforms = [
            t.with_params(next(it)) if isinstance(t, kind) else t for t in self.transforms
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
        from numpyro_hgf.flows.build import flax_flow

        return flax_flow(name, self)

    # -- densities -----------------------------------------------------------------------
    def log_prob(self, value, intermediates=None):
        """``log p(value)``; ``value: (..., *event_shape)`` -> ``(...)``."""
        check_event_shape("value", value, self.event_shape)
        return super().log_prob(value, intermediates)

    # -- saving ----------------------------------------------------------------------------
    def save_config(self) -> dict:
        if self._config is None:
            raise TypeError(
                "model: expected a NormalizingFlow built by numpyro_hgf.flows.build_flow "
                "(it records the config needed to save it), got a hand-built flow"
            )
        return self.config

    @classmethod
    def from_config(cls, config: dict) -> NormalizingFlow:
        """Rebuild the architecture (template params from key 0) from :meth:`save_config`."""
        from numpyro_hgf.flows.build import build_flow

        missing = [k for k in _CONFIG_KEYS if k not in config]
        if missing:
            raise ValueError(
                f"config: expected keys {list(_CONFIG_KEYS)}, got {sorted(config)} "
                f"(missing {missing})"
            )
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
