"""Output guardrails on streamed answers, event by event, in each API format's own event shapes.

`StreamGuard.feed` takes each SSE event as the relay splits it and returns the bytes to send now.
Events without generated text pass as their original bytes while nothing is held. Text deltas go
through one `TextChannel` per channel of text (an OpenAI choice, a Responses output part, an
Anthropic content block, a Gemini candidate) and are re-encoded with the text that can be released;
an event whose text is all held and that carries nothing else (no role, tool call, finish reason,
usage, logprobs) is not sent. When a channel ends (finish_reason, output_text.done, content_block_stop,
finishReason) the held rest is sent first, in a delta event of the format made for it; aggregated
texts (Responses output_text.done, content_part.done, output_item.done, response.completed) get the
same masks. Before an error event of the upstream's (and when sidegate ends a stream on a failure,
`finish`), the held text is scanned as final and sent. A block sends the format's error event and
swallows the rest of the stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from sidegate import apis
from sidegate.formats.sse import Event, json_event
from sidegate.governance.guardrails.compiled import Decisions, GuardrailBlocked, PhasePlan
from sidegate.governance.guardrails.detectors import Finding, mask_text
from sidegate.governance.guardrails.stream_text import TextChannel
from sidegate.ingress.registry import stream_error

Key = tuple[Any, ...]
# A format's handler: the bytes to send for an event, or None to send it as it came.
Handler = Callable[["StreamGuard", Event, dict[str, Any]], "list[bytes] | None"]
# A format's delta event carrying text released at a channel's end, made from the channel's last event.
FlushEvent = Callable[["StreamGuard", "Key", str, "str | None", "dict[str, Any]"], bytes]


@dataclass(frozen=True, slots=True)
class StreamFormat:
    handle: Handler
    flush_event: FlushEvent


def encode(event: str | None, obj: dict[str, Any]) -> bytes:
    data = b"data: " + orjson.dumps(obj) + b"\n\n"
    return b"event: " + event.encode() + b"\n" + data if event else data


class _Channel(TextChannel):
    """A channel of text and the last event that brought text into it (its name and JSON object):
    what the delta event sent for its held rest is made from."""

    __slots__ = ("event", "template")

    def __init__(self) -> None:
        super().__init__()
        self.event: str | None = None
        self.template: dict[str, Any] = {}


class StreamGuard:
    """Scans one streamed answer. `blocked` turns True once a block guardrail ended the stream."""

    __slots__ = ("_api", "_channels", "_decide", "_format", "_last_seq", "_scanner", "_seq_shift", "active",
                 "blocked", "error", "phase", "request_id")

    def __init__(self, active: Decisions, phase: PhasePlan, api: str, request_id: str = "") -> None:
        self.active = active
        self.phase = phase
        self.request_id = request_id
        self._format = FORMATS[api]
        self._api = api
        self._scanner = phase.stream_scanner
        self._channels: dict[Key, _Channel] = {}
        self._seq_shift = 0  # Responses: events added so far (later sequence numbers move up by as many)
        self._last_seq = -1  # Responses: the sequence number of the last event sent
        self.blocked = False
        self.error: GuardrailBlocked | None = None
        self._decide = self._decide_one

    def _decide_one(self, finding: Finding) -> bool:
        masked, block = self.active.decide(self.phase, "output", [finding])
        if block is not None:
            raise block
        return bool(masked)

    # ------------------------------------------------------------ text channels

    def push(self, key: Key, delta: str, event: str | None, template: dict[str, Any]) -> str:
        channel = self._channels.get(key)
        if channel is None:
            channel = self._channels[key] = _Channel()
        channel.event = event
        channel.template = template
        return channel.push(self._scanner, self._decide, delta)

    def flush(self, key: Key) -> str:
        channel = self._channels.get(key)
        return channel.push(self._scanner, self._decide, "", final=True) if channel else ""

    def patch(self, key: Key, whole: str) -> str:
        channel = self._channels.get(key)
        patched = channel.patch(whole) if channel is not None else whole
        if patched is None:  # not the text the deltas carried: mask it as a whole body would be
            guardrails = self.phase.guardrails
            return mask_text(whole, [f for f in self.phase.scanner.scan(whole)
                                     if any(guardrails[o].action == "mask" for o in f.alt.owners)])
        return patched

    def flush_all(self, keys: list[Key] | None = None) -> list[bytes]:
        """Send what every (or these) channel still holds, as delta events of the format."""
        out: list[bytes] = []
        for key in list(self._channels) if keys is None else keys:
            rest = self.flush(key)
            if rest:
                channel = self._channels[key]
                out.append(self._format.flush_event(self, key, rest, channel.event, channel.template))
        return out

    # ------------------------------------------------------------ events

    def feed(self, ev: Event) -> list[bytes]:
        """The bytes to send for this event (nothing once blocked)."""
        return self.feed_json(ev, json_event(ev.data)[0] if ev.data[:1] == b"{" else None)

    def feed_json(self, ev: Event, obj: dict[str, Any] | None) -> list[bytes]:
        """`feed` for an event already parsed: `obj` is its JSON object (None when it carries none),
        which the guard may change (the relay's usage observer reads it first)."""
        if self.blocked:
            return []
        try:
            out = self._format.handle(self, ev, obj if obj is not None else {})
        except GuardrailBlocked as err:
            return self._block(err)
        return [ev.raw] if out is None else out

    def finish(self) -> list[bytes]:
        """At the end of the stream: what the channels still hold (streams cut short, or formats
        without an event that ends a channel)."""
        if self.blocked:
            return []
        try:
            return self.flush_all()
        except GuardrailBlocked as err:
            return self._block(err)

    def _block(self, err: GuardrailBlocked) -> list[bytes]:
        self.blocked = True
        self.error = err
        return [stream_error(self._api, err, self.request_id)]

    def next_sequence_number(self) -> int:
        """For an event sidegate adds to a Responses stream: the number after the last one sent."""
        self._seq_shift += 1
        self._last_seq += 1
        return self._last_seq

    def drop(self, obj: dict[str, Any], before: list[bytes]) -> list[bytes]:
        """Send the added events only: this one carried nothing but text that is all held."""
        if isinstance(obj.get("sequence_number"), int):
            self._seq_shift -= 1  # the numbers after it move down by one
        return before

    def emit(self, ev: Event, obj: dict[str, Any], before: list[bytes], changed: bool) -> list[bytes] | None:
        """Send the added events, then this one: as it came when unchanged and not renumbered."""
        seq = obj.get("sequence_number")
        if isinstance(seq, int):
            if self._seq_shift:
                obj["sequence_number"] = seq + self._seq_shift
                changed = True
            self._last_seq = obj["sequence_number"]
        if not changed and not before:
            return None
        return [*before, encode(ev.event, obj) if changed else ev.raw]


# ---------------------------------------------------------------- OpenAI Chat Completions


def _chat(guard: StreamGuard, ev: Event, obj: dict[str, Any]) -> list[bytes] | None:
    if ev.data == b"[DONE]" or isinstance(obj.get("error"), dict):
        return [*guard.flush_all(), ev.raw]
    changed = emptied = False
    before: list[bytes] = []
    for choice in obj.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        key = ("chat", choice.get("index", 0))
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str) and content:
            assert isinstance(delta, dict)
            released = guard.push(key, content, ev.event, obj)
            if choice.get("finish_reason"):  # the channel ends in this chunk: its text goes with it
                released += guard.flush(key)
            if released != content:
                delta["content"] = released
                changed = True
                emptied = emptied or not released
        elif choice.get("finish_reason"):
            before += guard.flush_all([key])
    if emptied and obj.get("usage") is None and all(_chat_empty(c) for c in obj["choices"]):
        return guard.drop(obj, before)
    return guard.emit(ev, obj, before, changed)


