"""GET /metrics of a real sidegate after traffic sent with the openai SDK: the mock provider, a
fallback from a fake upstream's 429, a rate-limit refusal, a flagged guardrail, an unknown model;
the admin app; policy reloads; rate-limit store errors across a reload; promtool on the result."""

from __future__ import annotations

import json
import socket

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer
from tests.support.gateway import KEY
from tests.support.prom import parse, promtool_check, total, value

from sidegate.app import build_admin_app

POLICY = """
providers:
  echo: {{kind: mock}}
  busy: {{kind: openai, base_url: "{busy}", api_key: sk-busy}}
models:
  echo: {{destinations: [{{provider: echo}}]}}
  limited: {{destinations: [{{provider: echo}}]}}
  fb: {{destinations: [{{provider: busy, model: gpt-busy}}], fallbacks: [{{provider: echo}}]}}
rate_limits:
  - {{key: service, model: limited, requests_per_minute: 2}}
guardrails:
  - {{name: pii, phase: input, detect: {{pii: [email]}}, action: flag}}
telemetry:
  metrics: {{labels: [principal, "tag:team"]}}
"""
MESSAGES = [{"role": "user", "content": "hello metrics"}]
ALICE = {"principal": "alice@example.com", "tag_team": "search"}


def client(gw, team: str = "search") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.base + "/mlflow/v1", api_key=KEY, max_retries=0,
                              default_headers={"X-Sidegate-Request-Tags": json.dumps({"team": team})})


async def scrape(origin: str, accept: str | None = None) -> tuple[bytes, str]:
    headers = {"Accept": accept} if accept else {}
    async with aiohttp.ClientSession() as session, session.get(origin + "/metrics", headers=headers) as r:
        assert r.status == 200
        return await r.read(), r.headers["Content-Type"]


@pytest.fixture
async def gw(gateway, fake_upstream):
    busy = await fake_upstream("openai")
    gw = await gateway(POLICY.format(busy=busy.base_url))
    gw.busy = busy
    return gw


async def test_metrics_after_traffic(gw):
    api = client(gw)
    await api.chat.completions.create(model="echo", messages=MESSAGES)
    stream = await api.chat.completions.create(model="echo", messages=MESSAGES, stream=True,
                                               stream_options={"include_usage": True})
    [chunk async for chunk in stream]
    await api.embeddings.create(model="echo", input="embed me")
    with pytest.raises(openai.NotFoundError):
        await api.chat.completions.create(model="no-such-model", messages=MESSAGES)
    for _ in range(2):
        await api.chat.completions.create(model="limited", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError):
        await api.chat.completions.create(model="limited", messages=MESSAGES)
    gw.busy.error(429)
    await api.chat.completions.create(model="fb", messages=MESSAGES)
    await client(gw, team="infra").chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "mail bob@example.com"}])

    body, content_type = await scrape(gw.origin)
    assert content_type.startswith("text/plain; version=0.0.4")
    s = parse(body)
    chat = {"api": "mlflow/chat/completions"}
    assert total(s, "sidegate_requests_total") == 9
    assert value(s, "sidegate_requests_total", **chat, model_service="echo", provider="echo", status_code="200",
                 **ALICE) == 2
    assert value(s, "sidegate_requests_total", api="mlflow/embeddings", model_service="echo", provider="echo",
                 status_code="200", **ALICE) == 1
    assert value(s, "sidegate_requests_total", **chat, model_service="", provider="", status_code="404",
                 principal="alice@example.com", tag_team="") == 1  # refused before its tags were read
    assert total(s, "sidegate_requests_total", tag_team="infra") == 1
    assert value(s, "sidegate_rate_limited_total", **chat, model_service="limited", **ALICE) == 1
    assert value(s, "sidegate_fallbacks_total", **chat, model_service="fb", from_provider="busy", provider="echo",
                 reason="retryable_status", **ALICE) == 1
    assert value(s, "sidegate_upstream_errors_total", **chat, model_service="fb", provider="busy",
                 reason="retryable_status", status_code="429", **ALICE) == 1
    assert value(s, "sidegate_guardrail_triggers_total", **chat, model_service="echo", guardrail="pii",
                 phase="input", action="flag", category="email", principal="alice@example.com",
                 tag_team="infra") == 1
    assert total(s, "sidegate_tokens_total", type="input") > 0
    assert total(s, "sidegate_tokens_total", type="output") > 0
    assert total(s, "sidegate_request_duration_seconds_count") == 9
    assert total(s, "sidegate_overhead_seconds_count") == 9
    assert total(s, "gen_ai_client_token_usage_count", gen_ai_token_type="input") == 7  # the answered ones
    assert total(s, "gen_ai_server_request_duration_seconds_count", gen_ai_operation_name="embeddings") == 1
    assert total(s, "gen_ai_server_time_to_first_token_seconds_count") == 1  # the one stream
    assert value(s, "sidegate_in_flight_requests") == 0
    assert value(s, "sidegate_usage_queue_depth") is not None
    assert value(s, "sidegate_policy_reloads_total", result="success") == 0
    assert value(s, "sidegate_rate_limit_store_errors_total") == 0
    assert value(s, "process_resident_memory_bytes")
    assert promtool_check(body) == (0, "")

    await gw.state.usage.flush()
    _, again = await scrape(gw.origin, "application/openmetrics-text; version=1.0.0")
    assert again.startswith("application/openmetrics-text")


