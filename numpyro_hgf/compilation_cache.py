"""JAX's persistent compilation cache for the CLI, the demo and library users.

Most of a short run is XLA compilation (docs/benchmarks.md).  JAX can keep compiled programs
on disk and reuse them in a later process with the same program, shapes, JAX version and
device (``jax_compilation_cache_dir``; this module only switches JAX's own cache on, in one
documented folder).  Results do not change: a cached executable is the one XLA would build.

* ``numpyro-hgf`` (every command, the demo included) turns it on by default;
  ``numpyro-hgf --no-compilation-cache ...`` or ``NUMPYRO_HGF_COMPILATION_CACHE=0`` turns it
  off.
* Library users call :func:`enable_compilation_cache` once at the start of a script.
* The folder is ``$NUMPYRO_HGF_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/numpyro_hgf/jax``
  (``~/.cache/numpyro_hgf/jax``); deleting it is always safe.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

__all__ = ["default_cache_dir", "enable_compilation_cache", "cache_disabled_by_environment"]

_OFF = ("0", "off", "false", "no")


def default_cache_dir() -> Path:
    """``$NUMPYRO_HGF_CACHE_DIR``, else ``$XDG_CACHE_HOME/numpyro_hgf/jax``."""
    explicit = os.environ.get("NUMPYRO_HGF_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "numpyro_hgf" / "jax"


def cache_disabled_by_environment() -> bool:
    """Whether ``NUMPYRO_HGF_COMPILATION_CACHE`` switches the cache off."""
    return os.environ.get("NUMPYRO_HGF_COMPILATION_CACHE", "1").strip().lower() in _OFF


def enable_compilation_cache(directory=None, *, min_compile_time_secs: float = 0.0) -> Path | None:
    """Turn on JAX's persistent compilation cache in ``directory`` (default
    :func:`default_cache_dir`); returns the folder, or ``None`` when the environment turns
    the cache off or the folder cannot be created (the run then compiles as usual).

    Args:
        directory: the cache folder (created if needed).
        min_compile_time_secs: only programs that took at least this long to compile are
            written.  The default writes all: a run dispatches hundreds of small programs
            (10-20 ms each to compile, far less to load), and with JAX's 0.5-1 s thresholds
            they were most of a cached demo's remaining compile time (``make demo``: second
            run 0.73 of the first at 0.5 s, 0.49 at 0; the cache held 576 entries, 5 MB).
    """
    if cache_disabled_by_environment():
        return None
    folder = default_cache_dir() if directory is None else Path(directory).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_secs))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
