"""Where spans go and how they get there: the OTLP/HTTP endpoint, and a tracer provider of this
process (not the global one) that batches spans off the request path and counts those it drops.

The endpoint is the policy's `telemetry.traces.otlp_endpoint` when set, else
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL), else `OTEL_EXPORTER_OTLP_ENDPOINT` (a base
URL). A base URL gets `/v1/traces` appended, as the OTLP exporter specification says; the policy
value is read the same way (a URL already ending in `/v1/traces` is used as it is). No endpoint, or
`OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER=none`: tracing is off.
`OTEL_EXPORTER_OTLP_HEADERS` / `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (collector credentials),
`OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, `OTEL_BSP_*` (batching) and `OTEL_TRACES_SAMPLER` are read by
the OpenTelemetry SDK itself; `OTEL_SERVICE_NAME` names the service (default `sidegate`).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping, Sequence, Sized
from dataclasses import dataclass

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from sidegate import __version__
from sidegate.health import Health
from sidegate.policy.model import TracesConfig
from sidegate.telemetry.stores.url import redact_url

TRACES_PATH = "/v1/traces"
DEFAULT_SERVICE_NAME = "sidegate"
CLOSE_WAIT_S = 5.0  # on shutdown, how long queued spans may take to reach the collector


@dataclass(frozen=True, slots=True)
class TraceSettings:
    endpoint: str | None  # the URL spans are POSTed to; None: tracing is off
    capture_content: bool = False
    service_name: str = DEFAULT_SERVICE_NAME


def signal_url(base: str) -> str:
    """An OTLP base URL (`http://collector:4318`) as the traces URL; a traces URL unchanged."""
    base = base.strip()
    if base.rstrip("/").endswith(TRACES_PATH):
        return base
    return base.rstrip("/") + TRACES_PATH


def trace_settings(config: TracesConfig, environ: Mapping[str, str] = os.environ) -> TraceSettings:
    """The tracing wanted by a policy's `telemetry.traces` and the standard OTEL_* variables."""
    service = environ.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME
    off = (environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
           or environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none")
    endpoint: str | None = None
    if off:
        pass
    elif config.otlp_endpoint.strip():
        endpoint = signal_url(config.otlp_endpoint)
    elif environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip():
        endpoint = environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"].strip()
    elif environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        endpoint = signal_url(environ["OTEL_EXPORTER_OTLP_ENDPOINT"])
    return TraceSettings(endpoint, config.capture_content, service)


class CountingExporter(SpanExporter):
    """Passes batches to the real exporter and counts what reached it and what it failed to send
    (a collector down or refusing: those spans are dropped, never retried past the exporter's own
    retries). `health` follows the collector: failing from a failed batch until one succeeds."""

    def __init__(self, inner: SpanExporter, target: str = "") -> None:
        self.inner = inner
        self.health = Health("trace collector", target)
        self.handed = 0  # spans taken off the queue for export
        self.exported = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._stopped = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            self.handed += len(spans)
        error: Exception | None = None
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter bug must not kill the batch worker
            result, error = SpanExportResult.FAILURE, exc
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                self.exported += len(spans)
            else:
                self.failed += len(spans)
        if result is SpanExportResult.SUCCESS:
            self.health.ok()
        else:
            detail = f": {type(error).__name__}: {error}" if error is not None else ""
            self.health.failed(f"{len(spans)} spans not taken by the collector{detail}", dropped=len(spans))
        return result

    def shutdown(self) -> None:
        with self._lock:
            stopped, self._stopped = self._stopped, True
        if not stopped:
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class CountingBatchProcessor(BatchSpanProcessor):
    """The SDK's batch processor (a bounded queue drained by a worker thread) that also counts the
    spans its full queue pushed out: when the collector is slower than the traffic, the oldest
    queued span is dropped for each new one."""

    def __init__(self, exporter: CountingExporter, max_queue_size: int | None = None,
                 schedule_delay_millis: float | None = None) -> None:
        batch = min(512, max_queue_size) if max_queue_size is not None else None
        super().__init__(exporter, max_queue_size=max_queue_size, schedule_delay_millis=schedule_delay_millis,
                         max_export_batch_size=batch)
        self.counting = exporter
        self.queue_limit = int(getattr(self._batch_processor, "_max_queue_size", 2048))
        self._queue: Sized = getattr(self._batch_processor, "_queue", ())
        self.ended = 0
        self.overflowed = 0

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None or not span.context.trace_flags.sampled:
            return
        self.ended += 1
        # The SDK's own test: a full queue drops its oldest span for this one. Spans leave the queue
        # only (a batch the worker takes), never enter it but here, so a full queue stays full until
        # the append below unless the worker takes a batch in between.
        if len(self._queue) >= self.queue_limit:
            self.overflowed += 1
        super().on_end(span)

    @property
    def dropped(self) -> int:
        return self.overflowed + self.counting.failed


def new_provider(settings: TraceSettings, exporter: SpanExporter, *, max_queue_size: int | None = None,
                 schedule_delay_millis: float | None = None) -> tuple[TracerProvider, CountingBatchProcessor]:
    resource = Resource.create({"service.name": settings.service_name, "service.version": __version__})
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    target = redact_url(settings.endpoint) if settings.endpoint else ""
    processor = CountingBatchProcessor(CountingExporter(exporter, target), max_queue_size, schedule_delay_millis)
    provider.add_span_processor(processor)
    return provider, processor


def otlp_exporter(endpoint: str) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint)


async def shut_down(provider: TracerProvider, processor: CountingBatchProcessor,
                    wait_s: float = CLOSE_WAIT_S) -> None:
    """Send what is queued and stop, without blocking the event loop. A collector that does not
    take the spans within `wait_s` has its exporter stopped (its retries end, the rest is dropped
    and counted)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def finished() -> None:
        if not done.done():
            done.set_result(None)

    def run() -> None:
        try:
            provider.shutdown()
        finally:
            try:
                loop.call_soon_threadsafe(finished)
            except RuntimeError:  # the loop has gone: nobody waits any more
                pass

    threading.Thread(target=run, name="sidegate-trace-shutdown", daemon=True).start()
    try:
        await asyncio.wait_for(asyncio.shield(done), wait_s)
    except TimeoutError:
        processor.counting.shutdown()  # ends the exporter's retry wait
        try:
            await asyncio.wait_for(asyncio.shield(done), wait_s)
        except TimeoutError:
            pass
