"""Image trainers: a ``UNet`` field through the package's one trainer per objective.

=================  ==============================================  =========================
``model``          trainer (unchanged, the UNet is its network)    returns
=================  ==============================================  =========================
``flow_matching``  :func:`~numpyro_hgf.train.fit_velocity`,        ``HGFPrior``
                   :class:`~numpyro_hgf.paths.FlowMatchingPath`
``oscillation``    ``fit_velocity``, ``OscillationPath``           ``HGFPrior``
``reflection``     ``fit_velocity``, ``ReflectionPath``            ``HGFPrior``
``diffusion``      :func:`~numpyro_hgf.train.fit_diffusion`,       ``DiffusionPrior``
                   ``VPSDE``
``hsm``            :func:`~numpyro_hgf.train.fit_hsm`, force and   ``ScoreModel`` (force)
                   velocity both UNets (:class:`FlatImageField`)
=================  ==============================================  =========================

The velocity models get every option of the trainer core (data-parallel ``devices``,
``precision="bfloat16"``, orbax ``checkpoint_dir`` / ``checkpoint_every`` with resume,
periodic sample-grid PNGs, throughput in images/s).  ``fit_diffusion`` and ``fit_hsm`` do
not pass trainer options through yet, so ``diffusion`` and ``hsm`` train on one device
without checkpoints (asking for those options is a ``ValueError``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from numpyro_hgf._checks import _describe, check_choice, check_finite, check_positive_int

__all__ = [
    "IMAGE_MODELS",
    "FlatImageField",
    "as_images",
    "default_channels",
    "fit_images",
    "save_image_grid",
]

IMAGE_MODELS = ("flow_matching", "oscillation", "reflection", "diffusion", "hsm")
_VELOCITY_MODELS = ("flow_matching", "oscillation", "reflection")


def as_images(images, name: str = "images") -> jax.Array:
    """``(n, H, W)`` or ``(n, H, W, C)`` floating images as ``(n, H, W, C)`` (checked finite)."""
    x = jnp.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(
            f"{name}: expected images of shape (n, H, W) or (n, H, W, C), got {_describe(x)}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name}: expected floating-point images, got {_describe(x)}")
    check_finite(name, x)
    return x


def default_channels(height: int) -> tuple[int, ...]:
    """UNet widths by resolution: ``(32, 64)`` for 8x8, ``(32, 64, 128)`` for 16x16 and up."""
    return (32, 64) if height <= 8 else (32, 64, 128)


class FlatImageField(nn.Module):
    """A UNet on flattened images: ``x: (batch, H*W*C)``, ``t`` -> ``(batch, H*W*C)``.

    For trainers that take vectors (:func:`~numpyro_hgf.train.fit_hsm`): the input is reshaped
    to ``(batch, *image_shape)``, passed through ``network`` and flattened back.
    """

    network: nn.Module
    image_shape: Sequence[int]

    @nn.compact
    def __call__(self, x, t=None):
        shape = tuple(self.image_shape)
        if x.shape[-1] != math.prod(shape):
            raise ValueError(
                f"x: expected flattened images of {math.prod(shape)} values {shape}, "
                f"got {_describe(x)}"
            )
        out = self.network(x.reshape(*x.shape[:-1], *shape), t)
        return out.reshape(*x.shape[:-1], -1)


def save_image_grid(path, images, *, ncols: int | None = None, title: str = "") -> Path:
    """Write ``images: (n, H, W, C)`` (values in ``[-1, 1]``) as a PNG grid; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.clip((np.asarray(images, np.float32) + 1.0) / 2.0, 0.0, 1.0)
    n = x.shape[0]
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 0.8, nrows * 0.8 + 0.3), squeeze=False)
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
    plt.close(fig)
    return path


def _sample_grid_callback(make_prior, sample_dir, num_grid, nfe, key, name):
    from numpyro_hgf.odeflow import ODESolver

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


