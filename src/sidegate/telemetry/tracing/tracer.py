"""OpenTelemetry traces of the requests sidegate serves (DESIGN §5 "Traces").

Each request gets one SERVER span, the child of the caller's W3C `traceparent` when it sent one,
named after the GenAI conventions (`chat gpt-5`) once the model service is known, else after the
HTTP route. Each upstream attempt (fallbacks included) gets a CLIENT span under it, whose context
goes upstream in the `traceparent` header. The attempt whose answer is relayed stays open until
the answer has been read, so its span covers the whole generation.

The pipeline calls, in order: `start_request` when the request context exists, `start_attempt` and
`end_attempt` around each upstream attempt (upstream/forward.py), and `end_request` from the
record stage with the finished usage row. With tracing off (no endpoint), `ctx.span` stays None and
each call returns after one check. While the request runs its spans are plain values
(`spans`); the record stage hands them, finished, to the batching processor, whose worker
thread exports them (`setup`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import structlog
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sidegate import __version__
from sidegate.context import RequestContext
from sidegate.health import Health
from sidegate.policy.model import TracesConfig
from sidegate.telemetry.genai import OPERATIONS, PROVIDERS, finish_reasons, response_model
from sidegate.telemetry.tracing.content import request_content, response_content
from sidegate.telemetry.tracing.setup import (
    CountingBatchProcessor,
    TraceSettings,
    new_provider,
    otlp_exporter,
    shut_down,
    trace_settings,
)
from sidegate.telemetry.tracing.spans import RANDOM_TRACE_ID, PendingSpan, RequestSpans
from sidegate.telemetry.usage.row import UsageRow

if TYPE_CHECKING:
    from sidegate.policy.compiled import Target

log = structlog.get_logger("sidegate.tracing")

PROPAGATOR = TraceContextTextMapPropagator()
NAME_MODEL_LIMIT = 128  # characters of a model name in a span name
RATE_LIMITED = "rate_limit_exceeded"
_GUARDRAIL_FIELDS = (("name", "guardrail"), ("phase", "phase"), ("action", "action"), ("category", "category"),
                     ("count", "count"))
_ANSWERED = frozenset({"ok", "error"})  # forward's reasons for the attempt whose answer is relayed


def _set(attributes: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        attributes[key] = value


class Tracing:
    """The spans of one sidegate process; `Tracing.from_policy` reads the policy and environment."""

    def __init__(self, settings: TraceSettings, provider: TracerProvider | None = None,
                 processor: CountingBatchProcessor | None = None) -> None:
        self.settings = settings
        self.capture_content = settings.capture_content
        self._provider = provider
        self._processor = processor
        self._scope = InstrumentationScope("sidegate", __version__)
        self._servers: dict[str, tuple[str | None, int | None]] = {}
        self._failures = 0

    @classmethod
    def from_policy(cls, config: TracesConfig, environ: Mapping[str, str] = os.environ) -> Tracing:
        settings = trace_settings(config, environ)
        if settings.endpoint is None:
            return cls(settings)
        return cls.exporting_to(settings, otlp_exporter(settings.endpoint))

    @classmethod
    def exporting_to(cls, settings: TraceSettings, exporter: SpanExporter, *, max_queue_size: int | None = None,
                     schedule_delay_millis: float | None = None) -> Tracing:
        """Tracing that sends every span to `exporter` (through the same batching as OTLP export)."""
        provider, processor = new_provider(settings, exporter, max_queue_size=max_queue_size,
                                           schedule_delay_millis=schedule_delay_millis)
        return cls(settings, provider, processor)

    @property
    def enabled(self) -> bool:
        return self._provider is not None

    @property
    def dropped_spans(self) -> int:
        """Spans that never reached the collector: export failures and queue overflow."""
        return self._processor.dropped if self._processor is not None else 0

    @property
    def health(self) -> Health | None:
        """The collector's health; None while tracing is off."""
        return self._processor.counting.health if self._processor is not None else None

    @property
    def exported_spans(self) -> int:
        return self._processor.counting.exported if self._processor is not None else 0

    def same_destination(self, other: TraceSettings) -> bool:
        s = self.settings
        return (s.endpoint, s.service_name) == (other.endpoint, other.service_name)

    # ------------------------------------------------------------------ the request path

    def start_request(self, ctx: RequestContext) -> None:
        if self._provider is None:
            return
        try:
            self._start_request(ctx, self._provider)
        except Exception:  # a tracing bug (or a custom sampler's) must not fail the request
            self._failed(ctx)

    def _start_request(self, ctx: RequestContext, provider: TracerProvider) -> None:
        request = ctx.request
        route = ctx.policy.prefix + ctx.surface.path if ctx.surface.path else None
        name = f"{request.method} {route}" if route else request.method
        parent_context = PROPAGATOR.extract(request.headers)
        caller = get_current_span(parent_context).get_span_context()
        parent = caller if caller.is_valid else None
        if parent is not None:
            trace_id, random = parent.trace_id, int(parent.trace_flags) & RANDOM_TRACE_ID
        else:
            trace_id, random = provider.id_generator.generate_trace_id(), RANDOM_TRACE_ID
        sampling = provider.sampler.should_sample(parent_context, trace_id, name, SpanKind.SERVER)
        attributes: dict[str, Any] = {"http.request.method": request.method, "sidegate.request_id": ctx.request_id}
        _set(attributes, "http.route", route)
        if sampling.attributes:
            attributes.update(sampling.attributes)
        flags = TraceFlags((TraceFlags.SAMPLED if sampling.decision.is_sampled() else TraceFlags.DEFAULT) | random)
        server = PendingSpan(name, provider.id_generator.generate_span_id(), SpanKind.SERVER, attributes)
        ctx.span = RequestSpans(trace_id, flags, sampling.trace_state, parent, server)

    def start_attempt(self, ctx: RequestContext, target: Target, model: str, api: str,
                      headers: dict[str, str] | None) -> None:
        """A client span for one upstream attempt; its context is written into `headers` (the
        request about to be sent) as `traceparent`."""
        spans: RequestSpans | None = ctx.span
        if spans is None or self._provider is None:
            return
        try:
            self._start_attempt(ctx, spans, self._provider, target, model, api, headers)
        except Exception:
            self._failed(ctx)

    def _start_attempt(self, ctx: RequestContext, spans: RequestSpans, tracer: TracerProvider, target: Target,
                       model: str, api: str, headers: dict[str, str] | None) -> None:
        previous = spans.open_attempt
        if previous is not None:
            previous.finish()
        provider = target.provider
        operation = OPERATIONS.get(api)
        attributes: dict[str, Any] = {"gen_ai.request.model": model, "sidegate.destination": provider.name}
        _set(attributes, "gen_ai.operation.name", operation)
        _set(attributes, "gen_ai.provider.name", PROVIDERS.get(provider.kind, provider.kind))
        if api != ctx.fmt.name:
            attributes["sidegate.translated_to"] = api
        address, port = self._server(provider.base_url)
        _set(attributes, "server.address", address)
        _set(attributes, "server.port", port)
        name = f"{operation} {model[:NAME_MODEL_LIMIT]}" if operation else ctx.request.method
        attempt = PendingSpan(name, tracer.id_generator.generate_span_id(), SpanKind.CLIENT, attributes)
        spans.attempts.append(attempt)
        if headers is not None:
            PROPAGATOR.inject(headers, context=set_span_in_context(NonRecordingSpan(spans.context_of(attempt))))

    def end_attempt(self, ctx: RequestContext, status: int | None, reason: str) -> None:
        """The attempt's outcome. The attempt whose answer is relayed stays open until `end_request`."""
        spans: RequestSpans | None = ctx.span
        attempt = spans.open_attempt if spans is not None else None
        if attempt is None:
            return
        attempt.attributes["sidegate.attempt.outcome"] = reason
        if status is not None:
            attempt.attributes["http.response.status_code"] = status
        if status is None or status >= 400:
            attempt.attributes["error.type"] = reason if status is None else str(status)
            attempt.status = Status(StatusCode.ERROR, reason)
        if reason not in _ANSWERED:
            attempt.finish()

    def end_request(self, ctx: RequestContext, row: UsageRow) -> None:
        """Finish the request's spans with what the usage row says and hand them to the exporter's
        queue. Never raises."""
        spans: RequestSpans | None = ctx.span
        if spans is None:
            return
        ctx.span = None
        if not spans.sampled or self._processor is None:
            return
        try:
            self._finish(ctx, row, spans)
            for span in spans.readable(self._resource(), self._scope):
                self._processor.on_end(span)
        except Exception:  # a tracing bug must not fail the request's record stage
            self._failed(ctx)

    def _failed(self, ctx: RequestContext) -> None:
        """Drop the request's spans; the first failure is logged with its traceback, later ones counted."""
        ctx.span = None
        self._failures += 1
        if self._failures == 1:
            log.exception("tracing failed; this request's spans are dropped", request_id=ctx.request_id)

    # ------------------------------------------------------------------ lifecycle

    async def flush(self) -> None:
        """Hand every ended span to the exporter now (in a thread: export may wait on the network)."""
        if self._provider is not None:
            await asyncio.to_thread(self._provider.force_flush)

    async def close(self) -> None:
        if self._provider is None or self._processor is None:
            return
        provider, processor, self._provider = self._provider, self._processor, None
        await shut_down(provider, processor)
        if processor.dropped:
            log.warning("spans dropped: the trace collector did not take them", dropped_spans=processor.dropped,
                        exported_spans=processor.counting.exported, endpoint=self.settings.endpoint)

    # ------------------------------------------------------------------ helpers

    def _server(self, base_url: str) -> tuple[str | None, int | None]:
        known = self._servers.get(base_url)
        if known is None:
            if base_url:
                parts = urlsplit(base_url)
                try:
                    port = parts.port or (443 if parts.scheme == "https" else 80)
                except ValueError:
                    port = None
                known = (parts.hostname, port)
            else:
                known = (None, None)
            if len(self._servers) < 1024:
                self._servers[base_url] = known
        return known

    def _resource(self) -> Resource:
        return self._provider.resource if self._provider is not None else Resource.get_empty()

    def _finish(self, ctx: RequestContext, row: UsageRow, spans: RequestSpans) -> None:
        api = ctx.fmt.name
        operation = OPERATIONS.get(api) if ctx.fmt.has_body else None
        answer = ctx.answer
        reasons = finish_reasons(api, answer) if answer is not None else []
        if not reasons and ctx.finish_reason:
            reasons = [ctx.finish_reason]
        answer_model = (response_model(api, answer) if answer is not None else None) or row.destination_model
        attempt = spans.open_attempt
        if attempt is not None:  # the answer relayed: read to its end now
            _set(attempt.attributes, "gen_ai.response.model", answer_model)
            if reasons:
                attempt.attributes["gen_ai.response.finish_reasons"] = reasons
            attempt.finish()

        server = spans.server
        attributes = server.attributes
        attributes["http.response.status_code"] = row.status_code
        attributes["sidegate.client"] = row.client
        attributes["sidegate.streaming"] = row.streaming
        if ctx.upstream_called:  # tokens once per request, on this span (not again on the attempt's)
            attributes["gen_ai.usage.input_tokens"] = row.input_tokens
            attributes["gen_ai.usage.output_tokens"] = row.output_tokens
            attributes["sidegate.tokens_estimated"] = row.tokens_estimated
            _set(attributes, "gen_ai.response.model", answer_model)
            if reasons:
                attributes["gen_ai.response.finish_reasons"] = reasons
        _set(attributes, "gen_ai.operation.name", operation)
        _set(attributes, "gen_ai.request.model", ctx.model)
        _set(attributes, "gen_ai.provider.name", PROVIDERS.get(row.destination_type or "", row.destination_type))
        _set(attributes, "sidegate.principal", row.requester)
        _set(attributes, "sidegate.model_service", row.model_service)
        _set(attributes, "sidegate.destination", row.destination_name)
        _set(attributes, "sidegate.error_code", row.error_code)
        _set(attributes, "sidegate.time_to_first_byte_ms", row.time_to_first_byte_ms)
        for key, value in row.request_tags.items():
            attributes["sidegate.tag." + key] = value
        if self.capture_content:
            _set(attributes, "sidegate.request.content", request_content(ctx))
            _set(attributes, "sidegate.response.content", response_content(ctx))
        if row.status_code >= 400:
            attributes["error.type"] = row.error_code or str(row.status_code)
            server.status = Status(StatusCode.ERROR, row.error_code or f"HTTP {row.status_code}")
        for result in row.guardrail_results:
            server.events.append(Event("sidegate.guardrail", {
                f"sidegate.guardrail.{name}": found for name, key in _GUARDRAIL_FIELDS
                if isinstance(found := result.get(key), str | int)}))
        if row.error_code == RATE_LIMITED:
            server.events.append(Event("sidegate.rate_limited", {"sidegate.error_code": RATE_LIMITED}))
        if operation and ctx.service is not None and ctx.model:
            server.name = f"{operation} {ctx.model[:NAME_MODEL_LIMIT]}"
        server.finish()

def follow(current: Tracing, config: TracesConfig, environ: Mapping[str, str] = os.environ) -> Tracing:
    """The tracing for a reloaded policy: the same object (with the new `capture_content`) while
    spans still go to the same place, else a new one (the caller closes the old)."""
    settings = trace_settings(config, environ)
    if current.same_destination(settings):
        current.capture_content = settings.capture_content
        return current
    return Tracing.from_policy(config, environ)
