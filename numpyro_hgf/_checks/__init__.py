"""Every argument check of the package.

Each public entry point validates its input early -- before anything is traced or compiled --
and raises a ``ValueError`` / ``TypeError`` whose message names the argument, what was
expected and what came::

    ValueError: hidden: expected a sequence of positive integers, got (64, 0)

* :mod:`~numpyro_hgf._checks.values` -- numbers, counts, choices, sizes, times, keys;
* :mod:`~numpyro_hgf._checks.arrays` -- finiteness, shapes, data, chains, binary / spin values;
* :mod:`~numpyro_hgf._checks.callables` -- output shapes of a user's functions.
"""

from numpyro_hgf._checks.arrays import (
    check_betas,
    check_binary,
    check_chains,
    check_data_array,
    check_data_matrix,
    check_decreasing_levels,
    check_event_shape,
    check_finite,
    check_floating,
    check_noise_levels,
    check_points,
    check_spins,
    check_symmetric_zero_diagonal,
)
from numpyro_hgf._checks.callables import (
    call_field,
    check_field_fits,
    check_fits,
    check_output_shape,
    describe_output,
)
from numpyro_hgf._checks.values import (
    as_key,
    check_callable,
    check_choice,
    check_event_shape_arg,
    check_finite_float,
    check_flag,
    check_fraction,
    check_hidden_sizes,
    check_instance,
    check_interval,
    check_key,
    check_nonnegative_float,
    check_nonnegative_int,
    check_numbers,
    check_open_time,
    check_path,
    check_positive_float,
    check_positive_int,
    check_positive_scalar,
    check_positive_values,
    check_progress,
    check_time_interval,
    describe,
    is_concrete,
    is_real_scalar,
    progress_enabled,
)

#: The historical private name of :func:`describe`.
_describe = describe

__all__ = [
    "as_key",
    "call_field",
    "check_betas",
    "check_binary",
    "check_callable",
    "check_chains",
    "check_choice",
    "check_data_array",
    "check_data_matrix",
    "check_decreasing_levels",
    "check_event_shape",
    "check_event_shape_arg",
    "check_finite",
    "check_finite_float",
    "check_numbers",
    "check_flag",
    "check_field_fits",
    "check_fits",
    "check_floating",
    "check_fraction",
    "check_hidden_sizes",
    "check_instance",
    "check_interval",
    "check_key",
    "check_noise_levels",
    "check_nonnegative_float",
    "check_nonnegative_int",
    "check_open_time",
    "check_path",
    "check_output_shape",
    "check_points",
    "check_positive_float",
    "check_positive_int",
    "check_positive_scalar",
    "check_positive_values",
    "check_progress",
    "check_spins",
    "check_symmetric_zero_diagonal",
    "check_time_interval",
    "describe",
    "describe_output",
    "is_concrete",
    "is_real_scalar",
    "progress_enabled",
]
