"""The inference log sink (`sidegate.telemetry.inference.log`): rows built from what a sampled
request captured (payloads as forwarded and as sent, streams aggregated, credentials redacted,
size limits), written to SQLite and JSONL through the row writer, flushed on close, sampling (the
record stage handing captures over and policy reloads: tests/e2e/test_inference_log_reloads.py)."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import make_mocked_request
from tests.support.fakes import anthropic_wire, gemini_wire, openai_wire

from sidegate import apis
from sidegate.context import RequestContext
from sidegate.ingress.registry import FORMATS, SURFACES, Surface
from sidegate.policy.model import InferenceLog as InferenceLogPolicy
from sidegate.telemetry.inference.log import InferenceLog, spool_path
from sidegate.telemetry.inference.payloads import REDACTED, Capture, build_row
from sidegate.telemetry.inference.row import (
    INFERENCE_COLUMNS,
    INFERENCE_LOG,
    MAX_REQUEST_SIZE_EXCEEDED,
    MAX_RESPONSE_SIZE_EXCEEDED,
    REQUEST_BLOCKED_BY_GUARDRAIL,
    STREAM_AGGREGATION_FAILED,
)
from sidegate.telemetry.stores.registry import open_store, read_rows
from sidegate.telemetry.stores.url import default_spool_path
from sidegate.telemetry.usage.row import USAGE, UsageRow
from sidegate.telemetry.usage.writer import UsageWriter

SURFACE = {s.api: s for s in reversed(SURFACES)}
SURFACE[apis.GEMINI_GENERATE] = Surface("gemini/streamGenerateContent", "POST", "", apis.GEMINI_GENERATE)
CHAT_BODY = {"model": "gpt-5", "messages": [{"role": "user", "content": "hi <EMAIL_ADDRESS>"}], "stream": True}


def usage_row(request_id: str = "req-1", *, streaming: bool = False, status: int = 200) -> UsageRow:
    return UsageRow(request_id=request_id, event_time="2026-01-01T00:00:00+00:00", requester="alice@example.com",
                    requester_type="user", api_type="openai/chat/completions", model_service="gpt-5",
                    destination_type="openai", destination_name="openai", destination_model="gpt-5-2025",
                    status_code=status, streaming=streaming, request_tags={"team": "ml"})


def capture(api: str, body: dict[str, Any] | None, sent: list[bytes], *, stream: bool = False,
            body_bytes: bytes | None = None) -> Capture:
    raw = body_bytes if body_bytes is not None else orjson.dumps(body) if body is not None else b""
    return Capture(usage_row(streaming=stream), api, raw, body, sent)


def context(api: str, body: dict[str, Any], sent: list[bytes] | None, *, request_id: str = "req-1",
            stream: bool = False) -> RequestContext:
    ctx = RequestContext(request=make_mocked_request("POST", "/x"), surface=SURFACE[api], fmt=FORMATS[api],
                         policy=None, request_id=request_id, event_time="2026-01-01T00:00:00+00:00")  # type: ignore[arg-type]
    ctx.body, ctx.body_bytes, ctx.stream, ctx.capture = body, orjson.dumps(body), stream, sent
    return ctx


# ---------------------------------------------------------------- rows


def test_row_holds_the_forwarded_request_and_the_aggregated_stream() -> None:
    sent = openai_wire.chat_sse({"model": "gpt-5", "stream_options": {"include_usage": True}})
    row = build_row(capture(apis.OPENAI_CHAT, CHAT_BODY, sent, stream=True), 0.5, 1 << 20)
    assert orjson.loads(row.request_payload or "") == CHAT_BODY  # masked text as it was forwarded
    response = orjson.loads(row.response_payload or "")
    assert response["object"] == "chat.completion"
    assert response["choices"][0]["message"]["content"] == "Hello from the fake"
    assert response["usage"]["total_tokens"] == openai_wire.CHAT_USAGE["total_tokens"]
    assert (row.sampling_fraction, row.logging_error_codes, row.streaming) == (0.5, [], True)
    assert (row.requester, row.model_service, row.destination_model, row.request_tags) == (
        "alice@example.com", "gpt-5", "gpt-5-2025", {"team": "ml"})


def test_unchanged_request_and_whole_answer_are_stored_byte_for_byte() -> None:
    body_bytes = b'{ "model": "claude",  "max_tokens": 5, "messages": [] }'
    answer = orjson.dumps(anthropic_wire.message_json({"model": "claude"}))
    row = build_row(capture(apis.ANTHROPIC_MESSAGES, orjson.loads(body_bytes), [answer[:10], answer[10:]],
                            body_bytes=body_bytes), 1.0, 1 << 20)
    assert row.request_payload == body_bytes.decode() and row.response_payload == answer.decode()


def test_credential_fields_in_the_body_are_redacted() -> None:
    body = {"model": "m", "api_key": "sk-live-123", "X-Goog-Api-Key": "AIza-secret", "token": "t0k",
            "messages": [{"role": "user", "content": "key: not a field"}]}
    row = build_row(capture(apis.OPENAI_CHAT, body, []), 1.0, 1 << 20)
    stored = orjson.loads(row.request_payload or "")
    assert stored == {**body, "api_key": REDACTED, "X-Goog-Api-Key": REDACTED, "token": REDACTED}
    for secret in ("sk-live-123", "AIza-secret", "t0k"):
        assert secret not in (row.request_payload or "")


def test_oversize_payloads_are_left_out_and_coded() -> None:
    text = "x" * 2000
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": text}]}
    answer = orjson.dumps(openai_wire.chat_json({"model": "gpt-5"}))
    row = build_row(capture(apis.OPENAI_CHAT, body, [answer]), 1.0, 1000)
    assert row.request_payload is None and row.response_payload == answer.decode()
    assert row.logging_error_codes == [MAX_REQUEST_SIZE_EXCEEDED]
    row = build_row(capture(apis.OPENAI_CHAT, {"model": "m"}, [answer]), 1.0, len(answer) - 1)
    assert row.request_payload == '{"model":"m"}' and row.response_payload is None
    assert row.logging_error_codes == [MAX_RESPONSE_SIZE_EXCEEDED]


def test_stream_limit_applies_to_the_aggregated_answer_not_the_event_bytes() -> None:
    sent = openai_wire.chat_sse({"model": "gpt-5"})
    folded = build_row(capture(apis.OPENAI_CHAT, CHAT_BODY, sent, stream=True), 1.0, 1 << 20).response_payload
    assert folded is not None and len(folded) < len(b"".join(sent))
    row = build_row(capture(apis.OPENAI_CHAT, CHAT_BODY, sent, stream=True), 1.0, len(folded))
    assert row.response_payload == folded and row.logging_error_codes == []


def test_streamed_request_answered_with_an_error_body_keeps_the_body() -> None:
    error = orjson.dumps(gemini_wire.error_body(429))
    row = build_row(capture(apis.GEMINI_GENERATE, {"contents": []}, [error], stream=True), 1.0, 1 << 20)
    assert row.response_payload == error.decode() and row.logging_error_codes == []


def test_gemini_json_array_stream_is_aggregated_and_a_broken_one_kept_as_sent() -> None:
    chunks = gemini_wire.stream_chunks("gemini-2.5-flash", {})
    row = build_row(capture(apis.GEMINI_GENERATE, {"contents": []}, [orjson.dumps(chunks)], stream=True), 1.0, 1 << 20)
    parts = orjson.loads(row.response_payload or "")["candidates"][0]["content"]["parts"]
    assert parts == [{"text": "Hello from the fake"}]
    broken = orjson.dumps(chunks)[:-7]  # the connection dropped inside the array
    row = build_row(capture(apis.GEMINI_GENERATE, {"contents": []}, [broken], stream=True), 1.0, 1 << 20)
    assert row.response_payload == broken.decode() and row.logging_error_codes == [STREAM_AGGREGATION_FAILED]


def test_request_refused_by_an_input_guardrail_is_not_stored() -> None:
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": "my key ghp_secret"}]}
    cap = capture(apis.OPENAI_CHAT, body, [b'{"error": {}}'])
    cap.row.error_code, cap.row.status_code = "input_guardrail_triggered", 400
    row = build_row(cap, 1.0, 1 << 20)
    assert row.request_payload is None and row.logging_error_codes == [REQUEST_BLOCKED_BY_GUARDRAIL]
    assert row.response_payload == '{"error": {}}'


def test_nothing_sent_and_no_body_leave_the_payloads_null() -> None:
    row = build_row(capture(apis.OPENAI_CHAT, None, []), 1.0, 1 << 20)
    assert (row.request_payload, row.response_payload, row.logging_error_codes) == (None, None, [])


# ---------------------------------------------------------------- the sink and its stores


def test_sampling_fraction() -> None:
    log = InferenceLog("none", sample_rate=0.0)
    assert not any(log.sampled() for _ in range(1000))
    log.sample_rate = 1.0
    assert all(log.sampled() for _ in range(1000))
    log.sample_rate = 0.25
    random.seed(7)
    hits = sum(log.sampled() for _ in range(4000))
    assert 800 < hits < 1200


def test_policy_none_means_no_log() -> None:
    assert InferenceLog.from_policy(InferenceLogPolicy()) is None
    log = InferenceLog.from_policy(InferenceLogPolicy(store="jsonl:///x.jsonl", sample_rate=0.1, max_payload_bytes=9))
    assert log is not None and (log.sample_rate, log.max_payload_bytes) == (0.1, 9)


@pytest.mark.parametrize("scheme", ["sqlite", "jsonl"])
async def test_rows_reach_the_store_and_close_flushes(tmp_path: Path, scheme: str) -> None:
    url = f"{scheme}:///{tmp_path}/inference.{'db' if scheme == 'sqlite' else 'jsonl'}"
    log = InferenceLog(url, sample_rate=1.0, max_payload_bytes=1 << 20, flush_interval_s=30.0)
    await log.start()
    stream = anthropic_wire.message_sse({"model": "claude", "stream": True})
    log.submit(context(apis.ANTHROPIC_MESSAGES, {"model": "claude", "stream": True}, stream, stream=True),
               usage_row("req-1", streaming=True))
    log.submit(context(apis.OPENAI_CHAT, CHAT_BODY, None, request_id="req-2"), usage_row("req-2"))  # not sampled
    log.submit(context(apis.OPENAI_CHAT, {"model": "gpt-5"}, [], request_id="req-3"), usage_row("req-3", status=429))
    assert log.queue_depth == 2
    await log.close()  # nothing was flushed before: close writes it all
    rows = read_rows(url, INFERENCE_LOG)
    assert [r["request_id"] for r in rows] == ["req-1", "req-3"]
    assert set(rows[0]) == set(INFERENCE_COLUMNS)
    message = orjson.loads(rows[0]["response_payload"])
    assert message["type"] == "message" and message["content"] == [{"type": "text", "text": "Hello from the fake"}]
    assert rows[0]["streaming"] is True and rows[0]["logging_error_codes"] == []
    assert rows[0]["request_tags"] == {"team": "ml"} and rows[0]["sampling_fraction"] == 1.0
    assert (rows[1]["status_code"], rows[1]["response_payload"]) == (429, None)


async def test_usage_and_inference_log_share_a_database_file_but_not_a_spool(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/sidegate.db"
    assert spool_path(url) != default_spool_path(url)
    assert spool_path(url) == tmp_path / "sidegate.db.inference_log.spool.jsonl"
    log, usage = InferenceLog(url), UsageWriter(open_store(url, USAGE), spool_path=default_spool_path(url))
    await log.start()
    await usage.start()
    log.submit(context(apis.OPENAI_CHAT, CHAT_BODY, []), usage_row())
    usage.submit(usage_row("usage-1"))
    await log.close()
    await usage.close()
    with sqlite3.connect(tmp_path / "sidegate.db") as conn:
        assert conn.execute("SELECT request_id, streaming FROM inference_log").fetchall() == [("req-1", 0)]
    assert [r["request_id"] for r in read_rows(url, USAGE)] == ["usage-1"]
