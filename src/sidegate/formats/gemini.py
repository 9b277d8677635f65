"""Gemini wire formats (generateContent, streamGenerateContent, countTokens, embedContent,
batchEmbedContents): usage, stream observer, stream fold. The model is named in the URL, not the body.

The fold of a `streamGenerateContent` stream into one GenerateContentResponse: each chunk is a
whole GenerateContentResponse holding the next parts. Per candidate (by `index`), parts are
appended in order, a text part joining the one before it when both are text of the same kind
(thought or answer) so that the answer reads as one part, as a whole answer has it; function calls,
inline data and other parts stay parts of their own. A thought signature on a joined text
part is kept on the joined part. The last finish reason, safety ratings and grounding win, citation
sources accumulate; the response's own fields (`usageMetadata`, `modelVersion`, `responseId`,
`promptFeedback`) are those of the last chunk that had them. An error chunk is kept under `error`.
"""

from __future__ import annotations

from typing import Any

from sidegate import apis
from sidegate.formats.base import ApiFormat, StreamObserver, TokenUsage, as_int
from sidegate.formats.fold import append_text, as_index


def gemini_usage(meta: Any) -> TokenUsage | None:
    if not isinstance(meta, dict):
        return None
    thoughts = as_int(meta.get("thoughtsTokenCount"))
    return TokenUsage(
        input=as_int(meta.get("promptTokenCount")) + as_int(meta.get("toolUsePromptTokenCount")),
        output=as_int(meta.get("candidatesTokenCount")) + thoughts,
        cache_read=as_int(meta.get("cachedContentTokenCount")),
        reasoning=thoughts,
    )


def _candidate_chars(obj: dict[str, Any]) -> tuple[int, str | None]:
    total, reason = 0, None
    for candidate in obj.get("candidates") or ():
        for part in (candidate.get("content") or {}).get("parts") or ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                total += len(part["text"])
        reason = candidate.get("finishReason") or reason
    return total, reason


def error_code(obj: dict[str, Any]) -> str | None:
    """The status of a Gemini error object (`RESOURCE_EXHAUSTED`, …)."""
    error = obj.get("error")
    if isinstance(error, dict) and error.get("status"):
        return str(error["status"])
    return None


class GenerateObserver(StreamObserver):
    """A Gemini stream has no closing event of its own: it has ended once a candidate gave its
    finishReason, the prompt was blocked (`promptFeedback.blockReason`), or an error object came."""

    __slots__ = ("_meta",)
    closing = "a finishReason"

    def __init__(self, strip_usage: bool = False) -> None:
        super().__init__(strip_usage)
        self._meta: dict[str, Any] | None = None

    def on_json(self, event: str | None, obj: dict[str, Any]) -> bool:
        chars, reason = _candidate_chars(obj)
        self.text_chars += chars
        if reason:
            self.finish_reason = reason
            self.ended = True
        elif "error" in obj:
            self.failing(error_code(obj))
        elif (obj.get("promptFeedback") or {}).get("blockReason"):
            self.ended = True
        meta = obj.get("usageMetadata")
        if isinstance(meta, dict):
            self._meta = meta  # every chunk repeats it: the last one is read when the usage is asked for
        return False

    @property
    def usage(self) -> TokenUsage | None:
        return gemini_usage(self._meta) if self._meta is not None else self._usage

    @usage.setter
    def usage(self, value: TokenUsage | None) -> None:
        self._usage = value


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


class Generate(ApiFormat):
    name = apis.GEMINI_GENERATE
    family = "gemini"
    aggregator = GeminiAggregator
    model_in_url = True

    def usage_from_json(self, obj: dict[str, Any]) -> TokenUsage | None:
        return gemini_usage(obj.get("usageMetadata"))

    def response_text_chars(self, obj: dict[str, Any]) -> int:
        return _candidate_chars(obj)[0]

    def observer(self, strip_usage: bool = False) -> StreamObserver:
        return GenerateObserver(strip_usage)


def embed_usage(meta: Any) -> TokenUsage | None:
    """batchEmbedContents' `usageMetadata` (where the API reports one): the prompt tokens only."""
    return TokenUsage(input=as_int(meta.get("promptTokenCount"))) if isinstance(meta, dict) else None


class CountTokens(ApiFormat):
    name = apis.GEMINI_COUNT_TOKENS
    family = "gemini"
    model_in_url = True
    counts_tokens_only = True


class Embed(ApiFormat):
    name = apis.GEMINI_EMBED
    family = "gemini"
    model_in_url = True


class BatchEmbed(ApiFormat):
    """:batchEmbedContents, `{"requests": [{"model": "models/…", "content": {…}}, …]}`. Each request
    names the model again and must match the URL's, so a rewritten model is rewritten there too."""

    name = apis.GEMINI_BATCH_EMBED
    family = "gemini"
    model_in_url = True

    def usage_from_json(self, obj: dict[str, Any]) -> TokenUsage | None:
        return embed_usage(obj.get("usageMetadata"))

    def model_changes(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        requests = body.get("requests")
        if not isinstance(requests, list):
            return {}
        return {"requests": [
            {**item, "model": f"models/{model}"} if isinstance(item, dict) and "model" in item else item
            for item in requests
        ]}
