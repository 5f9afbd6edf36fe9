"""The ODE map of a continuous-time model as a NumPyro ``Transform`` (base -> data).

A continuous normalizing flow, an HGF prior and a diffusion prior's probability-flow ODE are
each a bijection ``T: z -> x`` (solve ``dx/dt = f(x, t)`` from the base at ``t0`` to the
data at ``t1``), and their density is the change of variables of that bijection.
:class:`ODEMapTransform` is ``T`` as a NumPyro ``Transform``:

* ``transform(z)`` solves forward, ``transform.inv(x)`` backward;
* ``log_abs_det_jacobian(z, x)`` is ``log |det dT/dz|`` from the augmented ODE with the
  *exact* trace (``d`` JVPs a step, whatever trace the model's own ``log_prob`` uses), so
  ``TransformedDistribution(base, transform).log_prob`` is the exact-trace density.

The model (a :class:`~numpyro_hgf.distributions.ContinuousFlow` or a subclass) owns the
solves: the transform asks it for ``map_forward(z)``, ``map_inverse(x)`` and
``map_log_abs_det(x)``, so this module knows no solver (the ODE module lives above the
bijections, in :mod:`numpyro_hgf.samplers.ode`).  The transform is a pytree whose only
child is the model (its params are data), so it passes through ``jit``.

``model.as_transformed()`` is ``TransformedDistribution(model.base, ODEMapTransform(model))``,
on which NumPyro's ``TransformReparam`` samples the model in its base: ``z ~ base``,
``x = T(z)`` a deterministic site (exact by the change of variables, no trace estimator at
all).
"""

from __future__ import annotations

from numpyro.distributions.transforms import Transform

__all__ = ["ODEMapTransform"]

_MODEL_METHODS = ("base", "support", "map_forward", "map_inverse", "map_log_abs_det")


class ODEMapTransform(Transform):
    """``T: z -> x``, the ODE map of ``model`` (base support -> the model's support).

    Args:
        model: an ODE model with ``base``, ``support``, ``map_forward``, ``map_inverse``
            and ``map_log_abs_det`` (every :class:`~numpyro_hgf.distributions.ContinuousFlow`).

    Shapes: ``z, x: (*batch, *event_shape)``; ``log_abs_det_jacobian -> (*batch,)``.
    """

    def __init__(self, model):
        missing = [m for m in _MODEL_METHODS if not hasattr(model, m)]
        if missing:
            raise TypeError(
                f"model: expected an ODE model with {', '.join(_MODEL_METHODS)} (a "
                f"ContinuousFlow), got {type(model).__name__} without {', '.join(missing)}"
            )
        self.model = model

    @property
    def domain(self):
        return self.model.base.support

    @property
    def codomain(self):
        return self.model.support

    def __call__(self, z):
        return self.model.map_forward(z)

    def _inverse(self, x):
        return self.model.map_inverse(x)

    def log_abs_det_jacobian(self, z, x, intermediates=None):
        """``log |det dT/dz|`` at ``z = T^{-1}(x)``, from ``x`` (one augmented backward
        solve, exact trace)."""
        del z, intermediates
        return self.model.map_log_abs_det(x)

    def tree_flatten(self):
        return (self.model,), ()

    @classmethod
    def tree_unflatten(cls, aux_data, children):
        del aux_data
        # no checks: jax unflattens with placeholder children
        new = cls.__new__(cls)
        new.model = children[0]
        return new

    def __eq__(self, other):
        return isinstance(other, ODEMapTransform) and other.model is self.model

    def __hash__(self):
        return id(self.model)
