"""No import cycle in engine/ or converters/, and no stage imports a backend (issue 17 item 4).

The imports are read with ast, function-level (lazy) imports included, so a cycle that only shows
when a lazy import runs is found too. An edge goes to the module an import names (`from a.b import
c` names `a.b.c` if that is a module, else `a.b`); that Python runs a package's `__init__` before
its submodules is not counted as an edge.
"""

from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAGES = ("engine.prepare", "engine.decode", "engine.io", "engine.corpus")


def modules(root: str, packages: tuple[str, ...]) -> dict[str, str]:
    """Dotted module name -> file, for every .py file under the packages."""
    found = {}
    for package in packages:
        for folder, _, files in os.walk(os.path.join(root, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                    found[dotted.removesuffix(".__init__")] = path
    return found


def imported(name: str, path: str, known: dict[str, str]) -> set[str]:
    """The known modules that the module `name` imports anywhere in its file."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            named.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                         for alias in node.names)
    edges = set()
    for dotted in named:
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):  # the longest prefix that is a module
            candidate = ".".join(parts[:end])
            if candidate in known:
                if candidate != name:
                    edges.add(candidate)
                break
    return edges


def import_graph(root: str, packages: tuple[str, ...]) -> dict[str, set[str]]:
    known = modules(root, packages)
    return {name: imported(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
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
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_engine_and_converters_have_no_import_cycle() -> None:
    graph = import_graph(ROOT, ("engine", "converters"))
    assert len(graph) > 40 and "engine.backends.local" in graph
    assert cycles(graph) == []


def test_no_stage_imports_a_backend() -> None:
    graph = import_graph(ROOT, ("engine",))
    offenders = {name: sorted(m for m in deps if m.startswith("engine.backends"))
                 for name, deps in graph.items() if name.startswith(STAGES)}
    assert {name: deps for name, deps in offenders.items() if deps} == {}


def test_the_walk_finds_a_cycle_through_a_lazy_import(tmp_path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from .. import c\n")
    (package / "c.py").write_text("from . import a\n")
    (package / "d.py").write_text("import pkg.a\n")
    graph = import_graph(str(tmp_path), ("pkg",))
    assert graph["pkg.sub.b"] == {"pkg.c"}
    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
