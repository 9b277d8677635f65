"""The record kinds sidegate stores, by table name. A store built for a table writes that table's
rows; a store of another backend (PostgreSQL…) finds the columns here with `schema_for(table)`."""

from __future__ import annotations

from typing import Any

from sidegate.telemetry.inference_row import INFERENCE_COLUMNS, InferenceRow
from sidegate.telemetry.row_schema import RowSchema
from sidegate.telemetry.usage_row import USAGE_COLUMNS, UsageRow

USAGE: RowSchema[UsageRow] = RowSchema("usage", UsageRow, USAGE_COLUMNS, "usage")
INFERENCE_LOG: RowSchema[InferenceRow] = RowSchema("inference_log", InferenceRow, INFERENCE_COLUMNS, "inference log")

TABLES: dict[str, RowSchema[Any]] = {schema.table: schema for schema in (USAGE, INFERENCE_LOG)}


def schema_for(table: str) -> RowSchema[Any]:
    """The schema of a table; a table of another name holds usage rows (custom usage table names)."""
    return TABLES.get(table, USAGE)
