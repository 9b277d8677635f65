"""Traces through the real app: the server span per request and a client span per upstream attempt,
their GenAI attributes, parenting under the caller's `traceparent`, the context sent upstream,
guardrail and rate-limit events, error status, and content captured only when asked.

Spans go through the production batching path into an in-memory exporter (`Tracing.exporting_to`).
The OTLP/HTTP export path itself is in tests/e2e/test_tracing_export.py.
"""

from __future__ import annotations

import random
import textwrap
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tests.support.fakes import DEFAULT_TEXT, DEFAULT_USAGE
from tests.support.gateway import KEY, PRINCIPALS

from sidegate.telemetry.tracing.setup import TraceSettings
from sidegate.telemetry.tracing.tracer import Tracing

CHAT = DEFAULT_USAGE["openai.chat"]
AUTH = {"Authorization": f"Bearer {KEY}"}


class Traced:
    """A gateway whose spans land in memory."""

    def __init__(self, gw: Any, capture_content: bool = False) -> None:
        self.gw = gw
        self.exporter = InMemorySpanExporter()
        self.tracing = Tracing.exporting_to(TraceSettings("memory", capture_content), self.exporter)
        gw.state.tracing = self.tracing

    async def spans(self) -> list[ReadableSpan]:
        await self.tracing.flush()
        return list(self.exporter.get_finished_spans())

    async def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None,
                   key: str = KEY) -> tuple[int, dict[str, str], bytes]:
        async with aiohttp.ClientSession() as http, http.post(
                self.gw.base + path, json=body, headers={"Authorization": f"Bearer {key}", **(headers or {})}) as r:
            return r.status, dict(r.headers), await r.read()


def server_span(spans: list[ReadableSpan]) -> ReadableSpan:
    [span] = [s for s in spans if s.kind is SpanKind.SERVER]
    return span


