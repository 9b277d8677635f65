"""Gemini wire formats (generateContent, streamGenerateContent, countTokens, embedContent,
batchEmbedContents) and the Google API error shape. The model is named in the URL, not the body."""

from __future__ import annotations

from typing import Any

import orjson

from sidegate import apis
from sidegate.errors import GatewayError
from sidegate.ingress.base import ApiFormat, StreamObserver, TokenUsage, as_int

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def render_error(err: GatewayError, request_id: str) -> bytes:
    status = _STATUS.get(err.status) or ("INTERNAL" if err.status >= 500 else "FAILED_PRECONDITION")
    return orjson.dumps({"error": {
        "code": err.status,
        "message": err.message,
        "status": status,
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": err.code,
                     "domain": "sidegate", "metadata": {"request_id": request_id}}],
    }})


def stream_error(err: GatewayError, request_id: str) -> bytes:
    return b"data: " + render_error(err, request_id) + b"\n\n"


def error_code(obj: dict[str, Any]) -> str | None:
    error = obj.get("error")
    if isinstance(error, dict) and error.get("status"):
        return str(error["status"])
    return None


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
        elif "error" in obj or (obj.get("promptFeedback") or {}).get("blockReason"):
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


class Generate(ApiFormat):
    name = apis.GEMINI_GENERATE
    family = "gemini"
    model_in_url = True

    def usage_from_json(self, obj: dict[str, Any]) -> TokenUsage | None:
        return gemini_usage(obj.get("usageMetadata"))

    def response_text_chars(self, obj: dict[str, Any]) -> int:
        return _candidate_chars(obj)[0]

    def observer(self, strip_usage: bool = False) -> StreamObserver:
        return GenerateObserver(strip_usage)


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

    def model_changes(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        requests = body.get("requests")
        if not isinstance(requests, list):
            return {}
        return {"requests": [
            {**item, "model": f"models/{model}"} if isinstance(item, dict) and "model" in item else item
            for item in requests
        ]}
