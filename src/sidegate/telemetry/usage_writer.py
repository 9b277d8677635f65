"""The usage table's writer: a `RowWriter` of `UsageRow`s (see `row_writer` for batching, outages,
the spool and shutdown)."""

from __future__ import annotations

from pathlib import Path

from sidegate.telemetry.row_writer import RowWriter
from sidegate.telemetry.store_files import RowStore
from sidegate.telemetry.tables import USAGE
from sidegate.telemetry.usage_row import UsageRow

__all__ = ["UsageWriter"]


class UsageWriter(RowWriter[UsageRow]):
    def __init__(
        self,
        store: RowStore[UsageRow],
        *,
        batch_size: int = 500,
        flush_interval_s: float = 0.5,
        spool_path: Path | None = None,
        max_pending: int = 1_000_000,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        super().__init__(store, schema=USAGE, batch_size=batch_size, flush_interval_s=flush_interval_s,
                         spool_path=spool_path, max_pending=max_pending, retry_initial_s=retry_initial_s,
                         retry_max_s=retry_max_s)
