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

import asyncio
import dataclasses
import re
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import orjson

from sidegate.telemetry.usage_row import USAGE_COLUMNS, UsageRow

__all__ = [
    "STORE_FACTORIES", "JsonlUsageStore", "NullUsageStore", "SqliteUsageStore", "StoreURL", "UsageStore",
    "decode_row_json", "default_spool_path", "encode_row_json", "open_store", "parse_store_url",
    "read_rows", "register_store", "row_from_dict",
]

T = TypeVar("T")


class UsageStore(Protocol):
    async def open(self) -> None: ...

    async def write(self, rows: list[UsageRow]) -> None: ...

    async def close(self) -> None: ...


# Column kinds, derived from the UsageRow annotations so that a new column needs no change here.

def _column_kind(annotation: str) -> str:
    base = annotation.replace(" | None", "").strip()
    if base.startswith(("dict", "list")):
        return "json"
    if base in ("bool", "int", "float", "str"):
        return base
    raise TypeError(f"UsageRow annotation {annotation!r} has no store encoding")


_FIELD_TYPES = {f.name: str(f.type) for f in dataclasses.fields(UsageRow)}
COLUMN_KINDS: dict[str, str] = {name: _column_kind(_FIELD_TYPES[name]) for name in USAGE_COLUMNS}
JSON_COLUMNS = frozenset(c for c, k in COLUMN_KINDS.items() if k == "json")
BOOL_COLUMNS = frozenset(c for c, k in COLUMN_KINDS.items() if k == "bool")
_SQL_TYPES = {"json": "TEXT", "bool": "INTEGER", "int": "INTEGER", "float": "REAL", "str": "TEXT"}
_JSON_OPTS = orjson.OPT_NON_STR_KEYS


def _json_default(value: Any) -> str:
    return str(value)


def encode_row_json(row: UsageRow) -> bytes:
    """One JSONL line (with the trailing newline); never fails on odd values (they become str)."""
    return orjson.dumps(row.as_dict(), default=_json_default, option=_JSON_OPTS | orjson.OPT_APPEND_NEWLINE)


def row_from_dict(data: dict[str, Any]) -> UsageRow:
    """Rebuild a UsageRow from a dict (unknown keys ignored, missing columns take defaults)."""
    return UsageRow(**{k: data[k] for k in USAGE_COLUMNS if k in data})


def decode_row_json(line: bytes) -> UsageRow:
    return row_from_dict(orjson.loads(line))


# URLs

_TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


# Stores

class _ThreadedStore:
    """Owns a single worker thread; all blocking I/O of the store runs there, in order."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError(f"{type(self).__name__} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sidegate-usage-store")
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

    def _open_sync(self) -> None:
        raise NotImplementedError

    def _close_sync(self) -> None:
        raise NotImplementedError


class SqliteUsageStore(_ThreadedStore):
    def __init__(self, path: Path, table: str = "usage") -> None:
        super().__init__()
        if not _TABLE_RE.match(table):
            raise ValueError(f"invalid usage table name {table!r}")
        self.path = path
        self.table = table
        self._conn: sqlite3.Connection | None = None
        cols = ", ".join(USAGE_COLUMNS)
        marks = ", ".join("?" for _ in USAGE_COLUMNS)
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
            defs = []
            for name in USAGE_COLUMNS:
                pk = " PRIMARY KEY NOT NULL" if name == "request_id" else ""
                defs.append(f"{name} {_SQL_TYPES[COLUMN_KINDS[name]]}{pk}")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table} ({', '.join(defs)})")
            existing = {r[1] for r in conn.execute(f"PRAGMA table_info({self.table})")}
            for name in USAGE_COLUMNS:  # columns added in a later version
                if name not in existing:
                    sql_type = _SQL_TYPES[COLUMN_KINDS[name]]
                    conn.execute(f"ALTER TABLE {self.table} ADD COLUMN {name} {sql_type}")
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {self.table}_event_time_idx ON {self.table} (event_time)"
            )
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @staticmethod
    def _encode(row: UsageRow) -> tuple[Any, ...]:
        out: list[Any] = []
        for name in USAGE_COLUMNS:
            value = getattr(row, name)
            kind = COLUMN_KINDS[name]
            if kind == "json":
                value = orjson.dumps(value, default=_json_default, option=_JSON_OPTS).decode()
            elif kind == "bool" and value is not None:
                value = 1 if value else 0
            out.append(value)
        return tuple(out)

    def _write_sync(self, rows: list[UsageRow]) -> None:
        conn = self._conn
        if conn is None:
            raise RuntimeError("sqlite usage store is not open")
        params = [self._encode(r) for r in rows]
        conn.execute("BEGIN")
        try:
            conn.executemany(self._insert_sql, params)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def write(self, rows: list[UsageRow]) -> None:
        if rows:
            await self._run(self._write_sync, rows)


class JsonlUsageStore(_ThreadedStore):
    def __init__(self, path: Path) -> None:
        super().__init__()
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

    def _write_sync(self, rows: list[UsageRow]) -> None:
        if self._fh is None:
            raise RuntimeError("jsonl usage store is not open")
        self._fh.write(b"".join(encode_row_json(r) for r in rows))  # one write per batch
        self._fh.flush()

    async def write(self, rows: list[UsageRow]) -> None:
        if rows:
            await self._run(self._write_sync, rows)


class NullUsageStore:
    """`none`: rows are accepted and discarded."""

    async def open(self) -> None:
        return None

    async def write(self, rows: list[UsageRow]) -> None:
        return None

    async def close(self) -> None:
        return None


# Registry

StoreFactory = Callable[[StoreURL, str], UsageStore]


def _sqlite_factory(url: StoreURL, table: str) -> UsageStore:
    assert url.path is not None
    return SqliteUsageStore(url.path, table)


def _jsonl_factory(url: StoreURL, table: str) -> UsageStore:
    assert url.path is not None
    return JsonlUsageStore(url.path)


def _null_factory(url: StoreURL, table: str) -> UsageStore:
    return NullUsageStore()


def _postgresql_factory(url: StoreURL, table: str) -> UsageStore:
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


def open_store(url: str, table: str = "usage") -> UsageStore:
    """Build (not yet open) the store for `url`; ValueError for unknown schemes or bad URLs."""
    parsed = parse_store_url(url)
    factory = STORE_FACTORIES.get(parsed.scheme) or STORE_FACTORIES.get(parsed.base_scheme)
    if factory is None:
        known = ", ".join(sorted(STORE_FACTORIES))
        raise ValueError(f"unknown usage store scheme {parsed.scheme!r} in {url!r} (known: {known})")
    return factory(parsed, table)


# Reader (tests, CLI)

def _decode_sqlite_row(values: tuple[Any, ...], names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in zip(names, values, strict=True):
        kind = COLUMN_KINDS.get(name)
        if kind == "json" and isinstance(value, str | bytes):
            value = orjson.loads(value)
        elif kind == "bool" and value is not None:
            value = bool(value)
        out[name] = value
    return out


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
            return [_decode_sqlite_row(r, names) for r in cur.fetchall()]
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
