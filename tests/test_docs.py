"""The documentation: the site builds strictly, covers every public name, and its code runs.

* ``mkdocs build --strict`` as CI runs it (a subprocess), failing with the build log; the built
  API reference has an anchor for every name in the ``__all__`` of every public module.
* Every example in ``examples/`` has a ``--smoke`` mode that a test runs.
* The Python examples of the README and of the pages this file owns resolve against the package
  (every ``nh.*`` name exists, every keyword is accepted): a cheap check that catches renamed
  APIs.  The quick start's error messages are doctests.  Running the examples themselves
  (tiny settings) takes minutes of JIT compilation, so those runs are ``slow``.
"""

from __future__ import annotations

import ast
import doctest
import inspect
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import numpyro_hgf as nh

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
TESTS = ROOT / "tests"

# Pages whose Python blocks are runnable programs, in the order they run within a page.
RUNNABLE = (
    "README.md",
    "docs/quickstart.md",
    "docs/flows.md",
    "docs/energy.md",
    "docs/boltzmann.md",
)


# -- helpers ---------------------------------------------------------------------------------
def code_blocks(path: Path, language: str = "python") -> list[str]:
    """The fenced ``language`` blocks of a Markdown file, in order."""
    text = path.read_text()
    return [m.group(1) for m in re.finditer(rf"^```{language}\n(.*?)^```", text, re.S | re.M)]


def public_modules() -> dict[str, types.ModuleType]:
    """``nh``'s public submodules: ``{"numpyro_hgf.flows": <module>, ...}``."""
    return {
        f"numpyro_hgf.{name}": getattr(nh, name)
        for name in nh.__all__
        if isinstance(getattr(nh, name), types.ModuleType)
    }


def missing_anchors(site: Path, qualified_names) -> list[str]:
    """The names among ``qualified_names`` that no page of the built ``site`` has as an id."""
    ids = set()
    for page in (site / "api").rglob("index.html"):
        ids.update(re.findall(r'id="(numpyro_hgf[\w.]*)"', page.read_text()))
    return sorted(name for name in qualified_names if name not in ids)


def nh_attribute_chains(tree: ast.AST):
    """``(dotted name, call node or None)`` for every outermost ``nh.a.b...`` expression."""
    calls = {id(node.func): node for node in ast.walk(tree) if isinstance(node, ast.Call)}
    inner = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            inner.add(id(node.value))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue
        parts, value = [node.attr], node.value
        while isinstance(value, ast.Attribute):
            parts.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id == "nh":
            yield ".".join(reversed(parts)), calls.get(id(node))


def unresolved(source: str) -> list[str]:
    """Problems with the ``nh.*`` names of a snippet: missing names, unaccepted keywords."""
    problems = []
    for dotted, call in nh_attribute_chains(ast.parse(source)):
        obj = nh
        for part in dotted.split("."):
            if not hasattr(obj, part):
                problems.append(f"nh.{dotted}: no attribute {part!r}")
                break
            obj = getattr(obj, part)
        else:
            if call is None or not callable(obj):
                continue
            try:
                signature = inspect.signature(obj)
            except (TypeError, ValueError):
                continue
            params = signature.parameters.values()
            if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
                continue
            names = {p.name for p in params}
            problems += [
                f"nh.{dotted}: no keyword {kw.arg!r}"
                for kw in call.keywords
                if kw.arg is not None and kw.arg not in names
            ]
    return problems


# -- the site --------------------------------------------------------------------------------
def test_mkdocs_build_strict_covers_every_public_name(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(site)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}")
    assert (site / "index.html").is_file()

    modules = public_modules()
    # every public module has its API page
    pages = {f"numpyro_hgf.{p.stem}" for p in (DOCS / "api").glob("*.md")}
    assert not set(modules) - pages, f"no docs/api/<module>.md for {set(modules) - pages}"
    # ... and every name of every module's __all__ has an anchor in the built reference
    names = [f"numpyro_hgf.{n}" for n in ("save", "load")]
    names += [f"{q}.{n}" for q, m in modules.items() for n in getattr(m, "__all__", ())]
    assert len(names) > 150  # the reference is the whole public API, not a handful of names
    assert missing_anchors(site, names) == []
    # negative control: the check does see a name that is not documented
    assert missing_anchors(site, ["numpyro_hgf.metrics.not_a_metric"]) == [
        "numpyro_hgf.metrics.not_a_metric"
    ]


