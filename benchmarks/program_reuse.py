"""In-process reuse of compiled training programs (issue 21): first vs second ``fit_*`` call.

Each trainer is called twice in one process with the same shapes and options and a new key
(so new initial params and minibatches); the wall time of each call and the XLA backend
compilations JAX reports (``/jax/core/compile/backend_compile_duration``) are printed.  The
second call of every row should compile nothing.

    .venv/bin/python benchmarks/program_reuse.py [--repeats 3]

Medians over ``--repeats`` fresh processes would need a subprocess per repeat; instead the
second call is repeated ``--repeats`` times in the same process (it stays warm) and its median
is reported next to the single first call.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np
from jax import monitoring

import numpyro_hgf as nh

EVENTS: list[float] = []
monitoring.register_event_duration_secs_listener(
    lambda name, duration, **_: EVENTS.append(duration) if "backend_compile" in name else None
)


def timed(fn):
    start = len(EVENTS)
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t, len(EVENTS) - start, sum(EVENTS[start:])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2_000, 2)).astype(np.float32)
    digits = np.asarray(nh.datasets.digits("train", form="binary").images).reshape(-1, 64)
    quiet = dict(progress=False)
    rows = {
        "fit_flow (spline, 8 layers, 2-d, 500 steps)": lambda k: nh.train.fit_flow(
            "spline", x, num_layers=8, key=jax.random.key(k), steps=500, **quiet
        ),
        "fit_rbm (CD-1, 64 x 64, 5 epochs)": lambda k: nh.train.fit_rbm(
            digits, num_hidden=64, key=jax.random.key(k), epochs=5, **quiet
        ),
        "fit_velocity (oscillation, 2-d, 500 steps)": lambda k: nh.train.fit_velocity(
            nh.paths.OscillationPath(), x, key=jax.random.key(k), steps=500, **quiet
        ),
    }
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, repeats {args.repeats}")
    print(f"{'trainer':48s} {'first s':>8s} {'compiles':>8s} {'second s':>9s} {'compiles':>8s}")
    for name, fit in rows.items():
        first, n_first, _ = timed(lambda fit=fit: fit(0))
        seconds = [timed(lambda fit=fit, i=i: fit(i + 1)) for i in range(args.repeats)]
        second = statistics.median(s[0] for s in seconds)
        n_second = max(s[1] for s in seconds)
        print(f"{name:48s} {first:8.2f} {n_first:8d} {second:9.2f} {n_second:8d}", flush=True)


if __name__ == "__main__":
    main()