def _chat_empty(choice: Any) -> bool:
    """A choice with nothing to say: no text, role, tool call, finish reason or logprobs."""
    return isinstance(choice, dict) and not choice.get("finish_reason") and not choice.get("logprobs") \
        and isinstance(choice.get("delta"), dict) and not any(choice["delta"].values())


def _chat_flush(guard: StreamGuard, key: Key, text: str, event: str | None, template: dict[str, Any]) -> bytes:
    obj = {k: v for k, v in template.items() if k not in ("choices", "usage")}
    if "usage" in template:
        obj["usage"] = None
    obj["choices"] = [{"index": key[1], "delta": {"content": text}, "logprobs": None, "finish_reason": None}]
    return encode(event, obj)


# ---------------------------------------------------------------- OpenAI Responses

_RESPONSE_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _patch_text(guard: StreamGuard, key: Key, holder: Any, field: str = "text") -> bool:
    """Mask an aggregated text the way its deltas were; True when it changed."""
    if not isinstance(holder, dict) or not isinstance(holder.get(field), str) or key not in guard._channels:
        return False
    patched = guard.patch(key, holder[field])
    if patched == holder[field]:
        return False
    holder[field] = patched
    return True


def _patch_item(guard: StreamGuard, output_index: Any, item: Any) -> bool:
    changed = False
    if isinstance(item, dict):
        for k, part in enumerate(item.get("content") or ()):
            changed = _patch_text(guard, ("resp", output_index, k), part) or changed
    return changed


def _responses(guard: StreamGuard, ev: Event, obj: dict[str, Any]) -> list[bytes] | None:
    kind = obj.get("type")
    key = ("resp", obj.get("output_index", 0), obj.get("content_index", 0))
    before: list[bytes] = []
    changed = False
    if kind == "response.output_text.delta" and isinstance(obj.get("delta"), str):
        released = guard.push(key, obj["delta"], ev.event, obj)
        if not released and obj["delta"] and not obj.get("logprobs"):
            return guard.drop(obj, before)
        changed = released != obj["delta"]
        obj["delta"] = released
    elif kind == "response.output_text.done":
        before = guard.flush_all([key])
        changed = _patch_text(guard, key, obj)
    elif kind == "response.content_part.done":
        changed = _patch_text(guard, key, obj.get("part"))
    elif kind == "response.output_item.done":
        changed = _patch_item(guard, obj.get("output_index", 0), obj.get("item"))
    elif kind in _RESPONSE_ENDS or kind == "error":
        before = guard.flush_all()
        response = obj.get("response")
        if isinstance(response, dict):
            for i, item in enumerate(response.get("output") or ()):
                changed = _patch_item(guard, i, item) or changed
    return guard.emit(ev, obj, before, changed)


