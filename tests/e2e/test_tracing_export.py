"""The OTLP/HTTP export path of traces: where the endpoint comes from (policy, OTEL_* variables),
spans arriving at a real OTLP/HTTP receiver (protobuf decoded with opentelemetry-proto), and a
collector that is down, refusing or stalled: spans dropped and counted, requests unaffected."""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from tests.support.gateway import KEY

from sidegate.policy.model import TracesConfig
from sidegate.telemetry.tracing.setup import TraceSettings, signal_url, trace_settings
from sidegate.telemetry.tracing.tracer import Tracing

AUTH = {"Authorization": f"Bearer {KEY}"}
BODY = {"model": "gpt-5", "messages": [{"role": "user", "content": "Say hello"}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    """A minimal OTLP/HTTP trace receiver: POST /v1/traces with a protobuf ExportTraceServiceRequest."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _traces(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        self.requests.append(message)
        return web.Response(status=self.status, body=b"", content_type="application/x-protobuf")

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) for every span received."""
        out = []
        for message in self.requests:
            for resource_spans in message.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                out += [(resource, span) for scope in resource_spans.scope_spans for span in scope.spans]
        return out


def attributes(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attribute in span.attributes:
        value = attribute.value
        out[attribute.key] = getattr(value, value.WhichOneof("value"))
    return out


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
                 "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME",
                 "OTEL_TRACES_SAMPLER"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
async def receiver():
    made: list[Receiver] = []

    async def make(status: int = 200) -> Receiver:
        r = Receiver(status)
        await r.start()
        made.append(r)
        return r

    yield make
    for r in made:
        await r.close()


def gateway_policy(fake: Any, endpoint: str) -> str:
    return f"""
    providers:
      up: {{kind: openai, base_url: "{fake.base_url}", api_key: sk-up}}
    models:
      gpt-5: {{destinations: [{{provider: up}}]}}
    telemetry: {{traces: {{otlp_endpoint: "{endpoint}"}}}}
    """


async def send(gw: Any, n: int = 1) -> list[int]:
    statuses = []
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            async with http.post(gw.base + "/openai/v1/chat/completions", json=BODY, headers=AUTH) as r:
                await r.read()
                statuses.append(r.status)
    return statuses


# ---------------------------------------------------------------- where spans go


def test_endpoint_from_policy_then_environment():
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/x"}
    assert trace_settings(TracesConfig(otlp_endpoint="http://policy:4318/"), env).endpoint == \
        "http://policy:4318/v1/traces"
    assert trace_settings(TracesConfig(), env).endpoint == "http://t:1/x"  # the signal URL is used as it is
    assert trace_settings(TracesConfig(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318"}).endpoint == \
        "http://env:4318/v1/traces"
    assert trace_settings(TracesConfig(), {}).endpoint is None
    assert trace_settings(TracesConfig(otlp_endpoint="  "), {}).endpoint is None  # ${OTEL_…:-} left empty


def test_tracing_can_be_switched_off_and_named_from_the_environment():
    config = TracesConfig(otlp_endpoint="http://c:4318", capture_content=True)
    assert trace_settings(config, {"OTEL_SDK_DISABLED": "true"}).endpoint is None
    assert trace_settings(config, {"OTEL_TRACES_EXPORTER": "none"}).endpoint is None
    settings = trace_settings(config, {"OTEL_SERVICE_NAME": "gateway-eu"})
    assert settings == TraceSettings("http://c:4318/v1/traces", True, "gateway-eu")
    assert trace_settings(config, {}).service_name == "sidegate"
    assert signal_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"


async def test_tracing_off_costs_no_provider():
    tracing = Tracing.from_policy(TracesConfig(), {})
    assert not tracing.enabled and tracing.dropped_spans == 0
    await tracing.flush()
    await tracing.close()


# ---------------------------------------------------------------- export


async def test_spans_reach_an_otlp_http_receiver(gateway, fake_upstream, receiver, clean_env):
    collector = await receiver()
    clean_env.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer collector-token")
    clean_env.setenv("OTEL_SERVICE_NAME", "sidegate-test")
    fake = await fake_upstream("openai")
    gw = await gateway(gateway_policy(fake, f"http://127.0.0.1:{collector.port}"))
    assert await send(gw) == [200]
    await gw.state.tracing.flush()

    assert collector.headers and collector.headers[0]["Content-Type"] == "application/x-protobuf"
    assert collector.headers[0]["Authorization"] == "Bearer collector-token"
    received = collector.spans()
    assert {resource["service.name"] for resource, _ in received} == {"sidegate-test"}
    by_kind = {span.kind: span for _, span in received}
    server = by_kind[2]  # SPAN_KIND_SERVER
    client = by_kind[3]  # SPAN_KIND_CLIENT
    assert server.name == client.name == "chat gpt-5"
    assert client.parent_span_id == server.span_id and client.trace_id == server.trace_id
    assert fake.last.headers["traceparent"].startswith(f"00-{client.trace_id.hex()}-{client.span_id.hex()}-")
    a = attributes(server)
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "gpt-5"
    assert a["sidegate.principal"] == "alice@example.com" and a["http.response.status_code"] == 200
    assert gw.state.tracing.exported_spans == 2 and gw.state.tracing.dropped_spans == 0


async def test_collector_down_spans_dropped_and_counted(gateway, fake_upstream, clean_env):
    clean_env.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")
    fake = await fake_upstream("openai")
    gw = await gateway(gateway_policy(fake, f"http://127.0.0.1:{free_port()}"))
    assert await send(gw, 3) == [200, 200, 200]
    assert len(await gw.rows()) == 3
    await gw.state.tracing.flush()
    assert gw.state.tracing.dropped_spans == 6 and gw.state.tracing.exported_spans == 0
    async with aiohttp.ClientSession() as session, session.get(f"{gw.origin}/metrics") as reply:
        exposition = await reply.text()
    assert "sidegate_trace_spans_dropped_total 6.0" in exposition.splitlines()


async def test_collector_refusing_spans_are_counted(gateway, fake_upstream, receiver, clean_env):
    collector = await receiver(status=400)
    fake = await fake_upstream("openai")
    gw = await gateway(gateway_policy(fake, f"http://127.0.0.1:{collector.port}"))
    assert await send(gw, 2) == [200, 200]
    await gw.state.tracing.flush()
    assert len(collector.requests) >= 1
    assert gw.state.tracing.dropped_spans == 4


class StalledExporter(SpanExporter):
    """A collector that takes nothing until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.received = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(60)
        self.received += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


async def test_stalled_collector_overflows_the_queue_not_the_requests(gateway, fake_upstream, clean_env):
    fake = await fake_upstream("openai")
    gw = await gateway(gateway_policy(fake, ""))
    stalled = StalledExporter()
    tracing = Tracing.exporting_to(TraceSettings("stalled"), stalled, max_queue_size=4, schedule_delay_millis=10)
    gw.state.tracing = tracing
    assert await send(gw, 10) == [200] * 10  # 20 spans for a queue of 4 and an exporter that never returns
    assert tracing.dropped_spans > 0
    stalled.release.set()
    await tracing.flush()
    assert tracing.dropped_spans + stalled.received == 20
    assert tracing.exported_spans == stalled.received


async def test_close_sends_what_is_queued(gateway, fake_upstream, receiver, clean_env):
    collector = await receiver()
    fake = await fake_upstream("openai")
    gw = await gateway(gateway_policy(fake, f"http://127.0.0.1:{collector.port}"))
    assert await send(gw, 2) == [200, 200]
    await gw.state.tracing.close()  # the batch worker had not sent them yet (5 s schedule)
    assert len(collector.spans()) == 4
