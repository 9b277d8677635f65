"""One inference-log record: a sampled request's payloads next to the facts needed to read them.

The columns follow Databricks' inference tables where they overlap (`request_id`, `status_code`,
`sampling_fraction`, `logging_error_codes`, `requester`); the rest name what the usage table names
the same way, so the two join on `request_id`.

`request_payload` is the caller's request body as sidegate received it, in the caller's format and
naming the model service the caller asked for (the destination, its model and its format are in
`destination_*`), after guardrail masking (masked text stays masked; credential-looking top-level
fields replaced by `<REDACTED>`), as text.
`response_payload` is the answer as the caller received it, as text: a whole body unchanged, a
stream aggregated into the one message object of the caller's format. A payload over the policy's
`max_payload_bytes` is not stored (None) and `logging_error_codes` says so; nor is a request an input
guardrail blocked (it was never forwarded, and it holds the secret or PII that was found).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sidegate.telemetry.stores.schema import RowSchema

INFERENCE_COLUMNS: tuple[str, ...] = (
    "request_id",
    "event_time",
    "requester",
    "model_service",
    "api_type",
    "destination_type",
    "destination_name",
    "destination_model",
    "status_code",
    "streaming",
    "request_payload",
    "response_payload",
    "sampling_fraction",
    "logging_error_codes",
    "request_tags",
)

# logging_error_codes values
MAX_REQUEST_SIZE_EXCEEDED = "MAX_REQUEST_SIZE_EXCEEDED"
MAX_RESPONSE_SIZE_EXCEEDED = "MAX_RESPONSE_SIZE_EXCEEDED"
STREAM_AGGREGATION_FAILED = "STREAM_AGGREGATION_FAILED"  # the raw event stream is stored instead
REQUEST_BLOCKED_BY_GUARDRAIL = "REQUEST_BLOCKED_BY_GUARDRAIL"  # not forwarded, and holds what was found


@dataclass(slots=True)
class InferenceRow:
    request_id: str
    event_time: str
    requester: str | None = None
    model_service: str | None = None
    api_type: str | None = None
    destination_type: str | None = None
    destination_name: str | None = None
    destination_model: str | None = None
    status_code: int = 0
    streaming: bool = False
    request_payload: str | None = None
    response_payload: str | None = None
    sampling_fraction: float = 1.0
    logging_error_codes: list[str] = field(default_factory=list)
    request_tags: dict[str, str] = field(default_factory=dict)


INFERENCE_LOG: RowSchema[InferenceRow] = RowSchema("inference_log", InferenceRow, INFERENCE_COLUMNS, "inference log")
"""The inference-log table, for its store and writer."""
