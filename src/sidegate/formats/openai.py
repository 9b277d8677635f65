"""OpenAI wire formats: Chat Completions, Responses, Embeddings, model list; OpenAI error shape."""

from __future__ import annotations

from typing import Any

import orjson

from sidegate import apis
from sidegate.errors import GatewayError
from sidegate.ingress.base import ApiFormat, StreamObserver, TokenUsage, as_int


def render_error(err: GatewayError, request_id: str) -> bytes:
    return orjson.dumps(
        {"error": {"message": err.message, "type": err.kind, "param": err.param, "code": err.code}}
    )


def stream_error(err: GatewayError, request_id: str) -> bytes:
    return b"data: " + render_error(err, request_id) + b"\n\n"


def responses_stream_error(err: GatewayError, request_id: str) -> bytes:
    """The Responses API's own ending of a failed stream (it has no `data: {"error": …}`): an `error`
    event, then `response.failed` with the error in the response object, which is what clients such
    as Codex read to report the failure."""
    event = {"type": "error", "code": err.code, "message": err.message, "param": err.param}
    failed = {"type": "response.failed", "response": {
        "id": f"resp_{request_id}", "object": "response", "status": "failed", "output": [],
        "error": {"code": err.code, "message": err.message}}}
    return (b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"
            b"event: response.failed\ndata: " + orjson.dumps(failed) + b"\n\n")


def error_code(obj: dict[str, Any]) -> str | None:
    error = obj.get("error")
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        return str(code) if code else None
    return None


def _details(usage: dict[str, Any], key: str, field: str) -> int:
    details = usage.get(key)
    return as_int(details.get(field)) if isinstance(details, dict) else 0


def chat_usage(usage: Any) -> TokenUsage | None:
    if not isinstance(usage, dict):
        return None
    return TokenUsage(
        input=as_int(usage.get("prompt_tokens")),
        output=as_int(usage.get("completion_tokens")),
        cache_read=_details(usage, "prompt_tokens_details", "cached_tokens"),
        reasoning=_details(usage, "completion_tokens_details", "reasoning_tokens"),
    )


def responses_usage(usage: Any) -> TokenUsage | None:
    if not isinstance(usage, dict):
        return None
    return TokenUsage(
        input=as_int(usage.get("input_tokens")),
        output=as_int(usage.get("output_tokens")),
        cache_read=_details(usage, "input_tokens_details", "cached_tokens"),
        reasoning=_details(usage, "output_tokens_details", "reasoning_tokens"),
    )


class ChatObserver(StreamObserver):
    __slots__ = ()
    closing = "a finish_reason or data: [DONE]"

    def on_done(self) -> None:
        self.ended = True

    def on_json(self, event: str | None, obj: dict[str, Any]) -> bool:
        if "error" in obj:  # an error object mid-stream: the SDK raises it
            self.ended = True
            return False
        choices = obj.get("choices")
        if choices:
            for choice in choices:
                delta = choice.get("delta") or {}
                content = delta.get("content")
                if isinstance(content, str):
                    self.text_chars += len(content)
                for call in delta.get("tool_calls") or ():
                    args = (call.get("function") or {}).get("arguments")
                    if isinstance(args, str):
                        self.text_chars += len(args)
                if choice.get("finish_reason"):
                    self.finish_reason = choice["finish_reason"]
                    self.ended = True  # the answer is whole even if a server leaves out [DONE]
        usage = obj.get("usage")
        if usage:
            self.usage = chat_usage(usage)
            return self.strip_usage and not choices
        return False


class Chat(ApiFormat):
    name = apis.OPENAI_CHAT
    family = "openai"

    def usage_from_json(self, obj: dict[str, Any]) -> TokenUsage | None:
        return chat_usage(obj.get("usage"))

    def response_text_chars(self, obj: dict[str, Any]) -> int:
        total = 0
        for choice in obj.get("choices") or ():
            message = choice.get("message") or {}
            if isinstance(message.get("content"), str):
                total += len(message["content"])
        return total

    def observer(self, strip_usage: bool = False) -> StreamObserver:
        return ChatObserver(strip_usage)


_RESPONSE_DONE = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesObserver(StreamObserver):
    __slots__ = ()
    closing = "response.completed"

    def on_json(self, event: str | None, obj: dict[str, Any]) -> bool:
        kind = obj.get("type")
        if kind == "response.output_text.delta" or kind == "response.function_call_arguments.delta":
            delta = obj.get("delta")
            if isinstance(delta, str):
                self.text_chars += len(delta)
        elif kind in _RESPONSE_DONE:
            response = obj.get("response") or {}
            self.usage = responses_usage(response.get("usage")) or self.usage
            self.finish_reason = response.get("status")
            self.ended = True
        elif kind == "error":
            self.ended = True
        return False


class Responses(ApiFormat):
    name = apis.OPENAI_RESPONSES
    family = "openai"

    def usage_from_json(self, obj: dict[str, Any]) -> TokenUsage | None:
        return responses_usage(obj.get("usage"))

    def response_text_chars(self, obj: dict[str, Any]) -> int:
        total = 0
        for item in obj.get("output") or ():
            for part in item.get("content") or ():
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += len(part["text"])
        return total

    def observer(self, strip_usage: bool = False) -> StreamObserver:
        return ResponsesObserver(strip_usage)


class Embeddings(ApiFormat):
    name = apis.OPENAI_EMBEDDINGS
    family = "openai"

    def usage_from_json(self, obj: dict[str, Any]) -> TokenUsage | None:
        usage = obj.get("usage")
        return TokenUsage(input=as_int(usage.get("prompt_tokens"))) if isinstance(usage, dict) else None


class Models(ApiFormat):
    name = apis.OPENAI_MODELS
    family = "openai"
    has_body = False
