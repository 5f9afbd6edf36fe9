"""Smoke test of examples/denoise_with_learned_prior.py (NUTS and force-field HMC under a
learned flow prior): it writes its picture and summary, the numbers are finite, and both
posterior means denoise the observed pixels (closer to the truth than the observation, a
check that fails for a sampler that ignores the prior or the data)."""

import importlib.util
import json
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "denoise_with_learned_prior.py"


def load_example():
    spec = importlib.util.spec_from_file_location("denoise_with_learned_prior", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ~21 s wall on 2 quiet cores (training + two sampler compilations): in the default suite,
# because every example must smoke-run where CI runs
def test_denoise_with_learned_prior_smoke(tmp_path):
    summary = load_example().main(["--smoke", "--out", str(tmp_path)])
    assert (tmp_path / "denoise.png").stat().st_size > 1000
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(summary))
    observation_rmse = summary["baselines"]["rmse_observation_observed"]
    assert 0.35 < observation_rmse < 0.65  # sigma_y = 0.5 noise on the observed pixels
    for name in ("NUTS", "force-field HMC"):
        r = summary[name]
        values = [v for v in r.values()]
        assert np.all(np.isfinite(values)), r
        assert r["rmse_observed"] < 0.8 * observation_rmse, (name, r)
        assert 0.3 < r["acceptance"] < 1.0, (name, r)
        assert r["gradients"] > 0 and r["ess_per_gradient"] > 0
