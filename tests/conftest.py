"""Session set-up shared by every test module.

ArviZ 0.23 writes a once-a-day stamp file on import (``~/.cache/arviz/daily_warning``) through a
fixed temporary name, so two pytest-xdist workers importing it at the same moment on a fresh
machine race and one fails with ``FileNotFoundError`` at collection.  Importing it here, in
the controlling process before the workers start, writes the stamp once; the workers then only
read it.

The float64 leg: ``pytest --x64`` (or ``NUMPYRO_HGF_X64=1``) turns on ``jax_enable_x64`` in
every worker before any test runs and keeps only the tests marked ``x64``: the tests of each
trainer, ``run_nuts`` / ``run_hmc``, the samplers and the distributions' ``sample`` /
``log_prob``.  ``make test`` runs the default suite, then this leg.
"""

import os

# the CLI turns JAX's persistent compilation cache on; tests keep it off (and in their own
# folder) unless a test turns it on itself (tests/test_compilation_cache.py)
os.environ.setdefault("NUMPYRO_HGF_COMPILATION_CACHE", "0")

import arviz  # noqa: E402, F401
import jax


def pytest_addoption(parser):
    parser.addoption(
        "--x64",
        action="store_true",
        default=False,
        help="run the tests marked x64 with jax_enable_x64 on (the float64 leg)",
    )


def _x64(config) -> bool:
    return bool(config.getoption("--x64")) or os.environ.get("NUMPYRO_HGF_X64") == "1"


def pytest_configure(config):
    config.addinivalue_line("markers", "x64: also runs in the float64 leg (pytest --x64)")
    if _x64(config):
        jax.config.update("jax_enable_x64", True)


def pytest_collection_modifyitems(config, items):
    if not _x64(config):
        return
    keep = [item for item in items if item.get_closest_marker("x64") is not None]
    dropped = [item for item in items if item.get_closest_marker("x64") is None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


def pytest_report_header(config):
    return f"jax_enable_x64: {bool(jax.config.jax_enable_x64)}"
