"""The README example run twice, each in a new process, with JAX's persistent cache (issue 21).

The README's Python block is run as it stands, after
``numpyro_hgf.compilation_cache.enable_compilation_cache(<fresh folder>)``, in two fresh
Python processes one after the other: the first fills the cache, the second reads it.  Each
run reports its wall time and the seconds JAX spent compiling (its
``/jax/core/compile/backend_compile_duration`` events; a cache hit is not a compile).

    .venv/bin/python benchmarks/second_process.py [--repeats 1]

The ratio second / first is bounded below by the share of the run that is not compilation
(training steps and NUTS draws execute in both runs).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUNNER = """
import json, sys, time
t0 = time.perf_counter()
from jax import monitoring
compile_s = []
monitoring.register_event_duration_secs_listener(
    lambda name, d, **_: compile_s.append(d) if "backend_compile" in name else None)
from numpyro_hgf.compilation_cache import enable_compilation_cache
enable_compilation_cache(sys.argv[1])
exec(compile(open(sys.argv[2]).read(), "README", "exec"), {"__name__": "__main__"})
print(json.dumps({"wall": time.perf_counter() - t0, "compile": sum(compile_s)}))
"""


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]


def run_once(cache: str, script: str, env=None) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, cache, script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    import os

    env = {**os.environ, "NUMPYRO_HGF_COMPILATION_CACHE": "1", "JAX_PLATFORMS": "cpu"}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "readme_example.py"
        script.write_text(readme_example())
        for r in range(args.repeats):
            cache = str(Path(tmp) / f"cache{r}")
            first = run_once(cache, str(script), env)
            second = run_once(cache, str(script), env)
            print(
                f"repeat {r}: first {first['wall']:.1f} s (compile {first['compile']:.1f} s), "
                f"second {second['wall']:.1f} s (compile {second['compile']:.1f} s), "
                f"second / first {second['wall'] / first['wall']:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
