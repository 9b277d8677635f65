from __future__ import annotations

import asyncio
import inspect
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from structlog.testing import capture_logs
from tests.support.usage_rows import ids, make_row, wait_until

from sidegate.telemetry.stores.files import JsonlStore, NullStore, RowStore, SqliteStore
from sidegate.telemetry.stores.postgres import PostgresStore, read_postgres_rows
from sidegate.telemetry.stores.registry import open_store, read_rows
from sidegate.telemetry.stores.schema import RowSchema
from sidegate.telemetry.stores.url import default_spool_path, parse_store_url
from sidegate.telemetry.usage.row import USAGE, USAGE_COLUMNS, UsageRow
from sidegate.telemetry.usage.writer import UsageWriter


class CountingStore:
    """Wraps a store: records batch sizes; fails while `down` is set; can hang writes."""

    def __init__(self, inner: RowStore[UsageRow]) -> None:
        self.inner = inner
        self.batches: list[int] = []
        self.down = False
        self.hang = False
        self.failures = 0
        self.opens = 0
        self.closes = 0

    async def open(self) -> None:
        self.opens += 1
        await self.inner.open()

    async def write(self, rows: list[UsageRow]) -> None:
        if self.hang:
            await asyncio.Event().wait()
        if self.down:
            self.failures += 1
            raise ConnectionError("store is down")
        await self.inner.write(rows)
        self.batches.append(len(rows))

    async def close(self) -> None:
        self.closes += 1
        await self.inner.close()


# ----------------------------------------------------------------------------------------- stores


async def test_sqlite_round_trip_all_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/usage.db"  # absolute path -> four slashes
    assert url.startswith("sqlite:////")
    store = open_store(url, USAGE)
    assert isinstance(store, SqliteStore)
    await store.open()
    rows = [make_row(1), make_row(2, streaming=False, tokens_estimated=True, time_to_first_byte_ms=4.25,
                                  request_tags={}, routing_information=[], error_code="UPSTREAM_5XX")]
    await store.write(rows)
    await store.close()

    got = read_rows(url, USAGE)
    assert got == [r.as_dict() for r in rows]
    assert list(got[0]) == list(USAGE_COLUMNS)
    assert got[0]["streaming"] is True and got[1]["tokens_estimated"] is True
    assert got[0]["time_to_first_byte_ms"] is None

    conn = sqlite3.connect(tmp_path / "usage.db")
    raw = conn.execute("SELECT streaming, tokens_estimated, request_tags, guardrail_results FROM usage "
                       "ORDER BY rowid").fetchall()
    assert raw[0][:2] == (1, 0) and isinstance(raw[0][0], int)
    assert orjson.loads(raw[0][2]) == {"team": "ml", "project": "p1"}
    assert isinstance(raw[0][3], str)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    idx = conn.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='usage'").fetchall()
    assert ("usage_event_time_idx",) in idx
    conn.close()


async def test_sqlite_insert_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/u.db"
    store = open_store(url, USAGE)
    await store.open()
    await store.write([make_row(1), make_row(2)])
    await store.write([make_row(2, status_code=500), make_row(3)])
    await store.close()
    got = read_rows(url, USAGE)
    assert ids(got) == ["req-000001", "req-000002", "req-000003"]
    assert got[1]["status_code"] == 200  # first write wins


async def test_sqlite_relative_url_and_parent_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///data/nested/usage.db", USAGE)
    assert isinstance(store, SqliteStore)
    assert store.path == tmp_path / "data" / "nested" / "usage.db"
    await store.open()
    await store.write([make_row(1)])
    await store.close()
    assert (tmp_path / "data" / "nested" / "usage.db").exists()
    monkeypatch.chdir("/")  # parsed path stays absolute
    assert ids(read_rows(f"sqlite:////{str(tmp_path).lstrip('/')}/data/nested/usage.db", USAGE)) == ["req-000001"]


def test_parse_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_store_url("sqlite:///rel.db").path == tmp_path / "rel.db"
    assert parse_store_url("sqlite:////abs/x.db").path == Path("/abs/x.db")
    assert parse_store_url("jsonl:///logs/u.jsonl").path == tmp_path / "logs" / "u.jsonl"
    assert parse_store_url("jsonl:////var/log/u.jsonl").path == Path("/var/log/u.jsonl")
    assert isinstance(open_store("none", USAGE), NullStore)
    assert isinstance(open_store("jsonl:///u.jsonl", USAGE), JsonlStore)
    assert default_spool_path("sqlite:////abs/x.db") == Path("/abs/x.db.spool.jsonl")
    assert default_spool_path("none") is None
    assert isinstance(open_store("postgresql://user@db/usage", USAGE), PostgresStore)  # built, not connected
    assert isinstance(open_store("postgresql+asyncpg://db/usage", USAGE), PostgresStore)
    with pytest.raises(ValueError, match="unknown usage store scheme 'mongodb'"):
        open_store("mongodb://x/y", USAGE)
    for bad in ("", "usage.db", "sqlite://", "sqlite://relative.db"):
        with pytest.raises(ValueError):
            open_store(bad, USAGE)
    with pytest.raises(ValueError, match="table"):
        open_store("sqlite:///x.db", USAGE, table="usage; DROP")


