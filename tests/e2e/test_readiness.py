"""/readyz tells the truth: each store (rate limit, usage, inference log, traces) ok or failing since
when with its last error, 503 while requests cannot be served as configured, credentials never
shown; failures logged when they start, while they last and when they end. Real Redis and
PostgreSQL: "down" is a port where nothing listens (or a proxy not yet started), "failing" a
schema that does not exist."""

from __future__ import annotations

import asyncio
import secrets
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from structlog.testing import capture_logs
from tests.support.gateway import KEY
from tests.support.tcp_proxy import TcpProxy

from sidegate import health
from sidegate.telemetry.tracing.setup import TraceSettings
from sidegate.telemetry.tracing.tracer import Tracing

pytest_plugins = ["tests.support.pg_service", "tests.support.redis_service"]

AUTH = {"Authorization": f"Bearer {KEY}"}
MODELS = "providers: {echo: {kind: mock}}\nmodels: {echo: {destinations: [{provider: echo}]}}\n"
CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}


def limited(url: str, on_error: str) -> str:
    return MODELS + textwrap.dedent(f"""
        rate_limit_store: {{url: "{url}", on_error: {on_error}}}
        rate_limits: [{{key: user_default, requests_per_minute: 100}}]
        """)


async def readyz(gw) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(gw.origin + "/readyz") as r:
        return r.status, await r.json()


async def chat(gw) -> int:
    async with aiohttp.ClientSession() as http, \
            http.post(gw.base + "/mlflow/v1/chat/completions", json=CHAT, headers=AUTH) as r:
        await r.read()
        return r.status


async def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 15.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def events(logs: Sequence[dict[str, Any]], prefix: str) -> list[str]:
    return [e["event"] for e in logs if e["event"].startswith(prefix)]


async def test_all_stores_ok_is_ready(gateway):
    gw = await gateway(MODELS)
    status, body = await readyz(gw)
    assert status == 200 and body["status"] == "ready" and body["reasons"] == []
    stores = body["stores"]
    assert stores["rate_limit"] == {"status": "off"} and stores["traces"] == {"status": "off"}
    assert stores["inference_log"] == {"status": "off"}
    assert stores["usage"]["status"] == "ok" and stores["usage"]["store"].startswith("sqlite:///")
    assert body["policy"]["last_reload"] == "ok"


async def test_deny_mode_with_redis_down_is_503_until_redis_answers(gateway, redis_url, monkeypatch):
    monkeypatch.setattr(health, "REPORT_EVERY_S", 0.0)  # every failure after the first is a reminder
    proxy = TcpProxy(redis_url)  # nothing listens on its port yet
    gw = await gateway(limited(proxy.url, "deny"))
    try:
        with capture_logs() as logs:
            assert await chat(gw) == 503
            status, body = await readyz(gw)  # the probe fails too: a reminder
            assert status == 503 and body["status"] == "not_ready"
            assert [r["code"] for r in body["reasons"]] == ["rate_limit_store_unavailable"]
            store = body["stores"]["rate_limit"]
            assert store["status"] == "failing" and store["on_error"] == "deny" and store["failures"] >= 2
            assert store["since"].endswith("Z") and "Connect" in store["last_error"]
            await proxy.start()
            status, body = await readyz(gw)  # no request needed: /readyz asks the store
            assert status == 200 and body["stores"]["rate_limit"]["status"] == "ok", body
            assert await chat(gw) == 200
    finally:
        await proxy.stop()
    assert events(logs, "rate limit store") == ["rate limit store unavailable", "rate limit store still unavailable",
                                                "rate limit store recovered"]
    assert logs[-1]["log_level"] != "warning"


async def test_allow_mode_with_redis_down_is_ready_and_says_so(gateway):
    gw = await gateway(limited("redis://app:s3cret-pw@127.0.0.1:1/0", "allow"))
    assert await chat(gw) == 200  # admitted unchecked
    status, body = await readyz(gw)
    assert status == 200 and body["status"] == "ready"
    store = body["stores"]["rate_limit"]
    assert store["status"] == "failing" and store["on_error"] == "allow"
    assert store["store"] == "redis://app:***@127.0.0.1:1/0"


async def test_readyz_never_shows_a_password(gateway):
    gw = await gateway(limited("redis://app:s3cret-pw@127.0.0.1:1/0", "deny")
                       + 'usage: {store: "postgresql://postgres:pg-s3cret@127.0.0.1:1/test"}\n')
    async with aiohttp.ClientSession() as http, http.get(gw.origin + "/readyz") as r:
        text = await r.text()
    assert r.status == 503 and "s3cret" not in text and "postgres:***@" in text


async def test_redis_recovery_is_seen_by_a_reloaded_limiter(gateway, redis_url):
    """A reload keeps the store (and its outage): the new limiter probes instead of hammering it."""
    proxy = TcpProxy(redis_url)
    gw = await gateway(limited(proxy.url, "deny"))
    try:
        assert await chat(gw) == 503
        gw.write_policy(limited(proxy.url, "deny").replace("100", "50") + _principals())
        assert await gw.state.holder.reload("test")
        assert gw.state.limiter is not None and gw.state.limiter.store.health.failing
        assert (await readyz(gw))[0] == 503
        await proxy.start()
        assert (await readyz(gw))[0] == 200
    finally:
        await proxy.stop()


