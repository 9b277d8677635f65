"""One usage record per request; the columns mirror Databricks' `system.ai_gateway.usage`.

Token columns are normalised across providers so that rows compare: `input_tokens` counts every
prompt token the model read, cached ones included (Anthropic's separately reported cache reads and
writes are added in); `cache_read_input_tokens` and `cache_creation_input_tokens` are the parts of
it served from or written to the prompt cache; `output_tokens` counts every generated token,
reasoning included; `reasoning_tokens` is that part of it; `total_tokens` is input plus output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sidegate.telemetry.stores.schema import RowSchema

USAGE_COLUMNS: tuple[str, ...] = (
    "request_id",
    "event_time",
    "requester",
    "requester_type",
    "client",
    "user_agent",
    "api_type",
    "model_service",
    "destination_type",
    "destination_name",
    "destination_model",
    "status_code",
    "error_code",
    "streaming",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_tokens",
    "tokens_estimated",
    "latency_ms",
    "time_to_first_byte_ms",
    "request_tags",
    "routing_information",
    "guardrail_results",
)


@dataclass(slots=True)
class UsageRow:
    """A finished request. `event_time` is an ISO-8601 UTC timestamp of when the request arrived.

    `request_tags` is a str->str dict, `routing_information` a list of attempt dicts
    (destination, provider, model, status, reason, duration_ms), `guardrail_results` a list of dicts.
    """

    request_id: str
    event_time: str
    requester: str | None = None
    requester_type: str | None = None
    client: str | None = None
    user_agent: str | None = None
    api_type: str | None = None
    model_service: str | None = None
    destination_type: str | None = None
    destination_name: str | None = None
    destination_model: str | None = None
    status_code: int = 0
    error_code: str | None = None
    streaming: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_tokens: int = 0
    tokens_estimated: bool = False
    latency_ms: float = 0.0
    time_to_first_byte_ms: float | None = None
    request_tags: dict[str, str] = field(default_factory=dict)
    routing_information: list[dict[str, Any]] = field(default_factory=list)
    guardrail_results: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in USAGE_COLUMNS}


USAGE: RowSchema[UsageRow] = RowSchema("usage", UsageRow, USAGE_COLUMNS, "usage")
"""The usage table, for the stores and writer."""
