"""Anthropic Messages streams ↔ neutral stream events.

The decoder reads message_start / content_block_* / message_delta / message_stop / error. The
encoder writes that sequence for an Anthropic caller: one content block open at a time (text,
thinking, tool_use, each closed before the next starts), `message_delta` with the stop reason and
the cumulative usage once both are known, then `message_stop`. Tool-call argument fragments go
out as `input_json_delta` under the block index of their call.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from sidegate.formats.base import TokenUsage
from sidegate.translate import carry
from sidegate.translate import neutral as n
from sidegate.translate.codecs.anthropic_messages.reply import (
    ERROR_CATEGORIES,
    FAMILY,
    FINISH_IN,
    error_object,
    message_id,
    stop_fields,
    usage_in,
    usage_out,
)
from sidegate.translate.errors import ApiError, category_for_status
from sidegate.translate.fields import event_object, int_field, obj_field, str_field
from sidegate.translate.wire import new_id, now, safe_tool_id, sse, str_or

_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402, "permission_error": 403,
           "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
           "timeout_error": 504, "overloaded_error": 529}


class AnthropicStreamDecoder:
    __slots__ = ("_tools", "_usage")

    def __init__(self) -> None:
        self._tools: dict[int, int] = {}  # block index → tool-call index
        self._usage: TokenUsage | None = None

    def feed(self, event: str | None, data: bytes) -> list[n.Event]:
        obj = event_object(data)
        type_name = str_field(obj, "type")
        if type_name == "content_block_delta":
            return self._delta(obj)
        if type_name == "content_block_start":
            return self._block_start(obj)
        if type_name == "message_start":
            message = obj_field(obj, "message") or {}
            self._usage = usage_in(message.get("usage"))
            return [n.Start(str_field(message, "id", "message") or new_id("msg_"),
                            str_field(message, "model", "message") or "", now(), self._usage)]
        if type_name == "message_delta":
            out: list[n.Event] = []
            delta = obj_field(obj, "delta") or {}
            if (reason := str_field(delta, "stop_reason", "delta")) is not None:
                out.append(n.Finish(FINISH_IN.get(reason, n.STOP), str_field(delta, "stop_sequence", "delta")))
            if (usage := obj_field(obj, "usage")) is not None:
                base = dataclasses.replace(self._usage) if self._usage else None
                self._usage = usage_in(usage, base)
                if self._usage is not None:
                    out.append(n.UsageUpdate(self._usage))
            return out
        if type_name == "message_stop":
            return [n.End()]
        if type_name == "error":
            error = obj_field(obj, "error") or {}
            etype = str(error.get("type"))
            status = _STATUS.get(etype, 500)
            return [n.StreamError(status, ERROR_CATEGORIES.get(etype) or category_for_status(status),
                                  str_or(error.get("message"), etype))]
        return []

    def _block_start(self, obj: dict[str, Any]) -> list[n.Event]:
        block = obj_field(obj, "content_block") or {}
        where = "content_block"
        index = int_field(obj, "index") or 0
        type_name = str_field(block, "type", where)
        if type_name == "text" and (text := str_field(block, "text", where)):
            return [n.TextDelta(text)]
        if type_name == "thinking":
            return [n.ThinkingDelta(str_field(block, "thinking", where) or "", origin=FAMILY)]
        if type_name == "redacted_thinking":
            return [n.ThinkingDelta("", str_field(block, "data", where) or "", FAMILY, redacted=True)]
        if type_name == "tool_use":
            tool = self._tools[index] = len(self._tools)
            out: list[n.Event] = [n.ToolCallStart(tool, str_field(block, "id", where) or new_id("toolu_"),
                                                  str_field(block, "name", where) or "")]
            if arguments := obj_field(block, "input", where):
                out.append(n.ToolArgsDelta(tool, orjson.dumps(arguments).decode()))
            return out
        return []

    def _delta(self, obj: dict[str, Any]) -> list[n.Event]:
        delta = obj_field(obj, "delta") or {}
        type_name = str_field(delta, "type", "delta")
        if type_name == "text_delta":
            return [n.TextDelta(str_field(delta, "text", "delta") or "")]
        if type_name == "input_json_delta":
            tool = self._tools.get(int_field(obj, "index") or 0)
            fragment = str_field(delta, "partial_json", "delta")
            return [n.ToolArgsDelta(tool, fragment)] if tool is not None and fragment else []
        if type_name == "thinking_delta":
            return [n.ThinkingDelta(str_field(delta, "thinking", "delta") or "", origin=FAMILY)]
        if type_name == "signature_delta":
            return [n.ThinkingDelta("", str_field(delta, "signature", "delta") or "", FAMILY)]
        return []


class AnthropicStreamEncoder:
    __slots__ = ("_ended", "_finish", "_index", "_model", "_open", "_started", "_stop_sequence", "_tools", "_usage")

    def __init__(self, req: n.Request, model: str) -> None:
        self._model = model
        self._index = -1  # index of the last block started
        self._open: str | None = None  # type of the open block
        self._tools: dict[int, int] = {}  # tool-call index → block index
        self._usage: TokenUsage | None = None
        self._finish: str | None = None
        self._stop_sequence: str | None = None
        self._started = False
        self._ended = False

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [sse({"type": "content_block_stop", "index": self._index}, "content_block_stop")]

    def _open_block(self, type_name: str, block: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self._index += 1
        self._open = type_name
        out.append(sse({"type": "content_block_start", "index": self._index, "content_block": block},
                       "content_block_start"))
        return out

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return sse({"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta")

    def _start(self, ev: n.Start | None) -> list[bytes]:
        self._started = True
        if ev is not None and ev.usage is not None:
            self._usage = ev.usage
        if ev is not None and ev.model:  # the model the destination says answered
            self._model = ev.model
        message: dict[str, Any] = {
            "id": message_id(ev.id if ev else new_id("")), "type": "message", "role": "assistant",
            "model": self._model, "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": usage_out(self._usage)}
        return [sse({"type": "message_start", "message": message}, "message_start")]

    def encode(self, ev: n.Event) -> list[bytes]:
        if self._ended:
            return []
        if isinstance(ev, n.Start):
            return self._start(ev)
        out = [] if self._started or isinstance(ev, n.StreamError) else self._start(None)
        if isinstance(ev, n.TextDelta):
            if self._open != "text":
                out += self._open_block("text", {"type": "text", "text": ""})
            out.append(self._delta(self._index, {"type": "text_delta", "text": ev.text}))
        elif isinstance(ev, n.ToolArgsDelta):
            index = self._tools.get(ev.index)
            if index is not None:
                out.append(self._delta(index, {"type": "input_json_delta", "partial_json": ev.fragment}))
        elif isinstance(ev, n.ThinkingDelta):
            out += self._thinking(ev)
        elif isinstance(ev, n.ToolCallStart):
            out += self._open_block("tool_use", {"type": "tool_use", "id": safe_tool_id(ev.id), "name": ev.name,
                                                 "input": {}})
            self._tools[ev.index] = self._index
        elif isinstance(ev, n.Finish):
            self._finish, self._stop_sequence = ev.reason, ev.stop_sequence
            out += self._close()
        elif isinstance(ev, n.UsageUpdate):
            self._usage = ev.usage
        elif isinstance(ev, n.StreamError):
            self._ended = True
            out.append(sse(error_object(ApiError(ev.status, ev.category, ev.message)), "error"))
        else:
            out += self._end()
        return out

    def _thinking(self, ev: n.ThinkingDelta) -> list[bytes]:
        out: list[bytes] = []
        if ev.redacted:
            if ev.origin != FAMILY:
                return out
            out += self._open_block("redacted_thinking", {"type": "redacted_thinking", "data": ev.signature or ""})
            return out + self._close()
        if self._open != "thinking":
            out += self._open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        if ev.text:
            out.append(self._delta(self._index, {"type": "thinking_delta", "thinking": ev.text}))
        signature = carry.outgoing(ev.origin, ev.signature, FAMILY)
        if signature:
            out.append(self._delta(self._index, {"type": "signature_delta", "signature": signature}))
        return out

    def _end(self) -> list[bytes]:
        out = [] if self._started else self._start(None)
        out += self._close()
        self._ended = True
        reason, sequence = stop_fields(self._finish or n.STOP, self._stop_sequence)
        out.append(sse({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence},
                        "usage": usage_out(self._usage)}, "message_delta"))
        out.append(sse({"type": "message_stop"}, "message_stop"))
        return out

    def finish(self) -> list[bytes]:
        return [] if self._ended else self._end()