@dataclass
class Note:
    request_id: str
    event_time: str
    text: str = ""
    tags: dict[str, str] = field(default_factory=dict)


NOTES: RowSchema[Note] = RowSchema("notes", Note, ("request_id", "event_time", "text", "tags"), "note")


def test_stores_take_their_schema_explicitly() -> None:
    for build in (SqliteStore, JsonlStore, PostgresStore, open_store, read_rows, read_postgres_rows):
        schema = inspect.signature(build).parameters["schema"]
        assert schema.default is inspect.Parameter.empty, f"{build.__name__} defaults its schema"


@pytest.mark.parametrize("scheme", ["sqlite", "jsonl"])
async def test_a_store_holds_the_rows_of_the_schema_it_is_given(tmp_path: Path, scheme: str) -> None:
    url = f"{scheme}:///{tmp_path}/notes.{scheme}"
    rows = [Note("n-1", "2026-01-01T00:00:00Z", "first", {"k": "v"}), Note("n-2", "2026-01-01T00:00:01Z")]
    store = open_store(url, NOTES)
    await store.open()
    await store.write(rows)
    await store.close()
    assert read_rows(url, NOTES) == [NOTES.as_dict(r) for r in rows]
    if scheme == "sqlite":
        conn = sqlite3.connect(tmp_path / "notes.sqlite")
        try:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
        assert tables == {"notes"}  # no usage table beside it


async def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "usage.jsonl"
    url = f"jsonl:///{path}"
    store = open_store(url, USAGE)
    await store.open()
    rows = [make_row(i, tokens_estimated=bool(i % 2), time_to_first_byte_ms=(None if i else 3.5))
            for i in range(3)]
    await store.write(rows[:2])
    await store.write(rows[2:])
    await store.close()
    assert read_rows(url, USAGE) == [r.as_dict() for r in rows]
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3 and [orjson.loads(line)["streaming"] for line in lines] == [False, True, False]
    # a partial line left by a crash does not corrupt the next batch
    with open(path, "ab") as fh:
        fh.write(b'{"request_id": "torn')
    store = open_store(url, USAGE)
    await store.open()
    await store.write([make_row(9), make_row(1)])  # req-000001 duplicates: reader keeps the first
    await store.close()
    assert ids(read_rows(url, USAGE)) == ["req-000000", "req-000001", "req-000002", "req-000009"]


async def test_none_store_discards() -> None:
    writer = UsageWriter(open_store("none", USAGE), flush_interval_s=0.01)
    await writer.start()
    writer.submit(make_row(1))
    await writer.flush()
    assert writer.queue_depth == 0
    await writer.close()
    assert read_rows("none", USAGE) == []


# ----------------------------------------------------------------------------------------- writer


