"""Gemini streamGenerateContent (`alt=sse`) streams ↔ neutral stream events.

Every event of a Gemini stream is a whole GenerateContentResponse; function calls arrive complete,
the last chunk carries `finishReason` and the full `usageMetadata`, and nothing marks the end but
the end of the body. The decoder turns each chunk into deltas; the encoder writes one chunk per
text or thought delta, one per completed function call (Gemini has no argument fragments, so a
call's fragments are gathered until it is complete), and a last chunk with the finish reason and
usage.
"""

from __future__ import annotations

from typing import Any

from sidegate.formats.base import TokenUsage
from sidegate.translate import neutral as n
from sidegate.translate.codecs.gemini_generate.reply import (
    ERROR_CATEGORIES,
    blocked,
    candidate,
    decode_part,
    error_object,
    finish_in,
    first_candidate,
    signature_out,
    usage_in,
    usage_out,
)
from sidegate.translate.errors import ApiError, category_for_status
from sidegate.translate.fields import event_object, obj_field, str_field
from sidegate.translate.wire import new_id, now, sse, str_or, tool_input


class GeminiStreamDecoder:
    __slots__ = ("_calls", "_started")

    def __init__(self) -> None:
        self._started = False
        self._calls = 0

    def feed(self, event: str | None, data: bytes) -> list[n.Event]:
        obj = event_object(data)
        if (err := obj_field(obj, "error")) is not None:
            code = err.get("code")
            status = code if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599 else 500
            type_name = ERROR_CATEGORIES.get(str(err.get("status"))) or category_for_status(status)
            return [n.StreamError(status, type_name, str_or(err.get("message"), "upstream error"))]
        out: list[n.Event] = []
        if not self._started:
            self._started = True
            out.append(n.Start(str_field(obj, "responseId") or new_id(""), str_field(obj, "modelVersion") or "", now()))
        any_candidate, cand, parts = first_candidate(obj)
        for where, part in parts:
            self._part(part, where, out)
        usage = usage_in(obj.get("usageMetadata"))
        if usage is not None:
            out.append(n.UsageUpdate(usage))
        finish = finish_in(str_field(cand, "finishReason", "candidates[0]"), self._calls > 0)
        if finish is None and not any_candidate and blocked(obj):
            finish = n.CONTENT_FILTER
        if finish is not None:
            out.append(n.Finish(finish))
        return out

    def _part(self, part: dict[str, Any], field: str, out: list[n.Event]) -> None:
        decoded = decode_part(part, field, lambda: new_id("call_"))
        if isinstance(decoded, n.Thinking):
            out.append(n.ThinkingDelta(decoded.text, decoded.signature, decoded.origin))
        elif isinstance(decoded, n.Text):
            if decoded.text:
                out.append(n.TextDelta(decoded.text))
        elif isinstance(decoded, n.ToolCall):
            index = self._calls
            self._calls += 1
            out.append(n.ToolCallStart(index, decoded.id, decoded.name, signature=decoded.signature,
                                       origin=decoded.origin))
            out.append(n.ToolArgsDelta(index, decoded.arguments))


class GeminiStreamEncoder:
    __slots__ = ("_ended", "_finish", "_id", "_model", "_pending", "_usage")

    def __init__(self, req: n.Request, model: str) -> None:
        self._model = model
        self._id = new_id("", 22)
        self._pending: list[tuple[n.ToolCallStart, list[str]]] = []
        self._usage: TokenUsage | None = None
        self._finish: str | None = None
        self._ended = False

    def _chunk(self, parts: list[dict[str, Any]], finish: str | None = None, final: bool = False) -> bytes:
        body: dict[str, Any] = {"candidates": [candidate(parts, finish)]}
        if final:
            body["usageMetadata"] = usage_out(self._usage)
        body["modelVersion"] = self._model
        body["responseId"] = self._id
        return sse(body)

    def _flush_calls(self) -> list[dict[str, Any]]:
        parts = []
        for start, fragments in self._pending:
            part: dict[str, Any] = {"functionCall": {"id": start.id, "name": start.name,
                                                     "args": tool_input("".join(fragments))}}
            token = signature_out(start.origin, start.signature)
            if token:
                part["thoughtSignature"] = token
            parts.append(part)
        self._pending.clear()
        return parts

    def encode(self, ev: n.Event) -> list[bytes]:
        if self._ended:
            return []
        if isinstance(ev, n.ToolArgsDelta):
            for start, fragments in self._pending:
                if start.index == ev.index:
                    fragments.append(ev.fragment)
            return []
        if isinstance(ev, n.TextDelta | n.ThinkingDelta | n.ToolCallStart):
            calls = self._flush_calls()
            out = [self._chunk(calls)] if calls else []
            if isinstance(ev, n.ToolCallStart):
                self._pending.append((ev, []))
            elif isinstance(ev, n.TextDelta):
                out.append(self._chunk([{"text": ev.text}]))
            elif not ev.redacted and (ev.text or ev.signature):
                thought: dict[str, Any] = {"text": ev.text, "thought": True}
                token = signature_out(ev.origin, ev.signature)
                if token:
                    thought["thoughtSignature"] = token
                out.append(self._chunk([thought]))
            return out
        if isinstance(ev, n.Start):
            self._id = ev.id
            if ev.model:  # the model the destination says answered
                self._model = ev.model
            if ev.usage is not None:
                self._usage = ev.usage
        elif isinstance(ev, n.UsageUpdate):
            self._usage = ev.usage
        elif isinstance(ev, n.Finish):
            self._finish = ev.reason
        elif isinstance(ev, n.StreamError):
            self._ended = True
            return [sse(error_object(ApiError(ev.status, ev.category, ev.message)))]
        elif isinstance(ev, n.End):
            return self._end()
        return []

    def _end(self) -> list[bytes]:
        self._ended = True
        parts = self._flush_calls() or [{"text": ""}]
        return [self._chunk(parts, self._finish or n.STOP, final=True)]

    def finish(self) -> list[bytes]:
        return [] if self._ended else self._end()
