"""Cost of RateLimiter.reserve (and settle) per call, memory:// and redis://. Not a test.

    python bench/ratelimit_reserve.py [--redis redis://127.0.0.1:6379/0] [--calls 20000]

Limits are set high enough that nothing is refused: this measures the admit path, which is the
one every request takes. Redis is measured one call at a time (latency: one round trip) and with
64 calls in flight (throughput per process).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable

from sidegate.auth.principal import PrincipalInfo
from sidegate.governance.ratelimit.limiter import RateLimiter
from sidegate.governance.ratelimit.stores import open_store
from sidegate.policy.model import RateLimit

BIG = 10**9
ONE_RULE = [RateLimit(key="user_default", requests_per_minute=BIG, tokens_per_minute=BIG)]
POLICY = [  # the DESIGN §3 example, with limits no caller reaches here
    RateLimit(key="service", model="gpt-5", tokens_per_minute=BIG),
    RateLimit(key="user_default", requests_per_minute=BIG, tokens_per_minute=BIG),
    RateLimit(key="user", principal="ci-bot", requests_per_minute=BIG),
    RateLimit(key="user_group", principal="ml-platform", tokens_per_minute=BIG),
    RateLimit(key="request_tag", tag="project", value="chatbot", requests_per_minute=BIG),
]
PRINCIPALS = [PrincipalInfo(f"user{n}@example.com", "user", frozenset({"ml-platform"})) for n in range(100)]
TAGS = {"project": "chatbot", "team": "search"}


async def timed(calls: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Microseconds per call."""
    async def worker(start: int) -> None:
        for n in range(start, calls, concurrency):
            await one(n)

    await asyncio.gather(*(worker(w) for w in range(min(concurrency, 50))))  # warm-up (and script load)
    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return (time.perf_counter() - started) / calls * 1e6


async def measure(label: str, url: str, rules: list[RateLimit], calls: int, concurrency: int) -> None:
    limiter = RateLimiter(rules, open_store(url))

    async def reserve(n: int) -> None:
        await limiter.reserve(PRINCIPALS[n % 100], "gpt-5", TAGS, 500)

    async def reserve_settle(n: int) -> None:
        reservation = await limiter.reserve(PRINCIPALS[n % 100], "gpt-5", TAGS, 500)
        await limiter.settle(reservation, 120)

    r = await timed(calls, concurrency, reserve)
    rs = await timed(calls, concurrency, reserve_settle)
    print(f"{label:<44} reserve {r:8.1f} µs   reserve+settle {rs:8.1f} µs")
    await limiter.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    limiter = RateLimiter([RateLimit(key="user", principal="nobody", requests_per_minute=1)], open_store("memory://"))
    unchecked = await timed(args.calls, 1, lambda n: limiter.reserve(PRINCIPALS[n % 100], "gpt-5", TAGS, 500))
    print(f"{'no rule applies (no store call)':<44} reserve {unchecked:8.1f} µs")
    await measure("memory, 1 rule (2 buckets)", "memory://", ONE_RULE, args.calls, 1)
    await measure("memory, DESIGN policy (5 buckets)", "memory://", POLICY, args.calls, 1)
    prefix = f"sidegate-bench:{secrets.token_hex(4)}:"
    redis_url = f"{args.redis}{'&' if '?' in args.redis else '?'}key_prefix={prefix}"
    for concurrency in (1, 64):
        await measure(f"redis, 1 rule, {concurrency} in flight", redis_url, ONE_RULE, args.calls // 4, concurrency)
        await measure(f"redis, DESIGN policy, {concurrency} in flight", redis_url, POLICY, args.calls // 4,
                      concurrency)


if __name__ == "__main__":
    asyncio.run(main())
