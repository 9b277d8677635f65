"""What every API format provides: the request fields the pipeline reads, the token usage of its
answers (JSON or SSE stream) and the fold of its streams; the shared token arithmetic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from sidegate.errors import GatewayError
from sidegate.formats.sse import json_event


@dataclass(slots=True)
class TokenUsage:
    """Token counts normalised as the usage table has them: `input` includes cache reads and writes,
    `output` includes reasoning. Each format's one reader (`ApiFormat.usage_from_json`, its stream
    observer) gives these; the translated answer and the usage row both come from that reader."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_creation: int = 0
    reasoning: int = 0


class StreamObserver:
    """Per-request state while a stream is relayed: reads usage and counts generated text.

    `on_event` gets each SSE event's name and `data` payload as they pass; it returns True when
    the event must not reach the caller (the usage chunk sidegate asked for on its own). It leaves
    the event's JSON object in `parsed` (None when the event carries none), so that the output
    guardrails, which read the same event next, need not parse it again.

    The same parse checks the stream: `broken` says what is wrong with an event whose data is not
    a JSON object (every streaming format sends objects; `[DONE]` and data-less events aside), and
    `ended` turns true at the format's terminal event (`closing` names it), or at an error event
    the format's clients raise on. A stream that stops before it ended is cut short. At such an
    error event of the destination's own (`failing`), `failed` holds its code: the stream ended,
    but as a failure of the destination.
    """

    __slots__ = ("_usage", "broken", "ended", "failed", "finish_reason", "parsed", "strip_usage", "text_chars")
    closing: ClassVar[str] = "its terminal event"

    def __init__(self, strip_usage: bool = False) -> None:
        self._usage: TokenUsage | None = None
        self.text_chars = 0
        self.strip_usage = strip_usage
        self.finish_reason: str | None = None
        self.parsed: dict[str, Any] | None = None
        self.broken: str | None = None
        self.ended = False
        self.failed: str | None = None

    def failing(self, code: str | None) -> None:
        """The destination's own error event, `code` as its format names the error: the stream ends."""
        self.ended = True
        if self.failed is None:  # the first one says it (Responses sends `error`, then `response.failed`)
            self.failed = code or "upstream_stream_error"

    def on_event(self, event: str | None, data: bytes) -> bool:
        self.parsed = None
        if not data:
            return False
        if data == b"[DONE]":
            self.on_done()
            return False
        obj, problem = json_event(data)
        if obj is None:
            self.broken = problem
            return False
        self.parsed = obj
        return self.on_json(event, obj)

    def on_done(self) -> None:
        """`data: [DONE]`: the end of an OpenAI chat stream; other formats ignore it."""

    def on_json(self, event: str | None, obj: dict[str, Any]) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def usage(self) -> TokenUsage | None:
        """The token usage read so far (formats that repeat it in every event read it only when asked)."""
        return self._usage

    @usage.setter
    def usage(self, value: TokenUsage | None) -> None:
        self._usage = value


class Aggregator(Protocol):
    """A stream folded into the answer a whole call gives (`registry.aggregate`)."""

    def add(self, event: str | None, obj: dict[str, Any]) -> None: ...

    def result(self) -> dict[str, Any]: ...


class ApiFormat:
    """One wire format (see `sidegate.apis`). Subclasses set the class attributes."""

    name: ClassVar[str]
    family: ClassVar[str]  # openai | anthropic | gemini: the error shape
    has_body: ClassVar[bool] = True
    model_in_url: ClassVar[bool] = False
    counts_tokens_only: ClassVar[bool] = False  # count_tokens calls: nothing generated, nothing billed
    aggregator: ClassVar[type[Aggregator] | None] = None  # the stream fold, for formats that stream

    def parse(self, body: dict[str, Any], url_model: str | None, url_stream: bool) -> tuple[str, bool]:
        """The model service asked for and whether a stream is wanted."""
        model = url_model if self.model_in_url else body.get("model")
        if not isinstance(model, str) or not model:
            raise GatewayError(400, "missing_model", "'model' is required and must be a non-empty string",
                               param="model")
        stream = url_stream if self.model_in_url else body.get("stream") is True
        return model, stream

    def model_changes(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        """Body fields to replace when the destination's model differs from the one asked for
        (a model named in the URL is rewritten there instead)."""
        return {} if self.model_in_url else {"model": model}

    def usage_from_json(self, obj: dict[str, Any]) -> TokenUsage | None:
        return None

    def response_text_chars(self, obj: dict[str, Any]) -> int:
        return 0

    def observer(self, strip_usage: bool = False) -> StreamObserver:
        raise GatewayError(400, "streaming_unsupported", f"{self.name} does not stream")


def as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


_SKIP_KEYS = frozenset({"data", "url", "image_url", "signature", "model", "role", "type", "id",
                        "tool_call_id", "tool_use_id", "inline_data", "inlineData", "fileData", "mimeType",
                        "media_type", "cache_control", "stream", "encrypted_content"})


def text_chars(obj: Any, depth: int = 0) -> int:
    """Characters of human-readable text in a request body, for token estimates (≈ chars / 4)."""
    if isinstance(obj, str):
        return len(obj)
    if depth > 32:
        return 0
    if isinstance(obj, dict):
        return sum(text_chars(v, depth + 1) for k, v in obj.items() if k not in _SKIP_KEYS)
    if isinstance(obj, list):
        return sum(text_chars(v, depth + 1) for v in obj)
    return 0


def estimate_tokens(chars: int) -> int:
    return (chars + 3) // 4
