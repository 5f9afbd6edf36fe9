"""PNG figures (matplotlib, headless ``Agg`` backend): densities, samples, curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from numpyro_hgf._checks import (  # noqa: E402
    check_instance,
    check_output_shape,
    check_path,
    check_positive_float,
    check_positive_int,
    describe,
)

__all__ = ["plot_density_2d", "plot_loss"]


def _check_points(name: str, x) -> np.ndarray:
    """Points ``(n, 2)`` of real numbers, as a NumPy array."""
    arr = np.asarray(x)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name}: expected real points of shape (n, 2), got {describe(arr)}")
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name}: expected points of shape (n, 2), got {describe(arr)}")
    return arr


def density_grid(log_prob_fn, lim: float = 3.0, num: int = 200):
    """Evaluate ``log_prob_fn: (n, 2) -> (n,)`` on a ``num x num`` grid over ``[-lim, lim]^2``.

    Returns ``(xs, ys, log_density)`` with ``log_density: (num, num)``.
    """
    lim = check_positive_float("lim", lim)
    num = check_positive_int("num", num)
    grid_struct = jax.ShapeDtypeStruct((num * num, 2), jnp.result_type(float))
    check_output_shape(
        "log_prob_fn", log_prob_fn, (grid_struct,), (num * num,), "(one log density per point)"
    )
    xs = jnp.linspace(-lim, lim, num)
    grid = jnp.stack(jnp.meshgrid(xs, xs), axis=-1).reshape(-1, 2)
    log_density = jax.jit(log_prob_fn)(grid).reshape(num, num)
    return np.asarray(xs), np.asarray(xs), np.asarray(log_density)


def plot_density_2d(path, log_prob_fn, data, samples, *, lim: float = 3.0, title: str = ""):
    """Three panels: training data, model density ``exp(log_prob)``, model samples."""
    check_path("path", path)
    data, samples = _check_points("data", data), _check_points("samples", samples)
    check_instance("title", title, str, "a string")
    xs, ys, log_density = density_grid(log_prob_fn, lim)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), constrained_layout=True)
    for ax, pts, name in ((axes[0], data, "data"), (axes[2], samples, "model samples")):
        ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.3)
        ax.set_title(name)
    axes[1].pcolormesh(xs, ys, np.exp(log_density), shading="auto", cmap="viridis")
    axes[1].set_title("model density")
    for ax in axes:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    if title:
        fig.suptitle(title)
    fig.savefig(Path(path), dpi=110)
    plt.close(fig)
    return Path(path)


def plot_loss(path, history, *, title: str = "training loss", ylabel: str = "loss"):
    """Training curve (raw and a 50-step running mean)."""
    check_path("path", path)
    check_instance("title", title, str, "a string")
    check_instance("ylabel", ylabel, str, "a string")
    history = np.asarray(history)
    real = np.issubdtype(history.dtype, np.floating) or np.issubdtype(history.dtype, np.integer)
    if not real or history.ndim != 1:
        raise (TypeError if not real else ValueError)(
            f"history: expected a 1-d array of losses, got {describe(history)}"
        )
    fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    ax.plot(history, lw=0.5, alpha=0.4, label="per step")
    if history.size >= 50:
        smooth = np.convolve(history, np.ones(50) / 50, mode="valid")
        ax.plot(np.arange(49, history.size), smooth, lw=1.5, label="running mean (50)")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.savefig(Path(path), dpi=110)
    plt.close(fig)
    return Path(path)