async def test_writer_batches_and_flushes_on_close(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/u.db"
    store = CountingStore(open_store(url, USAGE))
    writer = UsageWriter(store, batch_size=500, flush_interval_s=10.0)
    await writer.start()
    for i in range(1200):
        writer.submit(make_row(i))
    assert writer.queue_depth == 1200
    await writer.flush()
    assert store.batches == [500, 500, 200]
    assert writer.queue_depth == 0
    for i in range(1200, 1203):
        writer.submit(make_row(i))
    await writer.close()
    assert store.batches[-1] == 3 and store.closes == 1
    assert ids(read_rows(url, USAGE)) == [f"req-{i:06d}" for i in range(1203)]
    await writer.close()  # second close is a no-op
    assert store.closes == 1


async def test_writer_background_triggers(tmp_path: Path) -> None:
    store = CountingStore(open_store(f"sqlite:///{tmp_path}/u.db", USAGE))
    # batch_size reached -> written without waiting for the (long) interval
    writer = UsageWriter(store, batch_size=10, flush_interval_s=30.0)
    await writer.start()
    for i in range(10):
        writer.submit(make_row(i))
    await wait_until(lambda: store.batches == [10])
    await writer.close()
    # interval elapsed -> partial batch written
    store2 = CountingStore(open_store(f"sqlite:///{tmp_path}/u2.db", USAGE))
    writer = UsageWriter(store2, batch_size=100, flush_interval_s=0.02)
    await writer.start()
    writer.submit(make_row(1))
    writer.submit(make_row(2))
    await wait_until(lambda: store2.batches == [2])
    assert writer.queue_depth == 0
    await writer.close()


async def test_outage_retains_rows_logs_once_and_recovers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/u.db"
    store = CountingStore(open_store(url, USAGE))
    writer = UsageWriter(store, batch_size=4, flush_interval_s=0.005,
                         retry_initial_s=0.005, retry_max_s=0.02, spool_path=tmp_path / "u.spool")
    with capture_logs() as logs:
        await writer.start()
        store.down = True
        for i in range(10):
            writer.submit(make_row(i))
        await wait_until(lambda: store.failures >= 4)
        assert writer.queue_depth == 10
        for i in range(10, 15):
            writer.submit(make_row(i))
        store.down = False
        await wait_until(lambda: writer.queue_depth == 0)
        await writer.close()
    assert ids(read_rows(url, USAGE)) == [f"req-{i:06d}" for i in range(15)]
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["error"] == "store is down"
    assert [e["event"] for e in logs if e["log_level"] == "info"] == ["usage store recovered"]
    assert not (tmp_path / "u.spool").exists()


async def test_close_while_failing_spools_and_next_start_replays(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/u.db"
    spool = default_spool_path(url)
    assert spool is not None
    store = CountingStore(open_store(url, USAGE))
    store.down = True
    writer = UsageWriter(store, flush_interval_s=0.01, retry_initial_s=0.01, spool_path=spool)
    await writer.start()
    for i in range(5):
        writer.submit(make_row(i))
    await writer.close(timeout_s=0.5)
    assert spool.exists() and len(spool.read_bytes().splitlines()) == 5
    assert read_rows(url, USAGE) == []
    # submit after close goes straight to the spool, and never raises
    writer.submit(make_row(5))
    assert len(spool.read_bytes().splitlines()) == 6
    saved = spool.read_bytes()

    for _ in range(2):  # replaying the same spool twice yields no duplicates
        spool.write_bytes(saved)
        writer2 = UsageWriter(open_store(url, USAGE), spool_path=spool, flush_interval_s=0.01)
        assert writer2.queue_depth == 0
        await writer2.start()
        assert not spool.exists()
        writer2.submit(make_row(6))
        await writer2.close()
        assert ids(read_rows(url, USAGE)) == [f"req-{i:06d}" for i in range(7)]
    assert read_rows(url, USAGE)[0] == make_row(0).as_dict()


async def test_spool_replays_before_new_rows_and_skips_bad_lines(tmp_path: Path) -> None:
    url = f"jsonl:///{tmp_path}/u.jsonl"
    spool = tmp_path / "u.spool.jsonl"
    spool.write_bytes(b"".join(orjson.dumps(make_row(i).as_dict()) + b"\n" for i in range(3)) + b"{bad\n")
    writer = UsageWriter(open_store(url, USAGE), spool_path=spool, batch_size=2, flush_interval_s=5)
    writer.submit(make_row(3))  # submitted before start: still written after the spooled rows
    assert writer.queue_depth == 1
    await writer.start()
    assert writer.queue_depth == 0
    await writer.close()
    assert ids(read_rows(url, USAGE)) == [f"req-{i:06d}" for i in range(4)]


async def test_memory_bound_spills_oldest_to_spool(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/u.db"
    spool = tmp_path / "u.spool.jsonl"
    store = CountingStore(open_store(url, USAGE))
    writer = UsageWriter(store, batch_size=5, max_pending=10, flush_interval_s=0.005,
                         retry_initial_s=0.005, retry_max_s=0.01, spool_path=spool)
    await writer.start()
    store.down = True
    for i in range(40):
        writer.submit(make_row(i))
        if i % 10 == 9:
            await asyncio.sleep(0.02)
    await wait_until(lambda: len(writer._pending) <= 10)
    assert spool.exists() and writer.queue_depth == 40
    store.down = False
    await wait_until(lambda: writer.queue_depth == 0)
    await writer.close()
    assert ids(read_rows(url, USAGE)) == [f"req-{i:06d}" for i in range(40)]
    assert not spool.exists()


async def test_close_times_out_on_hanging_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/u.db"
    spool = tmp_path / "u.spool.jsonl"
    store = CountingStore(open_store(url, USAGE))
    writer = UsageWriter(store, flush_interval_s=0.01, spool_path=spool)
    await writer.start()
    store.hang = True
    writer.submit(make_row(1))
    await asyncio.sleep(0.03)  # background write is now stuck
    await asyncio.wait_for(writer.close(timeout_s=0.2), 2)
    assert len(spool.read_bytes().splitlines()) == 1
    writer2 = UsageWriter(open_store(url, USAGE), spool_path=spool)
    await writer2.start()
    await writer2.close()
    assert ids(read_rows(url, USAGE)) == ["req-000001"]


async def test_submit_never_raises_and_restart(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    writer = UsageWriter(open_store("none", USAGE), spool_path=blocker / "spool.jsonl")  # unwritable
    await writer.start()
    await writer.close()
    writer.submit(make_row(1))  # spool append fails: logged, not raised
    writer_nospool = UsageWriter(open_store("none", USAGE))
    await writer_nospool.close()
    writer_nospool.submit(make_row(2))

    url = f"sqlite:///{tmp_path}/u.db"
    store = CountingStore(open_store(url, USAGE))
    writer = UsageWriter(store, flush_interval_s=0.01, spool_path=tmp_path / "s.jsonl")
    for n in range(3):  # start/close repeatedly, rows submitted while closed are not lost
        await writer.start()
        writer.submit(make_row(2 * n))
        await writer.close()
        writer.submit(make_row(2 * n + 1))
    await writer.start()
    await writer.close()
    assert ids(read_rows(url, USAGE)) == [f"req-{i:06d}" for i in range(6)]
    assert store.opens == 4 and store.closes == 4
