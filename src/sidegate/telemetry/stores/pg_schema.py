"""PostgreSQL tables of records: column types, creation and migration, indexes, row encoding.

Generic over the kind of record (`RowSchema`: usage rows, inference-log rows). Column types
follow the schema's column kinds (JSON columns are `jsonb`), except the time column (`event_time`),
a `timestamptz`. The key (`request_id`) is the primary key, which makes inserts idempotent
(`ON CONFLICT DO NOTHING`), so a replayed spool never duplicates a row.

Indexes, chosen for `sidegate usage` and the queries people run by hand on a usage table:
- `(event_time)`: every report is bounded by `--since`; over a table of months a day's report
  reads a day's rows instead of the table.
- `(requester, event_time)`: "what did this principal use this week" is an equality on requester
  and a range on time, which this column order answers with one index range scan (the reverse
  order would scan every requester's rows of the period).
- GIN `jsonb_path_ops` on `request_tags`: one small index serves containment filters on any tag
  key (`request_tags @> '{"project": "chatbot"}'`) without knowing the keys in advance; an
  expression index per key would need a migration for every new tag.
They are made with the table only (see `prepare_table`); an operator may drop any of them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from sidegate.telemetry.stores.schema import JSON_OPTS, RowSchema, json_default

__all__ = ["check_table", "decode_record", "encode_columns", "insert_sql", "pg_types", "prepare_table"]

_KIND_TYPES = {"json": "jsonb", "bool": "boolean", "int": "bigint", "float": "double precision", "str": "text"}
_INT64 = (-(2**63), 2**63 - 1)
_TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_table(table: str) -> str:
    if not _TABLE_RE.match(table):
        raise ValueError(f"invalid table name {table!r}")
    return table


def pg_types(schema: RowSchema[Any]) -> dict[str, str]:
    """Column -> PostgreSQL type: by the column's kind, the time column a timestamptz."""
    return {name: "timestamptz" if name == schema.time_column else _KIND_TYPES[schema.kinds[name]]
            for name in schema.columns}


def create_sql(schema: RowSchema[Any], table: str) -> str:
    types = pg_types(schema)
    defs = [f"{name} {types[name]}" + (" PRIMARY KEY" if name == schema.key else "") for name in schema.columns]
    return f"CREATE TABLE {table} ({', '.join(defs)})"


def index_sql(schema: RowSchema[Any], table: str) -> list[str]:
    """The indexes of the module docstring, for the columns this kind of record has."""
    time, kinds = schema.time_column, schema.kinds
    out = [f"CREATE INDEX {table}_{time}_idx ON {table} ({time})"]
    if "requester" in kinds:
        out.append(f"CREATE INDEX {table}_requester_time_idx ON {table} (requester, {time})")
    if kinds.get("request_tags") == "json":
        out.append(f"CREATE INDEX {table}_tags_idx ON {table} USING gin (request_tags jsonb_path_ops)")
    return out


def insert_sql(schema: RowSchema[Any], table: str) -> str:
    """One statement per batch: every column arrives as one array parameter, unnested into rows."""
    types = pg_types(schema)
    arrays = ", ".join(f"${i}::{types[name]}[]" for i, name in enumerate(schema.columns, start=1))
    return (f"INSERT INTO {table} ({', '.join(schema.columns)}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({schema.key}) DO NOTHING")


async def prepare_table(conn: Any, schema: RowSchema[Any], table: str) -> list[str] | None:
    """Create the table with its indexes, or add to an existing one the columns an older sidegate
    did not have. Returns None for a new table, else the columns added. Serialised across replicas
    by an advisory lock.

    Indexes are made only with the table: building one on a large table at start would hold off
    every insert meanwhile, and an index the operator dropped stays dropped."""
    types = pg_types(schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"sidegate.table.{table}")
        existing = {r[0] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = $1", table)}
        if not existing:
            await conn.execute(create_sql(schema, table))
            for sql in index_sql(schema, table):
                await conn.execute(sql)
            return None
        added = [name for name in schema.columns if name not in existing]
        for name in added:
            await conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {types[name]}")
    return added


# Encoding. PostgreSQL refuses NUL in text and jsonb, and int64 overflow; a row must never be
# refused for its content (it would be retried forever), so such values are made storable here.

def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_clean_json(str(k)): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_json(v) for v in value]
    return value


def _json(value: Any) -> str:
    data = orjson.dumps(value, default=json_default, option=JSON_OPTS)
    if b"\\u0000" in data:
        data = orjson.dumps(_clean_json(value), default=json_default, option=JSON_OPTS)
    return data.decode()


def _int(value: Any) -> int | None:
    if value is None:
        return None
    return min(max(int(value), _INT64[0]), _INT64[1])


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def event_time(value: Any) -> datetime:
    """The row's ISO-8601 time; a time without an offset is UTC; an unreadable one becomes now."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            return datetime.now(UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


_ENCODERS = {"json": _json, "bool": _bool, "int": _int, "float": _float, "str": _text}


def encode_columns(schema: RowSchema[Any], rows: list[Any]) -> list[list[Any]]:
    """The batch as one list per column, in the schema's column order (the `insert_sql` arguments)."""
    out = []
    for name in schema.columns:
        encode = event_time if name == schema.time_column else _ENCODERS[schema.kinds[name]]
        out.append([encode(getattr(row, name)) for row in rows])
    return out


def decode_record(schema: RowSchema[Any], record: Any) -> dict[str, Any]:
    """A fetched row as a dict of the schema's columns, JSON decoded, the time as UTC ISO-8601 (the
    form sidegate writes), columns the table lacks as None."""
    out: dict[str, Any] = {}
    for name in schema.columns:
        value = record.get(name)
        if value is not None:
            if name == schema.time_column:
                value = value.astimezone(UTC).isoformat()
            elif schema.kinds[name] == "json":
                value = orjson.loads(value)
        out[name] = value
    return out
