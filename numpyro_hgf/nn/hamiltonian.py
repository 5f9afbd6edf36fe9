"""``HamiltonianNet``: the learned Hamiltonian of one layer of a neural Hamiltonian flow."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn

from numpyro_hgf._checks import check_finite_float, check_hidden_sizes, check_positive_int
from numpyro_hgf.nn.config import register_module
from numpyro_hgf.nn.mlp import MLP, check_activation

__all__ = ["HamiltonianNet"]


@register_module
class HamiltonianNet(nn.Module):
    """The learned Hamiltonian of one layer: ``q: (..., dim) -> (U(q): (...), log_mass: (dim,))``.

    ``U`` is an MLP with a scalar output (softplus activations by default, as
    :class:`~numpyro_hgf.nn.EnergyMLP`: ``grad U`` is smooth and bounded, which keeps the
    leapfrog steps stable); ``log_mass`` is the log of the diagonal mass of the kinetic
    energy ``K(p) = 1/2 sum_i p_i^2 / m_i`` (initialised at ``init_log_mass``).

    Any module with this call signature can drive a :class:`HamiltonianTransform` (the tests
    use an exact harmonic oscillator).
    """

    dim: int
    hidden: Sequence[int] = (64, 64)
    activation: Callable = nn.softplus
    init_log_mass: float = 0.0

    def __post_init__(self):
        check_positive_int("dim", self.dim)
        object.__setattr__(self, "hidden", check_hidden_sizes("hidden", self.hidden))
        check_activation(self.activation)
        check_finite_float("init_log_mass", self.init_log_mass)
        super().__post_init__()

    @nn.compact
    def __call__(self, q):
        potential = MLP(self.hidden, 1, activation=self.activation)(q)[..., 0]
        log_mass = self.param("log_mass", nn.initializers.constant(self.init_log_mass), (self.dim,))
        return potential, log_mass
