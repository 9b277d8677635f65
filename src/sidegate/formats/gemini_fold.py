"""A Gemini `streamGenerateContent` stream folded into one GenerateContentResponse.

Each chunk is a whole GenerateContentResponse holding the next parts. Per candidate (by `index`),
parts are appended in order, a text part joining the one before it when both are text of the same
kind (thought or answer) so that the answer reads as one part, as a whole answer has it; function
calls, inline data and other parts stay parts of their own. A thought signature on a joined text
part is kept on the joined part. The last finish reason, safety ratings and grounding win, citation
sources accumulate; the response's own fields (`usageMetadata`, `modelVersion`, `responseId`,
`promptFeedback`) are those of the last chunk that had them. An error chunk is kept under `error`.
"""

from __future__ import annotations

from typing import Any

from sidegate.telemetry.aggregate_openai import append_text, as_index

_TEXT_KEYS = frozenset({"text", "thought", "thoughtSignature"})


def _joins(previous: dict[str, Any], part: dict[str, Any]) -> bool:
    return (
        isinstance(previous.get("text"), str)
        and isinstance(part.get("text"), str)
        and set(previous) <= _TEXT_KEYS
        and set(part) <= _TEXT_KEYS
        and bool(previous.get("thought")) == bool(part.get("thought"))
    )


class GeminiAggregator:
    __slots__ = ("_candidates", "_error", "_top")

    def __init__(self) -> None:
        self._top: dict[str, Any] = {}
        self._candidates: dict[int, dict[str, Any]] = {}
        self._error: Any = None

    def add(self, event: str | None, obj: dict[str, Any]) -> None:
        if isinstance(obj.get("error"), dict):
            self._error = obj["error"]
            return
        for key, value in obj.items():
            if key != "candidates" and value is not None:
                self._top[key] = value
        for position, candidate in enumerate(obj.get("candidates") or ()):
            if isinstance(candidate, dict):
                index = as_index(candidate.get("index"), position)
                self._candidate(index, candidate)

    def _candidate(self, index: int, chunk: dict[str, Any]) -> None:
        state = self._candidates.setdefault(index, {})
        for key, value in chunk.items():
            if key == "content" and isinstance(value, dict):
                self._content(state, value)
            elif key == "citationMetadata" and isinstance(value, dict):
                sources = state.setdefault(key, {}).setdefault("citationSources", [])
                sources.extend(value.get("citationSources") or [])
            elif value is not None:
                state[key] = value

    @staticmethod
    def _content(state: dict[str, Any], chunk: dict[str, Any]) -> None:
        content = state.setdefault("content", {"parts": []})
        if chunk.get("role"):
            content["role"] = chunk["role"]
        parts = content.setdefault("parts", [])
        for part in chunk.get("parts") or ():
            if not isinstance(part, dict):
                continue
            if parts and _joins(parts[-1], part):
                last = parts[-1]
                append_text(last, "text", part["text"])
                if part.get("thoughtSignature"):
                    last["thoughtSignature"] = part["thoughtSignature"]
            else:
                parts.append(part)

    def result(self) -> dict[str, Any]:
        candidates = [self._candidates[i] for i in sorted(self._candidates)]
        out: dict[str, Any] = {"candidates": candidates, **self._top}
        if self._error is not None:
            out["error"] = self._error
        return out
