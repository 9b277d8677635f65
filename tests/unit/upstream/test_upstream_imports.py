"""The upstream stages are handed their services: no module of `sidegate.upstream` imports the
process state (or the app and pipeline that hold it), and none sits on an import circle. Imports
under TYPE_CHECKING count: a circle of annotations is still a circle in the design."""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src"
ABOVE_THE_STAGES = frozenset({"sidegate.state", "sidegate.app", "sidegate.pipeline"})


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The modules of `known` that module `name` (at `path`) imports, at any depth of its code
    (TYPE_CHECKING blocks and function bodies included); `from pkg import mod` names `pkg.mod`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in (SRC / "sidegate").rglob("*.py")}
    known = set(paths)
    return {name: imports_of(path, name, known) for name, path in paths.items()}


def circle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """The shortest import path from `start` back to itself, or None."""
    came_from: dict[str, str] = {}
    queue = deque(graph[start])
    for first in graph[start]:
        came_from[first] = start
    while queue:
        current = queue.popleft()
        if current == start:
            path = [start]
            node = came_from[start]
            while node != start:
                path.append(node)
                node = came_from[node]
            return [start, *reversed(path[1:]), start]
        for nxt in graph[current]:
            if nxt not in came_from:
                came_from[nxt] = current
                queue.append(nxt)
    return None


def upstream_modules(graph: dict[str, set[str]]) -> list[str]:
    return sorted(m for m in graph if m == "sidegate.upstream" or m.startswith("sidegate.upstream."))


def test_the_walker_sees_every_kind_of_import(tmp_path):
    """Plain, from-package, relative and TYPE_CHECKING imports are all edges."""
    pkg = tmp_path / "sidegate" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sidegate.pkg.b import X\n")
    (pkg / "b.py").write_text("from . import c\n")
    (pkg / "c.py").write_text("import sidegate.pkg.a\n")
    known = {"sidegate.pkg", "sidegate.pkg.a", "sidegate.pkg.b", "sidegate.pkg.c"}
    graph = {m: imports_of(tmp_path / (m.replace(".", "/") + ".py"), m, known)
             for m in sorted(known - {"sidegate.pkg"})}
    assert graph == {"sidegate.pkg.a": {"sidegate.pkg.b"}, "sidegate.pkg.b": {"sidegate.pkg.c"},
                     "sidegate.pkg.c": {"sidegate.pkg.a"}}
    assert circle_through(graph, "sidegate.pkg.b") == ["sidegate.pkg.b", "sidegate.pkg.c", "sidegate.pkg.a",
                                                       "sidegate.pkg.b"]


def test_no_upstream_module_looks_up_the_process_state():
    graph = import_graph()
    modules = upstream_modules(graph)
    assert "sidegate.upstream.forward" in modules and "sidegate.upstream.relay" in modules  # the walker sees them
    offenders = {m: sorted(graph[m] & ABOVE_THE_STAGES) for m in modules if graph[m] & ABOVE_THE_STAGES}
    assert not offenders, f"upstream modules importing what sits above the stages: {offenders}"


def test_no_upstream_module_is_on_an_import_circle():
    graph = import_graph()
    circles = [" -> ".join(c) for m in upstream_modules(graph) if (c := circle_through(graph, m)) is not None]
    assert not circles, "import circles:\n" + "\n".join(circles)
