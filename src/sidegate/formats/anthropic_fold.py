"""An Anthropic Messages stream folded into the message object a non-streamed call answers.

`message_start` gives the message; each `content_block_start` opens a block at its index and the
block's deltas fill it in: text, thinking and signatures concatenate, citations append, a tool
call's `input_json_delta` fragments join and are parsed into its `input` when the block stops (a
stream cut inside a tool call keeps the fragment text as `input`). `message_delta` sets the stop
reason and merges its usage into the message's. An `error` event is kept under `error`.
"""

from __future__ import annotations

from typing import Any

import orjson

from sidegate.telemetry.aggregate_openai import append_text, as_index, merge_delta

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
        kind = obj.get("type") or event
        index = as_index(obj.get("index"))
        if kind == "content_block_delta" and isinstance(obj.get("delta"), dict):
            self._delta(index, obj["delta"])
        elif kind == "content_block_start" and isinstance(obj.get("content_block"), dict):
            self._blocks[index] = obj["content_block"]
        elif kind == "content_block_stop":
            self._close(index)
        elif kind == "message_start" and isinstance(obj.get("message"), dict):
            self._message = obj["message"]
        elif kind == "message_delta":
            for key, value in (obj.get("delta") or {}).items():
                self._message[key] = value
            if isinstance(obj.get("usage"), dict):
                usage = self._message.get("usage")
                if not isinstance(usage, dict):
                    usage = self._message["usage"] = {}
                merge_delta(usage, {k: v for k, v in obj["usage"].items() if v is not None})
        elif kind == "error":
            self._error = obj.get("error", obj)

    def _delta(self, index: int, delta: dict[str, Any]) -> None:
        block = self._blocks.setdefault(index, {})
        kind = delta.get("type")
        fields = _TEXT_DELTAS.get(str(kind))
        if fields is not None:
            source, target = fields
            append_text(block, target, str(delta.get(source) or ""))
        elif kind == "input_json_delta":
            append_text(self._json, index, str(delta.get("partial_json") or ""))
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta.get("citation"))
        else:  # a delta kind this version does not know: fold its fields in
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
