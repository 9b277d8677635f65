"""The policy file format as pydantic models.

These models are the single source of truth for what a policy may say: the loader validates merged
YAML against them (unknown keys are rejected everywhere), and `sidegate schema` publishes the JSON
Schema generated from them for editors. They are used at load time only; the request path works on
the compiled form in `policy.compiled`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from sidegate import apis

KEY_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
STORE_URL = re.compile(r"^(sqlite|jsonl|postgresql|postgres)://|^none$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


# The largest request-tags header a caller may need: 20 tags with keys of 64 and values of 256
# characters, every character outside the BMP and JSON-escaped (12 bytes), plus the header's name.
MAX_HEADER_BYTES = 80 * 1024


class Server(Strict):
    listen: str = Field("127.0.0.1:8787", description="HOST:PORT the API surfaces listen on.")
    path_prefix: str = Field("/ai-gateway", description="Prefix of every API path; may be empty.")
    admin_listen: str | None = Field(
        None, description="HOST:PORT for /healthz, /readyz and /metrics; when set, `listen` serves only the API."
    )
    healthz_on_listen: bool = Field(
        False, description="With admin_listen set, also answer GET /healthz on `listen` (load balancers that "
        "probe the traffic port)."
    )
    max_header_bytes: int = Field(
        MAX_HEADER_BYTES, ge=1024, description="Longest request header (name and value) and request line accepted; "
        "longer ones get 431 (414 for the URL). The default fits 20 request tags of 64 + 256 characters, "
        "each character JSON-escaped as a surrogate pair."
    )
    max_request_bytes: int = Field(32 * 1024 * 1024, gt=0, description="Largest request body accepted.")
    shutdown_grace_s: float = Field(
        30.0, ge=0, description="On SIGTERM, how long in-flight requests may take to finish."
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        return _host_port(v)

    @field_validator("admin_listen")
    @classmethod
    def _admin(cls, v: str | None) -> str | None:
        return None if v is None else _host_port(v)

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        v = v.rstrip("/")
        if v and not v.startswith("/"):
            raise ValueError("path_prefix must start with '/' (or be empty)")
        return v


class Auth(Strict):
    mode: Literal["keys", "none"] = Field("keys", description="keys: callers present a key; none: trust all.")
    default_principal: str | None = Field(None, description="With mode none: the principal every caller is.")

    @model_validator(mode="after")
    def _default(self) -> Auth:
        if self.mode == "none" and not self.default_principal:
            raise ValueError("auth.mode none needs auth.default_principal")
        return self


class Principal(Strict):
    type: Literal["user", "service_principal"] = "user"
    groups: list[str] = Field(default_factory=list)
    keys: list[str] = Field(default_factory=list, description="API keys as sha256:<hex> (sidegate hash-key).")

    @field_validator("keys")
    @classmethod
    def _keys(cls, v: list[str]) -> list[str]:
        keys = [k.lower() for k in v]  # hex digits in either case (some tools print upper case)
        for k in keys:
            if not KEY_HASH.match(k):
                raise ValueError(
                    "keys must be stored hashed as 'sha256:<64 hex digits>' (use `sidegate hash-key`)"
                )
        return keys


ProviderKind = Literal["openai", "anthropic", "gemini", "databricks", "mock"]


class Provider(Strict):
    kind: ProviderKind
    base_url: str | None = Field(None, description="Root URL of the provider's API.")
    api_key: str | None = Field(None, description="The provider credential sidegate sends upstream.")
    credentials: Literal["provider", "passthrough"] = Field(
        "provider", description="passthrough: forward the caller's own provider credential."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers sent upstream.")
    apis: list[str] | None = Field(
        None,
        description="The API formats this server has, when fewer than its kind offers (e.g. [openai.chat, "
        "openai.embeddings] for a chat-only OpenAI-compatible server such as vLLM or Ollama): other "
        "formats are translated to one of these.",
    )
    stream_usage: bool = Field(
        True,
        description="OpenAI-kind only: ask for the final usage chunk in chat streams (removed again "
        "before it reaches a caller who did not ask for it).",
    )

    @model_validator(mode="after")
    def _url(self) -> Provider:
        if self.kind != "mock":
            if not self.base_url:
                raise ValueError(f"a provider of kind {self.kind} needs base_url")
            if not self.base_url.startswith(("http://", "https://")):
                raise ValueError("base_url must start with http:// or https://")
        unknown = sorted(set(self.apis or ()) - apis.ALL)
        if unknown:
            raise ValueError(f"unknown API format(s) {', '.join(unknown)}; known: {', '.join(sorted(apis.ALL))}")
        return self


class Destination(Strict):
    provider: str
    model: str | None = Field(None, description="Model name at the provider; default: the name asked for.")
    weight: float = Field(100, ge=0, description="Traffic split weight.")


class Permissions(Strict):
    principals: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)


class CircuitBreaker(Strict):
    failures: int = Field(5, ge=1, description="Consecutive failed attempts that open a destination's breaker.")
    cooldown_s: float = Field(30, gt=0, description="How long an open breaker skips the destination.")


class ModelService(Strict):
    destinations: list[Destination] = Field(min_length=1)
    fallbacks: list[Destination] = Field(default_factory=list, max_length=5)
    timeout_s: float = Field(
        300, gt=0, description="Longest wait for an upstream's first byte (a whole non-streamed answer)."
    )
    connect_timeout_s: float = Field(10, gt=0, description="Longest wait to connect to an upstream.")
    idle_timeout_s: float = Field(120, gt=0, description="Longest silence between two chunks of a stream.")
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)  # type: ignore[arg-type]
    permissions: Permissions | None = Field(
        None, description="Who may use this service; default: every authenticated caller."
    )

    @model_validator(mode="after")
    def _weights(self) -> ModelService:
        if sum(d.weight for d in self.destinations) <= 0:
            raise ValueError("destinations need a positive total weight")
        return self


class RateLimitStore(Strict):
    url: str = "memory://"
    on_error: Literal["allow", "deny"] = "allow"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^(memory://|rediss?://)", v):
            raise ValueError("rate_limit_store.url must be memory:// or redis://HOST:PORT/DB")
        return v


class RateLimit(Strict):
    key: Literal["service", "user_default", "user", "service_principal", "user_group", "request_tag"]
    model: str | None = None
    principal: str | None = None
    tag: str | None = None
    value: str | None = None
    requests_per_minute: int | None = Field(None, gt=0)
    tokens_per_minute: int | None = Field(None, gt=0)
    name: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> RateLimit:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError("a rate limit needs requests_per_minute and/or tokens_per_minute")
        if self.key in ("user", "service_principal", "user_group") and not self.principal:
            raise ValueError(f"key {self.key} needs principal")
        if self.key == "request_tag" and not self.tag:
            raise ValueError("key request_tag needs tag")
        if self.key == "service" and not self.model:
            raise ValueError("key service needs model")
        return self


PiiKind = Literal["email", "phone", "credit_card", "us_ssn", "iban", "ip_address"]


class DetectorSet(Strict):
    secrets: bool = False
    pii: list[PiiKind] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    regex: list[str] = Field(default_factory=list)

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: list[str]) -> list[str]:
        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> DetectorSet:
        if not (self.secrets or self.pii or self.keywords or self.regex):
            raise ValueError("detect names no detector: set secrets, pii, keywords and/or regex")
        return self


class GuardrailMatch(Strict):
    models: list[str] = Field(default_factory=list)
    principals: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)


DetectorName = Literal["secrets", "pii"]


def _detect_form(value: object) -> str | None:
    """Which form of `detect` a value is, so only that form's errors are reported."""
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict | DetectorSet):
        return "set"
    return None


