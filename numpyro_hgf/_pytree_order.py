"""The same pytree leaf order for NumPyro distributions in every process.

NumPyro gathers a distribution's ``pytree_data_fields`` / ``pytree_aux_fields`` through a
``set`` (``Distribution.gather_pytree_data_fields``), so the order of its leaves follows
Python's string hashing, which ``PYTHONHASHSEED`` randomises per process.  Within one process
the order is consistent, but a jitted program that takes a distribution as an argument (a
learned prior's ``log_prob``, the NUTS programs over a model that holds one) lowers to a
different module in each process, and JAX's persistent compilation cache
(:mod:`numpyro_hgf.compilation_cache`) never hits.  Importing :mod:`numpyro_hgf` sorts the
gathered names, which every flatten / unflatten (NumPyro's and ours) reads through the same
two class methods; nothing else depends on the order.
"""

from __future__ import annotations

from numpyro.distributions import Distribution

__all__ = ["sort_distribution_fields"]


def _sorted(gather):
    def gather_sorted(cls) -> tuple[str, ...]:
        return tuple(sorted(gather.__func__(cls)))

    gather_sorted.__wrapped__ = gather
    gather_sorted.__doc__ = gather.__doc__
    return classmethod(gather_sorted)


def sort_distribution_fields() -> None:
    """Make ``Distribution.gather_pytree_{data,aux}_fields`` return sorted names (idempotent)."""
    for name in ("gather_pytree_data_fields", "gather_pytree_aux_fields"):
        current = Distribution.__dict__[name]
        if not hasattr(current.__func__, "__wrapped__"):
            setattr(Distribution, name, _sorted(getattr(Distribution, name)))


sort_distribution_fields()
