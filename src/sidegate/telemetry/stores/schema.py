"""What a store needs to know about one kind of record (a usage row, an inference-log row): its
table name, the dataclass rows are, the column order, and each column's storage kind.

Column kinds are derived from the dataclass annotations, so a new column needs no change in any
store: `dict[...]` and `list[...]` are JSON, `bool`, `int`, `float` and `str` map to themselves
(`| None` allowed). JSON lines (the JSONL store and the writer's spool) encode a row as an object
of its columns; decoding ignores unknown keys and lets missing columns take their defaults, so
spools and files written by an older version stay readable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Generic, TypeVar

import orjson

R = TypeVar("R")

JSON_OPTS = orjson.OPT_NON_STR_KEYS
SQL_TYPES = {"json": "TEXT", "bool": "INTEGER", "int": "INTEGER", "float": "REAL", "str": "TEXT"}


def column_kind(annotation: str) -> str:
    base = annotation.replace(" | None", "").strip()
    if base.startswith(("dict", "list")):
        return "json"
    if base in ("bool", "int", "float", "str"):
        return base
    raise TypeError(f"row annotation {annotation!r} has no store encoding")


def json_default(value: Any) -> str:
    return str(value)


def dump_json(value: Any) -> str:
    """A JSON column's text; never fails on odd values (they become str)."""
    return orjson.dumps(value, default=json_default, option=JSON_OPTS).decode()


@dataclass(frozen=True, slots=True)
class RowSchema(Generic[R]):
    """One record kind. `label` names it in log lines ("usage", "inference log")."""

    table: str
    row_type: type[R]
    columns: tuple[str, ...]
    label: str
    key: str = "request_id"  # primary key: replays of a row are ignored by stores that can
    time_column: str = "event_time"  # indexed
    kinds: dict[str, str] = field(init=False)
    _values: Callable[[Any], tuple[Any, ...]] = field(init=False, repr=False)
    _json_at: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        types = {f.name: str(f.type) for f in dataclasses.fields(self.row_type)}  # type: ignore[arg-type]
        kinds = {name: column_kind(types[name]) for name in self.columns}
        object.__setattr__(self, "kinds", kinds)
        object.__setattr__(self, "_values", attrgetter(*self.columns))
        object.__setattr__(self, "_json_at", tuple(i for i, n in enumerate(self.columns) if kinds[n] == "json"))

    def as_dict(self, row: R) -> dict[str, Any]:
        return {name: getattr(row, name) for name in self.columns}

    def from_dict(self, data: dict[str, Any]) -> R:
        """Rebuild a row (unknown keys ignored, missing columns take defaults)."""
        return self.row_type(**{k: data[k] for k in self.columns if k in data})

    def encode_json(self, row: R) -> bytes:
        """One JSON line, trailing newline included."""
        return orjson.dumps(self.as_dict(row), default=json_default, option=JSON_OPTS | orjson.OPT_APPEND_NEWLINE)

    def decode_json(self, line: bytes) -> R:
        data = orjson.loads(line)
        if not isinstance(data, dict):
            raise ValueError("a row line must hold a JSON object")
        return self.from_dict(data)

    def sql_values(self, row: R) -> list[Any]:
        """Column values for a SQL insert: JSON columns as text (booleans bind as 0/1 by themselves).
        Runs on a writer thread for every row while requests are served, so it is kept lean: one
        C-level read of all columns, then only the JSON columns touched."""
        values = list(self._values(row))
        for i in self._json_at:
            values[i] = dump_json(values[i])
        return values

    def decode_sql(self, values: tuple[Any, ...], names: list[str]) -> dict[str, Any]:
        """A row read back from SQL as a dict, JSON columns decoded, booleans as bool."""
        out: dict[str, Any] = {}
        for name, value in zip(names, values, strict=True):
            kind = self.kinds.get(name)
            if kind == "json" and isinstance(value, str | bytes):
                value = orjson.loads(value)
            elif kind == "bool" and value is not None:
                value = bool(value)
            out[name] = value
        return out
