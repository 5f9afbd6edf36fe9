"""Force-field HMC as a NumPyro ``MCMCKernel``: ``numpyro.infer.MCMC(LearnedForceHMC(...))``.

The transition is :func:`numpyro_hgf.infer.force_field.build_kernel` on the model's
unconstrained space (:mod:`numpyro_hgf.infer.potential`): the learned-prior sites named in
``forces`` push with their learned force, every other term of ``-grad U`` is autodiff, and
the Metropolis step uses the model's exact potential unless ``adjusted=False``.  During
warmup the step size follows Nesterov dual averaging towards ``target_accept_prob``
(Hoffman & Gelman 2014, Algorithm 5; ``blackjax.adaptation.step_size``); the mass matrix
is fixed (identity unless given).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.initialization import init_to_uniform
from numpyro.infer.mcmc import MCMCKernel

from numpyro_hgf._checks import (
    check_flag,
    check_fraction,
    check_instance,
    check_positive_float,
    check_positive_int,
)
from numpyro_hgf._checks.arrays import check_inverse_mass_matrix
from numpyro_hgf.infer import force_field as ff
from numpyro_hgf.infer.blackjax_bridge import _split_arguments
from numpyro_hgf.infer.potential import diagnose_initial_point, model_potential

__all__ = ["LearnedForceHMC", "LearnedForceHMCState"]


class LearnedForceHMCState(NamedTuple):
    """State of :class:`LearnedForceHMC` (one chain).

    Attributes:
        i: iteration (warmup included).
        z: unconstrained latent values ``{site: array}``.
        potential_energy: ``U(z)`` (NaN when unadjusted).
        z_force: ``-grad U_F(z)`` with the learned forces, like ``z``.
        step_size: the current leapfrog step.
        adapt_state: dual-averaging state of the step size.
        accept_prob: acceptance probability of the last transition.
        mean_accept_prob: running mean of ``accept_prob`` since the end of warmup.
        diverging: whether the last transition diverged.
        num_steps: leapfrog steps of the last transition.
        is_adjusted: whether the Metropolis step is applied.
        rng_key: the chain's key.
    """

    i: jax.Array
    z: dict
    potential_energy: jax.Array
    z_force: dict
    step_size: jax.Array
    adapt_state: tuple
    accept_prob: jax.Array
    mean_accept_prob: jax.Array
    diverging: jax.Array
    num_steps: jax.Array
    is_adjusted: jax.Array
    rng_key: jax.Array


class LearnedForceHMC(MCMCKernel):
    """HMC whose learned-prior sites use a learned force, for ``numpyro.infer.MCMC``.

    Args:
        model: a NumPyro model with continuous latent sites.
        forces: ``{site: F}``, ``F(x)`` a learned approximation of ``grad_x log p(x)`` of
            that site's prior (``shape of x -> shape of x``).
        step_size: initial leapfrog step.
        num_integration_steps: leapfrog steps per transition.
        adjusted: keep the exact Metropolis step (needs the sites' ``log_prob``).
        adapt_step_size: dual averaging of the step size during warmup (adjusted only).
        target_accept_prob: the acceptance rate the step size adapts to.
        inverse_mass_matrix: ``(d,)`` or ``(d, d)`` over the flattened unconstrained
            latent values (sorted by site name); identity by default.
        init_strategy: a ``numpyro.infer.initialization`` strategy.

    ``mcmc.get_extra_fields()`` holds ``diverging``, ``accept_prob``, ``num_steps`` and
    ``is_adjusted``; ``arviz.from_numpyro(mcmc)`` puts them in ``sample_stats``.
    """

    sample_field = "z"

    def __init__(
        self,
        model: Callable,
        forces: dict[str, Callable],
        *,
        step_size: float = 0.1,
        num_integration_steps: int = 10,
        adjusted: bool = True,
        adapt_step_size: bool = True,
        target_accept_prob: float = 0.8,
        inverse_mass_matrix=None,
        init_strategy=init_to_uniform,
    ):
        if not callable(model):
            raise TypeError(f"model: expected a NumPyro model, got {type(model).__name__}")
        if not isinstance(forces, dict) or not forces:
            raise TypeError(f"forces: expected a non-empty dict {{site: F}}, got {forces!r}")
        for name, force in forces.items():
            check_instance("forces", name, str, "site names (strings) as keys")
            check_instance(f"forces[{name!r}]", force, Callable, "a callable F(x)")
        check_flag("adjusted", adjusted)
        check_flag("adapt_step_size", adapt_step_size)
        check_instance("init_strategy", init_strategy, Callable, "a numpyro.infer init strategy")
        if inverse_mass_matrix is not None:
            check_inverse_mass_matrix("inverse_mass_matrix", inverse_mass_matrix)
        self.model = model
        self.forces = dict(forces)
        self.step_size = check_positive_float("step_size", step_size)
        self.num_integration_steps = check_positive_int(
            "num_integration_steps", num_integration_steps
        )
        self.adjusted = bool(adjusted)
        self.adapt_step_size = bool(adapt_step_size) and self.adjusted
        self.target_accept_prob = check_fraction("target_accept_prob", target_accept_prob)
        self.inverse_mass_matrix = inverse_mass_matrix
        self.init_strategy = init_strategy
        self._mp = None
        self._num_warmup = 0

    @property
    def default_fields(self):
        return ("z", "diverging", "accept_prob", "num_steps", "is_adjusted")

    def get_diagnostics_str(self, state):
        step, accept = float(state.step_size), float(state.mean_accept_prob)
        return f"step size {step:.2e}. acc. prob={accept:.2f}"

    # -- pieces that depend on the model arguments -------------------------------------------
    def _targets(self, model_args, model_kwargs):
        mp = self._mp
        force_potential = mp.force_potential(self.forces)

        def force(z):
            grad = jax.grad(force_potential)(z, model_args, model_kwargs)
            return jax.tree.map(jnp.negative, grad)

        logdensity = None
        if self.adjusted:

            def logdensity(z):
                return mp.logdensity(z, model_args, model_kwargs)

        return force, logdensity

    def _imm(self, z):
        dim = sum(int(np.size(v)) for v in jax.tree.leaves(z))
        dtype = jnp.result_type(*jax.tree.leaves(z))
        if self.inverse_mass_matrix is None:
            return jnp.ones(dim, dtype)
        imm = jnp.asarray(self.inverse_mass_matrix, dtype)
        if imm.shape not in ((dim,), (dim, dim)):
            raise ValueError(
                f"inverse_mass_matrix: expected shape ({dim},) or ({dim}, {dim}), got {imm.shape}"
            )
        return imm

    def postprocess_fn(self, model_args, model_kwargs):
        if self._mp is None:
            raise RuntimeError("LearnedForceHMC: call init (or MCMC.run) before postprocess_fn")
        mp = self._mp
        return lambda z: mp.postprocess(z, model_args, model_kwargs)

    # -- MCMCKernel ---------------------------------------------------------------------------
    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        from blackjax.adaptation.step_size import dual_averaging_adaptation

        model_kwargs = {} if model_kwargs is None else model_kwargs
        typed = jax.dtypes.issubdtype(rng_key.dtype, jax.dtypes.prng_key)
        batched = rng_key.ndim > (0 if typed else 1)
        keys = rng_key if batched else rng_key[None]
        first = keys[0] if typed else jax.random.wrap_key_data(keys[0])
        self._mp = mp = model_potential(
            self.model,
            model_args,
            model_kwargs,
            jax.random.fold_in(first, 1),
            init_strategy=self.init_strategy,
            forces=self.forces,
        )
        self._num_warmup = int(num_warmup)
        # one compiled program per initialisation instead of eager op-by-op dispatch; array
        # arguments are data, the rest of the model arguments stay static
        dynamic, rebuild, _ = _split_arguments(model_args, model_kwargs)
        if init_params is None:
            init_params, _, is_valid = jax.jit(lambda k, dyn: mp.init(k, *rebuild(dyn)))(
                keys, dynamic
            )
            is_valid = np.asarray(is_valid)
            if not is_valid.all():
                chain = int(np.argmin(is_valid))
                one = jax.tree.map(lambda a: a[chain], init_params)
                raise diagnose_initial_point(mp, one, model_args, model_kwargs)
        elif not batched:
            init_params = jax.tree.map(lambda a: jnp.asarray(a)[None], init_params)
        da_init, _, _ = dual_averaging_adaptation(self.target_accept_prob)

        def one(z, key, force, logdensity):
            state = ff.init(z, force, logdensity)
            dtype = jnp.result_type(*jax.tree.leaves(z))
            return LearnedForceHMCState(
                i=jnp.zeros((), jnp.int32),
                z=z,
                potential_energy=-state.logdensity,
                z_force=state.logdensity_grad,
                step_size=jnp.asarray(self.step_size, dtype),
                adapt_state=da_init(jnp.asarray(self.step_size, dtype)),
                accept_prob=jnp.zeros((), dtype),
                mean_accept_prob=jnp.zeros((), dtype),
                diverging=jnp.asarray(False),
                num_steps=jnp.zeros((), jnp.int32),
                is_adjusted=jnp.asarray(self.adjusted),
                rng_key=key,
            )

        @jax.jit
        def start(params, keys, dyn):
            force, logdensity = self._targets(*rebuild(dyn))
            return jax.vmap(lambda z, k: one(z, k, force, logdensity))(params, keys)

        states = start(init_params, keys, dynamic)
        return states if batched else jax.tree.map(lambda a: a[0], states)

    def sample(self, state, model_args, model_kwargs):
        from blackjax.adaptation.step_size import dual_averaging_adaptation

        model_kwargs = {} if model_kwargs is None else model_kwargs
        if state.i.ndim:  # vectorized chains
            return jax.vmap(lambda s: self.sample(s, model_args, model_kwargs))(state)
        force, logdensity = self._targets(model_args, model_kwargs)
        _, da_update, da_final = dual_averaging_adaptation(self.target_accept_prob)
        kernel = ff.build_kernel()
        key, key_step = jax.random.split(state.rng_key)
        current = ff.ForceFieldState(state.z, -state.potential_energy, state.z_force)
        new, info = kernel(
            key_step,
            current,
            force,
            logdensity,
            state.step_size,
            self._imm(state.z),
            self.num_integration_steps,
        )
        step_size, adapt_state = state.step_size, state.adapt_state
        if self.adapt_step_size and self._num_warmup > 0:
            warming = state.i < self._num_warmup
            adapted = da_update(adapt_state, info.acceptance_rate)
            adapt_state = jax.tree.map(lambda a, b: jnp.where(warming, a, b), adapted, adapt_state)
            last = state.i == self._num_warmup - 1
            step_size = jnp.where(
                warming,
                jnp.where(last, da_final(adapt_state), jnp.exp(adapt_state.log_step_size)),
                step_size,
            ).astype(state.step_size.dtype)
        n = state.i + 1 - self._num_warmup
        mean_accept = jnp.where(
            n > 0,
            state.mean_accept_prob + (info.acceptance_rate - state.mean_accept_prob) / n,
            0.0,
        ).astype(state.mean_accept_prob.dtype)
        return LearnedForceHMCState(
            i=state.i + 1,
            z=new.position,
            potential_energy=-new.logdensity,
            z_force=new.logdensity_grad,
            step_size=step_size,
            adapt_state=adapt_state,
            accept_prob=info.acceptance_rate.astype(state.accept_prob.dtype),
            mean_accept_prob=mean_accept,
            diverging=info.is_divergent,
            num_steps=info.num_integration_steps,
            is_adjusted=info.is_adjusted,
            rng_key=key,
        )
