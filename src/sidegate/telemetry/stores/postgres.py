"""The `postgresql://` store (asyncpg), for usage rows or any other kind of record (`RowSchema`).

asyncpg is asynchronous, but its connection does not run on the loop that serves requests: it lives
on an event loop of its own thread (`LoopThread`), so that encoding a batch of rows, parsing
replies and any slow moment of the database never stall a response. The writer awaits each write
from the serving loop; the thread runs one write at a time, on one connection.

A batch is one `INSERT … SELECT * FROM unnest($1::text[], …) ON CONFLICT (request_id) DO NOTHING`
statement: one round trip and one transaction per batch, idempotent when the writer replays a batch
whose commit reached the server but whose reply did not. A lost connection (server restart,
`pg_terminate_backend`, network) fails the write; the writer keeps the rows and retries, and the
next write connects again (and checks the table again). A row the server refuses for its content
would otherwise block every later row: its batch is retried one row at a time and only the refused
row is dropped, logged in full at error level.

URL: `postgresql://user:password@host:5432/db`; `postgresql+asyncpg://` is accepted too; query
parameters that libpq does not know are sent as server settings (`?search_path=sidegate`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import structlog

from sidegate.telemetry.stores.loop_thread import LoopThread, run_blocking
from sidegate.telemetry.stores.pg_schema import check_table, decode_record, encode_columns, insert_sql, prepare_table
from sidegate.telemetry.stores.schema import RowSchema
from sidegate.telemetry.stores.url import parse_store_url, redact_url

__all__ = ["PostgresStore", "asyncpg_dsn", "connect", "read_postgres_rows"]

log = structlog.get_logger("sidegate.usage")

# Errors caused by a row's values, not by the connection or the table: a client-side encoding
# error (asyncpg's DataError is a ValueError) or a server-side data exception (SQLSTATE class 22).
_ROW_ERRORS = (asyncpg.exceptions.DataError, ValueError, TypeError, OverflowError)


def asyncpg_dsn(url: str) -> str:
    """The URL as asyncpg takes it: without a `+driver` suffix on the scheme."""
    parsed = parse_store_url(url)
    if parsed.base_scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a postgresql URL: {redact_url(url)!r}")
    return "postgresql://" + parsed.raw.split("://", 1)[1]


async def connect(url: str, *, timeout_s: float = 10.0, command_timeout_s: float | None = 60.0) -> Any:
    """One asyncpg connection to the database a store URL names."""
    dsn = asyncpg_dsn(url)
    settings = {} if "application_name=" in dsn else {"application_name": "sidegate"}
    return await asyncpg.connect(dsn, timeout=timeout_s, command_timeout=command_timeout_s,
                                 server_settings=settings)


class PostgresStore:
    """Rows of one kind (`schema`) in a PostgreSQL table, created or migrated on open; `table`
    defaults to the schema's. See the module docstring."""

    def __init__(self, url: str, schema: RowSchema[Any], table: str | None = None, *,
                 connect_timeout_s: float = 10.0, command_timeout_s: float = 60.0) -> None:
        asyncpg_dsn(url)  # a URL of another scheme is a configuration error, found now
        self.url = url
        self.schema: RowSchema[Any] = schema
        self.table = check_table(table or self.schema.table)
        self._connect_timeout = connect_timeout_s
        self._command_timeout = command_timeout_s
        self._insert = insert_sql(self.schema, self.table)
        self._thread: LoopThread | None = None
        self._conn: Any = None  # an asyncpg.Connection, used only on the thread's loop

    @property
    def backend_pid(self) -> int | None:
        """The server process of the current connection (None between connections)."""
        conn = self._conn
        return None if conn is None or conn.is_closed() else int(conn.get_server_pid())

    async def open(self) -> None:
        if self._thread is not None:
            return
        thread = LoopThread("sidegate-usage-postgres")
        try:
            await thread.run(self._connected())
        except BaseException:
            await asyncio.to_thread(thread.stop)
            raise
        self._thread = thread

    async def write(self, rows: list[Any]) -> None:
        if not rows:
            return
        if self._thread is None:
            raise RuntimeError("postgresql store is not open")
        await self._thread.run(self._write(rows))

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            await thread.run(self._disconnect())
        finally:
            await asyncio.to_thread(thread.stop)

    # On the store's thread

    async def _connected(self) -> Any:
        conn = self._conn
        if conn is not None and not conn.is_closed():
            return conn
        self._conn = None
        conn = await connect(self.url, timeout_s=self._connect_timeout, command_timeout_s=self._command_timeout)
        try:
            added = await prepare_table(conn, self.schema, self.table)
        except BaseException:
            conn.terminate()
            raise
        if added:
            log.info("table migrated", table=self.table, added_columns=added)
        self._conn = conn
        return conn

    async def _write(self, rows: list[Any]) -> None:
        conn = await self._connected()
        try:
            try:
                await conn.execute(self._insert, *encode_columns(self.schema, rows))
            except _ROW_ERRORS as exc:
                await self._write_each(conn, rows, exc)
        except BaseException:
            self._conn = None  # the connection's state is unknown: the next write starts a new one
            conn.terminate()
            raise

    async def _write_each(self, conn: Any, rows: list[Any], batch_error: Exception) -> None:
        label = self.schema.label
        log.warning(f"{label} batch refused for its content; writing its rows one by one",
                    table=self.table, rows=len(rows), error=str(batch_error))
        for row in rows:
            try:
                await conn.execute(self._insert, *encode_columns(self.schema, [row]))
            except _ROW_ERRORS as exc:
                log.error(f"{label} row refused by postgresql and dropped", table=self.table,
                          key=getattr(row, self.schema.key), error=str(exc),
                          row=self.schema.encode_json(row).decode().rstrip())

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await conn.close(timeout=5)
        except Exception:
            conn.terminate()


async def _fetch_rows(url: str, table: str, schema: RowSchema[Any]) -> list[dict[str, Any]]:
    conn = await connect(url)
    try:
        if await conn.fetchval("SELECT to_regclass($1)", table) is None:
            return []
        records = await conn.fetch(f"SELECT * FROM {table} ORDER BY {schema.time_column}, {schema.key}")
        return [decode_record(schema, r) for r in records]
    finally:
        with contextlib.suppress(Exception):
            await conn.close(timeout=5)


def read_postgres_rows(url: str, schema: RowSchema[Any], table: str | None = None) -> list[dict[str, Any]]:
    """Every row of the table (the schema's unless named) ordered by (event_time, request_id), as dicts
    of the schema's columns. Blocking: it runs a loop of its own on a worker thread, so it may be
    called from async code too."""
    return run_blocking(_fetch_rows(url, check_table(table or schema.table), schema))
