"""The shape of `src/sidegate` (DESIGN §6), read from the source: no import circle (TYPE_CHECKING and
function-level imports included), no module below the app layer importing `sidegate.state`, no folder
over 12 modules, and every per-format table covering exactly the formats it should against
`apis.ALL`. Each failure names what breaks the rule: the cycle, the importing module, the folder, the
table and the formats it misses or has too many."""

from __future__ import annotations

import ast
import functools
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sidegate import apis

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "sidegate"
MAX_MODULES = 12

# The app layer: the modules that build the application state and serve it. `state` builds every
# service; `app` and `pipeline` hold it and hand each stage the services it needs; the CLI commands
# (`sidegate serve`, …) start the app above all of them. Everything else is handed its services.
APP_LAYER = frozenset({"sidegate.state", "sidegate.app", "sidegate.pipeline", "sidegate.__main__"})
APP_LAYER_PACKAGES = ("sidegate.cli",)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The sidegate modules `name` imports anywhere in its text (top level, functions, TYPE_CHECKING):
    `from a.b import c` is `a.b.c` when that is a module, else `a.b`."""
    known = set(known)
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


@functools.cache
def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(name, path, found) for name, path in found.items()}


def knots(graph: dict[str, set[str]]) -> list[set[str]]:
    """The groups of modules that import each other, directly or not (Tarjan's strongly connected
    components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One concrete circle per knot, from its first module by name and as short as any."""
    return sorted(shortest_circle(graph, group) for group in knots(graph))


def shortest_circle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{sorted(group)} is not a circle")


def in_app_layer(name: str) -> bool:
    return name in APP_LAYER or any(name == p or name.startswith(p + ".") for p in APP_LAYER_PACKAGES)


# ------------------------------------------------------------------------------ the checks themselves


def test_cycle_finder_names_the_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e", "d"}, "f": {"g"}, "g": {"f"}}
    assert cycles(graph) == [["a", "b", "c", "a"], ["f", "g", "f"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_import_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("from __future__ import annotations\nfrom typing import TYPE_CHECKING\n"
                      "import sidegate.apis\nfrom sidegate.upstream import sse\nfrom . import errors\n"
                      "from .context import RequestContext\n"
                      "if TYPE_CHECKING:\n    from sidegate.state import AppState\n"
                      "def later():\n    from sidegate.ingress.registry import FORMATS\n")
    known = {"sidegate.apis", "sidegate.upstream", "sidegate.upstream.sse", "sidegate.errors", "sidegate.context",
             "sidegate.state", "sidegate.ingress.registry", "sidegate.m"}
    assert imported("sidegate.m", source, known) == known - {"sidegate.upstream", "sidegate.m"}


def test_no_import_circle_in_src() -> None:
    graph = import_graph()
    found = sorted((shortest_circle(graph, group), sorted(group)) for group in knots(graph))
    assert not found, "import circles in src/sidegate:\n" + "\n".join(
        " -> ".join(circle) + (f"  (one of the circles among {group})" if len(group) > len(circle) - 1 else "")
        for circle, group in found)


def test_only_the_app_layer_imports_state() -> None:
    graph = import_graph()
    assert "sidegate.state" in graph
    below = sorted(name for name, targets in graph.items() if "sidegate.state" in targets and not in_app_layer(name))
    assert not below, ("modules below app/pipeline import sidegate.state (hand them their services instead): "
                       + ", ".join(below))


def folder_sizes() -> dict[str, int]:
    return {str(d.relative_to(SRC)): n for d in [PACKAGE, *sorted(PACKAGE.rglob("*"))]
            if d.is_dir() and (n := len(list(d.glob("*.py"))))}


def test_no_folder_holds_more_than_12_modules() -> None:
    sizes = folder_sizes()
    assert sizes["sidegate"] >= 2
    big = {folder: n for folder, n in sizes.items() if n > MAX_MODULES}
    assert not big, f"folders over {MAX_MODULES} modules (__init__.py counted): {big}"


# --------------------------------------------------------------------------- per-format tables

CHAT, RESPONSES, EMBEDDINGS = apis.OPENAI_CHAT, apis.OPENAI_RESPONSES, apis.OPENAI_EMBEDDINGS
MESSAGES, GENERATE = apis.ANTHROPIC_MESSAGES, apis.GEMINI_GENERATE
# The formats that stream, and so generate text: each has a stream fold, a stream guard, finish reasons.
GENERATING = frozenset({CHAT, RESPONSES, MESSAGES, GENERATE})
COUNTS = frozenset({apis.ANTHROPIC_COUNT_TOKENS, apis.GEMINI_COUNT_TOKENS})
# Everything but the model list, which sidegate answers itself from the policy: never forwarded,
# translated, mocked or scanned, and it has no body.
CALLS = apis.ALL - {apis.OPENAI_MODELS}


@dataclass(frozen=True)
class Table:
    name: str  # module.attribute, or a description of what is read
    keys: Callable[[], Iterable[str]]
    expected: frozenset[str]
    why: str  # why the table leaves out the formats it leaves out

    def __str__(self) -> str:
        return self.name


def attr(path: str) -> Callable[[], Any]:
    module, _, name = path.rpartition(".")
    return lambda: getattr(importlib.import_module(module), name)


def keys_of(path: str) -> Callable[[], Iterable[str]]:
    return lambda: set(attr(path)())


def overriding(method: str) -> Callable[[], set[str]]:
    """The formats whose descriptor implements `method` itself (the base class's answers nothing)."""
    def read() -> set[str]:
        formats = attr("sidegate.formats.registry.FORMATS")()
        base = attr("sidegate.formats.base.ApiFormat")()
        return {name for name, fmt in formats.items() if getattr(type(fmt), method) is not getattr(base, method)}
    return read


def keyed(path: str, expected: frozenset[str], why: str,
          read: Callable[[str], Callable[[], Iterable[str]]] = keys_of) -> Table:
    """The table at `path` (module.attribute), its keys read by `read`."""
    return Table(path, read(path), expected, why)


def families_of_formats() -> set[str]:
    return {fmt.family for fmt in attr("sidegate.formats.registry.FORMATS")().values()}


def surface_formats() -> set[str]:
    surfaces = attr("sidegate.ingress.registry.SURFACES")()
    gemini = attr("sidegate.ingress.registry.GEMINI_METHODS")()
    return {s.api for s in surfaces} | {s.api for s, _stream in gemini.values()}


def family_members(family: str) -> frozenset[str]:
    return frozenset(api for api in apis.ALL if api.partition(".")[0] == family)


def provider_paths(path: str) -> Callable[[], set[str]]:
    return lambda: {key[0] if isinstance(key, tuple) else key for key in attr(path)()}


FAMILY_NAMES = frozenset({"openai", "anthropic", "gemini"})
PROVIDERS = "sidegate.upstream.providers"
TABLES = [
    keyed("sidegate.formats.registry.FORMATS", apis.ALL, "every format has its descriptor"),
    Table("paths served (ingress.registry SURFACES and GEMINI_METHODS)", surface_formats, apis.ALL,
          "every format has a path callers reach"),
    keyed("sidegate.ingress.registry.FAMILIES", FAMILY_NAMES, "one error shape per provider family"),
    Table("families named by the formats", families_of_formats, FAMILY_NAMES,
          "each format renders its errors in a family FAMILIES has"),
    Table("usage readers (ApiFormat.usage_from_json)", overriding("usage_from_json"),
          frozenset({CHAT, RESPONSES, EMBEDDINGS, MESSAGES, GENERATE, apis.GEMINI_BATCH_EMBED}),
          "count calls and the model list use no tokens; Gemini's single embedContent answer carries no "
          "token counts (batchEmbedContents has usageMetadata)"),
    Table("stream observers (ApiFormat.observer)", overriding("observer"), GENERATING,
          "only the generating formats stream"),
    Table("answer text counters (ApiFormat.response_text_chars)", overriding("response_text_chars"), GENERATING,
          "only generated answers hold text"),
    keyed("sidegate.formats.registry.AGGREGATORS", GENERATING, "only these formats stream"),
    keyed("sidegate.governance.guardrails.stream_guard.FORMATS", GENERATING,
          "output guardrails scan streams of generated text"),
    keyed("sidegate.governance.guardrails.texts.INPUT", CALLS,
          "input guardrails scan every body a model reads; the model list has none"),
    keyed("sidegate.governance.guardrails.texts.OUTPUT", GENERATING,
          "output guardrails scan generated text; counts and embeddings have none"),
    keyed("sidegate.governance.token_estimate.OUTPUT_CAPS", CALLS - COUNTS,
          "count calls and the model list consume no tokens"),
    keyed("sidegate.telemetry.genai.OPERATIONS", CALLS, "the model list is no GenAI operation"),
    keyed("sidegate.telemetry.genai.FINISH_REASONS", GENERATING, "only generated answers say why they stopped"),
    keyed("sidegate.translate.registry.CODECS", CALLS, "the model list is answered by sidegate, never translated"),
    keyed("sidegate.translate.registry.PREFERENCES", CALLS, "every translatable caller format has its destinations"),
    keyed("sidegate.upstream.mock.model.SUPPORTED_APIS", CALLS,
          "the mock answers every call a provider answers; the model list is sidegate's"),
    keyed("sidegate.upstream.mock.validate.CHECKS", CALLS, "the mock refuses bad requests of every format it answers"),
    keyed(f"{PROVIDERS}.ALL_APIS", apis.ALL, "some provider kind serves every format"),
    *(keyed(f"{PROVIDERS}.{table}", family_members(family), f"a {family} server speaks the {family} formats only",
            provider_paths)
      for table, family in (("OPENAI_PATHS", "openai"), ("ANTHROPIC_PATHS", "anthropic"),
                            ("GEMINI_METHODS", "gemini"))),
]


def test_every_format_is_named_in_all() -> None:
    names = {getattr(apis, n) for n in dir(apis) if n.isupper() and isinstance(getattr(apis, n), str)}
    assert names == apis.ALL
    assert all(family_members(f) for f in FAMILY_NAMES)
    assert set().union(*(family_members(f) for f in FAMILY_NAMES)) == apis.ALL


@pytest.mark.parametrize("table", TABLES, ids=str)
def test_per_format_table_covers_exactly_its_formats(table: Table) -> None:
    have = set(table.keys())
    missing, extra = sorted(table.expected - have), sorted(have - table.expected)
    assert not missing and not extra, f"{table.name} ({table.why}): missing {missing}, not expected {extra}"


def test_translation_preferences_name_only_known_codecs() -> None:
    codecs = set(attr("sidegate.translate.registry.CODECS")())
    estimate = attr("sidegate.translate.registry.ESTIMATE")()
    for caller, destinations in attr("sidegate.translate.registry.PREFERENCES")().items():
        assert set(destinations) <= codecs | {estimate}, caller
        assert caller not in destinations, f"{caller} lists itself: a provider speaking it gets the body as is"

