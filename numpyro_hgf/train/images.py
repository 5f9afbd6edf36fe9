"""Image trainers: a ``UNet`` field through the package's one trainer per objective.

Every path of the registry (:data:`numpyro_hgf.paths.PATHS`) is an image model under its
name, and ``hsm`` is Hamiltonian score matching:

=================  ==============================================  =========================
``model``          trainer (the UNet is its network)               returns
=================  ==============================================  =========================
a Hamiltonian      :func:`~numpyro_hgf.train.fit_velocity` on      ``HGFPrior``
path's name        that path (``flow_matching``, ``oscillation``,
                   ``reflection``, ...)
an SDE's name      :func:`~numpyro_hgf.train.fit_diffusion` on     ``DiffusionPrior``
                   that SDE (``vp``, ``subvp``, ``ve``);
                   ``diffusion`` is the VP SDE
``hsm``            :func:`~numpyro_hgf.train.fit_hsm`, force and   ``ScoreModel`` (force)
                   velocity both UNets (:class:`~numpyro_hgf.nn.FlatImageField`)
=================  ==============================================  =========================

A path added to the registry is an image model (and a ``numpyro-hgf train --model``) at once.
Every model takes every trainer option (:class:`~numpyro_hgf.train.TrainOptions`:
data-parallel ``devices``, ``precision="bfloat16"``, orbax ``checkpoint_dir`` /
``checkpoint_every`` with resume, validation and early stopping); the priors also write
periodic sample-grid PNGs (``sample_dir``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Unpack

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks import (
    check_choice,
    check_finite,
    check_key,
    check_positive_int,
    describe,
)
from numpyro_hgf.distributions.continuous_flow import HGFPrior
from numpyro_hgf.distributions.diffusion import DiffusionPrior
from numpyro_hgf.nn.unet import FlatImageField, UNet
from numpyro_hgf.paths.base import PATHS
from numpyro_hgf.paths.hamiltonian import HamiltonianPath
from numpyro_hgf.samplers.ode import ODESolver
from numpyro_hgf.train.diffusion import fit_diffusion
from numpyro_hgf.train.hsm import fit_hsm
from numpyro_hgf.train.options import Recipe, TrainKeywords, TrainOptions, resolve_options
from numpyro_hgf.train.velocity import fit_velocity

__all__ = [
    "IMAGE_MODELS",
    "RECIPE",
    "as_images",
    "default_channels",
    "fit_images",
    "image_models",
    "save_image_grid",
]

#: The optimisation ``fit_images`` recommends.
RECIPE = Recipe(steps=5_000, batch_size=128, learning_rate=2e-4, clip_norm=1.0, ema_decay=0.999)
#: Image-model names that stand for another path's (kept from earlier releases).
IMAGE_ALIASES = {"diffusion": "vp"}


def image_models() -> tuple[str, ...]:
    """The image models: every registered path (``diffusion`` meaning the VP SDE) and ``hsm``."""
    names = [name for name in PATHS if name not in IMAGE_ALIASES]
    names.sort(key=lambda name: not issubclass(PATHS[name], HamiltonianPath))  # stable
    return (*names, *IMAGE_ALIASES, "hsm")


#: The image models of the paths this package defines (see :func:`image_models`).
IMAGE_MODELS = image_models()


def as_images(images, name: str = "images") -> jax.Array:
    """``(n, H, W)`` or ``(n, H, W, C)`` floating images as ``(n, H, W, C)`` (checked finite)."""
    x = jnp.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[0] < 1:
        raise ValueError(
            f"{name}: expected images of shape (n, H, W) or (n, H, W, C), got {describe(x)}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name}: expected floating-point images, got {describe(x)}")
    check_finite(name, x)
    return x


def default_channels(height: int) -> tuple[int, ...]:
    """UNet widths by resolution: ``(32, 64)`` for 8x8, ``(32, 64, 128)`` for 16x16 and up."""
    return (32, 64) if height <= 8 else (32, 64, 128)


def save_image_grid(path, images, *, ncols: int | None = None, title: str = "") -> Path:
    """Write ``images: (n, H, W, C)`` (values in ``[-1, 1]``) as a PNG grid; returns the path.

    Uses matplotlib's object API (no ``pyplot``, no change of the user's backend).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = np.clip((np.asarray(images, np.float32) + 1.0) / 2.0, 0.0, 1.0)
    n = x.shape[0]
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(ncols * 0.8, nrows * 0.8 + 0.3))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            img = x[i, ..., 0] if x.shape[-1] == 1 else x[i]
            ax.imshow(img, cmap="gray" if x.shape[-1] == 1 else None, vmin=0, vmax=1)
    if title:
        fig.suptitle(title, fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def _sample_grid_callback(make_prior, sample_dir, num_grid, nfe, key, name):
    solver = ODESolver("rk4", nfe=nfe)

    def callback(state):
        if jax.process_index() != 0:  # one process draws and writes the grid
            return
        params = state.ema_params if state.ema_params is not None else state.params
        # host copies: sampling then runs on this process's device alone (with several hosts
        # the params are global arrays that every process would have to compute on)
        params = jax.tree.map(np.asarray, params)
        samples, _ = make_prior(params).sample_with_nfe(key, (num_grid,), solver=solver)
        step = int(state.step)
        save_image_grid(
            Path(sample_dir) / f"step_{step:07d}.png", samples, title=f"{name}, step {step}"
        )

    return callback


def _fit_hsm_images(x, channels, num_res_blocks, path_options, key, options, return_result):
    """Hamiltonian score matching: force F(x) and velocity V(x, t), both UNets on images."""
    image_shape = tuple(x.shape[1:])
    force_unet = UNet(channels=channels, num_res_blocks=num_res_blocks)
    force_unet.check_input(x[:1], name="images")
    step_size = float(path_options.pop("step_size", 0.05))
    num_steps = int(path_options.pop("num_steps", 5))
    velocity_unet = UNet(
        channels=channels,
        num_res_blocks=num_res_blocks,
        time_scale=1000.0 / (step_size * num_steps),
    )
    out = fit_hsm(
        x.reshape(x.shape[0], -1),
        force=FlatImageField(force_unet, image_shape),
        velocity=FlatImageField(velocity_unet, image_shape),
        step_size=step_size,
        num_steps=num_steps,
        key=key,
        options=options,
        return_result=return_result,
        **path_options,
    )
    if return_result:
        force_model, _velocity, result = out
        return force_model, result
    return out


def fit_images(
    model: str,
    images,
    *,
    channels: Sequence[int] | None = None,
    num_res_blocks: int = 1,
    path_options: dict | None = None,
    solver="tsit5",
    sample_dir=None,
    sample_every: int | None = None,
    num_grid: int = 16,
    sample_nfe: int = 20,
    key=None,
    options: TrainOptions | None = None,
    return_result: bool = False,
    **train_options: Unpack[TrainKeywords],
):
    """Train a generative image model with a :class:`~numpyro_hgf.nn.UNet` field.

    Args:
        model: one of :func:`image_models` (the registered paths' names, ``diffusion`` for
            the VP SDE, and ``hsm``).
        images: ``(n, H, W)`` or ``(n, H, W, C)`` training images (digits: in ``[-1, 1]``;
            inside the box for ``reflection``); ``H`` and ``W`` multiples of
            ``2^(len(channels) - 1)``.
        channels, num_res_blocks: the UNet (default :func:`default_channels`).
        path_options: passed to the path (``omega``, ``T``, ``minibatch_ot``, ``beta_max``,
            ...); for ``hsm`` to ``fit_hsm`` (``step_size``, ``num_steps``, ...).
        solver: the prior's ODE solver (``log_prob``; sampling by the prior's default).
        sample_dir, sample_every, num_grid, sample_nfe: every ``sample_every`` steps write
            a grid of ``num_grid`` samples (RK4 with ``sample_nfe`` evaluations) as
            ``sample_dir/step_XXXXXXX.png`` (the priors; not ``hsm``).
        key: ``jax.random`` key (required).
        options, **train_options: how to train (:class:`~numpyro_hgf.train.TrainOptions`).
            Recommended: 5,000 Adam steps of 128 images, learning rate 2e-4 with cosine decay,
            clipping at norm 1, EMA 0.999.  The checkpoints carry the UNet's config:
            resuming a different network is refused.
        return_result: also return the :class:`~numpyro_hgf.train.TrainResult`.

    Returns:
        The trained model (``HGFPrior``, ``DiffusionPrior`` or the HSM force ``ScoreModel``),
        or ``(model, result)``.
    """
    check_choice("model", model, image_models())
    key = check_key("key", key)
    options = resolve_options(options, train_options, RECIPE)
    x = as_images(images)
    channels = default_channels(x.shape[1]) if channels is None else channels
    path_options = dict(path_options or {})
    if model == "hsm":
        if sample_dir is not None:
            raise ValueError("sample_dir: model='hsm' learns a force, which draws no samples")
        return _fit_hsm_images(
            x, channels, num_res_blocks, path_options, key, options, return_result
        )
    path = PATHS[IMAGE_ALIASES.get(model, model)](**path_options)
    unet = UNet(channels=channels, num_res_blocks=num_res_blocks, time_scale=1000.0 / path.horizon)
    unet.check_input(x[:1], name="images")
    event_shape = tuple(x.shape[1:])
    if isinstance(path, HamiltonianPath):
        fit, network = fit_velocity, "velocity"
        make_prior = lambda p: HGFPrior(unet, p, path, event_shape=event_shape)
    else:
        fit, network = fit_diffusion, "network"
        make_prior = lambda p: DiffusionPrior(
            unet, p, path, event_shape=event_shape, output="noise"
        )
    if sample_dir is not None:
        callback = _sample_grid_callback(
            make_prior,
            sample_dir,
            check_positive_int("num_grid", num_grid),
            check_positive_int("sample_nfe", sample_nfe),
            jax.random.fold_in(key, 1),
            model,
        )
        every = check_positive_int("sample_every", sample_every or max(options.steps // 5, 1))
        options = options.replace(callback=callback, callback_every=every)
    return fit(
        path, x, key=key, options=options, return_result=return_result, solver=solver,
        **{network: unet},
    )  # fmt: skip
