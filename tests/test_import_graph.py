"""The import graph of ``radiolm``: no cycles, and the layering of DESIGN.md ("No part reaches back").

The graph is read from the source with :mod:`ast`, not by importing: every module under ``radiolm/`` (and the
top-level ``callbacks/``, installed as ``radiolm.callbacks``) is a node, and each ``import`` / ``from ... import``
whose target is a ``radiolm`` module is an edge. Relative imports are resolved against the importing module's
package, and ``from package import name`` points at the submodule ``package.name`` when there is one, else at the
package. An import of ``a.b.c`` is an edge to ``a.b.c`` only: the ``__init__`` files of ``a`` and ``a.b`` run first
but are no dependency of the importer's own making (which is why the package ``__init__`` files re-export lazily).

* Cycles: module-level imports only (those that run when the module is imported, ``if TYPE_CHECKING:`` blocks
  included); an import inside a function runs when it is called and breaks no import order.
* Layering: every import, inside functions too (a deferred import is still a dependency).
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import REPO

EXPERIMENTS: list[Path] = []  # no experiment YAMLs here


@dataclass(frozen=True)
class Import:
    """One import statement's target module and where it is."""

    target: str
    line: int
    in_function: bool


def module_files() -> dict[str, Path]:
    """``radiolm.x.y`` -> its file, for every module of the package (``callbacks/`` as ``radiolm.callbacks``)."""
    roots = [(REPO / "radiolm", "radiolm"), (REPO / "callbacks", "radiolm.callbacks")]
    modules: dict[str, Path] = {}
    for root, prefix in roots:
        for folder, dirs, files in os.walk(root):  # symbolic links are not followed (radiolm/callbacks in a checkout)
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__pycache__")))
            parts = Path(folder).relative_to(root).parts
            if parts and not (Path(folder) / "__init__.py").is_file():
                dirs[:] = []  # not a package
                continue
            for name in sorted(files):
                if name.endswith(".py"):
                    stem = name[:-3]
                    modules[".".join([prefix, *parts] + ([] if stem == "__init__" else [stem]))] = Path(folder) / name
    return modules


def _statements(node: ast.AST, in_function: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, in_function
        else:
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from _statements(child, nested)


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """The ``radiolm`` modules that ``name`` (the module in ``path``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for statement, in_function in _statements(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets: list[str] = []
        if isinstance(statement, ast.Import):
            targets = [alias.name for alias in statement.names]
        else:
            base = statement.module or ""
            if statement.level:
                anchor = package.split(".")[: len(package.split(".")) - (statement.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            submodules = [f"{base}.{alias.name}" for alias in statement.names]
            targets = [sub if sub in modules else base for sub in submodules]
        for target in targets:
            while target and target not in modules:  # ``import radiolm.x.y`` of a name inside y: the module y
                target = target.rpartition(".")[0]
            if target.startswith("radiolm"):
                found.append(Import(target, statement.lineno, in_function))
    return found


def import_graph() -> dict[str, list[Import]]:
    """Module -> its imports of ``radiolm`` modules."""
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Import]]:
    return import_graph()


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component that has one (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    components.append(component)
    cycles = []
    for component in components:
        first = min(component)
        paths = {first: [first]}
        queue = [first]
        while queue:  # the shortest way back to ``first`` inside the component
            node = queue.pop(0)
            for child in sorted(edges.get(node, ())):
                if child == first:
                    queue = []
                    cycles.append([*paths[node], first])
                    break
                if child in component and child not in paths:
                    paths[child] = [*paths[node], child]
                    queue.append(child)
    return cycles


def test_cycle_finder_names_the_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert find_cycles(edges) == [["a", "b", "c", "a"], ["e", "e"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_resolution_of_relative_and_submodule_imports(tmp_path: Path) -> None:
    modules = {name: tmp_path / f"{name}.py" for name in ("radiolm.p", "radiolm.p.a", "radiolm.p.b", "radiolm.q")}
    modules["radiolm.p"] = tmp_path / "p" / "__init__.py"
    source = tmp_path / "a.py"
    source.write_text(
        "from . import b\nfrom .b import thing\nfrom .. import q\nimport radiolm.q as alias\nimport os\n"
        "from radiolm.p import a\n\ndef f():\n    from radiolm import q\n"
    )
    found = [(i.target, i.in_function) for i in imports_of("radiolm.p.a", source, modules)]
    assert found == [
        ("radiolm.p.b", False),
        ("radiolm.p.b", False),
        ("radiolm.q", False),
        ("radiolm.q", False),
        ("radiolm.p.a", False),
        ("radiolm.q", True),
    ]


def test_every_module_is_in_the_graph(graph: dict[str, list[Import]]) -> None:
    assert {"radiolm.cli", "radiolm.data", "radiolm.data.formats.annotation", "radiolm.callbacks"} <= set(graph)
    assert "radiolm.data.datamodules.base" in {i.target for i in graph["radiolm.lightning_cli"]}


def test_no_import_cycle(graph: dict[str, list[Import]]) -> None:
    edges = {name: {i.target for i in found if not i.in_function} for name, found in graph.items()}
    cycles = find_cycles(edges)
    assert not cycles, "import cycles in radiolm:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


# (importer, imported): no module of the first package imports a module of the second.
LAYERS = [
    # DESIGN.md: data flows one way; no part reaches back.
    ("radiolm.data", "radiolm.parts"),
    ("radiolm.data", "radiolm.methods"),
    ("radiolm.parts", "radiolm.methods"),
    ("radiolm.metrics", "radiolm.parts"),
    ("radiolm.metrics", "radiolm.methods"),
    # Inside data/: formats <- phantom <- datamodules <- builders (each may use those on its left).
    ("radiolm.data.formats", "radiolm.data.phantom"),
    ("radiolm.data.formats", "radiolm.data.datamodules"),
    ("radiolm.data.formats", "radiolm.data.builders"),
    ("radiolm.data.phantom", "radiolm.data.datamodules"),
    ("radiolm.data.phantom", "radiolm.data.builders"),
    ("radiolm.data.datamodules", "radiolm.data.builders"),
    # The shared data modules are leaves: they import no subpackage of data/.
    *[
        (f"radiolm.data.{leaf}", f"radiolm.data.{sub}")
        for leaf in ("labels", "cleaning", "transforms")
        for sub in ("formats", "phantom", "datamodules", "builders")
    ],
]


@pytest.mark.parametrize(("importer", "imported"), LAYERS, ids=[f"{a}-x->{b}" for a, b in LAYERS])
def test_layering(graph: dict[str, list[Import]], importer: str, imported: str) -> None:
    bad = [
        f"{name}:{i.line} imports {i.target}"
        for name, found in sorted(graph.items())
        if _within(name, importer)
        for i in found
        if _within(i.target, imported)
    ]
    assert not bad, f"{importer} must not import {imported}:\n" + "\n".join(bad)
