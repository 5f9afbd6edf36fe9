"""PNG figures (matplotlib, headless ``Agg`` backend): densities, samples, curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_density_2d", "plot_loss"]


def density_grid(log_prob_fn, lim: float = 3.0, num: int = 200):
    """Evaluate ``log_prob_fn: (n, 2) -> (n,)`` on a ``num x num`` grid over ``[-lim, lim]^2``.

    Returns ``(xs, ys, log_density)`` with ``log_density: (num, num)``.
    """
    xs = jnp.linspace(-lim, lim, num)
    grid = jnp.stack(jnp.meshgrid(xs, xs), axis=-1).reshape(-1, 2)
    log_density = jax.jit(log_prob_fn)(grid).reshape(num, num)
    return np.asarray(xs), np.asarray(xs), np.asarray(log_density)


def plot_density_2d(path, log_prob_fn, data, samples, *, lim: float = 3.0, title: str = ""):
    """Three panels: training data, model density ``exp(log_prob)``, model samples."""
    xs, ys, log_density = density_grid(log_prob_fn, lim)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), constrained_layout=True)
    data, samples = np.asarray(data), np.asarray(samples)
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
    history = np.asarray(history)
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