class Guardrail(Strict):
    name: str
    phase: Literal["input", "output", "both"] = "input"
    detect: Annotated[
        Annotated[list[DetectorName], Field(min_length=1), Tag("list")] | Annotated[DetectorSet, Tag("set")],
        Discriminator(
            _detect_form,
            custom_error_type="detect_type",
            custom_error_message="detect must be a list of detector names ([secrets, pii]) or a mapping "
            "({secrets: true, pii: [...], keywords: [...], regex: [...]})",
        ),
    ]
    action: Literal["block", "mask", "flag"] = "block"
    match: GuardrailMatch | None = None


class Tags(Strict):
    stamp: dict[str, str] = Field(
        default_factory=dict, description="Added to every request; win over callers'."
    )
    require: list[str] = Field(default_factory=list, description="Tag keys every request must carry.")
    forward_upstream: bool = Field(False, description="Send the merged tags upstream in the tags header.")


class Store(Strict):
    store: str = Field(
        "sqlite:///sidegate-usage.db", description="sqlite://, jsonl://, postgresql:// or none."
    )

    @field_validator("store")
    @classmethod
    def _store(cls, v: str) -> str:
        if not STORE_URL.match(v):
            raise ValueError("store must be sqlite:///PATH, jsonl:///PATH, postgresql://… or none")
        return v


class InferenceLog(Store):
    store: str = "none"
    sample_rate: float = Field(1.0, ge=0, le=1)
    max_payload_bytes: int = Field(1024 * 1024, gt=0)


class MetricsConfig(Strict):
    labels: list[str] = Field(default_factory=list)

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: list[str]) -> list[str]:
        for label in v:
            if label != "principal" and not label.startswith("tag:"):
                raise ValueError(f"metric label {label!r}: expected 'principal' or 'tag:<key>'")
        return v


class TracesConfig(Strict):
    otlp_endpoint: str = ""
    capture_content: bool = False


class Telemetry(Strict):
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    traces: TracesConfig = Field(default_factory=TracesConfig)


class PolicyModel(Strict):
    """The merged content of a policy directory."""

    server: Server = Field(default_factory=Server)  # type: ignore[arg-type]
    auth: Auth = Field(default_factory=Auth)  # type: ignore[arg-type]
    principals: dict[str, Principal] = Field(default_factory=dict)
    providers: dict[str, Provider] = Field(default_factory=dict)
    models: dict[str, ModelService] = Field(default_factory=dict)
    rate_limit_store: RateLimitStore = Field(default_factory=RateLimitStore)
    rate_limits: list[RateLimit] = Field(default_factory=list)
    guardrails: list[Guardrail] = Field(default_factory=list)
    tags: Tags = Field(default_factory=Tags)  # type: ignore[arg-type]
    usage: Store = Field(default_factory=Store)  # type: ignore[arg-type]
    inference_log: InferenceLog = Field(default_factory=InferenceLog)  # type: ignore[arg-type]
    telemetry: Telemetry = Field(default_factory=Telemetry)
