"""The usage table's writer: a `RowWriter` of `UsageRow`s (see `row_writer` for batching, outages,
the spool and shutdown)."""

from __future__ import annotations

from typing import Unpack

from sidegate.telemetry.row_writer import RowWriter, WriterOptions
from sidegate.telemetry.store_files import RowStore
from sidegate.telemetry.tables import USAGE
from sidegate.telemetry.usage_row import UsageRow

__all__ = ["UsageWriter"]


class UsageWriter(RowWriter[UsageRow]):
    def __init__(self, store: RowStore[UsageRow], **options: Unpack[WriterOptions]) -> None:
        super().__init__(store, schema=USAGE, **options)
