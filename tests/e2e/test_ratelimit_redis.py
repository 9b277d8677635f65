"""Rate limits on a real Redis (127.0.0.1:6379, or SIDEGATE_TEST_REDIS): the same semantics as the
memory store, keys that expire, outages with allow and deny, recovery, and the accuracy of the
shared buckets with two processes competing for them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from structlog.testing import capture_logs
from tests.support.served import free_port
from tests.unit.governance.test_ratelimit import ALICE, BOB, CAROL, Clock, admitted, refusal

from sidegate.errors import GatewayError
from sidegate.governance.ratelimit.limiter import UNCHECKED, RateLimited, RateLimiter
from sidegate.governance.ratelimit.redis_store import RedisStore
from sidegate.governance.ratelimit.stores import open_store
from sidegate.policy.model import RateLimit

pytest_plugins = ["tests.support.redis_service"]  # redis_url: a key prefix of the test's own on the real Redis


@pytest_asyncio.fixture
async def limiter_on(redis_url: str) -> AsyncIterator[Any]:
    made: list[RateLimiter] = []

    def make(*rules: dict[str, Any]) -> RateLimiter:
        limiter = RateLimiter([RateLimit(**rule) for rule in rules], open_store(redis_url))
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


# --- the same semantics as the memory store ---------------------------------------------------------

async def test_exactly_the_limit_is_admitted(limiter_on):
    limiter = limiter_on({"key": "user_default", "requests_per_minute": 20})
    assert await admitted(limiter, ALICE, 25) == 20
    err = await refusal(limiter, ALICE)
    assert 59 <= err.retry_after <= 60
    assert err.headers is not None and err.headers["x-ratelimit-remaining-requests"] == "0"
    assert await admitted(limiter, BOB, 21) == 20


async def test_service_cap_stricter_than_the_default(limiter_on):
    limiter = limiter_on({"key": "user_default", "requests_per_minute": 5},
                         {"key": "service", "model": "gpt-*", "requests_per_minute": 3})
    reservation = await limiter.reserve(ALICE, "gpt-5", {}, 0)
    assert reservation.headers() == {"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "2",
                                     "x-ratelimit-reset-requests": "1m0s"}
    assert await admitted(limiter, BOB, 5) == 2
    assert "service gpt-*: 3 requests per minute" in (await refusal(limiter, CAROL)).message
    assert await admitted(limiter, ALICE, 5, service="gpt-4o") == 3
    assert await admitted(limiter, ALICE, 5, service="claude") == 1  # alice's default: 4 used already


async def test_groups_and_own_rules(limiter_on):
    limiter = limiter_on({"key": "user_group", "principal": "ml", "requests_per_minute": 2},
                         {"key": "user_group", "principal": "research", "requests_per_minute": 3},
                         {"key": "user", "principal": "carol", "requests_per_minute": 4})
    assert await admitted(limiter, ALICE, 6) == 5
    assert await admitted(limiter, BOB, 2) == 0
    assert await admitted(limiter, CAROL, 6) == 4


async def test_tag_buckets(limiter_on):
    limiter = limiter_on({"key": "request_tag", "tag": "project", "requests_per_minute": 2},
                         {"key": "request_tag", "tag": "env", "value": "prod", "requests_per_minute": 1})
    assert await admitted(limiter, ALICE, 3, tags={"project": "a"}) == 2
    assert await admitted(limiter, BOB, 3, tags={"project": "a|t"}) == 2  # "|t" ends total keys: no clash
    assert await admitted(limiter, BOB, 3, tags={"project": "b", "env": "prod"}) == 1
    assert await admitted(limiter, BOB, 3, tags={"env": "dev"}) == 3


async def test_settle_gives_back_and_goes_into_debt(limiter_on):
    limiter = limiter_on({"key": "user_default", "tokens_per_minute": 1000})
    first = await limiter.reserve(ALICE, "gpt-5", {}, 400)
    second = await limiter.reserve(ALICE, "gpt-5", {}, 400)
    await refusal(limiter, ALICE, tokens=400)
    await limiter.settle(first, 100)
    await limiter.settle(second, 0)
    third = await limiter.reserve(ALICE, "gpt-5", {}, 400)
    assert third.headers()["x-ratelimit-remaining-tokens"] == "500"
    await limiter.settle(third, 2000)  # 1600 more than reserved: 2100 used of 1000
    err = await refusal(limiter, ALICE, tokens=0)
    assert 59 <= err.retry_after <= 60
    assert "user_default: 1000 tokens per minute" in err.message


async def test_an_estimate_above_the_limit_needs_an_empty_bucket(limiter_on):
    limiter = limiter_on({"key": "service", "model": "gpt-5", "tokens_per_minute": 1000})
    assert await admitted(limiter, ALICE, 2, tokens=5000) == 1


async def test_keys_expire_and_survive_a_script_flush(limiter_on, redis_url: str):
    limiter = limiter_on({"key": "user_default", "requests_per_minute": 3, "tokens_per_minute": 1000})
    store = limiter.store
    assert isinstance(store, RedisStore)
    reservation = await limiter.reserve(ALICE, "gpt-5", {}, 100)
    await limiter.settle(reservation, 300)
    keys = [key async for key in store.client.scan_iter(match=store.key_prefix + "*")]
    assert len(keys) == 4  # a sorted set and a total per bucket, requests and tokens
    for key in keys:
        assert 0 < await store.client.pttl(key) <= 60_000
    await store.client.script_flush()
    assert await admitted(limiter, ALICE, 3) == 2  # redis-py loads the script again


# --- outages ---------------------------------------------------------------------------------------

async def test_unreachable_redis_with_allow_admits_and_logs_once():
    clock = Clock()
    limiter = RateLimiter([RateLimit(key="user_default", requests_per_minute=1)],
                          open_store(f"redis://127.0.0.1:{free_port()}/0"), on_error="allow", clock=clock)
    with capture_logs() as logs:
        for _ in range(10):
            assert await limiter.reserve(ALICE, "gpt-5", {}, 0) is UNCHECKED
        clock.advance(1.5)
        assert await limiter.reserve(ALICE, "gpt-5", {}, 0) is UNCHECKED
    await limiter.close()
    assert limiter.store_errors == 11
    assert [entry["event"] for entry in logs] == ["rate limit store unavailable"]
    assert "ConnectionError" in logs[0]["error"]


async def test_unreachable_redis_with_deny_refuses():
    limiter = RateLimiter([RateLimit(key="user_default", requests_per_minute=1)],
                          open_store(f"redis://127.0.0.1:{free_port()}/0"), on_error="deny")
    with pytest.raises(GatewayError) as info:
        await limiter.reserve(ALICE, "gpt-5", {}, 0)
    await limiter.close()
    assert (info.value.status, info.value.code) == (503, "rate_limit_store_unavailable")


@contextlib.contextmanager
def redis_server(port: int, tmp_path: Path) -> Iterator[None]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: recovery needs a Redis that can be started mid-test")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_recovers_when_redis_comes_back(tmp_path: Path):
    port = free_port()
    clock = Clock()
    limiter = RateLimiter([RateLimit(key="user_default", requests_per_minute=2)],
                          open_store(f"redis://127.0.0.1:{port}/0"), on_error="allow", clock=clock)
    with capture_logs() as logs:
        assert await limiter.reserve(ALICE, "gpt-5", {}, 0) is UNCHECKED
        with redis_server(port, tmp_path):
            assert await limiter.reserve(ALICE, "gpt-5", {}, 0) is UNCHECKED  # within the second: not tried
            for _ in range(100):  # until the server accepts connections
                clock.advance(1.0)
                with contextlib.suppress(RateLimited):
                    if await limiter.reserve(ALICE, "gpt-5", {}, 0) is not UNCHECKED:
                        break
                await asyncio.sleep(0.05)
            assert await admitted(limiter, ALICE, 3) == 1  # checked again
            await limiter.close()
    assert [entry["event"] for entry in logs] == ["rate limit store unavailable", "rate limit store recovered"]


# --- accuracy with two processes sharing Redis -----------------------------------------------------------

LOAD = textwrap.dedent("""
    import asyncio, json, sys, time
    from sidegate.governance.ratelimit.limiter import RateLimited, RateLimiter
    from sidegate.governance.ratelimit.redis_store import RedisStore
    from sidegate.auth.principal import PrincipalInfo
    from sidegate.policy.model import RateLimit

    async def main(url, rules, attempts, tokens):
        limiter = RateLimiter([RateLimit(**rule) for rule in rules], RedisStore(url), on_error="deny")
        await asyncio.gather(*(limiter.store.ping() for _ in range(64)))  # open the pool's connections
        print("ready", flush=True)
        start_at = float(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
        await asyncio.sleep(max(0.0, start_at - time.time()))  # both processes start together

        async def one(n):
            principal = PrincipalInfo(f"user{n % 40}", "user", frozenset({"team"}))
            try:
                reservation = await limiter.reserve(principal, "gpt-5", {"project": "p"}, tokens)
            except RateLimited:
                return 0
            await limiter.settle(reservation, tokens)
            return 1

        results = await asyncio.gather(*(one(n) for n in range(attempts)))
        print(json.dumps({"admitted": sum(results), "store_errors": limiter.store_errors}), flush=True)
        await limiter.close()

    asyncio.run(main(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
""")


async def run_competing(url: str, rules: list[dict[str, Any]], attempts: int, tokens: int,
                        script: Path) -> list[dict[str, int]]:
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, str(script), url, json.dumps(rules), str(attempts), str(tokens),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE) for _ in range(2)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
        start_at = f"{time.time() + 0.5}\n".encode()
        for proc in procs:  # both start firing at the same moment
            assert proc.stdin is not None
            proc.stdin.write(start_at)
            await proc.stdin.drain()
        outputs = [await asyncio.wait_for(proc.communicate(), 60) for proc in procs]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert all(proc.returncode == 0 for proc in procs)
    return [json.loads(out.splitlines()[-1]) for out, _ in outputs]


@pytest.mark.parametrize(("rules", "tokens"), [
    pytest.param([{"key": "service", "model": "gpt-5", "requests_per_minute": 500},
                  {"key": "user_default", "requests_per_minute": 10_000}], 0, id="requests"),
    pytest.param([{"key": "user_group", "principal": "team", "tokens_per_minute": 50_000},
                  {"key": "request_tag", "tag": "project", "requests_per_minute": 10_000}], 100, id="tokens"),
])
async def test_two_processes_sharing_redis_admit_the_limit(redis_url: str, tmp_path: Path,
                                                          rules: list[dict[str, Any]], tokens: int):
    script = tmp_path / "load.py"
    script.write_text(LOAD)
    results = await run_competing(redis_url, rules, 1000, tokens, script)
    assert [r["store_errors"] for r in results] == [0, 0]
    total = sum(r["admitted"] for r in results)
    print(f"admitted {[r['admitted'] for r in results]} = {total} of limit 500")
    assert abs(total - 500) <= 500 * 0.02
