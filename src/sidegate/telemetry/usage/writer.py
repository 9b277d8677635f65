"""The usage table's writer: a `RowWriter` of `UsageRow`s (see `stores.writer` for batching, outages,
the spool and shutdown)."""

from __future__ import annotations

from typing import Unpack

from sidegate.telemetry.stores.files import RowStore
from sidegate.telemetry.stores.writer import RowWriter, WriterOptions
from sidegate.telemetry.usage.row import USAGE, UsageRow

__all__ = ["UsageWriter"]


class UsageWriter(RowWriter[UsageRow]):
    def __init__(self, store: RowStore[UsageRow], **options: Unpack[WriterOptions]) -> None:
        super().__init__(store, schema=USAGE, **options)
