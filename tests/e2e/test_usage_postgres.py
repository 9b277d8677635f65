"""The postgresql:// usage store on a real PostgreSQL: types, indexes, idempotence, migration of an
older table, values PostgreSQL would refuse, and the writer across a killed connection and a server
that is down at start (nothing lost, nothing duplicated, order kept)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import pytest
from structlog.testing import capture_logs
from tests.support.gateway import GatewayFactory
from tests.support.tcp_proxy import TcpProxy
from tests.support.usage_rows import BASE, ids, make_row, wait_until

from sidegate.telemetry.inference.row import INFERENCE_LOG, InferenceRow
from sidegate.telemetry.stores.postgres import PostgresStore, read_postgres_rows
from sidegate.telemetry.stores.registry import open_store, read_rows
from sidegate.telemetry.stores.url import default_spool_path, redact_url
from sidegate.telemetry.usage.row import USAGE, USAGE_COLUMNS, UsageRow
from sidegate.telemetry.usage.writer import UsageWriter

pytest_plugins = ["tests.support.pg_service"]  # the pg_url and pg_admin fixtures

class RecordingStore:
    """Wraps a store; keeps the request ids of every batch that was written, in write order."""

    def __init__(self, inner: PostgresStore) -> None:
        self.inner = inner
        self.written: list[str] = []
        self.failures = 0

    async def open(self) -> None:
        await self.inner.open()

    async def write(self, rows: list[UsageRow]) -> None:
        try:
            await self.inner.write(rows)
        except Exception:
            self.failures += 1
            raise
        self.written.extend(r.request_id for r in rows)

    async def close(self) -> None:
        await self.inner.close()


# ----------------------------------------------------------------------------------------- store


async def test_round_trip_column_types_and_indexes(pg_url: str, pg_admin: Any) -> None:
    store = open_store(pg_url, USAGE)
    assert isinstance(store, PostgresStore)
    await store.open()
    rows = [make_row(0), make_row(1, status_code=502, error_code="UPSTREAM_5XX", request_tags={},
                                  routing_information=[], tokens_estimated=True)]
    await store.write(rows)
    await store.close()
    assert read_rows(pg_url, USAGE) == [r.as_dict() for r in rows]

    schema = pg_url.rsplit("=", 1)[1]
    types = dict(await pg_admin.fetch(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 "
        "AND table_name = 'usage'", schema))
    assert list(types) == list(USAGE_COLUMNS) or set(types) == set(USAGE_COLUMNS)
    assert types["event_time"] == "timestamp with time zone"
    assert {types[c] for c in ("request_tags", "routing_information", "guardrail_results")} == {"jsonb"}
    assert types["streaming"] == "boolean" and types["input_tokens"] == "bigint"
    assert types["latency_ms"] == "double precision"
    indexes = {r["indexname"]: r["indexdef"] for r in await pg_admin.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1", schema)}
    assert indexes["usage_pkey"].endswith("(request_id)")
    assert indexes["usage_event_time_idx"].endswith("(event_time)")
    assert indexes["usage_requester_time_idx"].endswith("(requester, event_time)")
    assert "gin (request_tags jsonb_path_ops)" in indexes["usage_tags_idx"]
    found = await pg_admin.fetch(f"SELECT request_id FROM {schema}.usage WHERE request_tags @> $1::jsonb "
                                 "ORDER BY request_id", '{"project": "p1"}')
    assert [r[0] for r in found] == []  # row 1 has no tags
    found = await pg_admin.fetch(f"SELECT request_id FROM {schema}.usage WHERE request_tags @> $1::jsonb",
                                 '{"project": "p0"}')
    assert [r[0] for r in found] == ["req-000000"]


async def test_insert_is_idempotent(pg_url: str) -> None:
    store = PostgresStore(pg_url, USAGE)
    await store.open()
    await store.write([make_row(1), make_row(2)])
    await store.write([make_row(2, status_code=500), make_row(3), make_row(3)])  # a duplicate in one batch too
    await store.close()
    got = read_postgres_rows(pg_url, USAGE)
    assert ids(got) == ["req-000001", "req-000002", "req-000003"]
    assert got[1]["status_code"] == 200  # the first write wins


async def test_older_table_gets_the_missing_columns(pg_url: str, pg_admin: Any) -> None:
    schema = pg_url.rsplit("=", 1)[1]
    await pg_admin.execute(f"CREATE TABLE {schema}.usage (request_id text PRIMARY KEY, event_time timestamptz, "
                           "requester text, total_tokens bigint)")
    await pg_admin.execute(f"INSERT INTO {schema}.usage VALUES ('old-1', '2025-01-01T00:00:00Z', 'bob', 7)")
    store = PostgresStore(pg_url, USAGE)
    with capture_logs() as logs:
        await store.open()
    assert [e["event"] for e in logs] == ["table migrated"]
    assert "request_tags" in logs[0]["added_columns"] and "requester" not in logs[0]["added_columns"]
    await store.write([make_row(5)])
    await store.close()
    old, new = read_rows(pg_url, USAGE)
    assert old["request_id"] == "old-1" and old["requester"] == "bob" and old["total_tokens"] == 7
    assert old["request_tags"] is None and old["event_time"] == "2025-01-01T00:00:00+00:00"
    assert new == make_row(5).as_dict()
    store = PostgresStore(pg_url, USAGE)  # a second open changes nothing
    with capture_logs() as logs:
        await store.open()
        await store.close()
    assert logs == []
    # indexes come with a new table only: none is built on an existing (possibly large) one
    indexes = await pg_admin.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = $1", schema)
    assert [r[0] for r in indexes] == ["usage_pkey"]


async def test_values_postgres_refuses_are_made_storable(pg_url: str) -> None:
    store = PostgresStore(pg_url, USAGE)
    await store.open()
    odd = make_row(1, model_service="gpt\x00x", request_tags={"te\x00am": "m\x00l"}, input_tokens=2**70,
                   guardrail_results=[{"note": "a\x00b", "n": float("nan")}], event_time="not a time")
    await store.write([odd])
    await store.close()
    (got,) = read_rows(pg_url, USAGE)
    assert got["model_service"] == "gpt\ufffdx"
    assert got["request_tags"] == {"te\ufffdam": "m\ufffdl"}
    assert got["guardrail_results"] == [{"note": "a\ufffdb", "n": None}]
    assert got["input_tokens"] == 2**63 - 1
    assert abs(datetime.fromisoformat(got["event_time"]) - datetime.now(UTC)) < timedelta(hours=1)


async def test_a_row_that_cannot_be_encoded_is_dropped_alone(pg_url: str) -> None:
    store = PostgresStore(pg_url, USAGE)
    await store.open()
    with capture_logs() as logs:
        await store.write([make_row(1), make_row(2, status_code="abc"), make_row(3)])
    await store.close()
    assert ids(read_rows(pg_url, USAGE)) == ["req-000001", "req-000003"]
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1 and errors[0]["key"] == "req-000002" and '"status_code":"abc"' in errors[0]["row"]


async def test_inference_log_rows_in_their_own_table(pg_url: str) -> None:
    store = open_store(pg_url, INFERENCE_LOG)
    assert isinstance(store, PostgresStore) and store.table == "inference_log"
    row = InferenceRow(request_id="req-1", event_time=BASE.isoformat(), requester="alice", model_service="gpt",
                       status_code=200, streaming=True, request_payload='{"messages": []}', response_payload=None,
                       sampling_fraction=0.25, logging_error_codes=["MAX_RESPONSE_SIZE_EXCEEDED"],
                       request_tags={"project": "x"})
    await store.open()
    await store.write([row, row])
    await store.close()
    assert read_rows(pg_url, INFERENCE_LOG) == [INFERENCE_LOG.as_dict(row)]
    assert read_rows(pg_url, USAGE) == []  # no usage table yet


# ----------------------------------------------------------------------------------------- writer


async def test_writer_survives_killed_connections(pg_url: str, pg_admin: Any, tmp_path: Path) -> None:
    store = PostgresStore(pg_url, USAGE)
    recording = RecordingStore(store)
    writer = UsageWriter(recording, batch_size=25, flush_interval_s=0.005, retry_initial_s=0.01,
                         retry_max_s=0.05, spool_path=tmp_path / "spool.jsonl")
    await writer.start()
    pids: list[int] = []
    total = 1500
    for i in range(total):
        writer.submit(make_row(i))
        if i % 500 == 250:  # the writer's server process is killed while rows keep coming
            await wait_until(lambda: store.backend_pid is not None)
            pid = store.backend_pid
            assert pid is not None
            pids.append(pid)
            assert await pg_admin.fetchval("SELECT pg_terminate_backend($1)", pid) is True
        if i % 20 == 0:
            await asyncio.sleep(0.002)
    await wait_until(lambda: writer.queue_depth == 0)
    await writer.close()
    expected = [f"req-{i:06d}" for i in range(total)]
    assert ids(read_rows(pg_url, USAGE)) == expected  # nothing lost, nothing duplicated
    assert recording.written == expected  # written in submission order, each batch once
    assert len(set(pids)) == 3  # a new server process after each kill
    assert not (tmp_path / "spool.jsonl").exists()


async def test_store_down_at_start_then_up(pg_url: str, tmp_path: Path) -> None:
    proxy = TcpProxy(pg_url)  # nothing listens on its port yet
    url = proxy.url
    recording = RecordingStore(PostgresStore(url, USAGE, connect_timeout_s=2))
    writer = UsageWriter(recording, batch_size=10, flush_interval_s=0.005, retry_initial_s=0.01,
                         retry_max_s=0.05, max_pending=20, spool_path=tmp_path / "spool.jsonl")
    try:
        with capture_logs() as logs:
            await writer.start()  # does not raise: an outage
            for i in range(50):
                writer.submit(make_row(i))
                await asyncio.sleep(0.001)
            await wait_until(lambda: (tmp_path / "spool.jsonl").exists())  # past max_pending: oldest spooled
            assert writer.queue_depth == 50 and read_rows(pg_url, USAGE) == []
            await proxy.start()
            await wait_until(lambda: writer.queue_depth == 0)
            await writer.close()
    finally:
        await proxy.stop()
    expected = [f"req-{i:06d}" for i in range(50)]
    assert ids(read_rows(pg_url, USAGE)) == expected
    assert recording.written == expected
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["usage store unavailable"]
    assert "usage store recovered" in [e["event"] for e in logs]
    assert not (tmp_path / "spool.jsonl").exists()


async def test_close_while_down_spools_and_the_next_start_replays(pg_url: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDEGATE_SPOOL_DIR", str(tmp_path / "spool"))
    proxy = TcpProxy(pg_url)
    url = proxy.url
    spool = default_spool_path(url)
    assert spool is not None and spool.parent == tmp_path / "spool"
    writer = UsageWriter(PostgresStore(url, USAGE, connect_timeout_s=2), spool_path=spool, retry_initial_s=0.01)
    await writer.start()
    for i in range(7):
        writer.submit(make_row(i))
    await writer.close(timeout_s=0.5)
    assert len(spool.read_bytes().splitlines()) == 7
    saved = spool.read_bytes()
    await proxy.start()
    try:
        for _ in range(2):  # the same spool replayed twice: no duplicates
            spool.write_bytes(saved)
            writer = UsageWriter(PostgresStore(url, USAGE), spool_path=spool)
            await writer.start()
            assert not spool.exists()
            writer.submit(make_row(7))
            await writer.close()
            assert ids(read_rows(pg_url, USAGE)) == [f"req-{i:06d}" for i in range(8)]
    finally:
        await proxy.stop()


# ----------------------------------------------------------------------------------------- URLs, gateway


def test_spool_path_and_redaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIDEGATE_SPOOL_DIR", raising=False)
    a = default_spool_path("postgresql://u:secret@db:5432/usage")
    assert a is not None and a.parent == tmp_path and a.name.startswith("sidegate-usage-postgresql-")
    assert a == default_spool_path("postgresql://u:rotated@db:5432/usage")  # same file after a password change
    assert a != default_spool_path("postgresql://u@db:5432/other")
    monkeypatch.setenv("SIDEGATE_SPOOL_DIR", "/var/spool/sidegate")
    b = default_spool_path("postgresql+asyncpg://db/usage")
    assert b is not None and b.parent == Path("/var/spool/sidegate")
    assert redact_url("postgresql://u:secret@db:5432/usage?x=1") == "postgresql://u:***@db:5432/usage?x=1"
    assert redact_url("postgresql://u@db/usage") == "postgresql://u@db/usage"
    with pytest.raises(ValueError, match="table"):
        PostgresStore("postgresql://db/x", USAGE, table="usage; DROP")


async def test_gateway_writes_usage_to_postgres(gateway: GatewayFactory, pg_url: str,
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USAGE_URL", pg_url)
    gw = await gateway("""
        providers: {echo: {kind: mock}}
        models: {echo: {destinations: [{provider: echo}]}}
        usage: {store: "${USAGE_URL}"}
    """)
    client = openai.AsyncOpenAI(base_url=gw.base + "/mlflow/v1", api_key="sk-test-alice")
    reply = await client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi pg"}],
                                                 extra_headers={"X-Sidegate-Request-Tags": '{"project": "pg"}'})
    assert reply.choices[0].message.content == "hi pg"
    rows = await gw.rows()
    assert len(rows) == 1
    row = rows[0]
    assert row["requester"] == "alice@example.com" and row["model_service"] == "echo"
    assert row["status_code"] == 200 and row["request_tags"]["project"] == "pg"
    assert datetime.fromisoformat(row["event_time"]).tzinfo is not None
    assert gw.state.usage.queue_depth == 0
