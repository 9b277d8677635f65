"""The built-in ``mock`` provider: a deterministic model that answers every API format in its own wire shape.

Pure and fast (no I/O, no sleeps): it serves offline demos, the default policy, tests and benchmarks.

* A request its API could not accept (no ``messages``, ``"messages": "hi"``, Anthropic without
  ``max_tokens``, …) gets a 400 in that API's own words and error shape, naming the field
  (:mod:`sidegate.upstream.mock.validate`).
* The answer echoes the text of the last user message (or a greeting when there is none).
* A prompt whose text (any line of it) starts with ``mock:error:<status>`` gets that HTTP status with
  the format's own error body: a scripted way to exercise fallbacks.
* The caller's output-token limit truncates the answer to that many words, with the format's length
  finish reason. Output tokens are the answer's words; input tokens are ceil(characters / 4) of the
  request's text. Streams send one word per delta; the deltas concatenate to the exact answer.
* Ids derive from a hash of the request; only ``created`` timestamps vary between identical requests.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from sidegate import apis
from sidegate.upstream.mock import render as fmt
from sidegate.upstream.mock.validate import CHECKS

JSON = "application/json"
SSE = "text/event-stream"
DEFAULT_ANSWER = "Hello from sidegate's mock model."
DEFAULT_DIMENSIONS = 256

_WORD = re.compile(r"\s*\S+\s*")
_ERROR_DIRECTIVE = re.compile(r"^mock:error:(\d{3})(?!\d)", re.MULTILINE)
_TEXT_PART_TYPES = frozenset({"text", "input_text"})
_TEXT_KEYS = ("text", "content", "parts", "output")


@dataclass(slots=True)
class MockReply:
    status: int
    content_type: str  # "application/json" or "text/event-stream"
    body: bytes | None  # JSON replies
    events: list[bytes] | None  # SSE: each a complete raw event block ending in b"\n\n"


# ---------------------------------------------------------------- request reading (shared)


def _parts_text(parts: Any) -> str:
    """Text of a message content: a string, or the text parts / blocks of a list."""
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        return ""
    texts = [
        p["text"]
        for p in parts
        if isinstance(p, dict)
        and isinstance(p.get("text"), str)
        and p.get("type", "text") in _TEXT_PART_TYPES
    ]
    return "\n".join(texts)


def _last_user(messages: Any, role_key: str, roles: tuple[str | None, ...], content_key: str) -> str:
    if isinstance(messages, dict):  # Gemini's `contents` may be one Content rather than a list
        messages = [messages]
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get(role_key) in roles:
            return _parts_text(message.get(content_key))
    return ""


def _chars(node: Any) -> int:
    """Characters of text anywhere in a request structure (strings under text-bearing keys)."""
    if isinstance(node, str):
        return len(node)
    if isinstance(node, list):
        return sum(_chars(n) for n in node)
    if isinstance(node, dict):
        return sum(_chars(node[k]) for k in _TEXT_KEYS if k in node)
    return 0


def estimate_tokens(*roots: Any) -> int:
    """Deterministic input-token estimate: ceil(characters / 4), at least 1."""
    return max(1, (sum(_chars(r) for r in roots) + 3) // 4)


def _digest(api: str, model: str, body: Any) -> str:
    try:
        raw = orjson.dumps([api, model, body], option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:  # e.g. an integer beyond 64 bits: fall back to a stable text form
        raw = repr((api, model, body)).encode()
    return hashlib.blake2b(raw, digest_size=6).hexdigest()


def _error_status(text: str) -> int | None:
    m = _ERROR_DIRECTIVE.search(text) if "mock:error:" in text else None
    if m is None:
        return None
    status = int(m.group(1))
    return status if 400 <= status <= 599 else None


def _error(render: Callable[[int, str], bytes], status: int, message: str | None = None) -> MockReply:
    text = message or f"Mock error {status}, requested by the prompt (mock:error:{status})."
    return MockReply(status, JSON, render(status, text), None)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ---------------------------------------------------------------- generation formats (registry)


@dataclass(frozen=True, slots=True)
class _Generation:
    """How one generation API is read and written."""

    user_text: Callable[[dict[str, Any]], str]
    input_roots: Callable[[dict[str, Any]], Iterable[Any]]
    limit: Callable[[dict[str, Any]], Any]
    limit_name: str
    error: Callable[[int, str], bytes]
    render_json: Callable[[fmt.Completion], bytes]
    render_events: Callable[[fmt.Completion], list[bytes]]


def _responses_user_text(body: dict[str, Any]) -> str:
    items = body.get("input")
    if isinstance(items, str):
        return items
    if not isinstance(items, list):
        return ""
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user" and item.get("type", "message") == "message":
            return _parts_text(item.get("content"))
    return ""


def _gemini_config(body: dict[str, Any]) -> dict[str, Any]:
    config = body.get("generationConfig", body.get("generation_config"))
    return config if isinstance(config, dict) else {}


def _gemini_system(body: dict[str, Any]) -> Any:
    return body.get("systemInstruction", body.get("system_instruction"))


_CHAT = _Generation(
    user_text=lambda b: _last_user(b.get("messages"), "role", ("user",), "content"),
    input_roots=lambda b: (b.get("messages"),),
    limit=lambda b: b["max_completion_tokens"] if "max_completion_tokens" in b else b.get("max_tokens"),
    limit_name="max_completion_tokens",
    error=fmt.openai_error,
    render_json=fmt.chat_json,
    render_events=fmt.chat_events,
)
_RESPONSES = _Generation(
    user_text=_responses_user_text,
    input_roots=lambda b: (b.get("instructions"), b.get("input")),
    limit=lambda b: b.get("max_output_tokens"),
    limit_name="max_output_tokens",
    error=fmt.openai_error,
    render_json=fmt.responses_json,
    render_events=fmt.responses_events,
)
_ANTHROPIC = _Generation(
    user_text=lambda b: _last_user(b.get("messages"), "role", ("user",), "content"),
    input_roots=lambda b: (b.get("system"), b.get("messages")),
    limit=lambda b: b.get("max_tokens"),
    limit_name="max_tokens",
    error=fmt.anthropic_error,
    render_json=fmt.anthropic_json,
    render_events=fmt.anthropic_events,
)
_GEMINI = _Generation(
    user_text=lambda b: _last_user(b.get("contents"), "role", ("user", None), "parts"),
    input_roots=lambda b: (_gemini_system(b), b.get("contents")),
    limit=lambda b: _gemini_config(b).get("maxOutputTokens", _gemini_config(b).get("max_output_tokens")),
    limit_name="generationConfig.maxOutputTokens",
    error=fmt.gemini_error,
    render_json=fmt.gemini_json,
    render_events=fmt.gemini_events,
)


def split_words(text: str) -> list[str]:
    """Words with their surrounding whitespace attached: ``"".join(split_words(t)) == t`` for any
    text with at least one non-space character."""
    return _WORD.findall(text)


def _generate(spec: _Generation, api: str, body: dict[str, Any], model: str, stream: bool) -> MockReply:
    user = spec.user_text(body)
    status = _error_status(user)
    if status is not None:
        return _error(spec.error, status)
    limit = _int_or_none(spec.limit(body))
    if limit is not None and limit < 1:
        return _error(spec.error, 400, f"{spec.limit_name}: must be at least 1, got {limit}.")
    chunks = split_words(user)
    if not chunks:
        chunks = split_words(DEFAULT_ANSWER)
    truncated = limit is not None and len(chunks) > limit
    if truncated:
        chunks = chunks[:limit]
        chunks[-1] = chunks[-1].rstrip()
    completion = fmt.Completion(
        model=model,
        digest=_digest(api, model, body),
        text="".join(chunks),
        chunks=chunks,
        truncated=truncated,
        input_tokens=estimate_tokens(*spec.input_roots(body)),
        body=body,
    )
    if stream:
        return MockReply(200, SSE, None, spec.render_events(completion))
    return MockReply(200, JSON, spec.render_json(completion), None)


# ---------------------------------------------------------------- token counting and embeddings


def _anthropic_count(body: dict[str, Any], model: str, stream: bool) -> MockReply:
    status = _error_status(_ANTHROPIC.user_text(body))
    if status is not None:
        return _error(fmt.anthropic_error, status)
    return MockReply(200, JSON, fmt.anthropic_count(estimate_tokens(*_ANTHROPIC.input_roots(body))), None)


def _gemini_count(body: dict[str, Any], model: str, stream: bool) -> MockReply:
    inner = body.get("generateContentRequest", body.get("generate_content_request"))
    request = inner if isinstance(inner, dict) else body
    status = _error_status(_GEMINI.user_text(request))
    if status is not None:
        return _error(fmt.gemini_error, status)
    return MockReply(200, JSON, fmt.gemini_count(estimate_tokens(*_GEMINI.input_roots(request))), None)


def _dimensions(value: Any) -> int:
    dims = _int_or_none(value)
    return dims if dims is not None and dims >= 1 else DEFAULT_DIMENSIONS


def _embedding_inputs(raw: Any) -> list[tuple[bytes, int, str]]:
    """(hash key, token count, text) per input: strings, or token arrays counted as their length."""
    if isinstance(raw, str):
        return [(raw.encode(), (len(raw) + 3) // 4, raw)]
    if not isinstance(raw, list) or not raw:
        return []
    if all(isinstance(t, int) for t in raw):
        return [(orjson.dumps(raw), len(raw), "")]
    out = []
    for item in raw:
        if isinstance(item, str):
            out.append((item.encode(), (len(item) + 3) // 4, item))
        elif isinstance(item, list) and all(isinstance(t, int) for t in item):
            out.append((orjson.dumps(item), len(item), ""))
        else:
            return []
    return out


def _openai_embeddings(body: dict[str, Any], model: str, stream: bool) -> MockReply:
    inputs = _embedding_inputs(body.get("input"))
    if not inputs:
        message = "'$.input' is invalid: expected a string, an array of strings, an array of tokens or an " \
            "array of token arrays, not empty."
        return MockReply(400, JSON, fmt.openai_error(400, message, param="input", code="invalid_type"), None)
    status = _error_status(inputs[0][2])
    if status is not None:
        return _error(fmt.openai_error, status)
    dims = _dimensions(body.get("dimensions"))
    vectors = [fmt.unit_vector(key, dims) for key, _, _ in inputs]
    tokens = max(1, sum(n for _, n, _ in inputs))
    as_base64 = body.get("encoding_format") == "base64"
    return MockReply(200, JSON, fmt.openai_embeddings(model, vectors, tokens, as_base64), None)


def _gemini_embed(body: dict[str, Any], model: str, stream: bool) -> MockReply:
    content = body.get("content")
    text = _parts_text(content.get("parts")) if isinstance(content, dict) else ""
    status = _error_status(text)
    if status is not None:
        return _error(fmt.gemini_error, status)
    dims = _dimensions(body.get("outputDimensionality", body.get("output_dimensionality")))
    return MockReply(200, JSON, fmt.gemini_embedding(fmt.unit_vector(text.encode(), dims)), None)


def _gemini_batch_embed(body: dict[str, Any], model: str, stream: bool) -> MockReply:
    vectors = []
    for item in body["requests"]:  # a non-empty list of objects (mock.validate)
        reply = _gemini_embed(item, model, stream)
        if reply.status != 200:
            return reply
        vectors.append(orjson.loads(reply.body or b"{}")["embedding"]["values"])
    return MockReply(200, JSON, fmt.gemini_batch_embedding(vectors), None)


# ---------------------------------------------------------------- entry point

_Handler = Callable[[dict[str, Any], str, bool], MockReply]


def _generation(api: str, spec: _Generation) -> _Handler:
    return lambda body, model, stream: _generate(spec, api, body, model, stream)


_HANDLERS: dict[str, _Handler] = {
    apis.OPENAI_CHAT: _generation(apis.OPENAI_CHAT, _CHAT),
    apis.OPENAI_RESPONSES: _generation(apis.OPENAI_RESPONSES, _RESPONSES),
    apis.OPENAI_EMBEDDINGS: _openai_embeddings,
    apis.ANTHROPIC_MESSAGES: _generation(apis.ANTHROPIC_MESSAGES, _ANTHROPIC),
    apis.ANTHROPIC_COUNT_TOKENS: _anthropic_count,
    apis.GEMINI_GENERATE: _generation(apis.GEMINI_GENERATE, _GEMINI),
    apis.GEMINI_COUNT_TOKENS: _gemini_count,
    apis.GEMINI_EMBED: _gemini_embed,
    apis.GEMINI_BATCH_EMBED: _gemini_batch_embed,
}

SUPPORTED_APIS = frozenset(_HANDLERS)


def mock_reply(api: str, body: dict[str, Any], model: str, stream: bool) -> MockReply:
    """The mock model's reply to ``body`` (parsed, in ``api``'s format), as that API sends it."""
    handler = _HANDLERS.get(api)
    if handler is None:
        raise ValueError(f"the mock provider does not serve API {api!r}")
    body = body if isinstance(body, dict) else {}
    invalid = CHECKS[api](body)
    if invalid is not None:
        return MockReply(400, JSON, invalid, None)
    return handler(body, model, stream)