def client_spans(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return sorted((s for s in spans if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0)


def traceparent(trace_id: int, span_id: int) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-01"


def parse_traceparent(value: str) -> tuple[int, int]:
    version, trace_id, span_id, flags = value.split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    return int(trace_id, 16), int(span_id, 16)


def chat(model: str = "gpt-5", text: str = "Say hello", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def policy(*fakes: Any, models: str = "", extra: str = "") -> str:
    """Providers up0, up1, … for the fakes and the mock; gpt-5 on up0, mock-model on the mock."""
    lines = ["providers:", "  echo: {kind: mock}"]
    lines += [f'  up{i}: {{kind: openai, base_url: "{f.base_url}", api_key: sk-up}}' for i, f in enumerate(fakes)]
    lines += ["models:", "  gpt-5: {destinations: [{provider: up0}]}",
              "  mock-model: {destinations: [{provider: echo}]}"]
    lines += ["  " + line for line in models.strip().splitlines()]
    lines += textwrap.dedent(extra).strip("\n").splitlines()
    return "\n".join(lines) + "\n"


@pytest.fixture
async def traced(gateway, fake_upstream):
    fake = await fake_upstream("openai")
    gw = await gateway(policy(fake))
    return Traced(gw), fake


async def test_server_and_client_spans_follow_the_callers_trace(traced):
    t, fake = traced
    trace_id, caller_span = random.getrandbits(128), random.getrandbits(64)
    tags = '{"project": "chatbot"}'
    status, headers, _ = await t.post("/openai/v1/chat/completions", chat(), {
        "traceparent": traceparent(trace_id, caller_span), "X-Sidegate-Request-Tags": tags})
    assert status == 200
    spans = await t.spans()
    server = server_span(spans)
    [attempt] = client_spans(spans)

    assert server.context.trace_id == trace_id and server.parent is not None
    assert server.parent.span_id == caller_span and server.parent.is_remote
    assert attempt.context.trace_id == trace_id
    assert attempt.parent is not None and attempt.parent.span_id == server.context.span_id

    sent_trace, sent_parent = parse_traceparent(fake.last.headers["traceparent"])
    assert sent_trace == trace_id
    assert sent_parent == attempt.context.span_id

    assert server.name == "chat gpt-5"
    a = server.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-5"
    assert a["gen_ai.response.model"] == "gpt-5"
    assert a["gen_ai.usage.input_tokens"] == CHAT["input_tokens"]
    assert a["gen_ai.usage.output_tokens"] == CHAT["output_tokens"]
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
    assert a["http.response.status_code"] == 200
    assert a["http.request.method"] == "POST"
    assert a["sidegate.request_id"] == headers["x-sidegate-request-id"]
    assert a["sidegate.principal"] == "alice@example.com"
    assert a["sidegate.model_service"] == "gpt-5"
    assert a["sidegate.destination"] == "up0"
    assert a["sidegate.tag.project"] == "chatbot"
    assert server.status.status_code is StatusCode.UNSET
    assert "sidegate.request.content" not in a and "sidegate.response.content" not in a

    assert attempt.name == "chat gpt-5"
    c = attempt.attributes
    assert c["gen_ai.provider.name"] == "openai" and c["gen_ai.request.model"] == "gpt-5"
    assert c["server.address"] == "127.0.0.1" and c["server.port"] == fake.port
    assert c["http.response.status_code"] == 200 and c["sidegate.attempt.outcome"] == "ok"
    assert c["gen_ai.response.model"] == "gpt-5" and tuple(c["gen_ai.response.finish_reasons"]) == ("stop",)
    assert "gen_ai.usage.output_tokens" not in c  # tokens once per request: a trace's sum is the real one
    # the relayed attempt stays open while the answer is read: it ends within the server span
    assert server.start_time <= attempt.start_time and attempt.end_time <= server.end_time


async def test_a_request_without_traceparent_starts_a_trace(traced):
    t, fake = traced
    status, _, _ = await t.post("/openai/v1/chat/completions", chat())
    assert status == 200
    spans = await t.spans()
    server = server_span(spans)
    [attempt] = client_spans(spans)
    assert server.parent is None
    assert parse_traceparent(fake.last.headers["traceparent"]) == (server.context.trace_id, attempt.context.span_id)


async def test_a_caller_that_does_not_sample_is_followed(traced):
    t, fake = traced
    trace_id = random.getrandbits(128)
    status, _, _ = await t.post("/openai/v1/chat/completions", chat(),
                                {"traceparent": f"00-{trace_id:032x}-{random.getrandbits(64):016x}-00"})
    assert status == 200
    assert await t.spans() == []  # the parent-based sampler keeps the caller's decision
    _, sent_trace, _, flags = fake.last.headers["traceparent"].split("-")
    assert int(sent_trace, 16) == trace_id and not int(flags, 16) & 1


async def test_streamed_answer_reports_finish_reason_and_tokens(traced):
    t, _ = traced
    status, _, body = await t.post("/openai/v1/chat/completions", chat(stream=True))
    assert status == 200 and b"[DONE]" in body
    server = server_span(await t.spans())
    assert server.attributes["sidegate.streaming"] is True
    assert tuple(server.attributes["gen_ai.response.finish_reasons"]) == ("stop",)
    assert server.attributes["gen_ai.usage.output_tokens"] == CHAT["output_tokens"]


async def test_each_fallback_attempt_has_its_own_client_span(gateway, fake_upstream):
    first, second = await fake_upstream("openai"), await fake_upstream("openai")
    fallback = "fallback: {destinations: [{provider: up0}], fallbacks: [{provider: up1}]}"
    gw = await gateway(policy(first, second, models=fallback))
    t = Traced(gw)
    first.error(503)
    status, _, _ = await t.post("/openai/v1/chat/completions", chat("fallback"))
    assert status == 200
    spans = await t.spans()
    server = server_span(spans)
    failed, answered = client_spans(spans)
    assert failed.attributes["http.response.status_code"] == 503
    assert failed.attributes["sidegate.attempt.outcome"] == "retryable_status"
    assert failed.status.status_code is StatusCode.ERROR
    assert answered.attributes["sidegate.destination"] == "up1"
    assert answered.status.status_code is StatusCode.UNSET
    for span, fake in ((failed, first), (answered, second)):
        assert span.parent is not None and span.parent.span_id == server.context.span_id
        assert parse_traceparent(fake.last.headers["traceparent"]) == (server.context.trace_id, span.context.span_id)
    assert server.attributes["sidegate.destination"] == "up1"


async def test_failures_mark_spans_as_errors(traced, gateway):
    t, fake = traced
    status, _, _ = await t.post("/openai/v1/chat/completions", chat("no-such-model"))
    assert status == 404
    status, _, _ = await t.post("/openai/v1/chat/completions", chat(), key="sk-wrong")
    assert status == 401
    fake.error(400, "bad request")
    status, _, _ = await t.post("/openai/v1/chat/completions", chat())
    assert status == 400
    spans = await t.spans()
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    assert [s.attributes["http.response.status_code"] for s in servers] == [404, 401, 400]
    assert all(s.status.status_code is StatusCode.ERROR for s in servers)
    assert servers[0].attributes["error.type"] == servers[0].attributes["sidegate.error_code"]
    assert "sidegate.principal" not in servers[1].attributes
    [attempt] = client_spans(spans)  # only the last request reached an upstream
    assert attempt.status.status_code is StatusCode.ERROR and attempt.attributes["error.type"] == "400"


async def test_unreachable_upstream_ends_the_attempt_with_its_reason(gateway):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gw = await gateway(f"""
    providers:
      gone: {{kind: openai, base_url: "http://127.0.0.1:{port}/v1", api_key: sk-up}}
    models:
      gpt-5: {{destinations: [{{provider: gone}}]}}
    """)
    t = Traced(gw)
    status, _, _ = await t.post("/openai/v1/chat/completions", chat())
    assert status == 502
    spans = await t.spans()
    [attempt] = client_spans(spans)
    assert attempt.attributes["error.type"] == "connection_error"
    assert "http.response.status_code" not in attempt.attributes
    assert server_span(spans).attributes["sidegate.error_code"] == "upstream_unreachable"


async def test_in_process_mock_is_traced_too(traced):
    t, _ = traced
    status, _, _ = await t.post("/mlflow/v1/chat/completions", chat("mock-model", "echo me"))
    assert status == 200
    spans = await t.spans()
    [attempt] = client_spans(spans)
    assert attempt.attributes["gen_ai.provider.name"] == "sidegate.mock"
    assert server_span(spans).attributes["gen_ai.usage.output_tokens"] > 0


async def test_guardrail_triggers_and_rate_limit_refusals_are_events(gateway, fake_upstream):
    fake = await fake_upstream("openai")
    gw = await gateway(policy(fake, extra="""
    guardrails:
      - {name: pii, phase: input, detect: {pii: [email]}, action: mask}
    rate_limits:
      - {key: user_default, requests_per_minute: 1}
    """))
    t = Traced(gw, capture_content=True)
    status, _, _ = await t.post("/openai/v1/chat/completions", chat(text="write to jane.doe@example.com"))
    assert status == 200
    assert b"jane.doe@example.com" not in fake.last.body
    status, _, _ = await t.post("/openai/v1/chat/completions", chat())
    assert status == 429
    masked, refused = [s for s in await t.spans() if s.kind is SpanKind.SERVER]
    [event] = [e for e in masked.events if e.name == "sidegate.guardrail"]
    assert dict(event.attributes or {}) == {"sidegate.guardrail.name": "pii", "sidegate.guardrail.phase": "input",
                                            "sidegate.guardrail.action": "mask",
                                            "sidegate.guardrail.category": "email", "sidegate.guardrail.count": 1}
    content = masked.attributes["sidegate.request.content"]
    assert "<EMAIL_ADDRESS>" in content and "jane.doe" not in content
    assert masked.attributes["sidegate.response.content"] == DEFAULT_TEXT
    assert [e.name for e in refused.events] == ["sidegate.rate_limited"]
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.attributes["error.type"] == "rate_limit_exceeded"
    assert "sidegate.request.content" not in refused.attributes  # never forwarded: nothing captured


async def test_streamed_completion_is_captured_when_the_inference_log_keeps_the_stream(gateway, fake_upstream,
                                                                                        tmp_path):
    fake = await fake_upstream("openai")
    gw = await gateway(policy(fake, extra=f"""
    inference_log: {{store: 'jsonl:///{tmp_path}/inference.jsonl', sample_rate: 1.0}}
    """))
    t = Traced(gw, capture_content=True)
    status, _, body = await t.post("/openai/v1/chat/completions", chat(stream=True))
    assert status == 200
    server = server_span(await t.spans())
    assert server.attributes["sidegate.response.content"] == body.decode()  # what the caller got
    assert "Say hello" in server.attributes["sidegate.request.content"]


async def test_blocked_prompt_is_not_captured(gateway, fake_upstream):
    fake = await fake_upstream("openai")
    gw = await gateway(policy(fake, extra="""
    guardrails:
      - {name: words, phase: input, detect: {keywords: [project-x]}, action: block}
    """))
    t = Traced(gw, capture_content=True)
    status, _, _ = await t.post("/openai/v1/chat/completions", chat(text="all about project-x"))
    assert status == 400
    server = server_span(await t.spans())
    assert server.attributes["sidegate.error_code"] == "input_guardrail_triggered"
    assert "sidegate.request.content" not in server.attributes
    assert [e.attributes["sidegate.guardrail.action"] for e in server.events] == ["block"]
    assert fake.received == []


async def test_tracing_off_leaves_the_callers_traceparent_alone(gateway, fake_upstream):
    fake = await fake_upstream("openai")
    gw = await gateway(policy(fake))
    assert not gw.state.tracing.enabled
    caller = traceparent(random.getrandbits(128), random.getrandbits(64))
    async with aiohttp.ClientSession() as http, http.post(
            gw.base + "/openai/v1/chat/completions", json=chat(), headers={**AUTH, "traceparent": caller}) as r:
        assert r.status == 200
    assert fake.last.headers["traceparent"] == caller


async def test_policy_endpoint_turns_tracing_on_and_reload_follows(gateway, fake_upstream, monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    fake = await fake_upstream("openai")
    gw = await gateway(policy(fake, extra="""
    telemetry: {traces: {otlp_endpoint: "http://127.0.0.1:4318", capture_content: false}}
    """))
    rest = PRINCIPALS + f"usage: {{store: '{gw.state.usage_url}'}}\n"
    tracing = gw.state.tracing
    assert tracing.enabled and tracing.settings.endpoint == "http://127.0.0.1:4318/v1/traces"
    gw.write_policy(policy(fake, extra="""
    telemetry: {traces: {otlp_endpoint: "http://127.0.0.1:4318/v1/traces", capture_content: true}}
    """) + rest)
    assert await gw.state.holder.reload("test")
    assert gw.state.tracing is tracing and tracing.capture_content  # same collector: same provider
    gw.write_policy(policy(fake) + rest)
    assert await gw.state.holder.reload("test")
    assert not gw.state.tracing.enabled



async def test_a_failing_sampler_costs_the_spans_not_the_request(traced, monkeypatch):
    t, fake = traced

    class Broken:
        def should_sample(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("sampler bug")

    provider = t.tracing._provider
    monkeypatch.setattr(provider, "sampler", Broken())
    status, _, _ = await t.post("/openai/v1/chat/completions", chat())
    assert status == 200
    assert (await t.gw.row())["status_code"] == 200
    assert await t.spans() == []
    assert "traceparent" not in fake.last.headers
