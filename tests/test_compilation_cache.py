"""JAX's persistent compilation cache (numpyro_hgf.compilation_cache): a second process
reuses the programs the first one wrote, and gives the same numbers."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from numpyro_hgf import compilation_cache

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import jax, jax.numpy as jnp
    from numpyro_hgf.compilation_cache import enable_compilation_cache
    folder = enable_compilation_cache(sys.argv[1], min_compile_time_secs=0.0)
    import numpyro_hgf as nh
    x = nh.datasets.toy2d("two_moons", 64, jax.random.key(0), standardize=True)
    start = time.perf_counter()
    flow = nh.train.fit_flow("realnvp", x, num_layers=1, hidden=(4,), steps=3,
                             key=jax.random.key(1), progress=False)
    print(json.dumps({"folder": str(folder), "seconds": time.perf_counter() - start,
                      "log_prob": [float(v) for v in flow.log_prob(x[:3])]}))
    """
)


def _run(folder, **env):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(folder)],
        env=dict(os.environ, JAX_PLATFORMS="cpu", **env),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # three fresh processes, each importing and compiling (~30 s quiet)
def test_a_second_process_reuses_the_cache_and_gives_the_same_numbers(tmp_path):
    folder = tmp_path / "cache"
    first = _run(folder, NUMPYRO_HGF_COMPILATION_CACHE="1")
    entries = sorted(p.name for p in folder.iterdir())
    assert first["folder"] == str(folder) and entries, "nothing was written to the cache"
    second = _run(folder, NUMPYRO_HGF_COMPILATION_CACHE="1")
    assert second["log_prob"] == first["log_prob"]  # same keys, same numbers
    # the second process found its programs there: at most a couple of tiny ones are new
    # (measured: 64 entries written by the first run, 1 new in the second)
    new = set(p.name for p in folder.iterdir()) - set(entries)
    assert len(entries) >= 10 and len(new) <= 3, (len(entries), sorted(new))
    off = _run(tmp_path / "unused", NUMPYRO_HGF_COMPILATION_CACHE="0")
    assert off["folder"] == "None" and not (tmp_path / "unused").exists()
    assert off["log_prob"] == first["log_prob"]


def test_folder_and_switch_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMPYRO_HGF_COMPILATION_CACHE", "off")
    assert compilation_cache.enable_compilation_cache(tmp_path / "c") is None
    assert not (tmp_path / "c").exists()
    monkeypatch.delenv("NUMPYRO_HGF_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compilation_cache.default_cache_dir() == tmp_path / "xdg" / "numpyro_hgf" / "jax"
    monkeypatch.setenv("NUMPYRO_HGF_CACHE_DIR", str(tmp_path / "mine"))
    assert compilation_cache.default_cache_dir() == tmp_path / "mine"


def _host_callbacks(closed_jaxpr) -> list[str]:
    """Names of the host-callback primitives anywhere in a jaxpr (sub-jaxprs included)."""
    import jax

    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if "callback" in eqn.primitive.name:
                found.append(eqn.primitive.name)
            for sub in jax.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(closed_jaxpr.jaxpr)
    return found


@pytest.mark.parametrize("solver", ["rk4", "tsit5"])
def test_ode_solves_with_traced_endpoints_have_no_host_callback(solver):
    """JAX's persistent cache never writes a program with a host callback.  diffrax checks
    the sign of ``(t1 - t0) * dt0`` with equinox's ``error_if``, a callback when the times
    are traced (a learned prior's horizon is a data field); the solve runs in unit time so
    the check is static.  Closed form: ``dx/dt = -x`` from t0 to t1 is ``x exp(t0 - t1)``."""
    import diffrax
    import jax
    import jax.numpy as jnp
    import numpy as np

    from numpyro_hgf.samplers.ode import ODESolver, solve_ode

    ode = ODESolver.of(solver) if solver == "tsit5" else ODESolver("rk4", 64)

    def solve(x, t0, t1):
        return solve_ode(lambda y, t: -y, x, t0, t1, ode).value

    x, t0, t1 = jnp.ones((3, 2)), jnp.asarray(0.25), jnp.asarray(1.5)
    assert _host_callbacks(jax.make_jaxpr(solve)(x, t0, t1)) == []
    np.testing.assert_allclose(jax.jit(solve)(x, t0, t1), np.exp(-1.25), rtol=1e-5)
    np.testing.assert_allclose(jax.jit(solve)(x, t1, t0), np.exp(1.25), rtol=1e-5)  # backward

    # negative control: diffrax with the traced interval does carry the callback
    def direct(x, t0, t1):
        term = diffrax.ODETerm(lambda t, y, args: -y)
        return diffrax.diffeqsolve(term, diffrax.Euler(), t0, t1, (t1 - t0) / 8, x).ys

    assert _host_callbacks(jax.make_jaxpr(direct)(x, t0, t1))


FIELDS = textwrap.dedent(
    """
    import json, sys
    import numpyro.distributions as dist
    if sys.argv[1] == "1":
        import numpyro_hgf as nh
        classes = [nh.distributions.HGFPrior, nh.distributions.ContinuousFlow]
    else:
        classes = []
    classes += [dist.MultivariateNormal, dist.Independent, dist.TransformedDistribution]
    print(json.dumps([[list(c.gather_pytree_data_fields()), list(c.gather_pytree_aux_fields())]
                      for c in classes]))
    """
)


def test_distribution_leaf_order_is_the_same_in_every_process():
    """NumPyro gathers pytree fields through a set (order follows the per-process hash
    seed), so programs taking a distribution differ between processes and the persistent
    cache misses; importing numpyro_hgf sorts them.  Negative control: NumPyro alone."""

    def fields(seed, with_package):
        out = subprocess.run(
            [sys.executable, "-c", FIELDS, "1" if with_package else "0"],
            env=dict(os.environ, PYTHONHASHSEED=str(seed), JAX_PLATFORMS="cpu"),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    ours = [fields(s, True) for s in (1, 2)]
    assert ours[0] == ours[1]
    for data_fields, aux_fields in ours[0]:
        assert data_fields == sorted(data_fields) and aux_fields == sorted(aux_fields)
    bare = [fields(s, False) for s in (1, 2, 3)]
    assert not (bare[0] == bare[1] == bare[2]), "numpyro's own order no longer varies"