async def test_admin_app_serves_the_same_metrics(gw):
    await client(gw).chat.completions.create(model="echo", messages=MESSAGES)
    admin = TestServer(build_admin_app(gw.state), host="127.0.0.1")
    await admin.start_server()
    try:
        body, _ = await scrape(f"http://127.0.0.1:{admin.port}")
    finally:
        await admin.close()
    assert total(parse(body), "sidegate_requests_total") == 1


async def test_reloads_are_counted_and_new_labels_follow(gw):
    await client(gw).chat.completions.create(model="echo", messages=MESSAGES)
    gw.write_policy((gw.directory / "policy.yaml").read_text().replace('[principal, "tag:team"]', "[principal]"))
    assert await gw.state.holder.reload("test")
    await client(gw).chat.completions.create(model="echo", messages=MESSAGES)
    s = parse((await scrape(gw.origin))[0])
    assert value(s, "sidegate_policy_reloads_total", result="success") == 1
    assert value(s, "sidegate_policy_last_reload_failed") == 0
    assert total(s, "sidegate_requests_total") == 1  # new labels: counted afresh
    assert value(s, "sidegate_requests_total", api="mlflow/chat/completions", model_service="echo",
                 provider="echo", status_code="200", principal="alice@example.com") == 1

    gw.write_policy("models: [not, a, map]\n", name="zz-broken.yaml")
    assert not await gw.state.holder.reload("test")
    s = parse((await scrape(gw.origin))[0])
    assert value(s, "sidegate_policy_reloads_total", result="failure") == 1
    assert value(s, "sidegate_policy_last_reload_failed") == 1


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_rate_limit_store_errors_add_up_across_reloads(gateway):
    policy = f"""
    providers: {{echo: {{kind: mock}}}}
    models: {{echo: {{destinations: [{{provider: echo}}]}}}}
    rate_limit_store: {{url: "redis://127.0.0.1:{closed_port()}/0", on_error: allow}}
    rate_limits: [{{key: user_default, requests_per_minute: 1000}}]
    """
    gw = await gateway(policy)
    await client(gw).chat.completions.create(model="echo", messages=MESSAGES)
    before = value(parse((await scrape(gw.origin))[0]), "sidegate_rate_limit_store_errors_total")
    assert before is not None and before >= 1
    gw.write_policy((gw.directory / "policy.yaml").read_text().replace("1000", "2000"))
    assert await gw.state.holder.reload("test")
    after = value(parse((await scrape(gw.origin))[0]), "sidegate_rate_limit_store_errors_total")
    assert after is not None and after >= before
