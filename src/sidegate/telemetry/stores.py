"""Usage stores: where finished-request rows end up.

A store is chosen by URL (SQLAlchemy convention, see DESIGN.md §3): `sqlite:///rel.db` is relative
to the working directory at parse time, `sqlite:////abs.db` absolute; `jsonl:` URLs likewise; `none`
discards. Stores are selected through `STORE_FACTORIES` (URL scheme -> factory), so a PostgreSQL
store is one more entry.

Stores never block the event loop: each owns a single-thread executor where all file and SQLite
I/O runs, which also serialises writes. `write` raises on failure; retrying, batching and
spooling are the `UsageWriter`'s job. SQLite inserts are `INSERT OR IGNORE` on the `request_id`
primary key, so replays are idempotent. JSONL is append-only: a replay after a crash can append a
row twice; `read_rows` keeps the first row of each `request_id`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from sidegate.telemetry.store_files import TABLE_RE, JsonlStore, NullStore, RowStore, SqliteStore, ThreadedStore
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


# URLs

_TABLE_RE = TABLE_RE


@dataclass(frozen=True, slots=True)
class StoreURL:
    raw: str
    scheme: str  # lower-case, e.g. "sqlite", "jsonl", "none", "postgresql+asyncpg"
    path: Path | None  # absolute file path for file-backed stores

    @property
    def base_scheme(self) -> str:
        return self.scheme.split("+", 1)[0]


def parse_store_url(url: str) -> StoreURL:
    text = (url or "").strip()
    if text.lower() in ("none", "none:", "none://"):
        return StoreURL(raw=text, scheme="none", path=None)
    scheme, sep, rest = text.partition("://")
    if not sep or not scheme:
        raise ValueError(
            f"invalid usage store URL {url!r}: expected sqlite:///path.db, jsonl:///path.jsonl, "
            "postgresql://... or none"
        )
    scheme = scheme.lower()
    if scheme.split("+", 1)[0] not in ("sqlite", "jsonl"):
        return StoreURL(raw=text, scheme=scheme, path=None)
    # SQLAlchemy convention: "sqlite:///rel" -> "rel", "sqlite:////abs" -> "/abs".
    if not rest.startswith("/") or len(rest) < 2:
        raise ValueError(
            f"invalid {scheme} URL {url!r}: use {scheme}:///relative/path or {scheme}:////absolute/path"
        )
    raw_path = rest[1:]
    if raw_path == ":memory:":
        raise ValueError(f"{scheme} URL {url!r}: in-memory stores are not supported for usage rows")
    path = Path(raw_path).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    return StoreURL(raw=text, scheme=scheme, path=path)


def default_spool_path(url: str) -> Path | None:
    """`<store file>.spool.jsonl` for file-backed stores, None otherwise (the caller picks one)."""
    parsed = parse_store_url(url)
    if parsed.path is None:
        return None
    return parsed.path.with_name(parsed.path.name + ".spool.jsonl")


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
    raise ValueError("postgresql usage store is not available in this build")


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
    if parsed.path is None:
        raise ValueError(f"read_rows does not support {parsed.scheme!r} stores")
    if not parsed.path.exists():
        return []
    if parsed.base_scheme == "sqlite":
        if not _TABLE_RE.match(table):
            raise ValueError(f"invalid usage table name {table!r}")
        conn = sqlite3.connect(parsed.path)
        try:
            cur = conn.execute(f"SELECT * FROM {table} ORDER BY rowid")
            names = [d[0] for d in cur.description]
            schema = schema_for(table)
            return [schema.decode_sql(r, names) for r in cur.fetchall()]
        finally:
            conn.close()
    rows: list[dict[str, Any]] = []
    seen: set[Any] = set()
    with open(parsed.path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # partial line left by a crash
            if not isinstance(data, dict) or data.get("request_id") in seen:
                continue
            seen.add(data.get("request_id"))
            rows.append(data)
    return rows
