"""Background batch writer for store rows (usage, inference log): off the request path, nothing
lost, order kept. Generic over the record kind through its `RowSchema`.

`submit` (sync, O(1), never raises) appends to an in-memory deque. A background task writes the
rows in batches of `batch_size` whenever that many are pending or every `flush_interval_s`.

Store outages: rows stay queued in order; the writer's `health` (`sidegate.health`) logs a warning
when an outage starts, a reminder every minute while it lasts and an info line when it ends, and is
what /readyz shows; writes are retried with exponential backoff (`retry_initial_s` doubling up to
`retry_max_s`). When more than `max_pending` rows are queued, the *oldest* ones are moved to the
spool file (JSONL of row dicts) so that the spool always holds rows older than those in memory;
the spool is written back to the store before the in-memory rows.

`close` flushes; if the store still fails (or `timeout_s` runs out) the remaining rows are appended
to the spool, which the next `start` (of any writer with that spool path) replays before anything
else, then removes. Rows submitted after `close` are appended to the spool file directly (a
blocking write, so callers should stop submitting to a closed writer; nothing is lost either way).
Replays are idempotent for stores that ignore duplicate keys (SQLite, PostgreSQL).

Without a `spool_path` there is nowhere to put rows on shutdown during an outage: they are dropped
with an error log, and the memory bound is not enforced.

One spool path should be used by one live writer at a time (handover: old `close`, new `start` is
safe; spool file operations are serialised per path within the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import deque
from itertools import islice
from pathlib import Path
from typing import Generic, TypedDict

import structlog

from sidegate.health import Health
from sidegate.telemetry.stores.files import RowStore
from sidegate.telemetry.stores.schema import R, RowSchema
from sidegate.telemetry.stores.spool import Spool

__all__ = ["RowWriter", "WriterOptions"]

log = structlog.get_logger("sidegate.telemetry")


class WriterOptions(TypedDict, total=False):
    """A `RowWriter`'s keyword arguments besides its schema, for writers of one row kind to pass on."""

    batch_size: int
    flush_interval_s: float
    spool_path: Path | None
    max_pending: int
    retry_initial_s: float
    retry_max_s: float
    target: str


# Rows a write takes at most. Small on purpose: the writer thread holds the GIL while it encodes and
# binds a batch, and whatever request is on the event loop then waits; 32 rows keep that under
# ~0.1 ms (c=1 p99 overhead 3.3 ms with 500-row batches, 1.2 ms with 32; throughput unchanged).
BATCH_SIZE = 32


