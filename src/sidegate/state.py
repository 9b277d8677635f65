"""What one sidegate process holds while it serves: the policy in force, the rate limiter and the
usage writer that follow it across reloads, the services handed to the upstream stages (the
upstream client, the circuit breakers, tracing, the live requests) and the count of requests in
flight."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, cast

import structlog
from aiohttp import web

from sidegate.governance.ratelimit.limiter import RateLimiter
from sidegate.telemetry.inference.log import InferenceLog, follow_policy
from sidegate.telemetry.metrics.app_metrics import Metrics
from sidegate.telemetry.stores.registry import open_store
from sidegate.telemetry.stores.url import default_spool_path, redact_url
from sidegate.telemetry.tracing.tracer import Tracing, follow
from sidegate.telemetry.usage.row import USAGE
from sidegate.telemetry.usage.writer import UsageWriter
from sidegate.upstream.breaker import Breakers
from sidegate.upstream.client import new_client
from sidegate.upstream.live import LiveRequests
from sidegate.upstream.services import UpstreamServices

if TYPE_CHECKING:
    from sidegate.policy.compiled import CompiledPolicy
    from sidegate.policy.reload import PolicyHolder

log = structlog.get_logger("sidegate.state")


def new_usage_writer(url: str) -> UsageWriter:
    return UsageWriter(open_store(url, USAGE), spool_path=default_spool_path(url), target=redact_url(url))


class AppState:
    def __init__(self, holder: PolicyHolder, usage: UsageWriter, usage_url: str) -> None:
        self.holder = holder
        self.usage = usage
        self.usage_url = usage_url
        self.limiter = RateLimiter.from_policy(holder.current.model)
        self.inference_log = InferenceLog.from_policy(holder.current.model.inference_log)  # started by app
        # What forward and relay are handed: the client, the breakers (per destination, kept across
        # reloads), tracing (off without an endpoint) and the live requests (what shutdown ends).
        # Rebuilt only when a part changes; `tracing`, `breakers` and `live` read it.
        self.upstream = UpstreamServices(new_client(), Breakers(),
                                         Tracing.from_policy(holder.current.model.telemetry.traces), LiveRequests())
        self.metrics = Metrics(holder.current.model.telemetry.metrics.labels, self)
        self.in_flight = 0
        self.shutting_down = False  # from SIGTERM on: /readyz answers 503
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def policy(self) -> CompiledPolicy:
        return self.holder.current

    # The gauges the metrics read at scrape time (`telemetry.metrics.process_values.Gauges`).
    @property
    def usage_queue_depth(self) -> int:
        return self.usage.queue_depth

    @property
    def policy_reloads(self) -> dict[str, int]:
        return self.holder.reloads

    @property
    def policy_reload_failed(self) -> bool:
        return bool(self.holder.last_error)

    @property
    def dropped_spans(self) -> int:
        return self.tracing.dropped_spans

    @property
    def tracing(self) -> Tracing:
        return cast(Tracing, self.upstream.tracing)  # the bundle types it by what forwarding uses of it

    @tracing.setter
    def tracing(self, tracing: Tracing) -> None:
        if tracing is not self.upstream.tracing:  # a reload that kept tracing as it was changes nothing
            self.upstream = dataclasses.replace(self.upstream, tracing=tracing)

    @property
    def breakers(self) -> Breakers:
        return self.upstream.breakers

    @breakers.setter
    def breakers(self, breakers: Breakers) -> None:
        self.upstream = dataclasses.replace(self.upstream, breakers=breakers)

    @property
    def live(self) -> LiveRequests:
        return self.upstream.live

    def background(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run work off the request path (a rate-limit settlement); held until done, awaited on close."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def on_policy_swap(self, policy: CompiledPolicy) -> None:
        """Follow a reloaded policy: a new rate limiter (a memory:// store keeps its buckets when the
        URL is unchanged), and new usage rows to the new store while the old writer drains."""
        self.metrics.policy_swapped(policy.model.telemetry.metrics.labels)  # before the limiter is replaced
        old_limiter, self.limiter = self.limiter, RateLimiter.from_policy(policy.model, previous=self.limiter)
        if old_limiter is not None:
            await old_limiter.close()
        self.inference_log, retired = await follow_policy(self.inference_log, policy.model.inference_log)
        if retired is not None:
            await retired.close()
        old_tracing, self.tracing = self.tracing, follow(self.tracing, policy.model.telemetry.traces)
        if old_tracing is not self.tracing:
            self.background(old_tracing.close())
        url = policy.model.usage.store
        if url == self.usage_url:
            return
        writer = new_usage_writer(url)
        await writer.start()
        old, self.usage, self.usage_url = self.usage, writer, url
        log.info("usage store changed", store=redact_url(url))
        await old.close()

    async def close(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self.limiter is not None:
            await self.limiter.close()
        await self.tracing.close()
        await self.upstream.client.close()
        await self.usage.close()
        if self.inference_log is not None:
            await self.inference_log.close()


STATE = web.AppKey("sidegate_state", AppState)
