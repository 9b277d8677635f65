"""Anthropic Messages wire format (messages, count_tokens) and the Anthropic error shape."""

from __future__ import annotations

from typing import Any

import orjson

from sidegate import apis
from sidegate.errors import GatewayError
from sidegate.ingress.base import ApiFormat, StreamObserver, TokenUsage, as_int

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def _error_object(err: GatewayError, request_id: str) -> dict[str, Any]:
    kind = _TYPES.get(err.status) or ("api_error" if err.status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": err.message, "code": err.code},
            "request_id": request_id}


def render_error(err: GatewayError, request_id: str) -> bytes:
    return orjson.dumps(_error_object(err, request_id))


def stream_error(err: GatewayError, request_id: str) -> bytes:
    return b"event: error\ndata: " + render_error(err, request_id) + b"\n\n"


def error_code(obj: dict[str, Any]) -> str | None:
    error = obj.get("error")
    if isinstance(error, dict) and error.get("type"):
        return str(error["type"])
    return None


def messages_usage(usage: Any, into: TokenUsage | None = None) -> TokenUsage | None:
    """Anthropic reports cache reads/writes apart from `input_tokens`; sidegate's input includes them."""
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
    return out


_DELTA_TEXT = ("text", "thinking", "partial_json")


class MessagesObserver(StreamObserver):
    __slots__ = ()
    closing = "message_stop"

    def on_json(self, event: str | None, obj: dict[str, Any]) -> bool:
        kind = obj.get("type")
        if kind == "content_block_delta":
            delta = obj.get("delta") or {}
            for key in _DELTA_TEXT:
                value = delta.get(key)
                if isinstance(value, str):
                    self.text_chars += len(value)
        elif kind == "message_start":
            self.usage = messages_usage((obj.get("message") or {}).get("usage"), self.usage)
        elif kind == "message_delta":
            self.usage = messages_usage(obj.get("usage"), self.usage)
            self.finish_reason = (obj.get("delta") or {}).get("stop_reason") or self.finish_reason
        elif kind == "message_stop" or kind == "error":
            self.ended = True
        return False


class Messages(ApiFormat):
    name = apis.ANTHROPIC_MESSAGES
    family = "anthropic"

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
