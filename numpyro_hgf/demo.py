"""The main job on shipped data: ``numpyro-hgf demo`` (``make demo``).

Four parts, each timed, each writing its PNGs into ``runs/demo/`` and a section of
``report.md``:

1. ``hgf``: an oscillation HGF (:class:`~numpyro_hgf.paths.OscillationPath`, default
   :class:`~numpyro_hgf.nn.TimeMLP`) on the 8x8 digits flattened to 64-vectors and dequantised
   to ``[-1, 1]`` (:func:`~numpyro_hgf.datasets.dequantize`), trained by velocity matching
   (:func:`~numpyro_hgf.train.fit_velocity`); test bits/dim (17 grey levels,
   :func:`~numpyro_hgf.metrics.bits_per_dim`) from the exact-trace ODE likelihood
   (:func:`~numpyro_hgf.samplers.ode.ode_log_prob`, fixed-step RK4) on a test subset, and a sample
   grid.
2. ``flow``: a normalizing flow on standardized two_moons by maximum likelihood; test NLL
   against the entropy floor (:data:`~numpyro_hgf.datasets.TWO_MOONS_ENTROPY`, 1.830 nats).
3. ``inpaint``: the learned digit prior inside a NumPyro model, ``x ~ prior``,
   ``y ~ N(x, sigma_y^2)`` on the observed pixels only, sampled by BlackJAX NUTS
   (:func:`~numpyro_hgf.infer.run_nuts`) in the prior's base space (``x`` = the ODE map of
   ``z``, a cheap fixed-step solver; no trace is needed).  PNG: observation / truth /
   posterior mean / posterior std.
4. ``nlme``: the theophylline one-compartment NLME fitted by SVI
   (:func:`~numpyro_hgf.models.nlme.fit_svi`), its parameters against the published FOCE-I
   values (:data:`~numpyro_hgf.models.nlme.THEOPHYLLINE_FOCEI`) and a VPC PNG.

``DemoConfig.quick()`` is a seconds-long wiring check (tests); the default budget fits in a
few minutes on 2 CPU cores, compilation included.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

DEMO_PARTS = ("hgf", "flow", "inpaint", "nlme")


@dataclass(frozen=True)
class DemoConfig:
    """Budgets of the demo (defaults: the full run).

    ``parts`` selects which of :data:`DEMO_PARTS` run (``inpaint`` needs ``hgf``).
    """

    out: Path = Path("runs/demo")
    flow: str = "spline"
    steps: int = 3_000
    num_train: int = 20_000
    num_test: int = 10_000
    seed: int = 0
    progress: bool | None = None
    parts: tuple[str, ...] = DEMO_PARTS
    hgf_steps: int = 3_000
    hgf_hidden: tuple[int, ...] = (128, 128)
    hgf_eval_points: int = 100
    hgf_eval_nfe: int = 32
    inpaint_nfe: int = 8
    num_warmup: int = 150
    num_samples: int = 150
    num_chains: int = 2
    nlme_steps: int = 1_500
    vpc_sims: int = 300

    @classmethod
    def quick(cls, **overrides) -> DemoConfig:
        """Tiny budgets: a wiring check in seconds (numbers are not meaningful)."""
        tiny = dict(
            steps=30,
            num_train=1_000,
            num_test=500,
            flow="realnvp",
            hgf_steps=30,
            hgf_hidden=(16,),
            hgf_eval_points=8,
            hgf_eval_nfe=4,
            inpaint_nfe=2,
            num_warmup=10,
            num_samples=10,
            num_chains=1,
            nlme_steps=20,
            vpc_sims=20,
        )
        return cls(**{**tiny, **overrides})


def _digit_data(key, split):
    from numpyro_hgf import datasets

    raw = datasets.digits(split, form="raw").images.reshape(-1, 64)
    return datasets.dequantize(key, raw, interval=(-1.0, 1.0))


def part_hgf(config: DemoConfig, out: Path, key) -> tuple[list[str], object]:
    """Oscillation HGF on digits: returns report lines and the trained prior."""
    from numpyro_hgf import datasets, io
    from numpyro_hgf.distributions import HGFPrior
    from numpyro_hgf.metrics import bits_per_dim
    from numpyro_hgf.paths import OscillationPath
    from numpyro_hgf.samplers.ode import ODESolver
    from numpyro_hgf.train import fit_velocity
    from numpyro_hgf.train.images import save_image_grid

    k_train, k_test, k_fit, k_sample = jax.random.split(key, 4)
    train = _digit_data(k_train, "train")
    test = _digit_data(k_test, "test")[: config.hgf_eval_points]
    prior, result = fit_velocity(
        OscillationPath(),
        train,
        hidden=config.hgf_hidden,
        steps=config.hgf_steps,
        batch_size=256,
        learning_rate=2e-3,
        key=k_fit,
        progress=config.progress,
        return_result=True,
        solver=ODESolver("rk4", nfe=config.hgf_eval_nfe),
    )
    model_dir = io.save(out / "digits-hgf", prior, overwrite=True)
    exact = HGFPrior(
        prior.velocity,
        prior.params,
        prior.path,
        trace="exact",
        solver=ODESolver("rk4", nfe=config.hgf_eval_nfe),
    )
    log_p = jax.jit(exact.log_prob)(test)
    bpd = float(jnp.mean(bits_per_dim(log_p, 64, datasets.DIGITS_NUM_LEVELS, (-1.0, 1.0))))
    samples = exact.sample(k_sample, (64,))
    grid = save_image_grid(
        out / "digits_hgf_samples.png",
        jnp.clip(samples, -1, 1).reshape(-1, 8, 8, 1),
        ncols=8,
        title=f"oscillation HGF samples (test {bpd:.2f} bits/dim)",
    )
    lines = [
        "## Oscillation HGF on digits",
        "",
        f"- 64-d digits (1,437 train images, dequantised to [-1, 1]); TimeMLP hidden "
        f"{tuple(config.hgf_hidden)}; {config.hgf_steps} Adam steps, batch 256, "
        f"final loss {result.history[-1]:.4f}",
        f"- test bits/dim on {test.shape[0]} held-out digits (17 levels; exact-trace ODE "
        f"likelihood, RK4 with {config.hgf_eval_nfe} evaluations): **{bpd:.3f}** "
        f"(uniform: {np.log2(17):.3f})",
        f"- saved model: `{model_dir}` (load with `numpyro_hgf.load`)",
        "",
        f"![samples]({grid.name})",
        "",
    ]
    return lines, prior


def part_flow(config: DemoConfig, out: Path, key) -> list[str]:
    """Normalizing flow on standardized two_moons."""
    from numpyro_hgf import datasets, io, plots
    from numpyro_hgf.train import fit_flow

    k_train, k_test, k_fit, k_sample = jax.random.split(key, 4)
    train = datasets.toy2d("two_moons", config.num_train, k_train, standardize=True)
    test = datasets.toy2d("two_moons", config.num_test, k_test, standardize=True)
    floor = datasets.TWO_MOONS_ENTROPY
    flow, result = fit_flow(
        config.flow,
        train,
        steps=config.steps,
        batch_size=512,
        learning_rate=3e-3,
        key=k_fit,
        num_layers=4,
        hidden=(64, 64),
        progress=config.progress,
        return_result=True,
    )
    test_nll = float(-jnp.mean(jax.jit(flow.log_prob)(test)))
    samples = flow.sample(k_sample, (5_000,))
    model_dir = io.save(out / "two_moons-flow", flow, overwrite=True)
    density_png = plots.plot_density_2d(
        out / "two_moons_density.png",
        flow.log_prob,
        test,
        samples,
        title=f"{config.flow} flow on two_moons: test NLL {test_nll:.3f} nats",
    )
    loss_png = plots.plot_loss(out / "two_moons_loss.png", result.history, ylabel="NLL (nats)")
    return [
        "## Normalizing flow on two_moons",
        "",
        f"- flow: `{config.flow}`, 4 layers, hidden (64, 64); "
        f"{config.steps} Adam steps, batch 512, on {config.num_train:,} points",
        f"- test NLL on {config.num_test:,} held-out points: **{test_nll:.3f} nats**",
        f"- entropy floor of standardized two_moons: {floor} nats (gap {test_nll - floor:+.3f})",
        f"- saved model: `{model_dir}` (load with `numpyro_hgf.load`)",
        "",
        f"![density]({density_png.name})",
        "",
        f"![loss]({loss_png.name})",
        "",
    ]


def inpainting_model(prior, y, mask, sigma_y):
    """``x ~ prior`` (64,), ``y ~ N(x, sigma_y^2)`` on the pixels where ``mask`` is true."""
    import numpyro
    import numpyro.distributions as dist

    x = numpyro.sample("x", prior)
    numpyro.sample("y", dist.Normal(x, sigma_y).mask(mask).to_event(1), obs=y)


def _inpaint_png(path, truth, y, mask, mean, std):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    obs = np.where(np.asarray(mask), np.asarray(y), np.nan).reshape(8, 8)
    panels = [
        ("observation (red: hidden)", obs, "gray", (-1, 1)),
        ("truth", np.asarray(truth).reshape(8, 8), "gray", (-1, 1)),
        ("posterior mean", mean.reshape(8, 8), "gray", (-1, 1)),
        ("posterior std", std.reshape(8, 8), "magma", (0, None)),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(7.2, 2.2))
    for ax, (title, img, cmap, (lo, hi)) in zip(axes, panels, strict=True):
        cmap = plt.get_cmap(cmap).with_extremes(bad="tab:red")  # hidden pixels in red
        ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def part_inpaint(config: DemoConfig, out: Path, key, prior, sigma_y=0.3, fraction=0.5) -> list[str]:
    """Masked-digit reconstruction under the learned prior with BlackJAX NUTS."""
    from numpyro_hgf import datasets
    from numpyro_hgf.distributions import HGFPrior
    from numpyro_hgf.infer import run_nuts
    from numpyro_hgf.samplers.ode import ODESolver

    k_mask, k_noise, k_nuts = jax.random.split(key, 3)
    truth = datasets.digits("test", form="scaled").images.reshape(-1, 64)[7]
    mask = jax.random.uniform(k_mask, (64,)) < fraction
    y = jnp.where(mask, truth + sigma_y * jax.random.normal(k_noise, (64,)), 0.0)
    fast = HGFPrior(
        prior.velocity,
        prior.params,
        prior.path,
        trace="exact",
        solver=ODESolver("rk4", nfe=config.inpaint_nfe),
    )
    idata = run_nuts(
        inpainting_model,
        fast,
        y,
        mask,
        sigma_y,
        num_warmup=config.num_warmup,
        num_samples=config.num_samples,
        num_chains=config.num_chains,
        key=k_nuts,
        progress=config.progress,
    )
    x = idata.posterior["x"].values  # (chain, draw, 64)
    mean, std = x.mean((0, 1)), x.std((0, 1))
    m, t = np.asarray(mask), np.asarray(truth)
    rmse_hidden = float(np.sqrt(np.mean((mean - t)[~m] ** 2)))
    rmse_obs = float(np.sqrt(np.mean((mean - t)[m] ** 2)))
    rmse_noisy = float(np.sqrt(np.mean((np.asarray(y) - t)[m] ** 2)))
    rmse_zero = float(np.sqrt(np.mean(t[~m] ** 2)))
    png = _inpaint_png(out / "inpainting.png", truth, y, mask, mean, std)
    grads = int(idata.sample_stats["n_steps"].values.sum())
    return [
        "## Masked-digit reconstruction under the learned HGF prior (BlackJAX NUTS)",
        "",
        f"- NumPyro model `x ~ HGFPrior`, `y ~ Normal(x, {sigma_y}).mask(mask)`; "
        f"{int(m.sum())} of 64 pixels observed; NUTS runs in the prior's base space "
        f"(z ~ base, x = the ODE map of z, RK4 with {config.inpaint_nfe} evaluations: exact "
        "by the change of variables, no trace)",
        f"- `run_nuts`: {config.num_chains} chains x ({config.num_warmup} warmup + "
        f"{config.num_samples} draws), {grads} sampling-phase gradients, acceptance "
        f"{float(idata.sample_stats['acceptance_rate'].values.mean()):.2f}",
        f"- RMSE of the posterior mean on hidden pixels: **{rmse_hidden:.3f}** "
        f"(all-zero guess: {rmse_zero:.3f}); on observed pixels: {rmse_obs:.3f} "
        f"(noisy observation: {rmse_noisy:.3f})",
        "",
        f"![inpainting]({png.name})",
        "",
    ]


def part_nlme(config: DemoConfig, out: Path, key) -> list[str]:
    """Theophylline NLME by SVI: parameter table and VPC."""
    from numpyro_hgf.models import nlme

    k_fit, k_vpc = jax.random.split(key)
    data = nlme.theophylline_data()
    model, init = nlme.theophylline_model()
    res = nlme.fit_svi(
        model, data, init, steps=config.nlme_steps, key=k_fit, progress=config.progress
    )
    params = jax.tree.map(jnp.asarray, res.params)
    rows = [
        {"name": name, "estimate": float(fn(params)), "se": float("nan")}
        for name, fn in nlme._reporting(model, params)
    ]
    pub = nlme.THEOPHYLLINE_FOCEI
    vpc, _ = nlme.plot_vpc(
        out / "theophylline_vpc.png",
        model,
        params,
        data,
        key=k_vpc,
        num_sims=config.vpc_sims,
        title="theophylline VPC (SVI fit)",
        xlabel="time (h)",
        ylabel="concentration (mg/L)",
    )
    table = nlme.format_table(rows, pub).replace(" nan |", " - |")
    return [
        "## Theophylline NLME by SVI",
        "",
        f"- one compartment, first-order absorption, log-normal IIV on ka, CL, V; "
        f"{config.nlme_steps} SVI steps (multivariate-normal guide); ELBO {res.elbo:.2f} "
        f"(published FOCE-I log-likelihood {pub['log_likelihood']})",
        "- reference column: published FOCE-I estimates (SE not computed for SVI)",
        "",
        table,
        "",
        f"![vpc]({Path(vpc).name})",
        "",
    ]


def run_demo(config: DemoConfig = DemoConfig()) -> Path:
    """Run the demo parts in ``config.parts``; returns the path of ``report.md``."""
    parts = tuple(config.parts)
    unknown = [p for p in parts if p not in DEMO_PARTS]
    if unknown:
        raise ValueError(f"parts: expected names from {DEMO_PARTS}, got {unknown}")
    if "inpaint" in parts and "hgf" not in parts:
        raise ValueError("parts: 'inpaint' needs the 'hgf' prior, got parts without 'hgf'")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    keys = dict(zip(DEMO_PARTS, jax.random.split(jax.random.key(config.seed), 4), strict=True))
    sections, timings, prior = [], {}, None
    start_all = time.perf_counter()
    for part in DEMO_PARTS:
        if part not in parts:
            continue
        start = time.perf_counter()
        if part == "hgf":
            lines, prior = part_hgf(config, out, keys[part])
        elif part == "flow":
            lines = part_flow(config, out, keys[part])
        elif part == "inpaint":
            lines = part_inpaint(config, out, keys[part], prior)
        else:
            lines = part_nlme(config, out, keys[part])
        timings[part] = time.perf_counter() - start
        sections += lines
    total = time.perf_counter() - start_all
    budget = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("out", "progress")}
    timing_lines = [
        "## Timings",
        "",
        "| part | seconds (wall, compilation included) |",
        "|---|---|",
        *(f"| {k} | {v:.1f} |" for k, v in timings.items()),
        f"| total | {total:.1f} |",
        "",
        f"backend: {jax.default_backend()}; configuration: `{budget}`",
        "",
    ]
    report = out / "report.md"
    report.write_text("\n".join(["# numpyro-hgf demo", "", *sections, *timing_lines]))
    return report
