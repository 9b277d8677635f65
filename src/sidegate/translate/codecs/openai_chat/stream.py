"""OpenAI Chat Completions streams ↔ neutral stream events.

The decoder reads `chat.completion.chunk` events (tool-call fragments keyed by their `index`, the
usage chunk with empty `choices`, `[DONE]`). The encoder writes the chunks an OpenAI SDK expects: a
first chunk with the assistant role, content / reasoning / tool-call deltas (each call announced
once with id, type and name, then argument fragments under the same index), a finish chunk, the
usage chunk when the caller asked for it (`stream_options.include_usage`), then `data: [DONE]`.
"""

from __future__ import annotations

from typing import Any

from sidegate.formats.base import TokenUsage
from sidegate.translate import neutral as n
from sidegate.translate.codecs.openai_chat.reply import (
    FINISH_IN,
    FINISH_OUT,
    chat_id,
    error_object,
    message_parts,
    usage_in,
    usage_out,
)
from sidegate.translate.errors import ApiError, upstream_error
from sidegate.translate.fields import event_object, int_field, obj_field, objects, str_field
from sidegate.translate.wire import DONE, new_id, now, sse, str_or


class ChatStreamDecoder:
    __slots__ = ("_seen", "_started")

    def __init__(self) -> None:
        self._started = False
        self._seen: set[int] = set()

    def feed(self, event: str | None, data: bytes) -> list[n.Event]:
        if data == b"[DONE]":
            return [n.End()]
        obj = event_object(data)
        if (err := obj_field(obj, "error")) is not None:
            code = err.get("code")
            status = code if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599 else 500
            failure = upstream_error(status, str_or(err.get("message"), "") or None)
            return [n.StreamError(failure.status, failure.category, failure.message)]
        out: list[n.Event] = []
        if not self._started:
            self._started = True
            out.append(n.Start(str_field(obj, "id") or new_id("chatcmpl-", 29), str_field(obj, "model") or "",
                               int_field(obj, "created") or now()))
        for where, choice in objects(obj, "choices"):
            if (int_field(choice, "index", where) or 0) == 0:
                self._choice(choice, where, out)
        usage = usage_in(obj.get("usage"))
        if usage is not None:
            out.append(n.UsageUpdate(usage))
        return out

    def _choice(self, choice: dict[str, Any], field: str, out: list[n.Event]) -> None:
        delta = obj_field(choice, "delta", field) or {}
        where = f"{field}.delta"
        parts: list[n.Part] = []
        message_parts(delta, where, parts)
        out.extend(n.ThinkingDelta(p.text) if isinstance(p, n.Thinking) else n.TextDelta(p.text)
                   for p in parts if isinstance(p, n.Thinking | n.Text))
        for position, (at, call) in enumerate(objects(delta, "tool_calls", where)):
            index = int_field(call, "index", at)
            index = position if index is None else index
            fn = obj_field(call, "function", at) or {}
            if index not in self._seen:
                self._seen.add(index)
                out.append(n.ToolCallStart(index, str_field(call, "id", at) or new_id("call_"),
                                           str_field(fn, "name", f"{at}.function") or ""))
            if args := str_field(fn, "arguments", f"{at}.function"):
                out.append(n.ToolArgsDelta(index, args))
        reason = str_field(choice, "finish_reason", field)
        if reason is not None:
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
            return [sse(error_object(ApiError(ev.status, ev.category, ev.message)))]
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
