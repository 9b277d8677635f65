"""Neutral stream events → an OpenAI Responses event stream, as the SDK and Codex CLI read it.

`response.created` and `response.in_progress` open it; each output item is announced with
`response.output_item.added`, filled by its deltas (reasoning summary text, output text, function
call arguments) and closed with its `.done` events and `response.output_item.done` carrying the
whole item (Codex runs tool calls from that event); `response.completed` (or `response.incomplete`)
ends it with the full Response and its usage. Every event carries its `sequence_number`. Tool calls
stay open until something else starts or the turn finishes, so parallel calls whose argument
fragments interleave are still complete when they close; a custom tool's input is sent in one piece
when its call closes (the destination streams it as JSON-escaped text).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sidegate.formats.base import TokenUsage
from sidegate.translate import neutral as n
from sidegate.translate.codecs.openai_responses.reply import (
    call_item,
    custom_input,
    custom_names,
    failure,
    message_item,
    namespaces,
    reasoning_item,
    response_id,
    skeleton,
    status_of,
    usage_out,
)
from sidegate.translate.errors import ApiError
from sidegate.translate.wire import new_id, now, sse


@dataclass(slots=True)
class _Item:
    item_type: str  # reasoning | message | call
    index: int  # output_index
    id: str
    text: list[str] = field(default_factory=list)  # summary text, output text or argument fragments
    opened_part: bool = False
    origin: str | None = None
    signature: str | None = None
    call_id: str = ""
    name: str = ""
    custom: bool = False


class ResponsesStreamEncoder:
    __slots__ = ("_calls", "_current", "_customs", "_ended", "_finish", "_items", "_response", "_seq", "_spaces",
                 "_started", "_usage")

    def __init__(self, req: n.Request, model: str) -> None:
        self._response = skeleton(req, response_id(new_id("", 40)), now(), model)
        self._customs = custom_names(req)
        self._spaces = namespaces(req)
        self._seq = 0
        self._items: list[dict[str, Any]] = []  # finished output items, by output_index
        self._current: _Item | None = None  # the open reasoning or message item
        self._calls: dict[int, _Item] = {}  # open tool calls by the destination's index
        self._usage: TokenUsage | None = None
        self._finish: str | None = None
        self._started = False
        self._ended = False

    def _event(self, item_type: str, **fields: Any) -> bytes:
        block = sse({"type": item_type, "sequence_number": self._seq, **fields}, item_type)
        self._seq += 1
        return block

    def _start(self, ev: n.Start | None) -> list[bytes]:
        self._started = True
        if ev is not None:
            self._response["id"] = response_id(ev.id)
            self._response["created_at"] = ev.created
            if ev.model:  # the model the destination says answered
                self._response["model"] = ev.model
            self._usage = ev.usage or self._usage
        return [self._event("response.created", response=self._response),
                self._event("response.in_progress", response=self._response)]

    def _open(self, item: dict[str, Any], state: _Item) -> bytes:
        self._items.append(item)
        return self._event("response.output_item.added", output_index=state.index, item=item)

    def _open_item(self, item_type: str) -> list[bytes]:
        out = self._close_all()
        prefix = {"reasoning": "rs_", "message": "msg_"}[item_type]
        state = self._current = _Item(item_type, len(self._items), new_id(prefix))
        item = reasoning_item(state.id, "", None, None, "in_progress") if item_type == "reasoning" else message_item(
            state.id, "", "in_progress")
        out.append(self._open(item, state))
        if item_type == "message":
            state.opened_part = True
            out.append(self._event("response.content_part.added", item_id=state.id, output_index=state.index,
                                   content_index=0, part={"type": "output_text", "text": "", "annotations": [],
                                                          "logprobs": []}))
        return out

    def encode(self, ev: n.Event) -> list[bytes]:
        if self._ended:
            return []
        if isinstance(ev, n.Start):
            return self._start(ev)
        out = [] if self._started or isinstance(ev, n.StreamError) else self._start(None)
        if isinstance(ev, n.TextDelta):
            if self._current is None or self._current.item_type != "message" or self._calls:
                out += self._open_item("message")
            assert self._current is not None
            self._current.text.append(ev.text)
            out.append(self._event("response.output_text.delta", item_id=self._current.id,
                                   output_index=self._current.index, content_index=0, delta=ev.text, logprobs=[]))
        elif isinstance(ev, n.ToolArgsDelta):
            out += self._args(ev)
        elif isinstance(ev, n.ThinkingDelta):
            out += self._thinking(ev)
        elif isinstance(ev, n.ToolCallStart):
            out += self._close_current()
            custom = ev.name in self._customs
            state = _Item("call", len(self._items), new_id("ctc_" if custom else "fc_"), call_id=ev.id,
                          name=ev.name, custom=custom)
            self._calls[ev.index] = state
            item = call_item(state.id, ev.id, ev.name, "", custom, "in_progress", self._spaces.get(ev.name))
            out.append(self._open(item, state))
        elif isinstance(ev, n.Finish):
            self._finish = ev.reason
            out += self._close_all()
        elif isinstance(ev, n.UsageUpdate):
            self._usage = ev.usage
        elif isinstance(ev, n.StreamError):
            out += self._fail(ApiError(ev.status, ev.category, ev.message))
        else:
            out += self._end()
        return out

    def _args(self, ev: n.ToolArgsDelta) -> list[bytes]:
        state = self._calls.get(ev.index)
        if state is None:
            return []
        state.text.append(ev.fragment)
        if state.custom:
            return []
        return [self._event("response.function_call_arguments.delta", item_id=state.id, output_index=state.index,
                            delta=ev.fragment)]

    def _thinking(self, ev: n.ThinkingDelta) -> list[bytes]:
        out: list[bytes] = []
        if ev.redacted or self._current is None or self._current.item_type != "reasoning" or self._calls:
            out += self._open_item("reasoning")
        state = self._current
        assert state is not None
        if ev.signature:
            state.origin, state.signature = ev.origin, ev.signature
        if ev.redacted:
            return out + self._close_current()
        if ev.text:
            if not state.opened_part:
                state.opened_part = True
                out.append(self._event("response.reasoning_summary_part.added", item_id=state.id,
                                       output_index=state.index, summary_index=0,
                                       part={"type": "summary_text", "text": ""}))
            state.text.append(ev.text)
            out.append(self._event("response.reasoning_summary_text.delta", item_id=state.id,
                                   output_index=state.index, summary_index=0, delta=ev.text))
        return out

    def _close_current(self) -> list[bytes]:
        state, self._current = self._current, None
        if state is None:
            return []
        text = "".join(state.text)
        where = {"item_id": state.id, "output_index": state.index}
        out: list[bytes] = []
        if state.item_type == "reasoning":
            item = reasoning_item(state.id, text, state.origin, state.signature)
            if state.opened_part:
                part = {"type": "summary_text", "text": text}
                out += [self._event("response.reasoning_summary_text.done", **where, summary_index=0, text=text),
                        self._event("response.reasoning_summary_part.done", **where, summary_index=0, part=part)]
        else:
            item = message_item(state.id, text)
            part = item["content"][0]
            out += [self._event("response.output_text.done", **where, content_index=0, text=text, logprobs=[]),
                    self._event("response.content_part.done", **where, content_index=0, part=part)]
        out.append(self._done(state, item))
        return out

    def _done(self, state: _Item, item: dict[str, Any]) -> bytes:
        self._items[state.index] = item
        return self._event("response.output_item.done", output_index=state.index, item=item)

    def _close_calls(self) -> list[bytes]:
        out: list[bytes] = []
        for state in sorted(self._calls.values(), key=lambda s: s.index):
            arguments = "".join(state.text)
            where = {"item_id": state.id, "output_index": state.index}
            if state.custom:
                value = custom_input(arguments)
                out += [self._event("response.custom_tool_call_input.delta", **where, delta=value),
                        self._event("response.custom_tool_call_input.done", **where, input=value)]
            else:
                out.append(self._event("response.function_call_arguments.done", **where, arguments=arguments,
                                       name=state.name))
            item = call_item(state.id, state.call_id, state.name, arguments, state.custom,
                             namespace=self._spaces.get(state.name))
            out.append(self._done(state, item))
        self._calls.clear()
        return out

    def _close_all(self) -> list[bytes]:
        return self._close_current() + self._close_calls()

    def _end(self) -> list[bytes]:
        out = [] if self._started else self._start(None)
        out += self._close_all()
        self._ended = True
        status, details = status_of(self._finish or n.STOP)
        final = {**self._response, "status": status, "incomplete_details": details, "output": self._items,
                 "usage": usage_out(self._usage)}
        out.append(self._event("response.completed" if status == "completed" else "response.incomplete",
                               response=final))
        return out

    def _fail(self, err: ApiError) -> list[bytes]:
        self._ended = True
        failed = {**self._response, "status": "failed", "error": failure(err), "output": self._items}
        return [self._event("error", code=failure(err)["code"], message=err.message, param=None),
                self._event("response.failed", response=failed)]

    def finish(self) -> list[bytes]:
        return [] if self._ended else self._end()