def _principals() -> str:
    from tests.support.gateway import PRINCIPALS

    return PRINCIPALS


def missing_schema(pg_url: str) -> tuple[str, str]:
    """A schema name that does not exist (yet), and the store URL of pg_url's database with it."""
    schema = f"sidegate_missing_{secrets.token_hex(5)}"
    return schema, pg_url.rpartition("search_path=")[0] + f"search_path={schema}"


async def test_a_failing_postgresql_usage_store_is_shown_logged_and_recovers(gateway, pg_url, pg_admin, monkeypatch):
    monkeypatch.setattr(health, "REPORT_EVERY_S", 0.0)
    schema, url = missing_schema(pg_url)
    try:
        with capture_logs() as logs:
            gw = await gateway(MODELS + f'usage: {{store: "{url}"}}\n'
                               f'inference_log: {{store: "{url}"}}\n')
            assert await chat(gw) == 200  # served; its row waits
            status, body = await readyz(gw)
            assert status == 200 and body["status"] == "ready"  # rows are kept: requests are served
            for name in ("usage", "inference_log"):
                store = body["stores"][name]
                assert store["status"] == "failing" and store["last_error"], (name, store)
                assert store["store"] == url
            assert body["stores"]["usage"]["queue_depth"] >= 1

            async def usage_failing_again() -> bool:
                return events(logs, "usage store").count("usage store still unavailable") >= 1
            await wait_for(usage_failing_again, "a reminder while the usage store fails")
            await pg_admin.execute(f"CREATE SCHEMA {schema}")

            async def both_ok() -> bool:
                stores = (await readyz(gw))[1]["stores"]
                return stores["usage"]["status"] == stores["inference_log"]["status"] == "ok"
            await wait_for(both_ok, "the stores to recover", 40)
            rows = await gw.rows()
    finally:
        await pg_admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    assert [r["status_code"] for r in rows] == [200]  # the waiting row was not lost
    usage = events(logs, "usage store")
    assert usage[0] == "usage store unavailable" and usage[-1] == "usage store recovered"
    assert set(usage[1:-1]) == {"usage store still unavailable"}
    assert "inference log store recovered" in events(logs, "inference log store")


async def test_a_usage_store_that_failed_to_open_is_retried_without_traffic(gateway, pg_url, pg_admin):
    schema, url = missing_schema(pg_url)
    try:
        gw = await gateway(MODELS + f'usage: {{store: "{url}"}}\n')
        status, body = await readyz(gw)
        assert status == 200 and body["stores"]["usage"]["status"] == "failing"
        await pg_admin.execute(f"CREATE SCHEMA {schema}")

        async def usage_ok() -> bool:
            return (await readyz(gw))[1]["stores"]["usage"]["status"] == "ok"
        await wait_for(usage_ok, "the usage store to open", 40)
        assert "last_error" in (await readyz(gw))[1]["stores"]["usage"]  # what the failure was, kept
    finally:
        await pg_admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


class RefusingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        return None


async def test_a_failing_trace_collector_is_shown_but_not_a_reason(gateway):
    gw = await gateway(MODELS)
    settings = TraceSettings("http://collector.example:4318/v1/traces")
    old, gw.state.tracing = gw.state.tracing, Tracing.exporting_to(settings, RefusingExporter(),
                                                                   schedule_delay_millis=10)
    await old.close()
    assert await chat(gw) == 200

    async def failing() -> bool:
        return (await readyz(gw))[1]["stores"]["traces"]["status"] == "failing"
    await wait_for(failing, "the trace export to fail")
    status, body = await readyz(gw)
    traces = body["stores"]["traces"]
    assert status == 200 and traces["store"] == "http://collector.example:4318/v1/traces"
    assert "spans not taken by the collector" in traces["last_error"] and traces["dropped_spans"] >= 1


async def test_shutting_down_is_a_reason(gateway):
    gw = await gateway(MODELS)
    gw.state.shutting_down = True
    status, body = await readyz(gw)
    assert status == 503 and [r["code"] for r in body["reasons"]] == ["shutting_down"]


async def test_a_reload_that_fixes_a_rejected_one_is_logged(gateway):
    gw = await gateway(MODELS)
    good = (gw.directory / "policy.yaml").read_text()
    with capture_logs() as logs:
        gw.write_policy("models: [not, a, map]\n", name="zz-broken.yaml")
        assert not await gw.state.holder.reload("test")
        assert (await readyz(gw))[1]["policy"]["last_reload"] == "failed"
        (gw.directory / "zz-broken.yaml").unlink()  # back to the policy in force: nothing to swap
        assert not await gw.state.holder.reload("test")
    assert (await readyz(gw))[1]["policy"]["last_reload"] == "ok"
    fixed = [e for e in logs if e["event"] == "policy reload accepted after an earlier rejected one"]
    assert len(fixed) == 1 and fixed[0]["rejected_at"]
    assert (gw.directory / "policy.yaml").read_text() == good
