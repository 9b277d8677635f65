"""`formats/` is the bottom of the wire knowledge: its tables cover exactly the formats of
`apis.ALL`, every streaming format has its observer and its fold, and it imports nothing of
sidegate above it (`apis` and `errors` aside); `translate/` reads usage through it, never through
the HTTP edge (`ingress/`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sidegate import apis
from sidegate.errors import GatewayError
from sidegate.formats.registry import AGGREGATORS, FORMATS
from sidegate.ingress.registry import FAMILIES, SURFACES
from sidegate.translate.registry import CODECS

SRC = Path(__file__).resolve().parents[3] / "src" / "sidegate"


def _streams(api: str) -> bool:
    try:
        FORMATS[api].observer()
    except GatewayError:
        return False
    return True


def test_every_format_has_one_descriptor_named_after_it() -> None:
    assert set(FORMATS) == apis.ALL
    assert all(fmt.name == api for api, fmt in FORMATS.items())
    assert {fmt.family for fmt in FORMATS.values()} == set(FAMILIES)


def test_the_formats_that_stream_have_a_fold_and_no_other_does() -> None:
    streaming = {api for api in apis.ALL if _streams(api)}
    assert streaming == {apis.OPENAI_CHAT, apis.OPENAI_RESPONSES, apis.ANTHROPIC_MESSAGES, apis.GEMINI_GENERATE}
    assert set(AGGREGATORS) == streaming


def test_codecs_and_surfaces_name_only_known_formats() -> None:
    assert set(CODECS) == apis.ALL - {apis.OPENAI_MODELS}  # the model list is answered by sidegate itself
    assert {surface.api for surface in SURFACES} <= apis.ALL


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("sidegate")}


@pytest.mark.parametrize("path", sorted((SRC / "formats").rglob("*.py")), ids=lambda p: p.name)
def test_formats_import_nothing_above_them(path: Path) -> None:
    allowed = ("sidegate.apis", "sidegate.errors", "sidegate.formats")
    above = {name for name in _imports(path)
             if name != "sidegate" and not name.startswith(allowed)}
    assert above == set(), f"{path.name} imports {above}"


def test_translate_does_not_import_the_http_edge() -> None:
    offenders = {p.relative_to(SRC).as_posix(): sorted(n for n in _imports(p) if n.startswith("sidegate.ingress"))
                 for p in (SRC / "translate").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}
