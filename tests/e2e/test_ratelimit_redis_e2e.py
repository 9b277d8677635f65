"""Rate limits on a real Redis through the real app: two `sidegate serve` processes sharing one
Redis admit the limit within 2% under concurrent load above it; refusals and settlement through the
app on the redis:// store; and a Redis that cannot be reached, with `on_error: allow` and `deny`.

Needs Redis at 127.0.0.1:6379 (or SIDEGATE_TEST_REDIS); with CI=true a missing Redis fails the
tests, otherwise they are skipped with a message. The outage tests need no Redis."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from tests.support.governance_env import (
    FAMILIES,
    FAMILY_IDS,
    KEYS,
    OPENAI,
    PRINCIPALS,
    settled_call,
    start_env,
    tokens_left,
)
from tests.support.served import free_port, wait_until_up

from sidegate.telemetry.stores.registry import read_rows
from sidegate.telemetry.usage.row import USAGE

pytest_plugins = ["tests.support.redis_service"]  # redis_url: a key prefix of the test's own on the real Redis


# ---------------------------------------------------------------- through the in-process app


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_refusal_and_settlement_on_redis(gateway, fakes, redis_url, stream):
    env = await start_env(gateway, fakes, f"""
rate_limit_store: {{url: "{redis_url}", on_error: deny}}
rate_limits:
  - {{key: user_group, principal: ml-platform, requests_per_minute: 2, tokens_per_minute: 100000}}
  - {{key: user_group, principal: research, requests_per_minute: 1, tokens_per_minute: 100000}}
""")
    first = await settled_call(env, OPENAI, stream, "bob")
    second = await settled_call(env, OPENAI, stream, "bob")
    row = await env.row(first.request_id)
    assert tokens_left(first) - tokens_left(second) == row["total_tokens"]  # settled in Redis
    refused = await env.post(OPENAI, "bob")
    assert "user_group ml-platform: 2 requests per minute" in refused.error()[1]
    assert 59 <= int(refused.headers["retry-after"]) <= 60
    # alice is also in research: its bucket still has room; after that both of hers are empty
    assert [(await env.chat("alice")).status for _ in range(2)] == [200, 429]
    assert len(fakes["openai"].received) == 3


# ---------------------------------------------------------------- Redis unreachable


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
async def test_unreachable_store_with_deny_answers_503_in_the_callers_shape(gateway, fakes, family):
    env = await start_env(gateway, fakes, f"""
rate_limit_store: {{url: "redis://127.0.0.1:{free_port()}/0", on_error: deny}}
rate_limits:
  - {{key: user_default, requests_per_minute: 100}}
""")
    for _ in range(2):  # the first call finds the outage, the second is refused without trying
        answer = await env.post(family)
        code, message = answer.error(family.name, 503)
        assert code == "rate_limit_store_unavailable" and "rate limit store" in message
        assert answer.headers["retry-after"] == "1"
    assert env.upstream_calls() == 0
    row = await env.row(answer.request_id)
    assert (row["status_code"], row["error_code"]) == (503, "rate_limit_store_unavailable")
    assert env.gw.state.limiter.store_errors == 2


async def test_unreachable_store_with_allow_admits_unchecked(gateway, fakes):
    env = await start_env(gateway, fakes, f"""
rate_limit_store: {{url: "redis://127.0.0.1:{free_port()}/0", on_error: allow}}
rate_limits:
  - {{key: user_default, requests_per_minute: 1}}
""")
    answers = [await env.post(family) for family in FAMILIES for _ in range(2)]
    assert [a.status for a in answers] == [200] * 6  # the limit of 1 could not be checked: all admitted
    assert not [h for a in answers for h in a.headers if h.lower().startswith("x-ratelimit-")]
    assert env.upstream_calls() == 6
    rows = await env.gw.rows()
    assert [r["status_code"] for r in rows] == [200] * 6


# ---------------------------------------------------------------- two sidegate processes, one Redis


class Served:
    """`sidegate serve` in a process of its own, with the mock provider; output to a file."""

    def __init__(self, directory: Path, policy: str) -> None:
        directory.mkdir()
        (directory / "policy.yaml").write_text(policy)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = directory / "out.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sidegate", "serve", "--policies", str(directory),
                 "--listen", f"127.0.0.1:{self.port}", "--watch-interval", "0", "--log-level", "warning"],
                stdout=out, stderr=subprocess.STDOUT, cwd=directory)

    async def ready(self, http: aiohttp.ClientSession) -> None:
        await wait_until_up(self.proc, self.base + "/readyz", http, self.log.read_text)

    def stop(self) -> int:
        """SIGTERM (usage rows are flushed), then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"sidegate did not stop on SIGTERM:\n{self.log.read_text()}") from None


def served_policy(redis_url: str, usage: Path) -> str:
    return f"""
providers:
  echo: {{kind: mock}}
models:
  m: {{destinations: [{{provider: echo}}]}}
rate_limit_store: {{url: "{redis_url}", on_error: deny}}
rate_limits:
  - {{key: service, model: m, requests_per_minute: 500}}
  - {{key: user_default, requests_per_minute: 100000}}
usage: {{store: "sqlite:///{usage}"}}
""" + PRINCIPALS


LIMIT, ATTEMPTS = 500, 1000


async def test_two_sidegate_processes_sharing_redis_admit_the_limit(redis_url, tmp_path):
    procs = [Served(tmp_path / f"p{i}", served_policy(redis_url, tmp_path / f"usage{i}.db")) for i in range(2)]
    statuses: list[int] = []
    try:
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector) as http:
            await asyncio.gather(*(proc.ready(http) for proc in procs))
            who = list(KEYS.values())

            async def one(n: int) -> int:
                body = {"model": "m", "messages": [{"role": "user", "content": f"request {n}"}]}
                headers = {"Authorization": f"Bearer {who[n % len(who)]}"}
                async with http.post(procs[n % 2].base + "/ai-gateway/mlflow/v1/chat/completions", json=body,
                                     headers=headers) as r:
                    await r.read()
                    return r.status

            statuses = await asyncio.gather(*(one(n) for n in range(ATTEMPTS)))
    finally:
        codes = [proc.stop() for proc in procs]
    counts = Counter(statuses)
    admitted = counts[200]
    print(f"two processes, {ATTEMPTS} requests, limit {LIMIT}: {dict(counts)}")
    assert set(counts) <= {200, 429}, counts  # no 503: the store answered every call
    assert abs(admitted - LIMIT) <= LIMIT * 0.02, counts
    assert codes == [0, 0]
    rows = [row for i in range(2) for row in read_rows(f"sqlite:///{tmp_path / f'usage{i}.db'}", USAGE)]
    assert Counter(row["status_code"] for row in rows) == counts  # every request recorded, as answered
    assert {row["error_code"] for row in rows if row["status_code"] == 429} == {"rate_limit_exceeded"}
    assert sum(row["destination_name"] == "echo" for row in rows) == admitted  # only admitted ones went on
