"""The inference log inside a running app: the record stage hands sampled requests to the log, and
the log follows policy reloads (its sink on its own: tests/unit/telemetry/test_inference_log.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.gateway import PRINCIPALS
from tests.unit.telemetry.test_inference_log import CHAT_BODY, context, usage_row

from sidegate import apis
from sidegate.telemetry.inference.row import INFERENCE_LOG
from sidegate.telemetry.record import record
from sidegate.telemetry.stores.registry import read_rows


async def test_record_stage_hands_sampled_requests_to_the_log(gateway: Any, tmp_path: Path) -> None:
    url = f"jsonl:///{tmp_path}/inference.jsonl"
    gw = await gateway(f"inference_log: {{store: '{url}', sample_rate: 1.0}}\n")
    sampled = context(apis.OPENAI_CHAT, CHAT_BODY, [b"{}"], request_id="sampled")
    unsampled = context(apis.OPENAI_CHAT, CHAT_BODY, None, request_id="unsampled")
    for ctx in (sampled, unsampled):
        ctx.policy, ctx.status = gw.state.policy, 200
        record(gw.state, ctx)
    await gw.state.inference_log.flush()
    assert [r["request_id"] for r in read_rows(url, INFERENCE_LOG)] == ["sampled"]
    assert {r["request_id"] for r in await gw.rows()} == {"sampled", "unsampled"}


async def test_log_follows_policy_reloads(gateway: Any, tmp_path: Path) -> None:
    first, second = f"sqlite:///{tmp_path}/a.db", f"jsonl:///{tmp_path}/b.jsonl"
    gw = await gateway(f"inference_log: {{store: '{first}', sample_rate: 0.5}}\n")
    rest = PRINCIPALS + f"usage: {{store: '{gw.state.usage_url}'}}\n"
    log = gw.state.inference_log
    assert log is not None and (log.url, log.sample_rate) == (first, 0.5)
    gw.write_policy(f"inference_log: {{store: '{first}', sample_rate: 0.0, max_payload_bytes: 10}}\n" + rest)
    assert await gw.state.holder.reload("test")
    assert gw.state.inference_log is log and (log.sample_rate, log.max_payload_bytes) == (0.0, 10)
    log.submit(context(apis.OPENAI_CHAT, CHAT_BODY, []), usage_row("before-switch"))
    gw.write_policy(f"inference_log: {{store: '{second}'}}\n" + rest)
    assert await gw.state.holder.reload("test")
    new = gw.state.inference_log
    assert new is not None and new is not log and new.url == second
    assert [r["request_id"] for r in read_rows(first, INFERENCE_LOG)] == ["before-switch"]  # drained
    gw.write_policy(rest)
    assert await gw.state.holder.reload("test")
    assert gw.state.inference_log is None
