"""The registry of API surfaces: which path speaks which wire format, and each format family's
error shape. Adding a surface is adding a row here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sidegate import apis
from sidegate.errors import GatewayError
from sidegate.formats import anthropic, gemini, openai
from sidegate.formats.base import ApiFormat
from sidegate.formats.registry import FORMATS
from sidegate.ingress import errors


@dataclass(frozen=True, slots=True)
class Family:
    """How one provider family shapes errors, as a whole body and as a stream event, and reads the
    code of an error object it receives (wire knowledge, in `formats/`)."""

    render_error: Callable[[GatewayError, str], bytes]
    stream_error: Callable[[GatewayError, str], bytes]
    error_code: Callable[[dict[str, Any]], str | None]


FAMILIES: dict[str, Family] = {
    "openai": Family(errors.openai_render, errors.openai_stream_error, openai.error_code),
    "anthropic": Family(errors.anthropic_render, errors.anthropic_stream_error, anthropic.error_code),
    "gemini": Family(errors.gemini_render, errors.gemini_stream_error, gemini.error_code),
}

# Formats whose streams end on an error with an event of their own rather than their family's.
_FORMAT_STREAM_ERRORS: dict[str, Callable[[GatewayError, str], bytes]] = {
    apis.OPENAI_RESPONSES: errors.responses_stream_error,
}


def stream_error(api: str, err: GatewayError, request_id: str) -> bytes:
    """The event that ends a stream of format `api` on a failure, in that format's shape."""
    render = _FORMAT_STREAM_ERRORS.get(api) or FAMILIES[FORMATS[api].family].stream_error
    return render(err, request_id)


@dataclass(frozen=True, slots=True)
class Surface:
    """One HTTP path of sidegate. `name` is what the usage table records as `api_type`."""

    name: str
    method: str
    path: str  # under the configured prefix
    api: str
    unified: bool = False

    @property
    def fmt(self) -> ApiFormat:
        return FORMATS[self.api]

    @property
    def family(self) -> str:
        return FORMATS[self.api].family


def _openai_native(root: str) -> list[Surface]:
    return [
        Surface(f"{root}/chat/completions", "POST", f"/{root}/v1/chat/completions", apis.OPENAI_CHAT),
        Surface(f"{root}/responses", "POST", f"/{root}/v1/responses", apis.OPENAI_RESPONSES),
        Surface(f"{root}/embeddings", "POST", f"/{root}/v1/embeddings", apis.OPENAI_EMBEDDINGS),
        Surface(f"{root}/models", "GET", f"/{root}/v1/models", apis.OPENAI_MODELS),
    ]


SURFACES: list[Surface] = [
    Surface("mlflow/chat/completions", "POST", "/mlflow/v1/chat/completions", apis.OPENAI_CHAT, True),
    Surface("mlflow/embeddings", "POST", "/mlflow/v1/embeddings", apis.OPENAI_EMBEDDINGS, True),
    Surface("mlflow/responses", "POST", "/mlflow/v1/responses", apis.OPENAI_RESPONSES, True),
    Surface("mlflow/models", "GET", "/mlflow/v1/models", apis.OPENAI_MODELS, True),
    *_openai_native("openai"),
    *_openai_native("codex"),
    Surface("anthropic/messages", "POST", "/anthropic/v1/messages", apis.ANTHROPIC_MESSAGES),
    Surface("anthropic/count_tokens", "POST", "/anthropic/v1/messages/count_tokens",
            apis.ANTHROPIC_COUNT_TOKENS),
]

# Gemini names the model and the method in one path segment: models/{model}:{method}.
GEMINI_PATH = "/gemini/{version:v1beta|v1}/models/{target}"
GEMINI_METHODS: dict[str, tuple[Surface, bool]] = {
    "generateContent": (Surface("gemini/generateContent", "POST", GEMINI_PATH, apis.GEMINI_GENERATE), False),
    "streamGenerateContent": (
        Surface("gemini/streamGenerateContent", "POST", GEMINI_PATH, apis.GEMINI_GENERATE), True),
    "countTokens": (Surface("gemini/countTokens", "POST", GEMINI_PATH, apis.GEMINI_COUNT_TOKENS), False),
    "embedContent": (Surface("gemini/embedContent", "POST", GEMINI_PATH, apis.GEMINI_EMBED), False),
    "batchEmbedContents": (
        Surface("gemini/batchEmbedContents", "POST", GEMINI_PATH, apis.GEMINI_BATCH_EMBED), False),
}

# Base URLs that clients probe (Claude Code sends HEAD to its base URL before the first call).
BASE_PATHS = ("", "/mlflow/v1", "/openai/v1", "/codex/v1", "/anthropic", "/gemini")


def family_for_path(tail: str) -> str:
    """Error shape for a path no surface matched, judged by its first segment."""
    first = tail.lstrip("/").split("/", 1)[0]
    return first if first in ("anthropic", "gemini") else "openai"
