"""Usage stores: where finished-request rows end up.

A store is chosen by URL (see `store_url`): `sqlite:///rel.db`, `sqlite:////abs.db`, `jsonl:` URLs
likewise, `postgresql://…` (`store_postgres`, asyncpg imported only when used), `none` discards.
Stores are selected through `STORE_FACTORIES` (URL scheme -> factory).

Stores never block the event loop: each file store owns a single-thread executor where all file and
SQLite I/O runs, which also serialises writes (PostgreSQL runs asyncpg on an event loop of its own
thread). `write` raises on failure; retrying, batching and spooling are the `UsageWriter`'s job.
SQLite inserts are `INSERT OR IGNORE` on the `request_id` primary key and PostgreSQL's are
`ON CONFLICT DO NOTHING`, so replays are idempotent. JSONL is append-only: a replay after a crash
can append a row twice; `read_rows` keeps the first row of each `request_id`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from sidegate.telemetry.store_files import (
    TABLE_RE,
    JsonlStore,
    NullStore,
    RowStore,
    SqliteStore,
    ThreadedStore,
    jsonl_rows,
)
from sidegate.telemetry.store_url import StoreURL, default_spool_path, parse_store_url
from sidegate.telemetry.tables import USAGE, schema_for
from sidegate.telemetry.usage_row import UsageRow

__all__ = [
    "STORE_FACTORIES", "JsonlUsageStore", "NullUsageStore", "SqliteUsageStore", "StoreURL", "UsageStore",
    "decode_row_json", "default_spool_path", "encode_row_json", "open_store", "parse_store_url",
    "read_rows", "register_store", "row_from_dict",
]

# The usage table's row kind, under the names this module has always exported.
UsageStore = RowStore[UsageRow]
COLUMN_KINDS: dict[str, str] = USAGE.kinds
JSON_COLUMNS = frozenset(c for c, k in COLUMN_KINDS.items() if k == "json")
BOOL_COLUMNS = frozenset(c for c, k in COLUMN_KINDS.items() if k == "bool")
encode_row_json = USAGE.encode_json
row_from_dict = USAGE.from_dict
decode_row_json = USAGE.decode_json
_ThreadedStore = ThreadedStore
SqliteUsageStore = SqliteStore
JsonlUsageStore = JsonlStore
NullUsageStore = NullStore


# Registry

StoreFactory = Callable[[StoreURL, str], RowStore[Any]]


def _sqlite_factory(url: StoreURL, table: str) -> RowStore[Any]:
    assert url.path is not None
    return SqliteStore(url.path, table, schema_for(table))


def _jsonl_factory(url: StoreURL, table: str) -> RowStore[Any]:
    assert url.path is not None
    return JsonlStore(url.path, schema_for(table))


def _null_factory(url: StoreURL, table: str) -> RowStore[Any]:
    return NullStore()


def _postgresql_factory(url: StoreURL, table: str) -> RowStore[Any]:
    from sidegate.telemetry.store_postgres import PostgresStore

    return PostgresStore(url.raw, table, schema_for(table))


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


def open_store(url: str, table: str = "usage") -> RowStore[Any]:
    """Build (not yet open) the store of `table` rows (see `tables.TABLES`) for `url`; ValueError for
    unknown schemes or bad URLs."""
    parsed = parse_store_url(url)
    factory = STORE_FACTORIES.get(parsed.scheme) or STORE_FACTORIES.get(parsed.base_scheme)
    if factory is None:
        known = ", ".join(sorted(STORE_FACTORIES))
        raise ValueError(f"unknown usage store scheme {parsed.scheme!r} in {url!r} (known: {known})")
    return factory(parsed, table)


# Reader (tests, CLI)

def read_rows(url: str, table: str = "usage") -> list[dict[str, Any]]:
    """All rows of a store as dicts in insertion order, JSON columns decoded. Blocking."""
    parsed = parse_store_url(url)
    if parsed.base_scheme == "none":
        return []
    if parsed.base_scheme in ("postgresql", "postgres"):
        from sidegate.telemetry.store_postgres import read_postgres_rows

        return read_postgres_rows(parsed.raw, table, schema_for(table))
    if parsed.path is None:
        raise ValueError(f"read_rows does not support {parsed.scheme!r} stores")
    if not parsed.path.exists():
        return []
    if parsed.base_scheme == "sqlite":
        if not TABLE_RE.match(table):
            raise ValueError(f"invalid usage table name {table!r}")
        conn = sqlite3.connect(parsed.path)
        try:
            cur = conn.execute(f"SELECT * FROM {table} ORDER BY rowid")
            names = [d[0] for d in cur.description]
            schema = schema_for(table)
            return [schema.decode_sql(r, names) for r in cur.fetchall()]
        finally:
            conn.close()
    with open(parsed.path, "rb") as fh:
        return list(jsonl_rows(fh))
