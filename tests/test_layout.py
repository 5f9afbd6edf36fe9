"""The package's layout is its design table: imports only go down, and nothing is circular.

Read from the source with ``ast`` (nothing is imported), counting imports inside functions
too: a cycle hidden in a function is still a cycle of the design.  Importing ``a.b.c``
executes the ``__init__`` of ``a.b`` as well, so an import also depends on the packages
above its target (except the importer's own packages, which are already running, and the
package root, the one public face).

The layers, lowest first (``docs/architecture.md`` draws the same table)::

    _checks, _version, io        argument checks, saving and loading
    nn, datasets, preprocessing   learned fields; shipped data
    paths                         Hamiltonian paths, SDEs, DDPM schedules, dynamics
    flows                         bijections and the finite chains of them
    samplers                      ODE, MCMC, diffusion, Gibbs, AIS
    objectives                    pure losses
    distributions                 NumPyro distributions of every family
    guides                        SVI guides
    train                         the trainer core and the fit_* functions
    metrics                       sample distances, likelihood, HSD, image metrics
    infer                         BlackJAX bridge, learned force fields
    models                        PPCA, VAE, NLME, LMM
    plots, demo, cli              what people run
    (aliases)                     documented old module paths (sde, odeflow, ...)
"""

from __future__ import annotations

import ast
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "numpyro_hgf"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 120

LAYERS = (
    ("_checks", "_version", "_pytree_order", "io", "compilation_cache"),
    ("nn", "datasets", "preprocessing"),
    ("paths",),
    ("flows",),
    ("samplers",),
    ("objectives",),
    ("distributions",),
    ("guides",),
    ("train",),
    ("metrics",),
    ("infer",),
    ("models",),
    ("plots", "demo", "cli"),
    ("sde", "ddpm", "dynamics", "odeflow", "ais", "hsd", "image_metrics"),
)


# -- reading the imports -----------------------------------------------------------------------
def module_files(root: Path) -> dict[str, Path]:
    """``{"pkg.sub.mod": path}`` for every ``.py`` file below ``root`` (``__init__`` -> package)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package modules it makes Python execute (module- and function-level)."""
    modules = module_files(root)
    top = root.name
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        here = name if is_package else name.rpartition(".")[0]
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    stem = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(stem + ([node.module] if node.module else []))
                targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
            else:
                continue
            for target in targets:
                if target.split(".")[0] != top:
                    continue
                resolved = _resolve(target, modules)
                parts = resolved.split(".")
                # the target and the packages above it that this import makes Python run
                for i in range(2, len(parts) + 1):
                    dep = ".".join(parts[:i])
                    if dep not in own and dep in modules:
                        graph[name].add(dep)
    return graph


def cycles(graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> int:
    parts = module.split(".")
    room = parts[1] if len(parts) > 1 else ""
    for rank, rooms in enumerate(LAYERS):
        if room in rooms:
            return rank
    raise KeyError(f"{module}: not in any layer of LAYERS (add it to the design table)")


def upward_imports(graph) -> list[str]:
    """Imports from a lower layer into a higher one (the package root is the exception)."""
    bad = []
    for source, targets in sorted(graph.items()):
        if source.count(".") == 0:
            continue
        for target in sorted(targets):
            if layer_of(target) > layer_of(source):
                bad.append(f"{source} -> {target}")
    return bad


def long_functions(root: Path, limit: int) -> list[str]:
    out = []
    for name, path in module_files(root).items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    out.append(f"{name}.{node.name}: {length} lines")
    return out


# -- the package --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def graph():
    return import_graph(PACKAGE)


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_imports_only_go_down_the_design_table(graph):
    assert upward_imports(graph) == []


def test_every_module_has_a_layer():
    for name in module_files(PACKAGE):
        if name != "numpyro_hgf":
            layer_of(name)


def test_no_module_over_500_lines_and_no_function_over_120():
    long_modules = [
        f"{name}: {n} lines"
        for name, path in module_files(PACKAGE).items()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert long_modules == []
    assert long_functions(PACKAGE, MAX_FUNCTION_LINES) == []


# -- negative controls: the checks see what they are meant to see -----------------------------
def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_a_cycle_inside_a_function_is_found(tmp_path):
    pkg = _write(
        tmp_path / "numpyro_hgf",
        {
            "__init__.py": "",
            "paths/__init__.py": "from numpyro_hgf.paths.a import f\n",
            "paths/a.py": "def f():\n    from numpyro_hgf.samplers.b import g\n",
            "samplers/__init__.py": "",
            "samplers/b.py": "from numpyro_hgf.paths import f\n",
        },
    )
    graph = import_graph(pkg)
    assert cycles(graph) == [["numpyro_hgf.paths", "numpyro_hgf.paths.a", "numpyro_hgf.samplers.b"]]
    assert upward_imports(graph) == [
        "numpyro_hgf.paths.a -> numpyro_hgf.samplers",
        "numpyro_hgf.paths.a -> numpyro_hgf.samplers.b",
    ]


def test_importing_a_submodule_runs_its_package(tmp_path):
    # b imports only the submodule a.x, but Python runs a/__init__, which imports b back
    pkg = _write(
        tmp_path / "numpyro_hgf",
        {
            "__init__.py": "",
            "nn/__init__.py": "from numpyro_hgf.nn import x\nfrom numpyro_hgf.paths.b import y\n",
            "nn/x.py": "",
            "paths/__init__.py": "",
            "paths/b.py": "import numpyro_hgf.nn.x\ny = 1\n",
        },
    )
    assert cycles(import_graph(pkg)) == [["numpyro_hgf.nn", "numpyro_hgf.paths.b"]]


def test_a_package_face_reexporting_its_children_is_not_a_cycle(tmp_path):
    pkg = _write(
        tmp_path / "numpyro_hgf",
        {
            "__init__.py": "from numpyro_hgf import nn\n",
            "nn/__init__.py": (
                "from numpyro_hgf.nn.mlp import MLP\nfrom numpyro_hgf.nn.unet import U\n"
            ),
            "nn/mlp.py": "MLP = 1\n",
            "nn/unet.py": "from numpyro_hgf.nn.mlp import MLP\nU = MLP\n",
        },
    )
    graph = import_graph(pkg)
    assert cycles(graph) == []
    assert graph["numpyro_hgf.nn.unet"] == {"numpyro_hgf.nn.mlp"}


def test_long_functions_are_found(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(130))
    pkg = _write(tmp_path / "numpyro_hgf", {"__init__.py": "", "nn.py": f"def f():\n{body}"})
    assert long_functions(pkg, MAX_FUNCTION_LINES) == ["numpyro_hgf.nn.f: 131 lines"]
