"""The house in layers (docs/ARCHITECTURE.md): imports point down, no cycle, few lazy imports of our own modules,
and a logged model ships its runtime only. The graph is read from the source (tests/importgraph.py), with
imports inside functions and modules named in tables counted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from importgraph import read_graph

REPO = Path(__file__).resolve().parents[1]

#: the layers, lowest first: a module may import its own layer's modules and those of the layers below it
LAYERS = [
    ("exporter base", ("exporter.errors", "exporter.digests", "exporter.config", "exporter.packaging")),
    ("format", ("exporter.format",)),
    ("runtime", ("exporter.runtime",)),
    ("backends", ("exporter.backends",)),
    ("quality", ("exporter.quality",)),
    ("bundle", ("exporter.bundle",)),
    ("exporter tools", ("exporter.tools",)),
    ("exporter package", ("exporter",)),
    (
        "flavor",
        (
            "mlflow_flavor.mlmodel",
            "mlflow_flavor.redact",
            "mlflow_flavor.boundary",
            "mlflow_flavor.batching",
            "mlflow_flavor.inputs",
            "mlflow_flavor.pyfunc",
            "mlflow_flavor.fetch",
            "mlflow_flavor.loading",
            "mlflow_flavor.flavor",
        ),
    ),
    ("registry", ("mlflow_flavor.registry",)),
    ("flavor tools", ("mlflow_flavor.tools", "mlflow_flavor.mlserver")),
    ("cli", ("mlflow_flavor.cli",)),
    ("mlflow_flavor package", ("mlflow_flavor",)),
]
#: at most this many imports of our own modules inside functions (each says why, after "# lazy:")
MAX_LAZY_IMPORTS = 10


def layer_of(module: str) -> int:
    """The index of the layer that holds ``module``: the longest prefix that names it wins."""
    best, best_length = None, -1
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if (module == member or module.startswith(member + ".")) and len(member) > best_length:
                best, best_length = index, len(member)
    if best is None:
        raise AssertionError(f"{module} is in no layer: place it in tests/test_architecture.py and ARCHITECTURE.md")
    return best


@pytest.fixture(scope="module")
def graph():
    return read_graph(REPO)


def test_every_module_has_a_layer(graph):
    for module in graph.modules:
        layer_of(module)


def test_imports_point_down(graph):
    upward = [
        f"{e.source} ({LAYERS[layer_of(e.source)][0]}) -> {e.target} ({LAYERS[layer_of(e.target)][0]}), line {e.line}"
        for e in graph.edges
        if e.target in graph.modules and layer_of(e.target) > layer_of(e.source)
    ]
    assert upward == []


def test_no_cycle_even_counting_imports_inside_functions(graph):
    assert graph.cycles() == []


def test_few_lazy_imports_of_our_own_modules_each_with_its_reason(graph):
    lazy = {(e.source, e.line): e for e in graph.edges if e.in_function and e.kind in ("import", "import_module")}
    assert len(lazy) <= MAX_LAZY_IMPORTS, sorted(lazy)
    unexplained = [f"{source}:{line}" for (source, line), e in lazy.items() if not e.comment.startswith("lazy:")]
    assert unexplained == []


def test_no_module_imports_a_name_its_own_package_re_exports(graph):
    """A package's ``__init__`` sits above its modules: they import from the module that defines a name."""
    offenders = [
        f"{e.source} -> {e.target}" for e in graph.edges if e.source.startswith(e.target + ".") and e.kind == "import"
    ]
    assert offenders == []


def test_a_logged_model_ships_what_loading_imports_and_nothing_else(graph):
    from mlflow_flavor.flavor import RUNTIME_MODULES

    # what importing the loader package (MLflow's loader_module) can import, but for its lazy public names
    needed = graph.closure(["mlflow_flavor"], skip_tables=("_LAZY",)) - {"<dynamic>"}
    assert set(RUNTIME_MODULES) == needed
    for module in ("mlflow_flavor.cli", "mlflow_flavor.registry", "mlflow_flavor.tools", "exporter.tools"):
        assert not [m for m in RUNTIME_MODULES if m == module or m.startswith(module + ".")], module
    assert "exporter.quality.corpus" not in RUNTIME_MODULES and "mlflow_flavor.flavor" not in RUNTIME_MODULES


def test_saved_model_code_holds_the_runtime_files_only(tiny_bundle, tmp_path):
    import mlflow_flavor
    from mlflow_flavor.flavor import runtime_files

    path = tmp_path / "model"
    mlflow_flavor.save_model(str(tiny_bundle), path)  # the bundle as it is: no export
    shipped = sorted(str(p.relative_to(path / "code")) for p in (path / "code").rglob("*") if p.is_file())
    assert shipped == sorted(runtime_files())
    assert not [name for name in shipped if name.endswith(".txt") or "/cli/" in name or "/tools/" in name]
    # 207 KB after the restructuring (issue 19), 261 KB with the character-LM runtime and backends (issue 21),
    # 289 KB with the model families (issue 20: input shapes, tasks, pairs, relations), 308 KB with batch
    # invariance (issue 22: canonical widths, fixed-shape heads), 356 KB with lean serving (issue 25: the text, subtoken,
    # pooling, head and encoder steps without Flair), 371 KB with issue 32 (every bundle's reason for Flair's path,
    # install hints that work outside a checkout, each notice once), 375 KB with the task specs (issue 33:
    # exporter.format.specs, which the pyfunc reads instead of its own tables)
    assert sum((path / "code" / name).stat().st_size for name in shipped) < 380_000
    # a process where the model's code/ copy is imported first (MLflow puts it ahead on sys.path) still reaches
    # the layers the copy does not hold, from the installed packages
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import mlflow_flavor, exporter; "
        "assert mlflow_flavor.__file__.startswith(sys.argv[1]), mlflow_flavor.__file__; "
        "from mlflow_flavor.registry.promote import promote; from exporter.quality.parity import check_parity; "
        "print(mlflow_flavor.save_model.__module__, mlflow_flavor.QualityGateError.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path / "code")], capture_output=True, text=True, cwd=path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["mlflow_flavor.flavor", "mlflow_flavor.registry.errors"]