class RowWriter(Generic[R]):
    def __init__(
        self,
        store: RowStore[R],
        *,
        schema: RowSchema[R],
        batch_size: int = BATCH_SIZE,
        flush_interval_s: float = 0.5,
        spool_path: Path | None = None,
        max_pending: int = 1_000_000,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        target: str = "",
    ) -> None:
        """`target` names the store (its URL, redacted) in log lines and /readyz."""
        self._store = store
        self._batch_size = max(1, batch_size)
        self._flush_interval = flush_interval_s
        self._max_pending = max(1, max_pending)
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._schema = schema
        self._what = schema.label  # names the rows in log lines
        self._spool = Spool(Path(spool_path), schema) if spool_path is not None else None
        self._pending: deque[R] = deque()
        self._wakeup = asyncio.Event()
        self._wake_at = min(self._batch_size, self._max_pending + 1)
        self._io_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._store_open = False
        self._stopping = False
        self._closing = False
        self._closed = False
        self._spool_offset = 0
        self._spooled = 0  # rows in the spool not yet replayed (approximate across processes)
        self._outage = False
        self.health = Health(f"{self._what} store", target)
        self._backoff = retry_initial_s
        self._next_attempt = 0.0
        self._spill_failed = False

    @property
    def queue_depth(self) -> int:
        """Rows accepted but not yet in the store (in memory plus spooled)."""
        return len(self._pending) + self._spooled

    def submit(self, row: R) -> None:
        try:
            if self._closed:
                self._submit_after_close(row)
                return
            pending = self._pending
            pending.append(row)
            if len(pending) >= self._wake_at:
                self._wakeup.set()
        except Exception as exc:  # never fail the request that reports its row
            with contextlib.suppress(Exception):
                log.error(f"{self._what} row submit failed", error=repr(exc))

    async def start(self) -> None:
        """Open the store, replay the spool, then run the background task. Store errors do not
        raise here: they count as an outage (logged, retried)."""
        if self._task is not None and not self._task.done():
            return
        self._closed = self._closing = self._stopping = False
        self._wakeup.clear()
        self._spool_offset = 0
        if self._spool is not None:
            try:
                self._spooled = await asyncio.to_thread(self._spool.count)
            except OSError as exc:
                log.error(f"{self._what} spool unreadable", path=str(self._spool.path), error=str(exc))
        async with self._io_lock:
            await self._attempt()
        self._task = asyncio.create_task(self._run(), name=f"sidegate-{self._schema.table}-writer")

    async def flush(self) -> None:
        """Write everything pending now (spool first). Does not raise: a failure is an outage.
        A no-op once closed."""
        if self._closed:
            return
        async with self._io_lock:
            await self._attempt()

    async def close(self, timeout_s: float = 10.0) -> None:
        if self._closed or self._closing:
            return
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            await self._stop_task(deadline)
            async with self._io_lock:
                if self._has_work():
                    remaining = deadline - loop.time()
                    try:
                        if remaining <= 0:
                            raise TimeoutError
                        async with asyncio.timeout(remaining):
                            await self._drain()
                        self._succeeded()
                    except (Exception, TimeoutError) as exc:
                        log.warning(
                            f"{self._what} store unavailable at shutdown; spooling rows",
                            error=str(exc) or type(exc).__name__,
                            rows=len(self._pending),
                            spool=str(self._spool.path) if self._spool else None,
                        )
                await self._spool_rest()
        finally:
            if self._pending and self._spool is not None:  # close() was cancelled: last resort
                with contextlib.suppress(Exception):
                    self._spool.append(list(self._pending))
                    self._pending.clear()
            self._closed = True
            self._closing = False
        if self._store_open:
            self._store_open = False
            try:
                async with asyncio.timeout(max(0.1, deadline - loop.time())):
                    await self._store.close()
            except (Exception, TimeoutError) as exc:
                log.warning(f"{self._what} store close failed", error=str(exc) or type(exc).__name__)

    def _has_work(self) -> bool:
        return bool(self._pending) or self._spooled > 0 or self._spool_offset > 0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._flush_interval)
            self._wakeup.clear()
            if self._stopping:
                break
            try:
                async with self._io_lock:
                    await self._spill_excess()
                    # a store that failed to open is retried without rows too, so its health is current
                    if (self._has_work() or not self._store_open) and loop.time() >= self._next_attempt:
                        await self._attempt()
            except Exception as exc:  # a bug here must not kill the writer
                log.error(f"{self._what} writer loop error", error=repr(exc))

    async def _stop_task(self, deadline: float) -> None:
        self._stopping = True
        self._wakeup.set()
        task, self._task = self._task, None
        if task is None or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - asyncio.get_running_loop().time()))
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _attempt(self) -> None:
        try:
            await self._drain()
        except Exception as exc:
            self._failed(exc)
        else:
            self._succeeded()

    async def _drain(self) -> None:
        """Open the store if needed, replay the spool, then write the in-memory rows in batches.
        Rows leave the queue (or the spool offset advances) only after a successful write."""
        if not self._store_open:
            await self._store.open()
            self._store_open = True
        spool = self._spool
        if spool is not None and (self._spooled > 0 or self._spool_offset > 0 or spool.path.exists()):
            while True:
                rows, offset, bad = await asyncio.to_thread(spool.read, self._spool_offset, self._batch_size)
                if bad:
                    log.warning(f"unreadable {self._what} spool lines skipped", path=str(spool.path), lines=bad)
                if rows:
                    await self._store.write(rows)
                    self._spooled = max(0, self._spooled - len(rows))
                if offset != self._spool_offset:
                    self._spool_offset = offset
                    continue
                if await asyncio.to_thread(spool.finish, offset):
                    self._spool_offset = 0
                    self._spooled = 0
                    break
        pending = self._pending
        while pending:
            batch = list(islice(pending, self._batch_size))
            await self._store.write(batch)
            for _ in range(len(batch)):
                pending.popleft()

    def _failed(self, exc: Exception) -> None:
        loop = asyncio.get_running_loop()
        if not self._outage:
            self._outage = True
            self._backoff = self._retry_initial
            # while down, wake early only to move rows past the memory bound to the spool
            self._wake_at = self._max_pending + 1 if self._spool is not None else sys.maxsize
        else:
            self._backoff = min(self._backoff * 2, self._retry_max)
        self.health.failed(exc, queue_depth=self.queue_depth, retry_in_s=self._backoff)
        self._next_attempt = loop.time() + self._backoff

    def _succeeded(self) -> None:
        self._next_attempt = 0.0
        if self._outage:
            self._outage = False
            self._spill_failed = False
            self._wake_at = min(self._batch_size, self._max_pending + 1)
        self.health.ok()

    async def _spill_excess(self) -> None:
        """Move the oldest rows to the spool when the memory bound is exceeded."""
        pending = self._pending
        if self._spool is None or len(pending) <= self._max_pending:
            return
        count = len(pending) - self._max_pending // 2
        rows = [pending.popleft() for _ in range(count)]
        try:
            await asyncio.to_thread(self._spool.append, rows)
        except Exception as exc:
            pending.extendleft(reversed(rows))
            if not self._spill_failed:
                self._spill_failed = True
                log.error(f"{self._what} spool write failed; keeping rows in memory", error=str(exc))
            return
        self._spooled += count
        log.info(f"{self._what} rows moved to spool", rows=count, spool=str(self._spool.path))

    async def _spool_rest(self) -> None:
        """At close: drop the replayed part of the spool, append every in-memory row to it."""
        spool = self._spool
        if spool is None:
            if self._pending:
                log.error(f"{self._what} rows dropped at shutdown: no spool path", rows=len(self._pending))
                self._pending.clear()
            return
        if self._spool_offset > 0:
            try:
                await asyncio.to_thread(spool.compact, self._spool_offset)
            except FileNotFoundError:
                pass
            except Exception as exc:  # rows will be replayed twice; harmless for idempotent stores
                log.warning(f"{self._what} spool compaction failed", error=str(exc))
            self._spool_offset = 0
        while self._pending:  # rows can arrive while the append runs; loop until none are left
            rows = list(self._pending)
            self._pending.clear()
            try:
                await asyncio.to_thread(spool.append, rows)
            except Exception as exc:
                log.error(f"{self._what} rows lost: spool write failed", rows=len(rows), error=str(exc))
            else:
                self._spooled += len(rows)

    def _submit_after_close(self, row: R) -> None:
        if self._spool is None:
            log.error(f"{self._what} row dropped: writer closed and no spool path",
                      request_id=getattr(row, self._schema.key, None))
            return
        self._spool.append([row])
        self._spooled += 1
