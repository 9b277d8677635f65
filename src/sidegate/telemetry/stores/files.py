"""File-backed stores (SQLite, JSONL) and the discarding `none` store, for any record kind
(`RowSchema`): usage rows and inference-log rows go through the same code.

Stores never block the event loop: each owns a single-thread executor where all file and SQLite
I/O runs, which also serialises writes. `write` raises on failure; retrying, batching and
spooling are the writer's job (`writer.RowWriter`). SQLite inserts are `INSERT OR IGNORE` on the
schema's key (`request_id`), so replays are idempotent. JSONL is append-only: a replay after a crash
can append a row twice; `registry.read_rows` keeps the first row of each `request_id`.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Generic, Protocol, TypeVar

import orjson

from sidegate.telemetry.stores.schema import SQL_TYPES, R, RowSchema

T = TypeVar("T")

TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RowStore(Protocol[R]):
    async def open(self) -> None: ...

    async def write(self, rows: list[R]) -> None: ...

    async def close(self) -> None: ...


class ThreadedStore(Generic[R]):
    """Owns a single worker thread; all blocking I/O of the store runs there, in order. A store
    implements `_open_sync`, `_write_sync` (one batch, not empty) and `_close_sync`."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError(f"{type(self).__name__} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sidegate-store")
        try:
            await self._run(self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        executor = self._executor
        if executor is None:
            return
        try:
            await self._run(self._close_sync)
        finally:
            self._executor = None
            executor.shutdown(wait=False)

    async def write(self, rows: list[R]) -> None:
        if rows:
            await self._run(self._write_sync, rows)

    def _open_sync(self) -> None:
        raise NotImplementedError

    def _write_sync(self, rows: list[R]) -> None:
        raise NotImplementedError

    def _close_sync(self) -> None:
        raise NotImplementedError


class SqliteStore(ThreadedStore[R]):
    """One table in a SQLite file (WAL mode); columns added in a later version are added on open."""

    def __init__(self, path: Path, schema: RowSchema[R], table: str | None = None) -> None:
        """`table` defaults to the schema's."""
        super().__init__()
        self.schema: RowSchema[Any] = schema
        table = table or schema.table
        if not TABLE_RE.match(table):
            raise ValueError(f"invalid table name {table!r}")
        self.path = path
        self.table = table
        self._conn: sqlite3.Connection | None = None
        cols = ", ".join(self.schema.columns)
        marks = ", ".join("?" for _ in self.schema.columns)
        self._insert_sql = f"INSERT OR IGNORE INTO {table} ({cols}) VALUES ({marks})"

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"could not enable WAL mode on {self.path} (got {mode})")
            conn.execute("PRAGMA synchronous=NORMAL")
            schema, table = self.schema, self.table
            defs = []
            for name in schema.columns:
                pk = " PRIMARY KEY NOT NULL" if name == schema.key else ""
                defs.append(f"{name} {SQL_TYPES[schema.kinds[name]]}{pk}")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(defs)})")
            existing = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            for name in schema.columns:  # columns added in a later version
                if name not in existing:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {SQL_TYPES[schema.kinds[name]]}")
            column = schema.time_column
            conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_{column}_idx ON {table} ({column})")
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _write_sync(self, rows: list[R]) -> None:
        conn = self._conn
        if conn is None:
            raise RuntimeError("sqlite store is not open")
        params = [self.schema.sql_values(r) for r in rows]
        conn.execute("BEGIN")
        try:
            conn.executemany(self._insert_sql, params)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


class JsonlStore(ThreadedStore[R]):
    """One JSON object per line, appended; one write and flush per batch."""

    def __init__(self, path: Path, schema: RowSchema[R]) -> None:
        super().__init__()
        self.schema: RowSchema[Any] = schema
        self.path = path
        self._fh: IO[bytes] | None = None

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+b")  # noqa: SIM115 - kept open for the store's lifetime
        try:
            fh.seek(0, 2)
            if fh.tell() > 0:  # a crash can leave a partial last line; start ours on a fresh one
                fh.seek(-1, 2)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")
                    fh.flush()
        except BaseException:
            fh.close()
            raise
        self._fh = fh

    def _close_sync(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _write_sync(self, rows: list[R]) -> None:
        if self._fh is None:
            raise RuntimeError("jsonl store is not open")
        encode = self.schema.encode_json
        self._fh.write(b"".join(encode(r) for r in rows))
        self._fh.flush()


def jsonl_rows(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The rows of a JSONL store's lines, as written: blank lines and a partial line left by a crash
    are skipped, and of rows with the same `request_id` (a replay) only the first is kept."""
    seen: set[Any] = set()
    for line in lines:
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(row, dict) or row.get("request_id") in seen:
            continue
        seen.add(row.get("request_id"))
        yield row


class NullStore:
    """`none`: rows are accepted and discarded."""

    async def open(self) -> None:
        return None

    async def write(self, rows: list[Any]) -> None:
        return None

    async def close(self) -> None:
        return None
