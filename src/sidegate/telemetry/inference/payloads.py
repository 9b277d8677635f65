"""Building an inference-log row from what one sampled request captured: the stored request and
response payloads, and the codes that say what could not be stored.

Runs off the event loop (the inference log hands batches to a worker thread): decoding, stream
aggregation and size checks cost CPU proportional to the payloads.

* Request: the caller's body as received, in its format and with its model service's name
  (guardrail masking already applied). Credentials never reach a
  row: no header and no URL is stored (so neither `Authorization`/`x-api-key` nor Gemini's
  `?key=`), and top-level body fields named like a credential (`api_key`, `key`, `token`, …) have
  their value replaced by `<REDACTED>`.
* Response: the bytes the caller received. A stream is stored as the one answer object of the
  caller's format (`formats.registry.aggregate`); a stream that cannot be folded is stored as sent, with
  `STREAM_AGGREGATION_FAILED`.
* Blocked: a request an input guardrail refused is not stored (`REQUEST_BLOCKED_BY_GUARDRAIL`): it
  was not forwarded, and it holds what the guardrail found (a key, PII) unmasked.
* Size: a payload larger than `max_payload_bytes` (UTF-8 bytes of what would be stored) is not
  stored at all rather than cut (a cut JSON document is not JSON): its column is null and
  `logging_error_codes` holds `MAX_REQUEST_SIZE_EXCEEDED` / `MAX_RESPONSE_SIZE_EXCEEDED`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from sidegate.formats.registry import AGGREGATORS, aggregate, aggregate_chunks
from sidegate.telemetry.inference.row import (
    MAX_REQUEST_SIZE_EXCEEDED,
    MAX_RESPONSE_SIZE_EXCEEDED,
    REQUEST_BLOCKED_BY_GUARDRAIL,
    STREAM_AGGREGATION_FAILED,
    InferenceRow,
)
from sidegate.telemetry.usage.row import UsageRow

REDACTED = "<REDACTED>"
INPUT_BLOCKED = "input_guardrail_triggered"  # the error code of a request an input guardrail refused
# Compared lower-case with "-" read as "_".
CREDENTIAL_FIELDS = frozenset({
    "api_key", "apikey", "key", "token", "access_token", "refresh_token", "id_token", "auth_token",
    "authorization", "x_api_key", "x_goog_api_key", "password", "secret", "client_secret", "credentials",
})


@dataclass(slots=True)
class Capture:
    """What the record stage hands over for one sampled request; nothing is copied or parsed."""

    row: UsageRow
    api: str  # the caller's API format (`sidegate.apis`)
    body_bytes: bytes
    body: dict[str, Any] | None
    sent: list[bytes]


def _is_credential(key: Any) -> bool:
    return isinstance(key, str) and key.lower().replace("-", "_") in CREDENTIAL_FIELDS


def request_payload(body_bytes: bytes, body: dict[str, Any] | None) -> str:
    """The caller's body as text, credential-looking top-level fields redacted. Unchanged bodies
    are stored as the bytes that were sent (key order and spacing kept)."""
    if isinstance(body, dict) and any(_is_credential(key) for key in body):
        clean = {key: REDACTED if _is_credential(key) else value for key, value in body.items()}
        return orjson.dumps(clean).decode()
    return body_bytes.decode("utf-8", "replace")


def response_payload(api: str, stream: bool, sent: bytes) -> tuple[bytes, list[str]]:
    """What to store of the answer sent, and any logging error code. A streamed request answered
    with a whole JSON body (an error before the stream began) keeps that body."""
    if not stream or api not in AGGREGATORS:
        return sent, []
    head = sent.lstrip()[:1]
    try:
        if head == b"{":
            return sent, []
        # Gemini without alt=sse streams one JSON array of responses
        folded = aggregate_chunks(api, orjson.loads(sent)) if head == b"[" else aggregate(api, sent)
        return orjson.dumps(folded), []
    except Exception:  # a malformed stream is still worth keeping as it was sent
        return sent, [STREAM_AGGREGATION_FAILED]


def build_row(capture: Capture, sampling_fraction: float, max_payload_bytes: int) -> InferenceRow:
    usage = capture.row
    codes: list[str] = []
    request: str | None = None
    if usage.error_code == INPUT_BLOCKED:
        codes.append(REQUEST_BLOCKED_BY_GUARDRAIL)
    elif capture.body_bytes:
        if len(capture.body_bytes) > max_payload_bytes:
            codes.append(MAX_REQUEST_SIZE_EXCEEDED)
        else:
            request = request_payload(capture.body_bytes, capture.body)
            if len(request.encode("utf-8", "replace")) > max_payload_bytes:  # grown by redaction
                request = None
                codes.append(MAX_REQUEST_SIZE_EXCEEDED)
    response: str | None = None
    if capture.sent:
        data, response_codes = response_payload(capture.api, usage.streaming, b"".join(capture.sent))
        codes += response_codes
        if len(data) > max_payload_bytes:
            codes.append(MAX_RESPONSE_SIZE_EXCEEDED)
        else:
            response = data.decode("utf-8", "replace")
    return InferenceRow(
        request_id=usage.request_id,
        event_time=usage.event_time,
        requester=usage.requester,
        model_service=usage.model_service,
        api_type=usage.api_type,
        destination_type=usage.destination_type,
        destination_name=usage.destination_name,
        destination_model=usage.destination_model,
        status_code=usage.status_code,
        streaming=usage.streaming,
        request_payload=request,
        response_payload=response,
        sampling_fraction=sampling_fraction,
        logging_error_codes=codes,
        request_tags=dict(usage.request_tags),
    )
