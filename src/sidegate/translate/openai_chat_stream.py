"""OpenAI Chat Completions streams ↔ neutral stream events.

The decoder reads `chat.completion.chunk` events (tool-call fragments keyed by their `index`, the
usage chunk with empty `choices`, `[DONE]`). The encoder writes the chunks an OpenAI SDK expects: a
first chunk with the assistant role, content / reasoning / tool-call deltas (each call announced
once with id, type and name, then argument fragments under the same index), a finish chunk, the
usage chunk when the caller asked for it (`stream_options.include_usage`), then `data: [DONE]`.
"""

from __future__ import annotations

from typing import Any

import orjson

from sidegate.ingress.base import TokenUsage
from sidegate.translate import neutral as n
from sidegate.translate.errors import ApiError, upstream_error
from sidegate.translate.openai_chat_reply import (
    FINISH_IN,
    FINISH_OUT,
    THINKING_KEYS,
    chat_id,
    error_object,
    usage_in,
    usage_out,
)
from sidegate.translate.wire import DONE, int_or_none, new_id, now, sse


class ChatStreamDecoder:
    __slots__ = ("_seen", "_started")

    def __init__(self) -> None:
        self._started = False
        self._seen: set[int] = set()

    def feed(self, event: str | None, data: bytes) -> list[n.Event]:
        if data == b"[DONE]":
            return [n.End()]
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(obj, dict):
            return []
        if isinstance(obj.get("error"), dict):
            err = obj["error"]
            status = err.get("code") if isinstance(err.get("code"), int) else 500
            failure = upstream_error(status, err.get("message"))
            return [n.StreamError(failure.status, failure.kind, failure.message)]
        out: list[n.Event] = []
        if not self._started:
            self._started = True
            out.append(n.Start(str(obj.get("id") or new_id("chatcmpl-", 29)), str(obj.get("model") or ""),
                               int_or_none(obj.get("created")) or now()))
        for choice in obj.get("choices") or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self._choice(choice, out)
        usage = usage_in(obj.get("usage"))
        if usage is not None:
            out.append(n.UsageUpdate(usage))
        return out

    def _choice(self, choice: dict[str, Any], out: list[n.Event]) -> None:
        delta = choice.get("delta") or {}
        for key in THINKING_KEYS:
            if isinstance(delta.get(key), str) and delta[key]:
                out.append(n.ThinkingDelta(delta[key]))
                break
        for key in ("content", "refusal"):
            if isinstance(delta.get(key), str) and delta[key]:
                out.append(n.TextDelta(delta[key]))
        for position, call in enumerate(delta.get("tool_calls") or ()):
            index = call.get("index") if isinstance(call.get("index"), int) else position
            fn = call.get("function") or {}
            if index not in self._seen:
                self._seen.add(index)
                out.append(n.ToolCallStart(index, str(call.get("id") or new_id("call_")), str(fn.get("name") or "")))
            args = fn.get("arguments")
            if isinstance(args, str) and args:
                out.append(n.ToolArgsDelta(index, args))
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            out.append(n.Finish(FINISH_IN.get(reason, n.STOP)))


class ChatStreamEncoder:
    __slots__ = ("_base", "_calls", "_ended", "_include_usage", "_model", "_usage")

    def __init__(self, req: n.Request, model: str) -> None:
        self._model = model
        self._include_usage = req.stream_usage
        self._base: dict[str, Any] = {"id": chat_id(new_id("", 29)), "object": "chat.completion.chunk",
                                      "created": now(), "model": model}
        self._calls: dict[int, int] = {}  # destination's tool index → the caller's 0-based index
        self._usage: TokenUsage | None = None
        self._ended = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse({**self._base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    def encode(self, ev: n.Event) -> list[bytes]:
        if self._ended:
            return []
        if isinstance(ev, n.TextDelta):
            return [self._chunk({"content": ev.text})]
        if isinstance(ev, n.ToolArgsDelta):
            index = self._calls.get(ev.index)
            if index is None:
                return []
            return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": ev.fragment}}]})]
        if isinstance(ev, n.ToolCallStart):
            index = self._calls.setdefault(ev.index, len(self._calls))
            call = {"index": index, "id": ev.id, "type": "function", "function": {"name": ev.name, "arguments": ""}}
            return [self._chunk({"tool_calls": [call]})]
        if isinstance(ev, n.ThinkingDelta):
            return [self._chunk({"reasoning_content": ev.text})] if ev.text and not ev.redacted else []
        if isinstance(ev, n.Start):
            self._base["id"] = chat_id(ev.id)
            self._base["created"] = ev.created
            if ev.model:  # the model the destination says answered
                self._base["model"] = ev.model
            if ev.usage is not None:
                self._usage = ev.usage
            return [self._chunk({"role": "assistant", "content": ""})]
        if isinstance(ev, n.Finish):
            return [self._chunk({}, FINISH_OUT.get(ev.reason, "stop"))]
        if isinstance(ev, n.UsageUpdate):
            self._usage = ev.usage
            return []
        if isinstance(ev, n.StreamError):
            self._ended = True
            return [sse(error_object(ApiError(ev.status, ev.kind, ev.message)))]
        return self._end()

    def _end(self) -> list[bytes]:
        self._ended = True
        out = []
        if self._include_usage:
            out.append(sse({**self._base, "choices": [], "usage": usage_out(self._usage)}))
        out.append(DONE)
        return out

    def finish(self) -> list[bytes]:
        return [] if self._ended else self._end()