def fit_images(
    model: str,
    images,
    *,
    key=None,
    channels: Sequence[int] | None = None,
    num_res_blocks: int = 1,
    steps: int = 5_000,
    batch_size: int = 128,
    learning_rate: float = 2e-4,
    ema_decay: float | None = 0.999,
    clip_norm: float | None = 1.0,
    devices=None,
    precision: str = "float32",
    checkpoint_dir=None,
    checkpoint_every: int | None = None,
    sample_dir=None,
    sample_every: int | None = None,
    num_grid: int = 16,
    sample_nfe: int = 20,
    steps_per_dispatch: int = 100,
    path_options: dict | None = None,
    progress: bool | None = None,
    return_result: bool = False,
):
    """Train a generative image model with a :class:`~numpyro_hgf.nn.UNet` field.

    Args:
        model: one of :data:`IMAGE_MODELS`.
        images: ``(n, H, W)`` or ``(n, H, W, C)`` training images (digits: in ``[-1, 1]``;
            inside the box for ``reflection``); ``H`` and ``W`` multiples of
            ``2^(len(channels) - 1)``.
        key: ``jax.random`` key (required).
        channels, num_res_blocks: the UNet (default :func:`default_channels`).
        steps, batch_size, learning_rate, ema_decay, clip_norm: the optimisation (Adam with
            cosine decay; the returned model uses the EMA params).
        devices, precision, checkpoint_dir, checkpoint_every, steps_per_dispatch: trainer
            core options (velocity models only): data parallelism, bf16, orbax checkpoints
            with resume (the checkpoints carry the UNet's config: resuming a different
            network is refused).
        sample_dir, sample_every, num_grid, sample_nfe: every ``sample_every`` steps write
            a grid of ``num_grid`` samples (RK4 with ``sample_nfe`` evaluations) as
            ``sample_dir/step_XXXXXXX.png`` (velocity models only).
        path_options: passed to the path (``omega``, ``T``, ``minibatch_ot``, ...) or, for
            ``diffusion``, to :class:`~numpyro_hgf.sde.VPSDE`; for ``hsm`` to ``fit_hsm``
            (``step_size``, ``num_steps``).
        progress: the trainer's progress bar.
        return_result: also return the :class:`~numpyro_hgf.train.TrainResult`.

    Returns:
        The trained model (``HGFPrior``, ``DiffusionPrior`` or the HSM force ``ScoreModel``),
        or ``(model, result)``.
    """
    from numpyro_hgf.nn import UNet, module_config

    check_choice("model", model, IMAGE_MODELS)
    if key is None:
        raise TypeError("key: expected a jax.random key, got None")
    x = as_images(images)
    channels = default_channels(x.shape[1]) if channels is None else channels
    check_positive_int("steps", steps)
    options = dict(path_options or {})
    trainer_requested = {
        "devices": devices is not None,
        "precision": precision != "float32",
        "checkpoint_dir": checkpoint_dir is not None,
        "sample_dir": sample_dir is not None,
    }
    if model not in _VELOCITY_MODELS:
        asked = [name for name, on in trainer_requested.items() if on]
        if asked:
            raise ValueError(
                f"{asked[0]}: model={model!r} trains through "
                f"{'fit_diffusion' if model == 'diffusion' else 'fit_hsm'}, which does not take "
                "trainer options yet; use a velocity model (flow_matching, oscillation, "
                f"reflection) for {', '.join(asked)}"
            )

    if model in _VELOCITY_MODELS:
        from numpyro_hgf.distributions import HGFPrior
        from numpyro_hgf.paths import PATHS
        from numpyro_hgf.train.velocity import fit_velocity

        name = {"flow_matching": "flow_matching"}.get(model, model)
        path = PATHS[name](**options)
        unet = UNet(
            channels=channels, num_res_blocks=num_res_blocks, time_scale=1000.0 / path.horizon
        )
        unet.check_input(x[:1])
        trainer_options = dict(
            devices=devices,
            precision=precision,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            checkpoint_description={"network": module_config(unet), "path": path.config()},
            steps_per_dispatch=steps_per_dispatch,
        )
        if sample_dir is not None:
            event_shape = tuple(x.shape[1:])
            trainer_options.update(
                callback=_sample_grid_callback(
                    lambda p: HGFPrior(unet, p, path, event_shape=event_shape),
                    sample_dir,
                    check_positive_int("num_grid", num_grid),
                    check_positive_int("sample_nfe", sample_nfe),
                    jax.random.fold_in(key, 1),
                    model,
                ),
                callback_every=check_positive_int(
                    "sample_every", sample_every or max(steps // 5, 1)
                ),
            )
        return fit_velocity(
            path,
            x,
            velocity=unet,
            steps=steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            key=key,
            ema_decay=ema_decay,
            clip_norm=clip_norm,
            progress=progress,
            return_result=return_result,
            trainer_options=trainer_options,
        )

    if model == "diffusion":
        from numpyro_hgf.sde import VPSDE
        from numpyro_hgf.train.diffusion import fit_diffusion

        sde = VPSDE(**options)
        unet = UNet(channels=channels, num_res_blocks=num_res_blocks, time_scale=1000.0 / sde.T)
        unet.check_input(x[:1])
        return fit_diffusion(
            sde,
            x,
            network=unet,
            steps=steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            key=key,
            ema_decay=ema_decay,
            clip_norm=clip_norm,
            progress=progress,
            return_result=return_result,
        )

    # Hamiltonian score matching: force F(x) and velocity V(x, t), both UNets on images
    from numpyro_hgf.train.score import fit_hsm

    image_shape = tuple(x.shape[1:])
    force_unet = UNet(channels=channels, num_res_blocks=num_res_blocks)
    force_unet.check_input(x[:1])
    step_size = float(options.pop("step_size", 0.05))
    num_steps = int(options.pop("num_steps", 5))
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
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        ema_decay=ema_decay,
        clip_norm=clip_norm,
        progress=progress,
        key=key,
        return_result=return_result,
        **options,
    )
    if return_result:
        force_model, _velocity, result = out
        return force_model, result
    return out
