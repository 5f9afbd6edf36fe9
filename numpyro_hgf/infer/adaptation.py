"""Stan's windowed warmup assembled from BlackJAX's pieces, stepped one transition at a time.

``blackjax.window_adaptation`` runs the whole warmup as one opaque call; :func:`run_nuts`
(:mod:`numpyro_hgf.infer.blackjax_bridge`) needs it one step at a time, so that warmup runs in
chunks under a progress bar.  :func:`stan_adaptation` returns the pure ``(init, update)`` pair
built from ``dual_averaging_adaptation`` and ``mass_matrix_adaptation``; :func:`schedule` gives
the per-step window flags of ``build_schedule``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks import check_flag, check_fraction, check_nonnegative_int

__all__ = ["AdaptState", "stan_adaptation", "schedule"]


class AdaptState(NamedTuple):
    ss: tuple  # dual averaging state
    mm: tuple  # Welford mass-matrix state
    step_size: jax.Array
    inverse_mass_matrix: jax.Array


def _as_dtype(tree, dtype):
    """Floating leaves to ``dtype``, integer leaves to int32 arrays (a stable scan carry)."""

    def one(a):
        a = jnp.asarray(a)
        return a.astype(dtype if jnp.issubdtype(a.dtype, jnp.floating) else jnp.int32)

    return jax.tree.map(one, tree)


def stan_adaptation(is_diagonal: bool, target_accept: float):
    """``(init, update)`` of Stan's warmup (fast / slow windows) built from BlackJAX's
    ``dual_averaging_adaptation`` and ``mass_matrix_adaptation``, stepped by the schedule of
    ``blackjax.adaptation.window_adaptation.build_schedule``, one step at a time, so that
    the warmup runs in chunks under the progress bar (``blackjax.window_adaptation.run`` is
    one opaque call)."""
    from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
    from blackjax.adaptation.step_size import dual_averaging_adaptation

    check_flag("is_diagonal", is_diagonal)
    target_accept = check_fraction("target_accept", target_accept)
    mm_init, mm_update, mm_final = mass_matrix_adaptation(is_diagonal)
    da_init, da_update, da_final = dual_averaging_adaptation(target_accept)

    def init(step_size, inverse_mass_matrix):
        dim = inverse_mass_matrix.shape[0]
        mm = mm_init(dim, inverse_mass_matrix)
        dtype = inverse_mass_matrix.dtype
        return AdaptState(
            _as_dtype(da_init(step_size), dtype),
            _as_dtype(mm, dtype),
            step_size,
            inverse_mass_matrix,
        )

    def update(state: AdaptState, stage, window_end, last, position, acceptance_rate):
        dtype = state.step_size.dtype
        ss = da_update(state.ss, acceptance_rate)
        mm = jax.lax.cond(stage == 1, lambda: mm_update(state.mm, position), lambda: state.mm)

        cast = lambda tree, like: jax.tree.map(  # noqa: E731
            lambda a, b: jnp.asarray(a).astype(jnp.result_type(b)), tree, like
        )
        # both branches of the cond return the dtypes of the carried state (under x64
        # BlackJAX's fresh states hold int64 / float64 leaves where the carry holds int32)
        ss, mm = cast(ss, state.ss), cast(mm, state.mm)

        def end_window(ss, mm):
            new_mm = mm_final(mm)
            new_ss = da_init(da_final(ss))
            return (
                cast(new_ss, state.ss),
                cast(new_mm, state.mm),
                jnp.exp(new_ss.log_step_size).astype(dtype),
                new_mm.inverse_mass_matrix.astype(dtype),
            )

        def keep(ss, mm):
            return ss, mm, jnp.exp(ss.log_step_size).astype(dtype), state.inverse_mass_matrix

        ss, mm, step, imm = jax.lax.cond(window_end, end_window, keep, ss, mm)
        step = jnp.where(last, da_final(ss), step)
        return AdaptState(
            cast(ss, state.ss), cast(mm, state.mm), step.astype(dtype), imm.astype(dtype)
        )

    return init, update


@functools.lru_cache(maxsize=64)
def schedule(num_warmup: int, total: int, adapt: bool):
    """Per-step ``(stage, window_end, last, adapting)`` arrays of length ``total`` (cached:
    ``build_schedule`` builds a Python list, milliseconds per call at 500 steps)."""
    from blackjax.adaptation.window_adaptation import build_schedule

    num_warmup = check_nonnegative_int("num_warmup", num_warmup)
    if check_nonnegative_int("total", total) < num_warmup:
        raise ValueError(f"total: expected at least num_warmup={num_warmup} steps, got {total}")
    stage = np.zeros(total, np.int32)
    window_end = np.zeros(total, bool)
    last = np.zeros(total, bool)
    adapting = np.zeros(total, bool)
    if adapt and num_warmup:
        sched = np.asarray(build_schedule(num_warmup))
        stage[:num_warmup] = sched[:, 0]
        window_end[:num_warmup] = sched[:, 1].astype(bool)
        last[num_warmup - 1] = True
        adapting[:num_warmup] = True
    for a in (stage, window_end, last, adapting):
        a.flags.writeable = False  # shared by every call with the same lengths
    return stage, window_end, last, adapting
