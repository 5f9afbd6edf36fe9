"""Normalizing flows: ``numpyro_hgf`` against FlowJAX (and NumPyro's own IAF), same run.

Two measurements, every number a median over repeats taken in this one process:

1. **Density estimation on standardized two_moons.**  For each architecture pair
   (MAF+spline, RealNVP) both libraries get the same training points, the same
   architecture sizes, the same optimizer (Adam, cosine decay from ``--lr`` to 0, global
   gradient-norm clipping at 10), the same batch size and the same number of optimizer
   steps (whole FlowJAX epochs).  Reported: test NLL on ``--n-test`` held-out points minus
   the entropy floor of the data (1.484 nats for FlowJAX's two_moons, the default), and
   training wall time of one ``fit_flow`` / ``fit_to_data`` call (compilation included),
   with the compile share measured by JAX's own compile-duration events and the process
   CPU time (less sensitive to neighbours on a shared machine).
2. **log_prob + grad throughput** on ``--tp-batch`` 2-D points, jitted, median of many
   calls after warm-up: gradient of the mean log density w.r.t. the params (the training
   hot path) and w.r.t. the input points (the score), plus the "sample + log_prob of the
   sample" direction that an IAF is designed for (variational inference).

Run ``python benchmarks/flows.py --help``; ``--quick`` is a smoke configuration (a couple
of minutes on 2 cores, nearly all compilation).  ``--out PATH`` writes ``PATH.md`` (tables)
and ``PATH.json`` (raw numbers).  ``docs/benchmarks.md`` shows the default configuration
(``make bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

# Differential entropy (nats) of each *standardized* two-moons variant: the lowest mean test
# NLL any density model can reach.  The package's constants; ``--compute-floors`` re-derives
# them independently (Monte Carlo mean of -log p over 40,000 fresh points, p the exact density:
# the noise kernel integrated along the arcs by a 20,000-point quadrature; s.e. ~0.004 nats).
ENTROPY_FLOOR = {
    # toy2d("flowjax_moons") = flowjax.tasks.two_moons (FlowJAX's docs): angle ~ U(0, 2 pi),
    # radius 2, x -/+ 1, noise sd 0.2.  The 1.484 (Monte Carlo here, two seeds:
    # 1.4839 +- 0.0042 and 1.4798 +- 0.0033).
    "flowjax": "FLOWJAX_MOONS_ENTROPY",
    # toy2d("two_moons") = FFJORD = 2 * make_moons(noise=0.1) + shift: a different density
    # (package 1.830; Monte Carlo here, two seeds: 1.8341 +- 0.0037 and 1.8367 +- 0.0029).
    "ffjord": "TWO_MOONS_ENTROPY",
}
TOY2D_NAME = {"flowjax": "flowjax_moons", "ffjord": "two_moons"}


def entropy_floor(dataset: str) -> float:
    from numpyro_hgf import datasets

    return float(getattr(datasets, ENTROPY_FLOOR[dataset]))


# --------------------------------------------------------------------------------------------
# compile-time accounting (JAX's own monitoring events)
# --------------------------------------------------------------------------------------------

_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_compile_seconds = [0.0]


def _on_event(event, duration, **_kwargs):
    if event in _COMPILE_EVENTS:
        _compile_seconds[0] += duration


jax.monitoring.register_event_duration_secs_listener(_on_event)


def timed(fn, *args, **kwargs):
    """``(result, wall s, s of that spent tracing/lowering/compiling, process CPU s)``."""
    c0 = _compile_seconds[0]
    p0 = time.process_time()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    jax.block_until_ready(jax.tree.leaves(out))
    wall = time.perf_counter() - t0
    return out, wall, _compile_seconds[0] - c0, time.process_time() - p0


def median(xs):
    return float(statistics.median(xs))


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    steps: int
    repeats: int
    batch_size: int
    lr: float
    clip_norm: float
    n_train: int
    n_val: int
    n_test: int
    layers: int
    width: int
    depth: int
    num_bins: int
    bound: float
    tp_batch: int
    tp_calls: int
    iaf_layers: int
    seed: int
    archs: tuple[str, ...]

    @property
    def hidden(self) -> tuple[int, ...]:
        return (self.width,) * self.depth

    @property
    def batches_per_epoch(self) -> int:
        return self.n_train // self.batch_size

    @property
    def epochs(self) -> int:
        return max(1, round(self.steps / self.batches_per_epoch))

    @property
    def total_steps(self) -> int:
        """Optimizer steps both libraries run: whole FlowJAX epochs."""
        return self.epochs * self.batches_per_epoch


def parse_args(argv=None) -> Config:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="training runs per library (median)")
    p.add_argument("--steps", type=int, default=5000, help="optimizer steps (rounded to epochs)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3, help="peak Adam learning rate (cosine)")
    p.add_argument("--clip-norm", type=float, default=10.0)
    p.add_argument("--n-train", type=int, default=10_000)
    p.add_argument("--n-val", type=int, default=1_000, help="FlowJAX's validation split")
    p.add_argument("--n-test", type=int, default=20_000)
    p.add_argument("--layers", type=int, default=8, help="flow layers")
    p.add_argument("--width", type=int, default=64, help="conditioner hidden width")
    p.add_argument("--depth", type=int, default=2, help="conditioner hidden layers")
    p.add_argument("--num-bins", type=int, default=8, help="spline bins (FlowJAX knots + 1)")
    p.add_argument("--bound", type=float, default=4.0, help="spline interval [-B, B]")
    p.add_argument("--tp-batch", type=int, default=1024, help="throughput batch size")
    p.add_argument("--tp-calls", type=int, default=200, help="timed calls per throughput row")
    p.add_argument("--iaf-layers", type=int, default=None, help="IAF layers (default --layers)")
    p.add_argument("--arch", action="append", choices=("spline", "realnvp"), default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny smoke configuration")
    p.add_argument("--out", default=None, help="write OUT.md and OUT.json")
    p.add_argument("--skip-train", action="store_true", help="throughput only")
    p.add_argument("--skip-throughput", action="store_true", help="training only")
    p.add_argument(
        "--dataset",
        choices=("flowjax", "ffjord"),
        default="flowjax",
        help="two-moons variant: FlowJAX's (floor 1.484, the issue's target) or FFJORD's",
    )
    p.add_argument(
        "--compute-floors", action="store_true", help="recompute the entropy floors and exit"
    )
    a = p.parse_args(argv)
    if a.quick:
        a.repeats, a.steps, a.n_train, a.n_val, a.n_test = 1, 80, 2048, 256, 2048
        a.layers, a.width, a.tp_calls = 2, 16, 20
    cfg = Config(
        steps=a.steps,
        repeats=a.repeats,
        batch_size=a.batch_size,
        lr=a.lr,
        clip_norm=a.clip_norm,
        n_train=a.n_train,
        n_val=a.n_val,
        n_test=a.n_test,
        layers=a.layers,
        width=a.width,
        depth=a.depth,
        num_bins=a.num_bins,
        bound=a.bound,
        tp_batch=a.tp_batch,
        tp_calls=a.tp_calls,
        iaf_layers=a.iaf_layers or a.layers,
        seed=a.seed,
        archs=tuple(a.arch or ("spline", "realnvp")),
    )
    return cfg, a


# --------------------------------------------------------------------------------------------
# data: the same points for both libraries
# --------------------------------------------------------------------------------------------


DATASET = ["flowjax"]  # set from --dataset in main()


def two_moons(n, key, dataset=None):
    """``n`` standardized two-moons points (exact population moments), float32 ``(n, 2)``.

    ``"flowjax"``: ``toy2d("flowjax_moons")``, the same points as ``flowjax.tasks.two_moons``
    for the same key (mean 0, variances 3.04 and 2.04); ``"ffjord"``: ``toy2d("two_moons")``.
    """
    from numpyro_hgf.datasets import toy2d

    return toy2d(TOY2D_NAME[dataset or DATASET[0]], n, key, standardize=True)


def compute_floors(batches=20, m=2000, seed=0):
    """Entropy of each standardized variant: Monte Carlo mean of -log p over fresh points,
    ``p`` = arc-uniform mixture of isotropic Gaussians (quadrature over 20,000 arc points).
    Returns ``{dataset: (H, standard error)}``; about a minute on 2 cores."""
    from scipy.special import logsumexp

    rng = np.random.default_rng(seed)

    def fj_curve(a):
        return np.stack([2 * np.cos(a) + np.where(a > np.pi, 1.0, -1.0), 2 * np.sin(a)], 1)

    def ff_curve(t, which):
        outer = np.stack([np.cos(t), np.sin(t)], 1)
        inner = np.stack([1 - np.cos(t), 1 - np.sin(t) - 0.5], 1)
        return np.where(which[:, None] == 0, outer, inner)

    grid_a = np.linspace(0, 2 * np.pi, 20_000, endpoint=False)
    grid_t = np.linspace(0, np.pi, 10_000)
    variants = {
        # (quadrature points, sampler, noise sd, log of the standardizing sd product)
        "flowjax": (
            fj_curve(grid_a),
            lambda m: fj_curve(rng.uniform(0, 2 * np.pi, m)) + 0.2 * rng.normal(size=(m, 2)),
            0.2,
            0.5 * np.log(3.04 * 2.04),
        ),
        "ffjord": (  # make_moons scale; standardizing removes the factor 2 and the shift
            np.concatenate([ff_curve(grid_t, np.zeros(10_000)), ff_curve(grid_t, np.ones(10_000))]),
            lambda m: (
                ff_curve(rng.uniform(0, np.pi, m), rng.integers(0, 2, m))
                + 0.1 * rng.normal(size=(m, 2))
            ),
            0.1,
            0.5 * np.log(0.76 * (0.5 - 4 / np.pi**2 + (4 / np.pi - 0.5) ** 2 / 4 + 0.01)),
        ),
    }
    out = {}
    for name, (curve, draw, sd, log_std) in variants.items():
        hs = []
        for _ in range(batches):
            p = draw(m)
            d2 = ((p[:, None, :] - curve[None]) ** 2).sum(-1)
            logp = logsumexp(-d2 / (2 * sd**2), axis=1) - np.log(len(curve) * 2 * np.pi * sd**2)
            hs.append(-logp.mean())
        out[name] = (float(np.mean(hs) - log_std), float(np.std(hs) / np.sqrt(batches)))
    return out


def split_like_flowjax(key, data, val_prop):
    """The train/val split ``flowjax.train.fit_to_data`` makes from ``key`` (same code path)."""
    from flowjax.train.train_utils import train_val_split

    _, subkey = jax.random.split(key)
    (train,), (val,) = train_val_split(subkey, (data,), val_prop=val_prop)
    return train, val


# --------------------------------------------------------------------------------------------
# numpyro_hgf
# --------------------------------------------------------------------------------------------

OURS_KIND = {"spline": "spline", "realnvp": "realnvp"}


def ours_options(cfg: Config, arch: str) -> dict:
    return {"num_bins": cfg.num_bins, "bound": cfg.bound} if arch == "spline" else {}


def fit_ours(cfg: Config, arch: str, train, key, steps=None):
    from numpyro_hgf.train import fit_flow

    flow, _result = fit_flow(
        OURS_KIND[arch],
        train,
        steps=steps or cfg.total_steps,
        batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        key=key,
        num_layers=cfg.layers,
        hidden=cfg.hidden,
        progress=False,
        return_result=True,
        clip_norm=cfg.clip_norm,
        flow_options=ours_options(cfg, arch),
    )
    return flow


def build_ours(cfg: Config, arch: str, key):
    from numpyro_hgf.flows import build_flow

    return build_flow(
        OURS_KIND[arch],
        2,
        num_layers=cfg.layers,
        hidden=cfg.hidden,
        key=key,
        **ours_options(cfg, arch),
    )


def nll_ours(flow, x):
    return float(jax.jit(lambda f, x: -jnp.mean(f.log_prob(x)))(flow, x))


# --------------------------------------------------------------------------------------------
# FlowJAX
# --------------------------------------------------------------------------------------------


def build_flowjax(cfg: Config, lib: str, key):
    """FlowJAX's own constructors with the same sizes (base made non-trainable, as ours).

    ``lib``: ``"flowjax_maf_spline"`` (masked_autoregressive_flow + RationalQuadraticSpline,
    the issue's MAF+spline), ``"flowjax_coupling_spline"`` (coupling_flow +
    RationalQuadraticSpline: exactly our spline coupling's function class) or
    ``"flowjax_realnvp"`` (coupling_flow with its default affine transformer).
    """
    import paramax
    from flowjax.bijections import RationalQuadraticSpline
    from flowjax.distributions import Normal
    from flowjax.flows import coupling_flow, masked_autoregressive_flow

    base = paramax.non_trainable(Normal(jnp.zeros(2)))
    common = dict(
        base_dist=base,
        flow_layers=cfg.layers,
        nn_width=cfg.width,
        nn_depth=cfg.depth,
        nn_activation=jax.nn.gelu,  # numpyro_hgf's MLP / MADE default
    )
    if lib == "flowjax_realnvp":
        return coupling_flow(key, **common)  # default transformer: affine, softplus scale
    # FlowJAX ``knots`` are inner knots: K bins = knots + 1.
    transformer = RationalQuadraticSpline(knots=cfg.num_bins - 1, interval=cfg.bound)
    if lib == "flowjax_maf_spline":
        return masked_autoregressive_flow(key, transformer=transformer, **common)
    if lib == "flowjax_coupling_spline":
        return coupling_flow(key, transformer=transformer, **common)
    raise ValueError(f"lib: unknown FlowJAX variant {lib!r}")


def flowjax_optimizer(cfg: Config, steps: int):
    """The optimizer ``fit_flow`` builds: clip by global norm, then Adam with cosine decay."""
    return optax.chain(
        optax.clip_by_global_norm(cfg.clip_norm),
        optax.adam(optax.cosine_decay_schedule(cfg.lr, steps)),
    )


def fit_flowjax(cfg: Config, lib: str, data_with_val, key, epochs=None):
    from flowjax.train import fit_to_data

    epochs = epochs or cfg.epochs
    init_key, train_key = jax.random.split(key)
    dist = build_flowjax(cfg, lib, init_key)
    dist, _losses = fit_to_data(
        train_key,
        dist,
        data_with_val,
        optimizer=flowjax_optimizer(cfg, epochs * cfg.batches_per_epoch),
        max_epochs=epochs,
        max_patience=10**9,  # no early stopping: exactly ``epochs`` epochs
        batch_size=cfg.batch_size,
        val_prop=cfg.n_val / (cfg.n_train + cfg.n_val),
        return_best=False,  # the final params, like fit_flow without validation data
        show_progress=False,
    )
    return dist


def nll_flowjax(dist, x):
    import equinox as eqx

    return float(eqx.filter_jit(lambda d, x: -jnp.mean(d.log_prob(x)))(dist, x))


# --------------------------------------------------------------------------------------------
# training benchmark
# --------------------------------------------------------------------------------------------


LIBS = {
    "spline": ("ours", "flowjax_maf_spline", "flowjax_coupling_spline"),
    "realnvp": ("ours", "flowjax_realnvp"),
}
REFERENCE = {"spline": "flowjax_maf_spline", "realnvp": "flowjax_realnvp"}


def run_training(cfg: Config, log=print) -> list[dict]:
    rows = []
    floor = entropy_floor(DATASET[0])
    root = jax.random.PRNGKey(cfg.seed)
    test = two_moons(cfg.n_test, jax.random.fold_in(root, 10**6))
    log(
        f"training on {DATASET[0]} two_moons (floor {floor}): {cfg.total_steps} steps = "
        f"{cfg.epochs} epochs x {cfg.batches_per_epoch} batches of {cfg.batch_size}, "
        f"n_train {cfg.n_train}, test {cfg.n_test}"
    )
    for arch in cfg.archs:
        libs = LIBS[arch]
        per = {lib: [] for lib in libs}
        for r in range(cfg.repeats):
            k_data, k_fj, k_ours = jax.random.split(jax.random.fold_in(root, r), 3)
            data = two_moons(cfg.n_train + cfg.n_val, k_data)
            # the exact training points fit_to_data will use (its own split of its own key)
            train, _val = split_like_flowjax(jax.random.split(k_fj)[1], data, _val_prop(cfg))
            # rotate the order, so no library always runs first (cold caches, CPU neighbours)
            order = libs[r % len(libs) :] + libs[: r % len(libs)]
            for lib in order:
                if lib == "ours":
                    flow, wall, comp, cpu = timed(fit_ours, cfg, arch, train, k_ours)
                    nll = nll_ours(flow, test)
                else:
                    dist, wall, comp, cpu = timed(fit_flowjax, cfg, lib, data, k_fj)
                    nll = nll_flowjax(dist, test)
                per[lib].append({"nll": nll, "wall": wall, "compile": comp, "cpu": cpu})
                log(
                    f"  {arch:8s} {lib:24s} repeat {r}: test NLL {nll:.4f} "
                    f"(gap {nll - floor:+.4f}), {wall:.2f} s (compile {comp:.2f} s, "
                    f"CPU {cpu:.1f} s)"
                )
        for lib, runs in per.items():
            nlls = [x["nll"] for x in runs]
            rows.append(
                {
                    "arch": arch,
                    "lib": lib,
                    "nll": median(nlls),
                    "nll_min": min(nlls),
                    "nll_max": max(nlls),
                    "gap": median(nlls) - floor,
                    "wall": median([x["wall"] for x in runs]),
                    "compile": median([x["compile"] for x in runs]),
                    "wall_ex_compile": median([x["wall"] - x["compile"] for x in runs]),
                    "cpu": median([x["cpu"] for x in runs]),
                    # ratio of medians would mix runs; take the median of per-repeat ratios
                    "runs": runs,
                }
            )
        ours = {r["lib"]: r for r in rows if r["arch"] == arch}["ours"]
        for row in rows:
            if row["arch"] == arch and row["lib"] != "ours":
                pairs = list(zip(ours["runs"], row["runs"], strict=True))
                row["wall_ratio_ours_over_this"] = median([a["wall"] / b["wall"] for a, b in pairs])
                row["cpu_ratio_ours_over_this"] = median([a["cpu"] / b["cpu"] for a, b in pairs])
    return rows


def _val_prop(cfg: Config) -> float:
    return cfg.n_val / (cfg.n_train + cfg.n_val)


# --------------------------------------------------------------------------------------------
# throughput benchmark
# --------------------------------------------------------------------------------------------


def time_calls(fn, *args, calls=20):
    """Seconds of each of ``calls`` calls of an already-jitted ``fn`` (each blocked on)."""
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return times


def forward_with_logq(transforms, base, z):
    """Sampling direction of a numpyro TransformedDistribution: ``x = T(z)`` and ``log q(x)``
    from the forward pass alone (the intermediates path ``AutoIAFNormal`` relies on)."""
    x = z
    logq = base.log_prob(z)
    for t in transforms:
        y, inter = t.call_with_intermediates(x)
        logq = logq - t.log_abs_det_jacobian(x, y, intermediates=inter)
        x = y
    return x, logq


def iaf_flow(key, layers, hidden):
    """NumPyro's IAF exactly as ``AutoIAFNormal._get_posterior`` builds it (stax ELU MADE)."""
    import numpyro.distributions as dist
    from jax.example_libraries import stax
    from numpyro.distributions.flows import InverseAutoregressiveTransform
    from numpyro.distributions.transforms import PermuteTransform
    from numpyro.nn import AutoregressiveNN

    params, applies = [], []
    for k in jax.random.split(key, layers):
        init_fn, apply_fn = AutoregressiveNN(
            2, list(hidden), permutation=jnp.arange(2), nonlinearity=stax.Elu
        )
        params.append(init_fn(k, (2,))[1])
        applies.append(apply_fn)

    def make(ps):
        transforms = []
        for i, (apply_fn, p) in enumerate(zip(applies, ps, strict=True)):
            if i > 0:
                transforms.append(PermuteTransform(jnp.arange(2)[::-1]))
            transforms.append(InverseAutoregressiveTransform(partial(apply_fn, p)))
        return dist.TransformedDistribution(dist.Normal(jnp.zeros(2), 1).to_event(1), transforms)

    return params, make


def throughput_fns_ours(flow, key):
    density_p = jax.jit(
        lambda f, x: jax.value_and_grad(lambda p: -jnp.mean(f.with_params(p).log_prob(x)))(f.params)
    )
    density_x = jax.jit(lambda f, x: jax.value_and_grad(lambda x: jnp.sum(f.log_prob(x)))(x))

    @jax.jit
    def sample(f, z):
        return jax.value_and_grad(
            lambda p: -jnp.mean(forward_with_logq(f.with_params(p).transforms, f.base_dist, z)[1])
        )(f.params)

    return (
        lambda x: density_p(flow, x),
        lambda x: density_x(flow, x),
        lambda z: sample(flow, z),
    )


def throughput_fns_flowjax(dist, key):
    import equinox as eqx
    import paramax

    params, static = eqx.partition(
        dist, eqx.is_inexact_array, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable)
    )

    def d(p):
        return paramax.unwrap(eqx.combine(p, static))

    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)  # FlowJAX sampling wants typed keys

    density_p = jax.jit(lambda p, x: jax.value_and_grad(lambda p: -jnp.mean(d(p).log_prob(x)))(p))
    density_x = jax.jit(lambda p, x: jax.value_and_grad(lambda x: jnp.sum(d(p).log_prob(x)))(x))
    sample = jax.jit(
        lambda p, k, n: jax.value_and_grad(
            lambda p: -jnp.mean(d(p).sample_and_log_prob(k, (n,))[1])
        )(p),
        static_argnums=2,
    )
    return (
        lambda x: density_p(params, x),
        lambda x: density_x(params, x),
        lambda z: sample(params, key, z.shape[0]),
    )


