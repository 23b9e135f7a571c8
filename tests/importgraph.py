"""The import graph of the project's own packages, read from the source (nothing is imported).

Edges are every ``import`` of our modules, at module top or inside a function, and every string in a literal
dict, list, tuple or set that names a module inside one of our packages (a table of modules imported by name,
like the backend table); each ``importlib.import_module`` call is recorded too (its target is in such a table). ``from package import name`` is an edge to ``package.name`` where
that is a module, else to ``package``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("exporter", "mlflow_flavor")


@dataclass
class Edge:
    source: str
    target: str
    line: int
    in_function: bool
    #: how: "import", "import_module" (a call inside a function), "name" (a string naming a module)
    kind: str
    #: for "name" edges, the variable the string is assigned into (e.g. ``_LAZY``, ``MODULES``)
    table: str | None = None
    comment: str = ""


@dataclass
class Graph:
    root: Path
    modules: dict[str, Path] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def targets(self, module: str, *, skip_tables: tuple[str, ...] = ()) -> set[str]:
        return {
            e.target
            for e in self.edges
            if e.source == module and e.table not in skip_tables or (e.source == module and e.table is None)
        }

    def closure(self, starts: list[str], *, skip_tables: tuple[str, ...] = ()) -> set[str]:
        """Every module that importing ``starts`` can import (packages' ``__init__`` included)."""
        seen: set[str] = set()
        todo = list(starts)
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            seen.add(module)
            todo.extend(self.parents(module))
            todo.extend(e.target for e in self.edges if e.source == module and e.table not in skip_tables)
        return seen

    def parents(self, module: str) -> list[str]:
        """The packages Python imports before ``module``."""
        parts = module.split(".")
        return [".".join(parts[:i]) for i in range(1, len(parts))]

    def cycles(self) -> list[list[str]]:
        """Strongly connected components with more than one module (Tarjan)."""
        adjacency: dict[str, set[str]] = {m: set() for m in self.modules}
        for e in self.edges:
            if e.source != e.target and e.target in adjacency:
                adjacency[e.source].add(e.target)
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []

        def visit(v: str) -> None:
            index[v] = low[v] = len(index)
            stack.append(v)
            on_stack.add(v)
            for w in adjacency[v]:
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

        for v in sorted(adjacency):
            if v not in index:
                visit(v)
        return found


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def read_graph(root: Path) -> Graph:
    graph = Graph(root)
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            graph.modules[_module_name(root, path)] = path
    for module, path in graph.modules.items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        _Reader(graph, module, path.name == "__init__.py", lines).visit(ast.parse(source))
    return graph


class _Reader(ast.NodeVisitor):
    def __init__(self, graph: Graph, module: str, is_package: bool, lines: list[str]) -> None:
        self.graph, self.module, self.is_package, self.lines = graph, module, is_package, lines
        self.depth = 0
        self.table: str | None = None
        self.in_literal = 0

    def _comment(self, line: int) -> str:
        text = self.lines[line - 1]
        return text.split("#", 1)[1].strip() if "#" in text else ""

    def _add(self, target: str, node: ast.AST, kind: str) -> None:
        if target.split(".")[0] not in PACKAGES:
            return
        while target not in self.graph.modules and "." in target:
            target = target.rsplit(".", 1)[0]
        self.graph.edges.append(
            Edge(self.module, target, node.lineno, self.depth > 0, kind, self.table, self._comment(node.lineno))
        )

    def visit_FunctionDef(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Assign(self, node: ast.Assign) -> None:
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        self.table = names[0] if names else None
        self.generic_visit(node)
        self.table = None

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.table = node.target.id if isinstance(node.target, ast.Name) else None
        self.generic_visit(node)
        self.table = None

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node, "import")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.module.split(".")
            if not self.is_package:
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        for alias in node.names:
            submodule = f"{target}.{alias.name}"
            self._add(submodule if submodule in self.graph.modules else target, node, "import")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name == "import_module":
            self.graph.edges.append(
                Edge(
                    self.module,
                    "<dynamic>",
                    node.lineno,
                    self.depth > 0,
                    "import_module",
                    None,
                    self._comment(node.lineno),
                )
            )
        self.generic_visit(node)

    def _literal(self, node: ast.AST) -> None:
        self.in_literal += 1
        self.generic_visit(node)
        self.in_literal -= 1

    visit_Dict = visit_List = visit_Tuple = visit_Set = _literal

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if self.in_literal and isinstance(value, str) and "." in value and value in self.graph.modules:
            self._add(value, node, "name")
