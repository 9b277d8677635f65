"""The spans of one request while it runs, kept as plain values (ids, times, attributes) and turned
into the SDK's `ReadableSpan`s once, when the request is recorded.

The SDK's live `Span` validates and locks on every attribute set (about 1.5 µs each, 11 µs for a
bare span): for a request's two spans with their ~30 attributes that was ~100 µs. Attributes here
are built by sidegate from known types, so the spans are assembled directly and handed to the
span processor like any ended span; sampling, ids and export stay the SDK's.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, TraceFlags, TraceState

RANDOM_TRACE_ID = 0x02  # W3C Trace Context level 2 flag: the trace id's right part is random


class PendingSpan:
    """One span to be: what it is, when it started and (once known) ended, and what it says."""

    __slots__ = ("attributes", "end", "events", "kind", "name", "span_id", "start", "status")

    def __init__(self, name: str, span_id: int, kind: SpanKind, attributes: dict[str, Any]) -> None:
        self.name = name
        self.span_id = span_id
        self.kind = kind
        self.attributes = attributes
        self.start = time.time_ns()
        self.end = 0
        self.status: Status | None = None
        self.events: list[Event] = []

    def finish(self) -> None:
        if not self.end:
            self.end = time.time_ns()


class RequestSpans:
    """What a request holds on `ctx.span`: its trace, its server span and its attempts' spans."""

    __slots__ = ("attempts", "flags", "parent", "server", "trace_id", "trace_state")

    def __init__(self, trace_id: int, flags: TraceFlags, trace_state: TraceState | None, parent: SpanContext | None,
                 server: PendingSpan) -> None:
        self.trace_id = trace_id
        self.flags = flags
        self.trace_state = trace_state
        self.parent = parent  # the caller's span, when it sent a traceparent
        self.server = server
        self.attempts: list[PendingSpan] = []

    @property
    def sampled(self) -> bool:
        return self.flags.sampled

    @property
    def open_attempt(self) -> PendingSpan | None:
        last = self.attempts[-1] if self.attempts else None
        return last if last is not None and not last.end else None

    def context_of(self, span: PendingSpan) -> SpanContext:
        return SpanContext(self.trace_id, span.span_id, is_remote=False, trace_flags=self.flags,
                           trace_state=self.trace_state)

    def readable(self, resource: Resource, scope: InstrumentationScope) -> list[ReadableSpan]:
        """The finished spans, server span first."""
        server = self.context_of(self.server)
        return [self._readable(self.server, server, self.parent, resource, scope)] + [
            self._readable(attempt, self.context_of(attempt), server, resource, scope) for attempt in self.attempts]

    @staticmethod
    def _readable(span: PendingSpan, context: SpanContext, parent: SpanContext | None, resource: Resource,
                  scope: InstrumentationScope) -> ReadableSpan:
        extra: dict[str, Any] = {} if span.status is None else {"status": span.status}
        return ReadableSpan(name=span.name, context=context, parent=parent, resource=resource,
                            attributes=span.attributes, events=span.events, kind=span.kind, start_time=span.start,
                            end_time=span.end or time.time_ns(), instrumentation_scope=scope, **extra)
