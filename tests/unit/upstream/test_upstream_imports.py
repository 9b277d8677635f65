"""The upstream stages are handed their services: no module of `sidegate.upstream` imports the
process state (or the app and pipeline that hold it), and none sits on an import circle. Imports
under TYPE_CHECKING count: a circle of annotations is still a circle in the design. The import graph
is the one tests/unit/test_structure.py reads for the whole tree."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_structure import cycles, import_graph, imported, knots

ABOVE_THE_STAGES = frozenset({"sidegate.state", "sidegate.app", "sidegate.pipeline"})


def upstream_modules(graph: dict[str, set[str]]) -> list[str]:
    return sorted(m for m in graph if m == "sidegate.upstream" or m.startswith("sidegate.upstream."))


def test_the_walker_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Plain, from-package, relative and TYPE_CHECKING imports are all edges."""
    pkg = tmp_path / "sidegate" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sidegate.pkg.b import X\n")
    (pkg / "b.py").write_text("from . import c\n")
    (pkg / "c.py").write_text("import sidegate.pkg.a\n")
    known = {"sidegate.pkg", "sidegate.pkg.a", "sidegate.pkg.b", "sidegate.pkg.c"}
    graph = {m: imported(m, tmp_path / (m.replace(".", "/") + ".py"), known)
             for m in sorted(known - {"sidegate.pkg"})}
    assert graph == {"sidegate.pkg.a": {"sidegate.pkg.b"}, "sidegate.pkg.b": {"sidegate.pkg.c"},
                     "sidegate.pkg.c": {"sidegate.pkg.a"}}
    assert cycles(graph) == [["sidegate.pkg.a", "sidegate.pkg.b", "sidegate.pkg.c", "sidegate.pkg.a"]]


def test_no_upstream_module_looks_up_the_process_state() -> None:
    graph = import_graph()
    modules = upstream_modules(graph)
    assert "sidegate.upstream.forward" in modules and "sidegate.upstream.relay" in modules  # the walker sees them
    offenders = {m: sorted(graph[m] & ABOVE_THE_STAGES) for m in modules if graph[m] & ABOVE_THE_STAGES}
    assert not offenders, f"upstream modules importing what sits above the stages: {offenders}"


def test_no_upstream_module_is_on_an_import_circle() -> None:
    graph = import_graph()
    upstream = set(upstream_modules(graph))
    knotted = [sorted(group) for group in knots(graph) if group & upstream]
    assert not knotted, f"upstream modules on import circles: {knotted}"
