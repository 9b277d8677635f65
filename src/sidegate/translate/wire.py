"""Small wire helpers shared by the codecs: ids, timestamps, SSE framing, tool-argument JSON text."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import orjson

from sidegate.translate.errors import invalid

DONE = b"data: [DONE]\n\n"
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def new_id(prefix: str, n: int = 24) -> str:
    return prefix + uuid.uuid4().hex[:n]


def now() -> int:
    return int(time.time())


def sse(obj: Any, event: str | None = None) -> bytes:
    """One SSE event block (with an `event:` line when named), JSON data, blank line included."""
    data = orjson.dumps(obj)
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def safe_tool_id(value: str) -> str:
    """Anthropic accepts tool_use ids matching ^[a-zA-Z0-9_-]+$; others are freer. The same caller
    id always maps to the same safe id, so calls and their results stay paired."""
    return _ID_UNSAFE.sub("_", value) or "call"


def args_object(arguments: str, field: str) -> dict[str, Any]:
    """Tool-call arguments (JSON text) as the object Anthropic's `input` / Gemini's `args` need."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise invalid(field, "tool-call arguments are not valid JSON, so they cannot become an object") from None
    if not isinstance(value, dict):
        raise invalid(field, "tool-call arguments must be a JSON object")
    return value


def args_text(value: Any) -> str:
    return orjson.dumps(value if value is not None else {}).decode()


def text_of(value: Any) -> str:
    """A JSON value as tool-result text: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def tool_input(arguments: str) -> dict[str, Any]:
    """Arguments of a call the destination made, as Anthropic's `input` object. Text that is not a
    JSON object (a call cut off by the token limit) becomes {}; the stop reason tells why."""
    try:
        value = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def str_or(value: Any, default: str) -> str:
    """`value` when it is a non-empty string, else `default`."""
    return value if isinstance(value, str) and value else default
