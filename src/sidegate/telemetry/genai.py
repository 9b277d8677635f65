"""OpenTelemetry GenAI names for sidegate's API formats and provider kinds, and the facts a span
reports from a whole JSON answer (the model that answered, why generation stopped).

Registries keyed by `sidegate.apis` ids and provider kinds: a new format or kind is a new row here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sidegate import apis

# gen_ai.operation.name of each API format (formats without a model call have none).
OPERATIONS: dict[str, str] = {
    apis.OPENAI_CHAT: "chat",
    apis.OPENAI_RESPONSES: "chat",
    apis.OPENAI_EMBEDDINGS: "embeddings",
    apis.ANTHROPIC_MESSAGES: "chat",
    apis.ANTHROPIC_COUNT_TOKENS: "count_tokens",
    apis.GEMINI_GENERATE: "generate_content",
    apis.GEMINI_COUNT_TOKENS: "count_tokens",
    apis.GEMINI_EMBED: "embeddings",
    apis.GEMINI_BATCH_EMBED: "embeddings",
}

# gen_ai.provider.name of each provider kind (the conventions' well-known values where one exists).
PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "databricks": "databricks",
    "mock": "sidegate.mock",
}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _choices(obj: dict[str, Any]) -> list[str]:
    return [r for c in _list(obj.get("choices")) if isinstance(c, dict) and (r := _str(c.get("finish_reason")))]


def _responses(obj: dict[str, Any]) -> list[str]:
    details = obj.get("incomplete_details")
    reason = _str(details.get("reason")) if isinstance(details, dict) else None
    status = reason or _str(obj.get("status"))
    return [status] if status else []


def _anthropic(obj: dict[str, Any]) -> list[str]:
    reason = _str(obj.get("stop_reason"))
    return [reason] if reason else []


def _gemini(obj: dict[str, Any]) -> list[str]:
    return [r for c in _list(obj.get("candidates")) if isinstance(c, dict) and (r := _str(c.get("finishReason")))]


# Where a whole answer of each format says why generation stopped.
FINISH_REASONS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    apis.OPENAI_CHAT: _choices,
    apis.OPENAI_RESPONSES: _responses,
    apis.ANTHROPIC_MESSAGES: _anthropic,
    apis.GEMINI_GENERATE: _gemini,
}

# The answer field naming the model that answered ("model" unless listed).
_MODEL_FIELD: dict[str, str] = {
    apis.GEMINI_GENERATE: "modelVersion",
    apis.GEMINI_EMBED: "modelVersion",
    apis.GEMINI_BATCH_EMBED: "modelVersion",
}


def finish_reasons(api: str, answer: dict[str, Any]) -> list[str]:
    read = FINISH_REASONS.get(api)
    return read(answer) if read is not None else []


def response_model(api: str, answer: dict[str, Any]) -> str | None:
    return _str(answer.get(_MODEL_FIELD.get(api, "model")))
