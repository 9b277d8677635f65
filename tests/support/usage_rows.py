"""Usage rows for the store and writer tests (SQLite, JSONL, PostgreSQL): a series of rows with every
column filled, their request ids, and waiting for a writer's background task."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sidegate.telemetry.usage.row import UsageRow

BASE = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_row(i: int = 0, **kw: Any) -> UsageRow:
    """Row i of a series in time order (request id `req-` and i in six digits), event_time as the pipeline
    writes (datetime.isoformat, UTC); keyword arguments replace columns."""
    base: dict[str, Any] = dict(
        request_id=f"req-{i:06d}", event_time=(BASE + timedelta(seconds=i, microseconds=250)).isoformat(),
        requester="alice@example.com", requester_type="user", client="openai-python", user_agent="ua/1",
        api_type="openai.chat_completions", model_service="gpt", destination_type="openai",
        destination_name="primary", destination_model="gpt-4o", status_code=200, error_code=None,
        streaming=bool(i % 2), input_tokens=10 + i, output_tokens=5, total_tokens=15 + i,
        cache_read_input_tokens=2, cache_creation_input_tokens=1, reasoning_tokens=3,
        tokens_estimated=False, latency_ms=12.5 + i, time_to_first_byte_ms=None if i % 3 else 4.25,
        request_tags={"team": "ml", "project": f"p{i % 2}"},
        routing_information=[{"destination": "primary", "status": 200, "duration_ms": 11.0}],
        guardrail_results=[{"name": "pii", "action": "mask", "triggered": True}],
    )
    base.update(kw)
    return UsageRow(**base)


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["request_id"] for r in rows]


async def wait_until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)
