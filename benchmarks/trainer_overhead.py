"""Trainer overhead: ``nh.train.Trainer`` against a minimal hand-written flax + optax loop.

Both train the same ``nh.nn.UNet`` with the same flow-matching loss
(:func:`numpyro_hgf.train.velocity_matching_loss`), the same Adam, the same batch size and the
same number of steps per device dispatch: one jitted ``lax.scan`` whose body draws a random
minibatch from the device-resident data, takes ``value_and_grad`` and applies the optax update.
The hand-written loop is what a user would write without the package (donated carry, no
non-finite guard, no progress bar); the Trainer adds the guard (a ``lax.cond`` per step),
the host loop, the loss history and the progress bookkeeping.  The figure of merit is
steps/s of ``Trainer.fit`` (host work included, compilation excluded by a warm-up) over the
hand-written loop's, read as the median of per-repeat ratios; the order alternates per repeat.

Run::

    nice -n 10 .venv/bin/python benchmarks/trainer_overhead.py                # 8x8x1 digits
    nice -n 10 .venv/bin/python benchmarks/trainer_overhead.py --image 32 --channels 32,64,128
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

import numpyro_hgf as nh
from numpyro_hgf.paths import FlowMatchingPath
from numpyro_hgf.train import Trainer, velocity_matching_loss


def make_data(image: int, n: int = 1024):
    if image == 8:
        return nh.datasets.digits().images[:, :, :, None]
    # 32x32x3: digits upsampled and tiled to three channels (the content does not matter
    # for throughput, only the shape)
    x = nh.datasets.digits().images[:n, :, :, None]
    x = jax.image.resize(x, (x.shape[0], image, image, 1), "linear")
    return jnp.repeat(x, 3, axis=-1)


def hand_written(unet, path, optimizer, batch_size: int, steps_per_dispatch: int):
    """The minimal flax + optax ``lax.scan`` loop (what a user writes by hand)."""

    def loss_fn(params, batch, key):
        return velocity_matching_loss(unet, params, path, batch, key)

    def train_step(carry, _, data):
        params, opt_state, key = carry
        key, batch_key, loss_key = jax.random.split(key, 3)
        idx = jax.random.randint(batch_key, (batch_size,), 0, data.shape[0])
        loss, grads = jax.value_and_grad(loss_fn)(params, data[idx], loss_key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, key), loss

    @partial(jax.jit, donate_argnums=0)
    def dispatch(carry, data):
        return jax.lax.scan(partial(train_step, data=data), carry, None, length=steps_per_dispatch)

    def fit(params, data, steps: int, key):
        params = jax.tree.map(lambda a: jnp.array(a, copy=True), params)
        carry = (params, optimizer.init(params), key)
        losses = []
        for _ in range(steps // steps_per_dispatch):
            carry, loss = dispatch(carry, data)
            losses.append(np.asarray(loss))  # the loss reaches the host, as in the Trainer
        return carry[0], np.concatenate(losses)

    return fit


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", type=int, default=8, choices=(8, 16, 32))
    parser.add_argument("--channels", default="16,32")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps-per-dispatch", type=int, default=50)
    parser.add_argument("--dispatches", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = parser.parse_args()

    channels = tuple(int(c) for c in args.channels.split(","))
    unet = nh.nn.UNet(channels=channels, embed_dim=32)
    path = FlowMatchingPath()
    data = make_data(args.image)
    params = unet.init(jax.random.key(0), data[:1], jnp.zeros(()))["params"]
    optimizer = optax.adam(1e-3)
    steps = args.steps_per_dispatch * args.dispatches

    trainer = Trainer(
        lambda p, b, k: velocity_matching_loss(unet, p, path, b, k),
        optimizer,
        batch_size=args.batch,
        steps_per_dispatch=args.steps_per_dispatch,
        precision=args.precision,
        progress=False,
    )
    manual = hand_written(unet, path, optimizer, args.batch, args.steps_per_dispatch)
    if args.precision != "float32":
        manual = None

    def time_trainer():
        tick = time.perf_counter()
        result = trainer.fit(params, data, steps, jax.random.key(1))
        jax.block_until_ready(result.params)
        return steps / (time.perf_counter() - tick), result.history

    def time_manual():
        tick = time.perf_counter()
        out, history = manual(params, data, steps, jax.random.key(1))
        jax.block_until_ready(out)
        return steps / (time.perf_counter() - tick), history

    # warm-up (compilation) and a correctness check: same key, same minibatches, same losses
    _, h_trainer = time_trainer()
    if manual is not None:
        _, h_manual = time_manual()
        np.testing.assert_allclose(h_trainer, h_manual, rtol=1e-4)

    rows = []
    for repeat in range(args.repeats):
        order = [("trainer", time_trainer), ("manual", time_manual)]
        if manual is None:
            order = order[:1]
        if repeat % 2:
            order.reverse()
        rates = {name: fn()[0] for name, fn in order}
        rows.append(rates)
        line = ", ".join(f"{k} {v:.1f} steps/s" for k, v in rates.items())
        print(f"repeat {repeat}: {line}", flush=True)

    trainer_rate = statistics.median(r["trainer"] for r in rows)
    summary = {
        "image": [args.image, args.image, int(data.shape[-1])],
        "channels": channels,
        "params": int(sum(np.size(a) for a in jax.tree.leaves(params))),
        "batch": args.batch,
        "steps_per_dispatch": args.steps_per_dispatch,
        "precision": args.precision,
        "trainer_steps_per_s": trainer_rate,
        "trainer_images_per_s": trainer_rate * args.batch,
        "device": str(jax.devices()[0]),
        "jax": jax.__version__,
        "python": platform.python_version(),
    }
    if manual is not None:
        ratios = [r["trainer"] / r["manual"] for r in rows]
        summary.update(
            manual_steps_per_s=statistics.median(r["manual"] for r in rows),
            ratio_median=statistics.median(ratios),
            ratio_min=min(ratios),
            ratio_max=max(ratios),
        )
    print(json.dumps(summary, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
