"""What one sidegate process holds while it serves: the policy in force, the usage writer, the
upstream client session and the count of requests in flight."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import structlog
from aiohttp import web

from sidegate.telemetry.stores import default_spool_path, open_store
from sidegate.telemetry.usage_row import UsageRow
from sidegate.telemetry.usage_writer import UsageWriter

if TYPE_CHECKING:
    from sidegate.policy.compiled import CompiledPolicy
    from sidegate.policy.reload import PolicyHolder

log = structlog.get_logger("sidegate.state")


def new_usage_writer(url: str) -> UsageWriter:
    return UsageWriter(open_store(url), spool_path=default_spool_path(url))


class AppState:
    def __init__(self, holder: PolicyHolder, usage: UsageWriter, usage_url: str) -> None:
        self.holder = holder
        self.usage = usage
        self.usage_url = usage_url
        self.in_flight = 0
        self.session: aiohttp.ClientSession | None = None

    @property
    def policy(self) -> CompiledPolicy:
        return self.holder.current

    def record(self, row: UsageRow) -> None:
        self.usage.submit(row)

    async def on_policy_swap(self, policy: CompiledPolicy) -> None:
        """Follow a reloaded policy's usage store: new rows go to the new store, the old writer
        drains what it holds."""
        url = policy.model.usage.store
        if url == self.usage_url:
            return
        writer = new_usage_writer(url)
        await writer.start()
        old, self.usage, self.usage_url = self.usage, writer, url
        log.info("usage store changed", store=url)
        await old.close()


STATE = web.AppKey("sidegate_state", AppState)