def test_every_example_has_a_smoke_run_in_the_test_suite():
    examples = sorted(EXAMPLES.glob("*.py"))
    assert examples
    this = Path(__file__).name
    tests = {p.name: p.read_text() for p in TESTS.glob("test_*.py") if p.name != this}

    def smoke_tested(stem: str) -> bool:
        return any(stem in text and "--smoke" in text for text in tests.values())

    for example in examples:
        assert "--smoke" in example.read_text(), f"{example.name}: no --smoke mode"
        assert smoke_tested(example.stem), f"{example.name}: no test runs it with --smoke"
    assert not smoke_tested("no_such_example")  # negative control


# -- the code in the docs --------------------------------------------------------------------
@pytest.mark.parametrize("page", RUNNABLE)
def test_doc_examples_resolve_against_the_package(page):
    blocks = code_blocks(ROOT / page)
    assert blocks, f"{page}: no python example"
    problems = [p for block in blocks for p in unresolved(block)]
    assert problems == [], f"{page}: {problems}"


def test_resolver_catches_renamed_names_and_keywords():
    bad = "nh.train.fit_velocityy(path, data)\nnh.datasets.toy2d('moons', 8, key, normalize=True)"
    assert unresolved(bad) == [
        "nh.train.fit_velocityy: no attribute 'fit_velocityy'",
        "nh.datasets.toy2d: no keyword 'normalize'",
    ]
    assert unresolved("nh.datasets.toy2d('moons', 8, key, standardize=True)") == []


def test_readme_example_is_the_quick_start_example():
    assert code_blocks(ROOT / "README.md")[0] == code_blocks(DOCS / "quickstart.md")[0]


def test_quickstart_error_messages_are_what_the_package_raises():
    (block,) = code_blocks(DOCS / "quickstart.md", "pycon")
    test = doctest.DocTestParser().get_doctest(block, {}, "quickstart", "quickstart.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    result = runner.run(test, out=lambda _: None)
    assert result.attempted >= 4 and result.failed == 0, result


# -- running the examples (minutes of compilation: slow) -------------------------------------
# page -> {text in the page: its tiny replacement}; every key must occur in the page
TINY = {
    "README.md": {
        "steps=5_000,": "steps=50, hidden=(16, 16), progress=False,",
        "num_warmup=500, num_samples=500": "num_warmup=20, num_samples=20",
        "num_chains=4,": "num_chains=1, progress=False,",
        '"runs/moons-hgf"': "OUT",
    },
    "docs/flows.md": {
        "20_000, k_train": "2_000, k_train",
        "10_000, k_test": "1_000, k_test",
        "steps=3_000, num_layers=4, hidden=(64, 64),": "steps=50, num_layers=2, hidden=(16,),",
        "TimeMLP(hidden=(64, 64)": "TimeMLP(hidden=(16,)",
        "steps=300, learning_rate": "steps=5, progress=False, learning_rate",
        "svi.run(k_svi, 3_000,": "svi.run(k_svi, 50,",
        "(2_000,)": "(100,)",
    },
    "docs/energy.md": {
        "(10_000, 2)": "(1_000, 2)",
        "(5_000, 2)": "(500, 2)",
        "steps=2_000, hidden=(64, 64)": "steps=30, hidden=(16,), progress=False",
        "(2_000,)": "(50,)",
        "epochs=20,": "epochs=1, progress=False,",
    },
    "docs/boltzmann.md": {
        "epochs=20, pretrain_epochs=10,": "epochs=1, pretrain_epochs=1,",
        "epochs=20, key=key": "epochs=1, key=key",
        "num_betas=3000": "num_betas=50",
    },
}


def tiny(page: str) -> str:
    source = "\n".join(code_blocks(ROOT / page))
    for old, new in TINY[page].items():
        assert old in source, f"{page}: the tiny-settings patch {old!r} no longer applies"
        source = source.replace(old, new)
    return source


# ~18 s wall on 2 quiet cores; default suite so that CI runs the README example
def test_readme_example_runs(tmp_path):
    namespace = {"OUT": str(tmp_path / "moons-hgf")}
    exec(compile(tiny("README.md"), "README.md", "exec"), namespace)
    idata = namespace["idata"]
    assert idata.posterior["x"].shape == (1, 20, 2)
    loaded = nh.load(tmp_path / "moons-hgf")
    x = namespace["data"][:4]
    assert abs(loaded.log_prob(x) - namespace["prior"].log_prob(x)).max() < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("page", ["docs/flows.md", "docs/energy.md", "docs/boltzmann.md"])
def test_page_example_runs(page):
    namespace: dict = {}
    exec(compile(tiny(page), page, "exec"), namespace)
