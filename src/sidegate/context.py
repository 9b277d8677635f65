"""The state of one request as it moves through the pipeline (`sidegate.pipeline`)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sidegate.formats.base import ApiFormat, TokenUsage

if TYPE_CHECKING:
    from aiohttp import web

    from sidegate.auth.principal import PrincipalInfo
    from sidegate.formats.stream import StreamReader
    from sidegate.governance.guardrails.checks import ActiveGuardrails
    from sidegate.governance.ratelimit.limiter import RateLimiter, Reservation
    from sidegate.ingress.registry import Surface
    from sidegate.policy.compiled import CompiledPolicy, Service, Target
    from sidegate.translate import Translation


def new_request_id() -> str:
    """A UUIDv7 (RFC 9562) as 32 hex digits: ids sort by arrival time, and a store's primary-key
    index takes each new row at its end rather than at a random page. Not a secret (74 random bits
    per millisecond tell requests apart; `random` is reseeded in forked children)."""
    ms = time.time_ns() // 1_000_000
    return f"{(ms << 80) | (0x7 << 76) | (random.getrandbits(12) << 64) | (0b10 << 62) | random.getrandbits(62):032x}"


_second: list[Any] = [-1, ""]  # the last whole second formatted, and its text


def utc_now_iso() -> str:
    """Now as ISO-8601 UTC with microseconds, like `datetime.now(UTC).isoformat()` but formatting
    the date and time of day once per second."""
    now = time.time()
    second = int(now)
    if second != _second[0]:
        _second[0], _second[1] = second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_second[1]}.{int((now - second) * 1e6):06d}+00:00"


@dataclass(slots=True)
class RequestContext:
    request: web.Request
    surface: Surface
    fmt: ApiFormat
    policy: CompiledPolicy
    request_id: str
    event_time: str
    started: float = field(default_factory=time.perf_counter)
    # set by parse
    url_model: str | None = None
    url_stream: bool = False
    stream_array: bool = False  # the stream goes to the caller as one JSON array (Gemini without alt=sse)
    body_bytes: bytes = b""
    body: dict[str, Any] | None = None
    model: str | None = None
    stream: bool = False
    # set by authenticate
    principal: PrincipalInfo | None = None
    credential_source: str | None = None  # where the sidegate credential came from; never forwarded
    user_agent: str | None = None
    client: str = "unknown"
    # set by resolve / tags / forward
    service: Service | None = None
    tags: dict[str, str] = field(default_factory=dict)
    tags_header: str | None = None
    target: Target | None = None
    destination_model: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    guardrail_results: list[dict[str, Any]] = field(default_factory=list)
    # set by the governance stages
    limiter: RateLimiter | None = None
    reservation: Reservation | None = None
    guardrails: ActiveGuardrails | None = None
    # set by forward: how the chosen destination's answer comes back
    translation: Translation | None = None  # None: the destination speaks the caller's format
    strip_usage: bool = False  # hide the stream usage chunk sidegate asked for on the caller's behalf
    upstream_s: float = 0.0  # time spent waiting on upstreams (attempts, then reading the answer)
    capture: list[bytes] | None = None  # when the inference log samples this request: the bytes sent back
    upstream_json: Any = None  # a whole answer's body as the attempt parsed it (None: not JSON)
    translated_answer: tuple[int, dict[str, Any]] | None = None  # a 2xx one as the attempt translated it
    stream_reader: StreamReader | None = None  # a stream's reader, its first events read by the attempt
    # outcome
    status: int = 0
    error_code: str | None = None
    usage: TokenUsage | None = None
    usage_complete: bool = True  # False when a stream ended early: counts may be partial
    output_chars: int = 0
    upstream_called: bool = False
    first_byte_at: float | None = None
    # telemetry
    span: Any = None  # the request's spans (sidegate.telemetry.tracing.tracer); None when tracing is off
    answer: dict[str, Any] | None = None  # a whole JSON answer as sent to the caller (finish reason, model)
    finish_reason: str | None = None  # of a stream, as the destination reported it

    def elapsed_ms(self, until: float | None = None) -> float:
        return ((until or time.perf_counter()) - self.started) * 1000.0
