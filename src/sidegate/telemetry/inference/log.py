"""The inference log (policy key `inference_log`): request and response payloads of a sampled
fraction of requests, one `InferenceRow` each, in a store of its own (`store: sqlite:///…`,
`jsonl:///…`, `postgresql://…`; `none`, the default, turns it off).

On the request path it costs a coin toss and a list append: the pipeline asks `sampled()` once the
model service is known and, when it says yes, sets `ctx.capture = []`, to which the relay appends
every block of bytes sent to the caller. The record stage calls `submit(ctx, row)`, which keeps
references to the forwarded body and the captured blocks. A background task hands the captures to a
worker thread in batches, where the rows are built (`payloads`: streams aggregated,
credentials redacted, size limits applied), then to a `RowWriter` that writes them in batches with
the same guarantees as the usage table (retries, spool file, flush on shutdown).

The spool of an inference log sits next to its store as `<store>.inference_log.spool.jsonl`, so
that a usage table and an inference log in one database file never share a spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from sidegate.health import Health
from sidegate.telemetry.inference.payloads import Capture, build_row
from sidegate.telemetry.inference.row import INFERENCE_LOG, InferenceRow
from sidegate.telemetry.stores.registry import open_store
from sidegate.telemetry.stores.url import default_spool_path, parse_store_url, redact_url
from sidegate.telemetry.stores.writer import RowWriter

if TYPE_CHECKING:
    from sidegate.context import RequestContext
    from sidegate.policy.model import InferenceLog as InferenceLogPolicy
    from sidegate.telemetry.usage.row import UsageRow

__all__ = ["InferenceLog", "follow_policy", "spool_path"]

log = structlog.get_logger("sidegate.inference_log")


def spool_path(url: str) -> Path | None:
    base = default_spool_path(url)
    if base is None:
        return None
    return base.with_name(base.name.removesuffix(".spool.jsonl") + f".{INFERENCE_LOG.table}.spool.jsonl")


def _build_rows(batch: list[Capture], sampling_fraction: float, max_payload_bytes: int) -> list[InferenceRow]:
    rows = []
    for capture in batch:
        try:
            rows.append(build_row(capture, sampling_fraction, max_payload_bytes))
        except Exception as exc:  # one odd request must not cost the batch its rows
            log.error("inference log row could not be built", request_id=capture.row.request_id, error=repr(exc))
    return rows


class InferenceLog:
    def __init__(
        self, url: str, *, sample_rate: float = 1.0, max_payload_bytes: int = 1 << 20,
        batch_size: int = 100, flush_interval_s: float = 0.5, max_pending: int = 1000,
    ) -> None:
        self.url = url
        self.sample_rate = sample_rate
        self.max_payload_bytes = max_payload_bytes
        # rows hold payloads of up to max_payload_bytes each: past a thousand waiting, they go to the spool
        self._writer: RowWriter[InferenceRow] = RowWriter(
            open_store(url, INFERENCE_LOG), schema=INFERENCE_LOG, batch_size=batch_size,
            flush_interval_s=flush_interval_s, spool_path=spool_path(url), max_pending=max_pending,
            target=redact_url(url))
        self._batch_size = max(1, batch_size)
        self._flush_interval = flush_interval_s
        self._captures: deque[Capture] = deque()
        self._wakeup = asyncio.Event()
        self._building = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def from_policy(cls, policy: InferenceLogPolicy) -> InferenceLog | None:
        """None when the policy's store is `none`."""
        if parse_store_url(policy.store).base_scheme == "none":
            return None
        return cls(policy.store, sample_rate=policy.sample_rate, max_payload_bytes=policy.max_payload_bytes)

    def configure(self, policy: InferenceLogPolicy) -> None:
        """New sampling settings for the same store (a policy reload): they apply from now on."""
        self.sample_rate = policy.sample_rate
        self.max_payload_bytes = policy.max_payload_bytes

    @property
    def health(self) -> Health:
        """Whether its store takes rows (see `sidegate.health`)."""
        return self._writer.health

    @property
    def queue_depth(self) -> int:
        """Requests captured whose rows are not yet in the store."""
        return len(self._captures) + self._writer.queue_depth

    def sampled(self) -> bool:
        """Whether to log this request: a fraction `sample_rate` of requests, decided at random."""
        rate = self.sample_rate
        return rate >= 1.0 or (rate > 0.0 and random.random() < rate)

    def submit(self, ctx: RequestContext, row: UsageRow) -> None:
        """Take a finished request's capture (O(1); never raises into the request)."""
        try:
            if ctx.capture is None:
                return
            if self._closed:
                log.error("inference log row dropped: the log is closed", request_id=row.request_id)
                return
            self._captures.append(Capture(row, ctx.fmt.name, ctx.body_bytes, ctx.body, ctx.capture))
            if len(self._captures) >= self._batch_size:
                self._wakeup.set()
        except Exception as exc:
            with contextlib.suppress(Exception):
                log.error("inference log submit failed", error=repr(exc))

    async def start(self) -> None:
        """Open the store (an unreachable store is an outage: retried, not raised) and start building rows."""
        await self._writer.start()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sidegate-inference-log")

    async def _run(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._flush_interval)
            self._wakeup.clear()
            try:
                await self._build()
            except Exception as exc:  # a bug here must not stop the log
                log.error("inference log loop error", error=repr(exc))

    async def _build(self) -> None:
        """Turn every capture taken so far into rows (on a worker thread) and queue them for writing."""
        async with self._building:
            while self._captures:
                batch = [self._captures.popleft() for _ in range(min(len(self._captures), self._batch_size))]
                rows = await asyncio.to_thread(_build_rows, batch, self.sample_rate, self.max_payload_bytes)
                for row in rows:
                    self._writer.submit(row)

    async def flush(self) -> None:
        """Build and write everything captured so far (a store outage is retried later, not raised)."""
        await self._build()
        await self._writer.flush()

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop taking captures, build the rows of those taken and close the writer (which spools
        what the store cannot take)."""
        if self._closed:
            return
        self._closed = True
        self._wakeup.set()
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        try:
            await self._build()
        finally:
            await self._writer.close(timeout_s)


async def follow_policy(
    current: InferenceLog | None, policy: InferenceLogPolicy,
) -> tuple[InferenceLog | None, InferenceLog | None]:
    """(the inference log to use, the one to close) after a policy reload: the same log with new
    sampling settings when the store is unchanged, a new started one when it changed, None for `none`.
    The caller swaps first and closes the old one after, so no request submits to a closing log."""
    if current is not None and current.url == policy.store:
        current.configure(policy)
        return current, None
    new = InferenceLog.from_policy(policy)
    if new is not None:
        await new.start()
        log.info("inference log store changed", store=redact_url(policy.store))
    return new, current
