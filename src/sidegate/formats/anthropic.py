"""Anthropic Messages wire format (messages, count_tokens): usage, stream observer, stream fold.

The fold: `message_start` gives the message; each `content_block_start` opens a block at its index
and the block's deltas fill it in: text, thinking and signatures concatenate, citations append, a
tool call's `input_json_delta` fragments join and are parsed into its `input` when the block stops
(a stream cut inside a tool call keeps the fragment text as `input`). `message_delta` sets the stop
reason and merges its usage into the message's. An `error` event is kept under `error`.
"""

from __future__ import annotations

from typing import Any

import orjson

from sidegate import apis
from sidegate.formats.base import ApiFormat, StreamObserver, TokenUsage, as_int
from sidegate.formats.fold import append_text, as_index, merge_delta


def messages_usage(usage: Any, into: TokenUsage | None = None) -> TokenUsage | None:
    """Anthropic reports cache reads/writes apart from `input_tokens`; sidegate's input includes them.
    Thinking tokens, when reported (`output_tokens_details.thinking_tokens`), are the reasoning count
    (already part of `output_tokens`). A stream's later usage (`into`) updates the counts it names."""
    if not isinstance(usage, dict):
        return into
    out = into or TokenUsage()
    cache_read = usage.get("cache_read_input_tokens")
    cache_creation = usage.get("cache_creation_input_tokens")
    if cache_read is not None:
        out.cache_read = as_int(cache_read)
    if cache_creation is not None:
        out.cache_creation = as_int(cache_creation)
    raw_input = usage.get("input_tokens")
    if raw_input is not None:
        out.input = as_int(raw_input) + out.cache_read + out.cache_creation
    elif cache_read is not None or cache_creation is not None:
        out.input = max(out.input, out.cache_read + out.cache_creation)
    if usage.get("output_tokens") is not None:
        out.output = as_int(usage.get("output_tokens"))
    details = usage.get("output_tokens_details")
    if isinstance(details, dict):
        out.reasoning = as_int(details.get("thinking_tokens"))
    return out


_DELTA_TEXT = ("text", "thinking", "partial_json")


def error_code(obj: dict[str, Any]) -> str | None:
    """The type of an Anthropic error object (`overloaded_error`, …)."""
    error = obj.get("error")
    if isinstance(error, dict) and error.get("type"):
        return str(error["type"])
    return None


class MessagesObserver(StreamObserver):
    __slots__ = ()
    closing = "message_stop"

    def on_json(self, event: str | None, obj: dict[str, Any]) -> bool:
        type_name = obj.get("type")
        if type_name == "content_block_delta":
            delta = obj.get("delta") or {}
            for key in _DELTA_TEXT:
                value = delta.get(key)
                if isinstance(value, str):
                    self.text_chars += len(value)
        elif type_name == "message_start":
            self.usage = messages_usage((obj.get("message") or {}).get("usage"), self.usage)
        elif type_name == "message_delta":
            self.usage = messages_usage(obj.get("usage"), self.usage)
            self.finish_reason = (obj.get("delta") or {}).get("stop_reason") or self.finish_reason
        elif type_name == "message_stop":
            self.ended = True
        elif type_name == "error":
            self.failing(error_code(obj))
        return False


# delta type → (field of the delta, field of the block it extends)
_TEXT_DELTAS = {
    "text_delta": ("text", "text"),
    "thinking_delta": ("thinking", "thinking"),
    "signature_delta": ("signature", "signature"),
}


class AnthropicAggregator:
    __slots__ = ("_blocks", "_error", "_json", "_message")

    def __init__(self) -> None:
        self._message: dict[str, Any] = {}
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, str] = {}  # block index → tool input JSON text so far
        self._error: Any = None

    def add(self, event: str | None, obj: dict[str, Any]) -> None:
        type_name = obj.get("type") or event
        index = as_index(obj.get("index"))
        if type_name == "content_block_delta" and isinstance(obj.get("delta"), dict):
            self._delta(index, obj["delta"])
        elif type_name == "content_block_start" and isinstance(obj.get("content_block"), dict):
            self._blocks[index] = obj["content_block"]
        elif type_name == "content_block_stop":
            self._close(index)
        elif type_name == "message_start" and isinstance(obj.get("message"), dict):
            self._message = obj["message"]
        elif type_name == "message_delta":
            for key, value in (obj.get("delta") or {}).items():
                self._message[key] = value
            if isinstance(obj.get("usage"), dict):
                usage = self._message.get("usage")
                if not isinstance(usage, dict):
                    usage = self._message["usage"] = {}
                merge_delta(usage, {k: v for k, v in obj["usage"].items() if v is not None})
        elif type_name == "error":
            self._error = obj.get("error", obj)

    def _delta(self, index: int, delta: dict[str, Any]) -> None:
        block = self._blocks.setdefault(index, {})
        type_name = delta.get("type")
        fields = _TEXT_DELTAS.get(str(type_name))
        if fields is not None:
            source, target = fields
            append_text(block, target, str(delta.get(source) or ""))
        elif type_name == "input_json_delta":
            append_text(self._json, index, str(delta.get("partial_json") or ""))
        elif type_name == "citations_delta":
            block.setdefault("citations", []).append(delta.get("citation"))
        else:  # a delta type this version does not know: fold its fields in
            merge_delta(block, {k: v for k, v in delta.items() if k != "type"})

    def _close(self, index: int) -> None:
        text = self._json.pop(index, None)
        if not text:
            return
        block = self._blocks.setdefault(index, {})
        try:
            block["input"] = orjson.loads(text)
        except orjson.JSONDecodeError:
            block["input"] = text

    def result(self) -> dict[str, Any]:
        for index in list(self._json):
            self._close(index)
        out = {**self._message, "content": [self._blocks[i] for i in sorted(self._blocks)]}
        if self._error is not None:
            out["error"] = self._error
        return out


class Messages(ApiFormat):
    name = apis.ANTHROPIC_MESSAGES
    family = "anthropic"
    aggregator = AnthropicAggregator

    def usage_from_json(self, obj: dict[str, Any]) -> TokenUsage | None:
        return messages_usage(obj.get("usage"))

    def response_text_chars(self, obj: dict[str, Any]) -> int:
        return sum(len(block.get("text") or "") for block in obj.get("content") or () if isinstance(block, dict))

    def observer(self, strip_usage: bool = False) -> StreamObserver:
        return MessagesObserver(strip_usage)


class CountTokens(ApiFormat):
    name = apis.ANTHROPIC_COUNT_TOKENS
    family = "anthropic"
    counts_tokens_only = True
