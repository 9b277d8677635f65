"""The access line: one log line per request, written by the record stage from its usage row.

It says how it ended (status, error code), who called (principal, client), what (model service,
API), how long it took, where it went (destination), tokens, time to first byte, the request's tags
and its id; status, principal, model service and latency come first (after the time), so that a
readable line shows them at a glance.
It never carries credentials, key hashes or payload text: only usage-row columns that hold none.

With JSON logs the line is rendered here directly (one orjson call) and handed to the log writer,
which costs a few microseconds a request; on a terminal it goes through structlog's console
renderer like any other event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from sidegate.telemetry.logs import SETUP
from sidegate.telemetry.usage.row import UsageRow

log = structlog.get_logger("sidegate.access")


def access_fields(row: UsageRow) -> dict[str, Any]:
    """The line's fields, what a reader scans for first (after the time) first."""
    return {
        "status": row.status_code,
        "principal": row.requester,
        "model_service": row.model_service,
        "latency_ms": row.latency_ms,
        "error_code": row.error_code,
        "api": row.api_type,
        "client": row.client,
        "destination": row.destination_name,
        "destination_model": row.destination_model,
        "streaming": row.streaming,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "tokens_estimated": row.tokens_estimated,
        "ttfb_ms": row.time_to_first_byte_ms,
        "tags": row.request_tags,
        "request_id": row.request_id,
    }


def access_line(row: UsageRow) -> None:
    if not SETUP.access:
        return
    writer = SETUP.writer
    if writer is not None and SETUP.json:
        line = {"event": "access", "level": "info", "timestamp": datetime.now(UTC).isoformat()[:-6] + "Z",
                **access_fields(row)}
        writer.write(orjson.dumps(line).decode())
    else:
        log.info("access", **access_fields(row))
