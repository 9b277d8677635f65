"""What the upstream stages (`forward`, `relay`) are handed by the pipeline: the process's HTTP
client, the circuit breakers, the tracing of attempts and the registry of live requests.

The bundle is built with the process state and again when one of its parts is replaced (a policy
swap that changes tracing), never per request; a request uses the one it started with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sidegate.upstream.breaker import Breakers
from sidegate.upstream.http1.client import Http1Client
from sidegate.upstream.live import LiveRequests

if TYPE_CHECKING:
    from sidegate.context import RequestContext
    from sidegate.policy.compiled import Target


class AttemptTracing(Protocol):
    """What forwarding tells tracing: each upstream attempt's start (its span's context goes into
    `headers`, the request about to be sent) and its outcome."""

    def start_attempt(self, ctx: RequestContext, target: Target, model: str, api: str,
                      headers: dict[str, str] | None) -> None: ...

    def end_attempt(self, ctx: RequestContext, status: int | None, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class UpstreamServices:
    client: Http1Client
    breakers: Breakers
    tracing: AttemptTracing
    live: LiveRequests