def throughput_fns_iaf(cfg: Config, key):
    params, make = iaf_flow(key, cfg.iaf_layers, cfg.hidden)
    density_p = jax.jit(
        lambda ps, x: jax.value_and_grad(lambda ps: -jnp.mean(make(ps).log_prob(x)))(ps)
    )
    density_x = jax.jit(
        lambda ps, x: jax.value_and_grad(lambda x: jnp.sum(make(ps).log_prob(x)))(x)
    )

    def _sample(ps, z):
        def loss(ps):
            d = make(ps)
            return -jnp.mean(forward_with_logq(d.transforms, d.base_dist, z)[1])

        return jax.value_and_grad(loss)(ps)

    sample = jax.jit(_sample)
    return (
        lambda x: density_p(params, x),
        lambda x: density_x(params, x),
        lambda z: sample(params, z),
    )


THROUGHPUT_COLUMNS = (
    ("density_params", "log_prob(data) + grad wrt params"),
    ("density_input", "log_prob(data) + grad wrt x"),
    ("sample_params", "sample + log_prob(sample) + grad wrt params"),
)


def run_throughput(cfg: Config, log=print) -> list[dict]:
    root = jax.random.PRNGKey(cfg.seed + 1)
    x = two_moons(cfg.tp_batch, jax.random.fold_in(root, 1))
    z = jax.random.normal(jax.random.fold_in(root, 2), (cfg.tp_batch, 2))
    key = jax.random.fold_in(root, 3)
    entries = []
    for arch in cfg.archs:
        entries.append(
            (f"numpyro_hgf {arch}", throughput_fns_ours(build_ours(cfg, arch, key), key))
        )
        for lib in LIBS[arch][1:]:
            fns = throughput_fns_flowjax(build_flowjax(cfg, lib, key), key)
            entries.append((f"{LIB_NAMES[lib]} ({arch})", fns))
    entries.append(("NumPyro IAF (AutoIAFNormal)", throughput_fns_iaf(cfg, key)))
    cells = [
        (name, col, fn, arg)
        for name, fns in entries
        for (col, _), fn, arg in zip(THROUGHPUT_COLUMNS, fns, (x, x, z), strict=True)
    ]
    for _, _, fn, arg in cells:  # compile and warm up everything first
        for _ in range(3):
            jax.block_until_ready(fn(arg))
    # round-robin in small chunks, so a busy spell on a shared machine hits every cell alike
    times = {(name, col): [] for name, col, _, _ in cells}
    chunk = 10
    for _ in range(max(1, cfg.tp_calls // chunk)):
        for name, col, fn, arg in cells:
            times[(name, col)] += time_calls(fn, arg, calls=chunk)
    rows = []
    for name, _ in entries:
        row = {"name": name}
        for col, _ in THROUGHPUT_COLUMNS:
            row[col] = median(times[(name, col)]) * 1e6
        rows.append(row)
        log(f"  {name:34s} " + "  ".join(f"{c}: {row[c]:8.1f} us" for c, _ in THROUGHPUT_COLUMNS))
    return rows


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------

ARCH_NAMES = {
    "spline": "MAF+spline",
    "realnvp": "RealNVP (affine coupling)",
}
LIB_NAMES = {
    "ours": "numpyro_hgf",
    "flowjax_maf_spline": "FlowJAX MAF+spline",
    "flowjax_coupling_spline": "FlowJAX spline coupling",
    "flowjax_realnvp": "FlowJAX RealNVP",
}
OURS_ARCH = {"spline": "spline coupling", "realnvp": "realnvp"}


def machine() -> str:
    import flowjax
    import numpyro

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPU cores ({cpu}), backend {jax.default_backend()}, "
        f"Python {platform.python_version()}, jax {jax.__version__}, "
        f"numpyro {numpyro.__version__}, flowjax {flowjax.__version__}"
    )


def markdown(cfg: Config, train_rows, tp_rows, command: str) -> str:
    floor = entropy_floor(DATASET[0])
    out = [f"Command: `{command}`", "", f"Machine: {machine()}", ""]
    if train_rows:
        out += [
            f"Data: {DATASET[0]} two_moons, standardized (entropy floor {floor} nats); "
            f"{cfg.n_train} training points (+{cfg.n_val} FlowJAX validation points), test "
            f"NLL on {cfg.n_test} held-out points.  Training: {cfg.total_steps} Adam steps "
            f"({cfg.epochs} FlowJAX epochs x {cfg.batches_per_epoch} batches of "
            f"{cfg.batch_size}), peak lr {cfg.lr:g} with cosine decay to 0, gradient clip "
            f"{cfg.clip_norm:g}; {cfg.layers} layers, conditioner {cfg.depth} x {cfg.width} "
            f"GELU, {cfg.num_bins} spline bins on [-{cfg.bound:g}, {cfg.bound:g}].  Median "
            f"of {cfg.repeats} runs (NLL range in brackets); wall time includes compilation; "
            "ratios are medians of the per-repeat ratios.",
            "",
            "| architecture | library | test NLL (range) | gap to floor | wall s | compile s "
            "| wall - compile s | CPU s | wall ours / this | CPU ours / this |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for arch in cfg.archs:
            for r in (r for r in train_rows if r["arch"] == arch):
                label = LIB_NAMES[r["lib"]]
                if r["lib"] == "ours":
                    label += f" ({OURS_ARCH[arch]})"
                ratios = [r.get(f"{k}_ratio_ours_over_this") for k in ("wall", "cpu")]
                ratios = " | ".join("" if x is None else f"{x:.2f}" for x in ratios)
                out.append(
                    f"| {ARCH_NAMES[arch]} | {label} | {r['nll']:.3f} "
                    f"({r['nll_min']:.3f}-{r['nll_max']:.3f}) | {r['gap']:+.3f} | "
                    f"{r['wall']:.1f} | {r['compile']:.1f} | {r['wall_ex_compile']:.1f} | "
                    f"{r['cpu']:.1f} | {ratios} |"
                )
        out.append("")
    if tp_rows:
        out += [
            f"Throughput: one jitted call on {cfg.tp_batch} points, median of {cfg.tp_calls} "
            "calls after warm-up (taken round-robin over all cells in chunks of 10), "
            "microseconds per call; in brackets the ratio to the "
            "numpyro_hgf row of the same architecture, for the IAF our RealNVP (> 1: slower "
            "than numpyro_hgf).  "
            f"Freshly initialised flows of the sizes above; IAF with {cfg.iaf_layers} layers "
            f"of hidden {cfg.hidden} (ELU, as AutoIAFNormal).",
            "",
            "| flow | " + " | ".join(label for _, label in THROUGHPUT_COLUMNS) + " |",
            "|---|" + "---|" * len(THROUGHPUT_COLUMNS),
        ]
        ref = {}
        for r in tp_rows:
            if r["name"].startswith("numpyro_hgf"):
                ref[r["name"].split()[-1]] = r
        for r in tp_rows:
            arch = r["name"].rstrip(")").split()[-1].strip("(")
            # the IAF is an affine flow: compare it with our RealNVP when that ran
            base = ref.get(arch) or ref.get("realnvp") or ref.get("spline") or tp_rows[0]
            cells = []
            for col, _ in THROUGHPUT_COLUMNS:
                ratio = r[col] / base[col]
                cells.append(f"{r[col]:.0f}" + ("" if r is base else f" ({ratio:.2f}x)"))
            out.append(f"| {r['name']} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main(argv=None):
    cfg, args = parse_args(argv)
    if args.compute_floors:
        for name, (h, se) in compute_floors().items():
            print(
                f"{name}: standardized two_moons entropy {h:.4f} +- {se:.4f} nats "
                f"(numpyro_hgf.datasets.{ENTROPY_FLOOR[name]} = {entropy_floor(name)})"
            )
        return 0
    DATASET[0] = args.dataset
    command = "python benchmarks/flows.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(machine(), flush=True)
    log = partial(print, flush=True)
    train_rows = [] if args.skip_train else run_training(cfg, log)
    tp_rows = [] if args.skip_throughput else run_throughput(cfg, log)
    report = markdown(cfg, train_rows, tp_rows, command.strip())
    print()
    print(report)
    if args.out:
        with open(args.out + ".md", "w") as fh:
            fh.write(report + "\n")
        with open(args.out + ".json", "w") as fh:
            json.dump(
                {
                    "config": cfg.__dict__,
                    "machine": machine(),
                    "training": train_rows,
                    "throughput": tp_rows,
                    "dataset": DATASET[0],
                    "entropy_floor": entropy_floor(DATASET[0]),
                },
                fh,
                indent=2,
                default=lambda o: list(o) if isinstance(o, tuple) else str(o),
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
