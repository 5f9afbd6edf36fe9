"""Masked autoregressive flow layer (MAF; Papamakarios, Pavlakou & Murray 2017, eq. 2-5).

Convention (MAF, not IAF).  The NumPyro transform maps **base -> data** (sampling
direction), ``u -> x``::

    x_i = u_i exp(s_i) + m_i,     (m_i, s_raw_i) = MADE(x)_i depends on x_{<i} only,
    s_i = B tanh(s_raw_i / B)

* the **inverse** (data -> base, used by ``log_prob``) is ONE parallel MADE pass:
  ``u = (x - m(x)) exp(-s(x))``;
* **sampling** is sequential: ``dim`` MADE passes in a ``lax.fori_loop`` (after pass ``j``
  the first ``j + 1`` coordinates in autoregressive order are exact);
* ``log|det dx/du| = sum_i s_i(x)`` (triangular Jacobian).

The order is MADE's ``order`` (reverse it in alternate layers).  An optional ``context``
(conditional flows; ``(..., context_dim)``, broadcastable against the batch) is a data
field fed to every MADE call.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from numpyro_hgf._checks import check_hidden_sizes, check_positive_float, check_positive_int
from numpyro_hgf.flows.base import NetworkTransform, soft_clamp
from numpyro_hgf.nn import MADE

__all__ = ["MaskedAutoregressiveTransform"]


class MaskedAutoregressiveTransform(NetworkTransform):
    """MAF layer on ``(..., dim)`` with a :class:`~numpyro_hgf.nn.MADE` conditioner.

    Args:
        module: a ``MADE(dim, num_params=2, ...)``; output ``[..., i, 0]`` is the shift,
            ``[..., i, 1]`` the raw log-scale of coordinate ``i``.
        params: its inner params.
        log_scale_bound: ``B`` of the soft clamp ``s = B tanh(s_raw / B)``.
        context: optional conditioning input passed to every MADE call.
    """

    static_fields = ("log_scale_bound",)
    data_fields = ("context",)

    def __init__(self, module: MADE, params, *, log_scale_bound=3.0, context=None):
        if not isinstance(module, MADE):
            raise TypeError(f"module: expected a numpyro_hgf.nn.MADE, got {type(module).__name__}")
        if module.num_params != 2:
            raise ValueError(
                f"module: expected a MADE with num_params 2 (shift, log-scale), "
                f"got {module.num_params}"
            )
        super().__init__(module, params)
        self.log_scale_bound = check_positive_float("log_scale_bound", log_scale_bound)
        self.context = context

    @classmethod
    def create(
        cls,
        key,
        dim: int,
        hidden=(64, 64),
        order=None,
        log_scale_bound=3.0,
        context=None,
    ) -> MaskedAutoregressiveTransform:
        """A layer with a fresh zero-output MADE (identity at initialisation).

        ``order``: autoregressive order (a permutation of ``0..dim-1``), natural if None.
        ``context``: example context for initialisation (and the stored context).
        """
        dim = check_positive_int("event_dim", dim)
        log_scale_bound = check_positive_float("log_scale_bound", log_scale_bound)
        module = MADE(dim, 2, check_hidden_sizes("hidden", hidden), order=order)
        args = (jnp.zeros((dim,)),) + (() if context is None else (context,))
        params = cls.init_params(module, key, *args)
        return cls(module, params, log_scale_bound=log_scale_bound, context=context)

    @property
    def dim(self) -> int:
        return self.module.dim

    def init_args(self) -> tuple:
        x = jnp.zeros((self.dim,))
        return (x,) if self.context is None else (x, self.context)

    def with_context(self, context) -> MaskedAutoregressiveTransform:
        """Same network and params, a new ``context``."""
        children, aux = self.tree_flatten()
        return type(self).tree_unflatten(aux, (children[0], context))

    def _shift_log_scale(self, x):
        args = (x,) if self.context is None else (x, self.context)
        out = self.apply(*args)
        return out[..., 0], soft_clamp(out[..., 1], self.log_scale_bound)

    def __call__(self, x):
        return self.call_with_intermediates(x)[0]

    def call_with_intermediates(self, x):
        """Sequential sampling pass ``u -> x``; intermediates are the log-scales ``(..., dim)``."""

        def body(_, carry):
            y, _ = carry
            shift, log_scale = self._shift_log_scale(y)
            return x * jnp.exp(log_scale) + shift, log_scale

        init = (jnp.zeros_like(x), jnp.zeros_like(x))
        y, log_scale = lax.fori_loop(0, self.dim, body, init)
        # the last pass saw every coordinate it depends on: its log-scale is exact
        return y, jnp.sum(log_scale, axis=-1)

    def _inverse(self, y):
        shift, log_scale = self._shift_log_scale(y)
        return (y - shift) * jnp.exp(-log_scale)

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        if intermediates is not None:
            return intermediates
        return jnp.sum(self._shift_log_scale(y)[1], axis=-1)
