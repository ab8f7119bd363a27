"""The shape of the code: no import circles in the three packages, and modules of one job.

The import graph is read from the source with `ast` (nothing is imported), counting every
import: at module level, inside functions (lazy) and under TYPE_CHECKING alike. Importing
`a.b.c` also runs `a/__init__` and `a/b/__init__`, so those count as edges too, except the
packages that already hold the importer (Python has started them before the importer).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("xlir_plugin", "trainer", "export")
MAX_LINES = 400
#: modules allowed over MAX_LINES, each with its reason
LONG_MODULES: dict[str, str] = {}
#: package -> the packages its modules must not import (docs/ARCHITECTURE.md)
FORBIDDEN = {"xlir_plugin": {"trainer", "export"}, "export": {"trainer"}, "trainer": {"export"}}
#: (module, package) edges allowed all the same, each with its reason
ALLOWED = {
    ("xlir_plugin.models", "export"): "exports a --model that is no exported dir yet, lazily",
}


def module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the three packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imported_names(name: str, path: Path, modules: set[str]) -> set[str]:
    """The dotted names `name`'s source imports (relative imports resolved); `from pkg import
    mod` names the submodule alone, `from pkg import attribute` names the package."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                out.add(sub if sub in modules else module)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        edges = set()
        for target in imported_names(name, path, set(modules)):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):  # the target and the packages it runs on the way
                prefix = ".".join(parts[:i])
                if prefix in modules and (prefix == target or prefix not in own):
                    edges.add(prefix)
        graph[name] = edges - {name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_graph_sees_relative_lazy_and_package_imports():
    graph = import_graph()
    assert "xlir_plugin.errors" in graph["xlir_plugin.index"]  # from .errors import ...
    assert "export.cache" in graph["xlir_plugin.models"]  # a lazy import inside a function
    assert "xlir_plugin.commands.search" in graph["xlir_plugin.commands"]  # from . import mod


def test_cycle_finder_reports_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]


def test_no_import_circles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import circles (put the shared piece in a module below both): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_no_module_over_the_line_budget():
    long = {
        name: n
        for name, path in module_files().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
        and name not in LONG_MODULES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


def test_packages_import_in_the_documented_direction():
    wrong = sorted(
        (name, target)
        for name, targets in import_graph().items()
        for target in targets
        if target.split(".")[0] in FORBIDDEN[name.split(".")[0]]
        and (name, target.split(".")[0]) not in ALLOWED
    )
    assert not wrong, f"imports against docs/ARCHITECTURE.md: {wrong}"


def test_serving_package_does_not_import_torch():
    """Importing every `xlir_plugin` module loads none of the training and export stack."""
    modules = sorted(name for name in module_files() if name.startswith("xlir_plugin"))
    code = (
        f"import importlib, sys\nfor name in {modules!r}:\n    importlib.import_module(name)\n"
        "heavy = {'torch', 'transformers', 'optimum'} & set(sys.modules)\nassert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)
