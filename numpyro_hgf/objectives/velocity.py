"""Velocity regression: the objective of every Hamiltonian path (Holderrieth et al. 2024, Sec. 5).

For a :class:`~numpyro_hgf.paths.HamiltonianPath`, ``t ~ U(0, T)``, ``x0 ~ data`` and
``(x_t, v_t)`` the path's motion from ``(x0, v0)``,

    L(phi) = E || V_phi(x_t, t) - v_t ||^2,

minimised by the optimal velocity predictor ``V*(x, t) = E[v_t | x_t = x]``.  It equals the
HSM loss with a fixed force, ``E[||V||^2 - 2 V . v_t]``, plus the constant ``E||v_t||^2``.
Flow matching, diffusion-as-HGF, oscillation and reflection HGFs -- and any new
Hamiltonian path -- go through this one function with any velocity network (``TimeMLP``
for vectors, a ``UNet`` for images).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from numpyro_hgf._checks import check_instance, check_key
from numpyro_hgf.paths.hamiltonian import HamiltonianPath

__all__ = ["velocity_matching"]


def velocity_matching(velocity, params, path, x0, key):
    """Monte Carlo estimate of ``E || V(x_t, t) - v_t ||^2`` on a batch ``x0: (batch, *event)``.

    The squared error is summed over the event dims and averaged over the batch.
    """
    if not hasattr(velocity, "apply"):
        raise TypeError(f"velocity: expected a flax.linen module, got {velocity!r}")
    check_instance("path", path, HamiltonianPath, "a HamiltonianPath (e.g. FlowMatchingPath())")
    check_key("key", key)
    t_key, v_key = jax.random.split(key)
    t = path.sample_time(t_key, x0.shape[0]).astype(x0.dtype)
    x_t, v_t = path.motion(x0, path.couple(x0, v_key), t)
    pred = velocity.apply({"params": params}, x_t, t)
    return jnp.mean(jnp.sum((pred - v_t).reshape(x0.shape[0], -1) ** 2, axis=-1))
