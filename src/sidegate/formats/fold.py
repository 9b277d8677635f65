"""Streams of the OpenAI formats folded into the object a non-streamed call would have answered.

Chat Completions: the chunks' deltas are merged per choice as the openai SDK's stream accumulator
does (text fields concatenated, tool-call fragments merged by their `index` so arguments join),
into a `chat.completion` with each choice's message, logprobs and finish reason, and the usage
chunk's usage. Responses: the `response` object of the terminal event (`response.completed`,
`.incomplete` or `.failed`); a stream cut short gives the last snapshot with the output items that
were finished, and the text or arguments of the ones that were not.
"""

from __future__ import annotations

from typing import Any


def as_index(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def append_text(obj: dict[Any, Any], key: Any, piece: str) -> None:
    """obj[key] += piece in amortised linear time: with the dict's reference dropped first, CPython
    grows the string in place instead of copying it (a long stream would otherwise be quadratic)."""
    text = obj.get(key) or ""
    obj[key] = None
    text += piece
    obj[key] = text


# Keys whose value is replaced, not concatenated, when a later delta repeats them.
_SET_KEYS = frozenset({"index", "type", "role", "id", "name", "finish_reason"})


def merge_delta(acc: dict[str, Any], delta: dict[str, Any]) -> None:
    """Fold one delta into the accumulated object: strings concatenate, objects merge, lists of
    indexed objects merge by `index`, other lists extend; a null never erases a value."""
    for key, value in delta.items():
        have = acc.get(key)
        if have is None or (key in _SET_KEYS and value is not None):
            acc[key] = value
        elif isinstance(have, str) and isinstance(value, str):
            del have
            append_text(acc, key, value)
        elif isinstance(have, dict) and isinstance(value, dict):
            merge_delta(have, value)
        elif isinstance(have, list) and isinstance(value, list):
            _merge_list(have, value)
        elif value is not None:
            acc[key] = value


def _merge_list(have: list[Any], items: list[Any]) -> None:
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("index"), int):
            for old in have:
                if isinstance(old, dict) and old.get("index") == item["index"]:
                    merge_delta(old, item)
                    break
            else:
                have.append(item)
        else:
            have.append(item)


class ChatAggregator:
    __slots__ = ("_choices", "_error", "_top", "_usage")

    def __init__(self) -> None:
        self._top: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: Any = None
        self._error: Any = None

    def add(self, event: str | None, obj: dict[str, Any]) -> None:
        if isinstance(obj.get("error"), dict):
            self._error = obj["error"]
            return
        for key, value in obj.items():
            if key not in ("choices", "usage", "object") and (value is not None or key not in self._top):
                self._top[key] = value
        if obj.get("usage") is not None:
            self._usage = obj["usage"]
        for choice in obj.get("choices") or ():
            if isinstance(choice, dict):
                self._choice(choice)

    def _choice(self, choice: dict[str, Any]) -> None:
        index = as_index(choice.get("index"))
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = {"index": index, "message": {}, "logprobs": None, "finish_reason": None}
        if isinstance(choice.get("delta"), dict):
            merge_delta(state["message"], choice["delta"])
        if isinstance(choice.get("logprobs"), dict):
            if state["logprobs"] is None:
                state["logprobs"] = {}
            merge_delta(state["logprobs"], choice["logprobs"])
        if choice.get("finish_reason") is not None:
            state["finish_reason"] = choice["finish_reason"]

    def result(self) -> dict[str, Any]:
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            message = {"role": "assistant", "content": None, **state["message"]}
            calls = message.get("tool_calls")
            if isinstance(calls, list):
                for call in calls:
                    if isinstance(call, dict):
                        call.pop("index", None)
                if not message["content"]:
                    message["content"] = None  # as a whole answer with only tool calls has it
            choices.append({**state, "message": message})
        out: dict[str, Any] = {**self._top, "object": "chat.completion", "choices": choices, "usage": self._usage}
        if self._error is not None:
            out["error"] = self._error
        return out


_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesAggregator:
    __slots__ = ("_error", "_items", "_parts", "_snapshot", "_terminal")

    def __init__(self) -> None:
        self._snapshot: dict[str, Any] | None = None
        self._terminal = False
        self._items: dict[int, dict[str, Any]] = {}  # output_index → item, as last announced
        self._parts: dict[tuple[int, int], str] = {}  # (output_index, content_index) → text so far
        self._error: Any = None

    def add(self, event: str | None, obj: dict[str, Any]) -> None:
        kind = obj.get("type") or event
        if kind == "error":
            self._error = {k: v for k, v in obj.items() if k not in ("type", "sequence_number")}
            return
        response = obj.get("response")
        if isinstance(response, dict):
            if not self._terminal:
                self._snapshot = response
                self._terminal = kind in _TERMINAL
            return
        position = obj.get("output_index")
        if not isinstance(position, int):
            return
        if isinstance(obj.get("item"), dict):
            self._items[position] = obj["item"]
        elif kind == "response.output_text.delta" and isinstance(obj.get("delta"), str):
            key = (position, as_index(obj.get("content_index")))
            append_text(self._parts, key, obj["delta"])
        elif isinstance(obj.get("delta"), str) and position in self._items:
            item = self._items[position]  # function / custom tool call arguments so far
            field = "arguments" if "arguments" in item else "input" if "input" in item else None
            if field is not None and item.get("status") != "completed":
                append_text(item, field, obj["delta"])

    def _unfinished_output(self) -> list[dict[str, Any]]:
        out = []
        for position in sorted(self._items):
            item = self._items[position]
            if item.get("type") == "message" and item.get("status") != "completed":
                texts = sorted((c, text) for (p, c), text in self._parts.items() if p == position)
                item["content"] = [{"type": "output_text", "text": text, "annotations": []} for _, text in texts]
            out.append(item)
        return out

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self._snapshot) if self._snapshot is not None else {"object": "response"}
        if not self._terminal:
            out["output"] = self._unfinished_output()
            out.setdefault("status", "incomplete")
        if self._error is not None and not out.get("error"):
            out["error"] = self._error
        return out
