"""Provider kinds: which API formats each speaks natively, where each call goes, and how sidegate
authenticates to it. Adding a provider kind is adding an adapter to ADAPTERS."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from sidegate import apis
from sidegate.policy.model import Provider

OPENAI_PATHS = {
    apis.OPENAI_CHAT: "/chat/completions",
    apis.OPENAI_RESPONSES: "/responses",
    apis.OPENAI_EMBEDDINGS: "/embeddings",
    apis.OPENAI_MODELS: "/models",
}
ANTHROPIC_PATHS = {
    apis.ANTHROPIC_MESSAGES: "/v1/messages",
    apis.ANTHROPIC_COUNT_TOKENS: "/v1/messages/count_tokens",
}
GEMINI_METHODS = {
    (apis.GEMINI_GENERATE, False): "generateContent",
    (apis.GEMINI_GENERATE, True): "streamGenerateContent",
    (apis.GEMINI_COUNT_TOKENS, False): "countTokens",
    (apis.GEMINI_EMBED, False): "embedContent",
    (apis.GEMINI_BATCH_EMBED, False): "batchEmbedContents",
}
ALL_APIS = frozenset(OPENAI_PATHS) | frozenset(ANTHROPIC_PATHS) | {api for api, _ in GEMINI_METHODS}


def gemini_path(api: str, model: str, stream: bool, version: str = "v1beta") -> str:
    return f"/{version}/models/{model}:{GEMINI_METHODS[(api, stream)]}"


class Adapter:
    kind: ClassVar[str]
    apis: ClassVar[frozenset[str]]
    in_process: ClassVar[bool] = False
    injects_stream_usage: ClassVar[bool] = False  # may add stream_options.include_usage to chat streams

    def path(self, api: str, model: str, stream: bool) -> str:
        raise NotImplementedError

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def default_headers(self, api: str) -> dict[str, str]:
        """Headers sent when the caller did not send them."""
        return {}


class OpenAIAdapter(Adapter):
    kind = "openai"
    apis = frozenset(OPENAI_PATHS)
    injects_stream_usage = True

    def path(self, api: str, model: str, stream: bool) -> str:
        return OPENAI_PATHS[api]


class AnthropicAdapter(Adapter):
    kind = "anthropic"
    apis = frozenset(ANTHROPIC_PATHS)

    def path(self, api: str, model: str, stream: bool) -> str:
        return ANTHROPIC_PATHS[api]

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"x-api-key": api_key} if api_key else {}

    def default_headers(self, api: str) -> dict[str, str]:
        return {"anthropic-version": "2023-06-01"}


class GeminiAdapter(Adapter):
    kind = "gemini"
    apis = frozenset(api for api, _ in GEMINI_METHODS)

    def path(self, api: str, model: str, stream: bool) -> str:
        suffix = "?alt=sse" if stream else ""
        return gemini_path(api, model, stream) + suffix

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"x-goog-api-key": api_key} if api_key else {}


class DatabricksAdapter(Adapter):
    """A Databricks AI Gateway (or another sidegate): base_url is its `/ai-gateway` root, and it
    speaks every format on the same paths sidegate does."""

    kind = "databricks"
    apis = ALL_APIS - {apis.OPENAI_MODELS}
    injects_stream_usage = True  # its mlflow/v1 chat is OpenAI's: it honours stream_options.include_usage

    def path(self, api: str, model: str, stream: bool) -> str:
        if api in OPENAI_PATHS:
            return "/mlflow/v1" + OPENAI_PATHS[api]
        if api in ANTHROPIC_PATHS:
            return "/anthropic" + ANTHROPIC_PATHS[api]
        return "/gemini" + gemini_path(api, model, stream) + ("?alt=sse" if stream else "")

    def default_headers(self, api: str) -> dict[str, str]:
        return {"anthropic-version": "2023-06-01"} if api in ANTHROPIC_PATHS else {}


class MockAdapter(Adapter):
    """The built-in deterministic model (`upstream.mock.model`); answers in process, in every format."""

    kind = "mock"
    apis = ALL_APIS - {apis.OPENAI_MODELS}
    in_process = True
    injects_stream_usage = True

    def path(self, api: str, model: str, stream: bool) -> str:
        return ""


ADAPTERS: dict[str, Adapter] = {
    adapter.kind: adapter
    for adapter in (OpenAIAdapter(), AnthropicAdapter(), GeminiAdapter(), DatabricksAdapter(), MockAdapter())
}


@dataclass(frozen=True, slots=True)
class ProviderRuntime:
    """A configured provider, ready for the request path (headers precomputed at load)."""

    name: str
    kind: str
    adapter: Adapter
    base_url: str
    passthrough: bool
    stream_usage: bool
    apis: frozenset[str]  # what this server has: its kind's formats, or the policy's narrower list
    auth_headers: dict[str, str] = field(default_factory=dict)
    extra_headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, name: str, config: Provider) -> ProviderRuntime:
        adapter = ADAPTERS[config.kind]
        passthrough = config.credentials == "passthrough"
        return cls(
            name=name,
            kind=config.kind,
            adapter=adapter,
            base_url=(config.base_url or "").rstrip("/"),
            passthrough=passthrough,
            stream_usage=config.stream_usage and adapter.injects_stream_usage,
            apis=adapter.apis & frozenset(config.apis) if config.apis is not None else adapter.apis,
            auth_headers={} if passthrough else adapter.auth_headers(config.api_key),
            extra_headers=dict(config.headers),
        )

    def speaks(self, api: str) -> bool:
        return api in self.apis
