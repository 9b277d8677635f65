"""Row stores by URL: where finished records (usage rows, inference-log rows) end up.

A store is chosen by URL (see `url`): `sqlite:///rel.db`, `sqlite:////abs.db`, `jsonl:` URLs
likewise, `postgresql://…` (`postgres`, asyncpg imported only when used), `none` discards.
Stores are selected through `STORE_FACTORIES` (URL scheme -> factory). Every store is given the
`RowSchema` of the records it holds; the table defaults to the schema's.

Stores never block the event loop: each file store owns a single-thread executor where all file and
SQLite I/O runs, which also serialises writes (PostgreSQL runs asyncpg on an event loop of its own
thread). `write` raises on failure; retrying, batching and spooling are the writer's job.
SQLite inserts are `INSERT OR IGNORE` on the `request_id` primary key and PostgreSQL's are
`ON CONFLICT DO NOTHING`, so replays are idempotent. JSONL is append-only: a replay after a crash
can append a row twice; `read_rows` keeps the first row of each `request_id`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from sidegate.telemetry.stores.files import TABLE_RE, JsonlStore, NullStore, RowStore, SqliteStore, jsonl_rows
from sidegate.telemetry.stores.schema import RowSchema
from sidegate.telemetry.stores.url import StoreURL, parse_store_url

__all__ = ["STORE_FACTORIES", "open_store", "read_rows", "register_store"]

StoreFactory = Callable[[StoreURL, RowSchema[Any], str], RowStore[Any]]
"""(parsed URL, schema of the rows, table name) -> a store, built and not yet open."""


def _sqlite_factory(url: StoreURL, schema: RowSchema[Any], table: str) -> RowStore[Any]:
    assert url.path is not None
    return SqliteStore(url.path, schema, table)


def _jsonl_factory(url: StoreURL, schema: RowSchema[Any], table: str) -> RowStore[Any]:
    assert url.path is not None
    return JsonlStore(url.path, schema)


def _null_factory(url: StoreURL, schema: RowSchema[Any], table: str) -> RowStore[Any]:
    return NullStore()


def _postgresql_factory(url: StoreURL, schema: RowSchema[Any], table: str) -> RowStore[Any]:
    from sidegate.telemetry.stores.postgres import PostgresStore

    return PostgresStore(url.raw, schema, table)


STORE_FACTORIES: dict[str, StoreFactory] = {
    "sqlite": _sqlite_factory,
    "jsonl": _jsonl_factory,
    "none": _null_factory,
    "postgresql": _postgresql_factory,
    "postgres": _postgresql_factory,
}


def register_store(scheme: str, factory: StoreFactory) -> None:
    """Add or replace the factory for a URL scheme (matched without any `+driver` suffix)."""
    STORE_FACTORIES[scheme.lower()] = factory


def open_store(url: str, schema: RowSchema[Any], table: str | None = None) -> RowStore[Any]:
    """Build (not yet open) the store of `schema` rows for `url`, in `table` (default: the schema's);
    ValueError for unknown schemes or bad URLs."""
    parsed = parse_store_url(url)
    factory = STORE_FACTORIES.get(parsed.scheme) or STORE_FACTORIES.get(parsed.base_scheme)
    if factory is None:
        known = ", ".join(sorted(STORE_FACTORIES))
        raise ValueError(f"unknown {schema.label} store scheme {parsed.scheme!r} in {url!r} (known: {known})")
    return factory(parsed, schema, table or schema.table)


# Reader (tests, CLI)

def read_rows(url: str, schema: RowSchema[Any], table: str | None = None) -> list[dict[str, Any]]:
    """All `schema` rows of a store (table: the schema's unless named) as dicts in insertion order,
    JSON columns decoded. Blocking."""
    table = table or schema.table
    parsed = parse_store_url(url)
    if parsed.base_scheme == "none":
        return []
    if parsed.base_scheme in ("postgresql", "postgres"):
        from sidegate.telemetry.stores.postgres import read_postgres_rows

        return read_postgres_rows(parsed.raw, schema, table)
    if parsed.path is None:
        raise ValueError(f"read_rows does not support {parsed.scheme!r} stores")
    if not parsed.path.exists():
        return []
    if parsed.base_scheme == "sqlite":
        if not TABLE_RE.match(table):
            raise ValueError(f"invalid {schema.label} table name {table!r}")
        conn = sqlite3.connect(parsed.path)
        try:
            cur = conn.execute(f"SELECT * FROM {table} ORDER BY rowid")
            names = [d[0] for d in cur.description]
            return [schema.decode_sql(r, names) for r in cur.fetchall()]
        finally:
            conn.close()
    with open(parsed.path, "rb") as fh:
        return list(jsonl_rows(fh))