def _responses_flush(guard: StreamGuard, key: Key, text: str, event: str | None,
                     template: dict[str, Any]) -> bytes:
    obj = {**template, "delta": text}
    if "logprobs" in template:
        obj["logprobs"] = []
    if "sequence_number" in template:
        obj["sequence_number"] = guard.next_sequence_number()
    return encode(event, obj)


# ---------------------------------------------------------------- Anthropic Messages

_ANTHROPIC_SEEN = frozenset({"content_block_delta", "content_block_stop", "message_delta", "message_stop",
                            "error"})


def _anthropic(guard: StreamGuard, ev: Event, obj: dict[str, Any]) -> list[bytes] | None:
    kind = obj.get("type")
    if kind not in _ANTHROPIC_SEEN:
        return None
    key = ("block", obj.get("index", 0))
    if kind == "content_block_delta":
        delta = obj.get("delta")
        if isinstance(delta, dict) and delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
            released = guard.push(key, delta["text"], ev.event, obj)
            if not released and delta["text"]:
                return []  # all of it held: no empty delta
            if released != delta["text"]:
                delta["text"] = released
                return [encode(ev.event, obj)]
        return None
    before = guard.flush_all([key] if kind == "content_block_stop" else None)
    return [*before, ev.raw] if before else None


def _anthropic_flush(guard: StreamGuard, key: Key, text: str, event: str | None,
                     template: dict[str, Any]) -> bytes:
    return encode(event, {"type": "content_block_delta", "index": key[1],
                          "delta": {"type": "text_delta", "text": text}})


# ---------------------------------------------------------------- Gemini


def _gemini(guard: StreamGuard, ev: Event, obj: dict[str, Any]) -> list[bytes] | None:
    if isinstance(obj.get("error"), dict):
        return [*guard.flush_all(), ev.raw]
    changed = emptied = False
    before: list[bytes] = []
    for n, candidate in enumerate(obj.get("candidates") or ()):
        if not isinstance(candidate, dict):
            continue
        index = candidate.get("index", n)
        content = candidate.get("content")
        finish = candidate.get("finishReason")
        last_part: dict[Key, dict[str, Any]] = {}
        for part in (content.get("parts") or ()) if isinstance(content, dict) else ():
            if not isinstance(part, dict):
                continue
            text = part.get("text")
            if isinstance(text, str) and text:
                key = ("cand", index, bool(part.get("thought")))
                released = guard.push(key, text, ev.event, obj)
                if released != text:
                    part["text"] = released
                    changed = True
                    emptied = emptied or not released
                if finish:
                    last_part[key] = part
        if finish:
            for key in [k for k in guard._channels if k[1] == index]:
                rest = guard.flush(key)
                if rest and key in last_part:
                    last_part[key]["text"] += rest
                    changed = True
                elif rest:
                    before.append(_gemini_flush(guard, key, rest, ev.event, obj))
    if emptied and _gemini_emptied(obj):
        return guard.drop(obj, before)
    return guard.emit(ev, obj, before, changed)


def _gemini_emptied(obj: dict[str, Any]) -> bool:
    """Take the parts whose text is all held out of the chunk; True when nothing is left to send but
    its usageMetadata (a running count that the next chunk repeats) and the ids of the answer."""
    kept = []
    for candidate in obj["candidates"]:
        content = candidate.get("content") if isinstance(candidate, dict) else None
        if isinstance(content, dict) and isinstance(content.get("parts"), list):
            content["parts"] = [p for p in content["parts"] if not (
                isinstance(p, dict) and p.get("text") == "" and set(p) <= {"text", "thought"})]
            if not content["parts"] and set(candidate) <= {"content", "index"} and set(content) <= {"parts", "role"}:
                continue
        kept.append(candidate)
    obj["candidates"] = kept
    return not kept and set(obj) <= {"candidates", "usageMetadata", "modelVersion", "responseId", "createTime"}


def _gemini_flush(guard: StreamGuard, key: Key, text: str, event: str | None, template: dict[str, Any]) -> bytes:
    part: dict[str, Any] = {"text": text, "thought": True} if key[2] else {"text": text}
    obj: dict[str, Any] = {"candidates": [{"content": {"parts": [part], "role": "model"}, "index": key[1]}]}
    for field in ("modelVersion", "responseId"):
        if field in template:
            obj[field] = template[field]
    return encode(event, obj)


FORMATS: dict[str, StreamFormat] = {
    apis.OPENAI_CHAT: StreamFormat(_chat, _chat_flush),
    apis.OPENAI_RESPONSES: StreamFormat(_responses, _responses_flush),
    apis.ANTHROPIC_MESSAGES: StreamFormat(_anthropic, _anthropic_flush),
    apis.GEMINI_GENERATE: StreamFormat(_gemini, _gemini_flush),
}
