"""Token-limit admission (issue 11) in both stores: a request is admitted while its input estimate
fits, the output is reserved as an expectation bounded by half the room left (never refused for its
max_tokens alone), each bucket is settled from what it took; Retry-After is the time until the
request would be admitted, from the buckets' contents; the headers agree with the refusal.
Memory with an injected clock; Redis (real, its own clock) through the tests.support.redis_service fixture."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import pytest
import pytest_asyncio
from tests.unit.governance.test_ratelimit import ALICE, BOB, Clock, make, refusal

from sidegate.auth.principal import PrincipalInfo
from sidegate.governance.ratelimit.headers import duration_text
from sidegate.governance.ratelimit.limiter import RateLimited, RateLimiter, Reservation
from sidegate.governance.ratelimit.stores import open_store
from sidegate.policy.model import RateLimit

pytest_plugins = ["tests.support.redis_service"]  # redis_url: a key prefix of the test's own on the real Redis

CLAUDE_CODE = {"key": "user_default", "requests_per_minute": 30, "tokens_per_minute": 20000}  # issue 11's policy
NEED, CAP, REAL = 1000, 32000, 1300  # ~1k input, max_tokens 32000 (Claude Code's default), ~300 real output
GO_DURATION = re.compile(r"^(\d+ms|0s|(\d+h)?(\d+m)?\d+(\.\d+)?s)$")


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    """memory://, or the real Redis with a key prefix of the test's own."""
    return "memory://" if request.param == "memory" else str(request.getfixturevalue("redis_url"))


@pytest_asyncio.fixture
async def limiter_in(store_url: str) -> AsyncIterator[Callable[..., RateLimiter]]:
    """Makes limiters on the store of the parameter."""
    made: list[RateLimiter] = []
    url = store_url

    def new(*rules: dict[str, Any]) -> RateLimiter:
        limiter = RateLimiter([RateLimit(**rule) for rule in rules], open_store(url))
        made.append(limiter)
        return limiter

    yield new
    for limiter in made:
        await limiter.close()


async def call(limiter: RateLimiter, principal: PrincipalInfo = ALICE, need: int = NEED, cap: int = CAP,
               real: int | None = REAL, family: str | None = None) -> Reservation:
    """One admitted call, settled with `real` tokens (None: left running); raises RateLimited."""
    reservation = await limiter.reserve(principal, "gpt-5", {}, need, output_cap=cap, family=family)
    if real is not None:
        await limiter.settle(reservation, real)
    return reservation


# --- Claude-Code-shaped traffic under 20k TPM ------------------------------------------------------------

async def test_claude_code_traffic_back_to_back_gets_what_the_limit_allows(limiter_in):
    limiter = limiter_in(CLAUDE_CODE)
    admitted = 0
    with pytest.raises(RateLimited) as info:
        for _ in range(30):
            await call(limiter)
            admitted += 1
    # 20000 tokens a minute at 1300 a call, each needing room for its 1000 input tokens: 15, not 1
    assert admitted == 15 == (20000 - NEED) // REAL + 1
    err = info.value
    assert err.headers is not None
    assert err.headers["x-ratelimit-remaining-tokens"] == str(20000 - 15 * REAL)  # 500, below the 1000 needed
    assert "500 left, this request's input needs about 1000" in err.message
    assert 59 <= err.retry_after <= 60  # the first call's 1300 leave the window a minute after it


async def test_claude_code_traffic_over_two_minutes_is_paced_by_the_window():
    clock = Clock()
    limiter = make(CLAUDE_CODE, clock=clock)
    outcomes: list[tuple[float, int | None]] = []  # (time, None: admitted, else Retry-After)
    for step in range(60):  # a call every 2 s
        try:
            await call(limiter)
            outcomes.append((step * 2.0, None))
        except RateLimited as err:
            outcomes.append((step * 2.0, err.retry_after))
        clock.advance(2.0)
    first_minute = [o for o in outcomes if o[0] < 60]
    assert sum(1 for _, refused in first_minute if refused is None) == 15
    assert first_minute[15] == (30.0, 30)  # refused at t=30: the call of t=0 leaves the window at t=60
    # from t=60 on, each call that leaves the window makes room for one more
    assert [t for t, refused in outcomes if refused is None and t >= 60] == [60.0 + 2 * n for n in range(15)]


async def test_the_issue_case_a_large_max_tokens_fits_a_bucket_someone_used_a_little(limiter_in):
    limiter = limiter_in(CLAUDE_CODE)
    await call(limiter, need=2, cap=0, real=2)  # two tokens used in the last minute
    reservation = await call(limiter, need=20, cap=CAP, real=None)
    headers = reservation.headers()
    assert reservation.taken == [1, 20 + (20000 - 2 - 20) // 2]  # the request, then the input + half the room
    assert headers["x-ratelimit-remaining-tokens"] == str(20000 - 2 - reservation.taken[1])
    assert headers["x-ratelimit-remaining-requests"] == "28"
    assert headers["x-ratelimit-reset-tokens"] == headers["x-ratelimit-reset-requests"] == "1m0s"


async def test_concurrent_calls_each_leave_room_for_the_next(limiter_in):
    limiter = limiter_in(CLAUDE_CODE)
    running = [await call(limiter, real=None) for _ in range(4)]  # e.g. subagents: none settled yet
    assert [r.taken[1] for r in running] == [10500, 5250, 2625, 1312]  # 1000 + half of what each found left
    err = await refusal(limiter, ALICE, tokens=NEED)  # 313 left: the fifth's input does not fit
    assert err.headers is not None and err.headers["x-ratelimit-remaining-tokens"] == "313"
    for reservation in running:
        await limiter.settle(reservation, REAL)
    after = await call(limiter, real=None)  # the four used 5200: the next finds 14800 and reserves 1000 + 6900
    assert (after.taken[1], after.remaining[1]) == (7900, 6900)


async def test_each_bucket_is_charged_and_settled_on_its_own_room(limiter_in):
    limiter = limiter_in({"key": "user_default", "tokens_per_minute": 20000},
                         {"key": "service", "model": "gpt-5", "tokens_per_minute": 5000})
    reservation = await call(limiter, real=None)
    assert reservation.taken == [1000 + 19000 // 2, 1000 + 4000 // 2]
    assert reservation.remaining == [20000 - 10500, 5000 - 3000]
    await limiter.settle(reservation, REAL)
    probe = await call(limiter, need=0, cap=0, real=None)  # takes nothing: shows what the buckets hold
    assert probe.remaining == [20000 - REAL, 5000 - REAL]
    assert probe.taken == [0, 0]


async def test_a_prompt_larger_than_the_limit_needs_an_empty_bucket_and_then_fits(limiter_in):
    limiter = limiter_in({"key": "user_default", "tokens_per_minute": 1000})
    big = await call(limiter, need=1500, cap=CAP, real=None)
    assert big.taken == [1500]  # no room after it: no output expectation, the bucket in debt
    err = await refusal(limiter, ALICE, tokens=1)
    assert err.headers is not None and err.headers["x-ratelimit-remaining-tokens"] == "0"
    await limiter.settle(big, 1800)  # 800 more than the limit: nothing fits until it has left the window
    err = await refusal(limiter, ALICE, tokens=1)
    assert err.limit.limit == 1000 and 59 <= err.retry_after <= 60
    assert "user_default: 1000 tokens per minute (800 over the limit)" in err.message
    assert await call(limiter, BOB, need=1500, cap=0, real=None)  # bob's own bucket is empty: it fits


async def test_a_token_limit_never_refuses_a_request_for_its_cap(limiter_in):
    limiter = limiter_in({"key": "user_default", "tokens_per_minute": 1000})
    for cap in (1001, 10**6, 10**9):
        reservation = await call(limiter, need=10, cap=cap, real=10)
        assert reservation.taken[0] <= 1000


SHARED_RULES = [
    {"key": "user_default", "requests_per_minute": 40, "tokens_per_minute": 20000},
    {"key": "service", "model": "gpt-5", "tokens_per_minute": 30000},
    {"key": "user_group", "principal": "ml", "tokens_per_minute": 12000},
    {"key": "user_group", "principal": "research", "tokens_per_minute": 8000},
]


async def run_sequence(limiter: RateLimiter, seed: int) -> list[tuple[Any, ...]]:
    """A seeded mix of reservations (inputs and caps of every size) and settlements (below, at and
    above what was taken) by two principals, with what each decision was."""
    rng = random.Random(seed)
    running: list[Reservation] = []
    outcomes: list[tuple[Any, ...]] = []
    for _ in range(120):
        if running and rng.random() < 0.4:
            reservation = running.pop(rng.randrange(len(running)))
            await limiter.settle(reservation, rng.choice([0, 300, 1300, 5000, reservation.taken[-1]]))
            continue
        who = rng.choice([ALICE, BOB])
        need, cap = rng.choice([0, 10, 800, 3000, 25000]), rng.choice([0, 64, 4096, 32000])
        try:
            reservation = await limiter.reserve(who, "gpt-5", {}, need, output_cap=cap)
        except RateLimited as err:
            # which of several refusing buckets is named depends on the store's clock (the longest
            # wait); whichever it is, what it has left is below what the request needs there
            assert err.headers is not None
            left = int(err.headers[err.limit.remaining_header])
            assert left < (min(need, err.limit.limit) if err.limit.tokens else 1) or (
                left == 0 and "over the limit" in err.message)
            outcomes.append(("refused", who.name))
            continue
        running.append(reservation)
        outcomes.append(("admitted", who.name, [limit.label for limit in reservation.charged],
                         list(reservation.taken), list(reservation.remaining)))
    return outcomes


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_both_stores_decide_alike(redis_url, seed):
    """Within one window (nothing expires) the memory and the Redis store admit, charge, refuse and
    settle the same sequence identically."""
    decided = []
    for url in ("memory://", redis_url):
        limiter = RateLimiter([RateLimit(**rule) for rule in SHARED_RULES], open_store(url))  # type: ignore[arg-type]
        try:
            decided.append(await run_sequence(limiter, seed))
        finally:
            await limiter.close()
    memory, redis_store = decided
    assert memory == redis_store
    kinds = {outcome[0] for outcome in memory}
    assert kinds == {"admitted", "refused"}  # the sequence exercises both


# --- Retry-After from the buckets' contents -----------------------------------------------------------

async def test_retry_after_is_when_enough_usage_leaves_for_the_input():
    clock = Clock()
    limiter = make({"key": "user_default", "tokens_per_minute": 1000}, clock=clock)
    for _ in range(3):  # 300 at t=0, t=10 and t=20
        await call(limiter, need=300, cap=0, real=300)
        clock.advance(10)
    # t=30: 900 used, 100 left
    assert (await refusal(limiter, ALICE, tokens=400)).retry_after == 30  # t=0's 300 suffice: at t=60
    err = await refusal(limiter, ALICE, tokens=700)
    assert err.retry_after == 40  # it takes t=0's and t=10's: at t=70
    assert err.headers is not None
    assert (err.headers["x-ratelimit-remaining-tokens"], err.headers["x-ratelimit-reset-tokens"]) == ("100", "50s")
    assert (await refusal(limiter, ALICE, tokens=5000)).retry_after == 50  # more than the limit: an empty bucket
    clock.advance(30)
    await call(limiter, need=400, cap=0, real=None)


async def test_retry_after_is_when_every_refusing_rule_admits():
    clock = Clock()
    limiter = make({"key": "user_default", "requests_per_minute": 1},
                   {"key": "service", "model": "gpt-5", "tokens_per_minute": 1000}, clock=clock)
    await call(limiter, need=100, cap=0, real=100)  # alice's one request at t=0
    clock.advance(20)
    await call(limiter, BOB, need=900, cap=0, real=900)  # bob fills the service's tokens at t=20
    clock.advance(10)
    err = await refusal(limiter, ALICE, tokens=500)  # requests free at t=60, tokens at t=80
    assert (err.retry_after, err.limit.label) == (50, "service gpt-5")
    assert err.headers is not None and err.headers["x-ratelimit-remaining-tokens"] == "0"
    clock.advance(40)  # t=70: the request bucket admits, the token bucket not yet
    err = await refusal(limiter, ALICE, tokens=500)
    assert (err.retry_after, err.limit.label) == (10, "service gpt-5")
    clock.advance(10)
    await call(limiter, need=500, cap=0, real=None)


async def test_retry_after_with_groups_waits_for_the_first_group_and_every_mandatory_rule():
    clock = Clock()
    limiter = make({"key": "user_group", "principal": "ml", "tokens_per_minute": 1000},
                   {"key": "user_group", "principal": "research", "tokens_per_minute": 1000},
                   {"key": "service", "model": "gpt-5", "requests_per_minute": 3}, clock=clock)
    await call(limiter, need=1000, cap=0, real=1000)  # t=0: ml (alice's first group) full
    clock.advance(10)
    await call(limiter, need=1000, cap=0, real=1000)  # t=10: research full
    clock.advance(10)
    await call(limiter, BOB, need=0, cap=0, real=0)  # t=20: the service's third request
    clock.advance(10)
    err = await refusal(limiter, ALICE, tokens=10)  # ml frees at t=60, research at 70; the service at 60
    assert err.retry_after == 30
    clock.advance(25)  # t=55: alice's own requests leave at 60 and 70, bob's at 80
    assert (await refusal(limiter, ALICE, tokens=10)).retry_after == 5
    clock.advance(5)
    await call(limiter, need=10, cap=0, real=None)


async def test_redis_retry_after_is_computed_from_the_bucket_contents(redis_url):
    limiter = RateLimiter([RateLimit(key="user_default", tokens_per_minute=1000)], open_store(redis_url))
    try:
        await call(limiter, need=300, cap=0, real=300)
        await asyncio.sleep(1.5)
        await call(limiter, need=600, cap=0, real=600)  # 900 used, the newest 1.5 s after the oldest
        soon = await refusal(limiter, ALICE, tokens=200)  # the oldest 300 suffice
        later = await refusal(limiter, ALICE, tokens=500)  # it takes both
        assert (soon.retry_after, later.retry_after) == (59, 60)
        assert later.headers is not None and later.headers["x-ratelimit-remaining-tokens"] == "100"
        assert 59.0 <= seconds_of(later.headers["x-ratelimit-reset-tokens"]) <= 60.0
    finally:
        await limiter.close()


# --- the headers -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (0.0001, "1ms"), (0.02, "20ms"), (0.999, "999ms"), (1, "1s"), (1.5, "1.5s"), (59.9991, "1m0s"),
    (60, "1m0s"), (61.25, "1m1.25s"), (360, "6m0s"), (3723.5, "1h2m3.5s"), (-3, "0s"),
])
def test_reset_durations_are_written_as_openai_writes_them(seconds: float, text: str):
    assert duration_text(seconds) == text
    assert GO_DURATION.match(text) and seconds_of(text) == pytest.approx(max(seconds, 0), abs=0.001)


def seconds_of(duration: str) -> float:
    """A reset duration ("1m0s", "59.5s", "20ms") in seconds."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:([\d.]+)s)?(?:(\d+)ms)?", duration)
    assert match, duration
    hours, minutes, seconds, ms = (float(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds + ms / 1000


def rfc3339_in(value: str) -> float:
    """Seconds from now until an RFC 3339 time."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() - time.time()


async def test_anthropic_callers_get_anthropic_headers_too(limiter_in):
    limiter = limiter_in(CLAUDE_CODE)
    reservation = await call(limiter, real=None, family="anthropic")
    headers = reservation.headers()
    left = str(20000 - reservation.taken[1])
    for unit in ("tokens", "input-tokens", "output-tokens"):  # one sidegate token limit bounds each
        assert (headers[f"anthropic-ratelimit-{unit}-limit"], headers[f"anthropic-ratelimit-{unit}-remaining"]) \
            == ("20000", left)
        assert 58 <= rfc3339_in(headers[f"anthropic-ratelimit-{unit}-reset"]) <= 61
    assert (headers["anthropic-ratelimit-requests-limit"], headers["anthropic-ratelimit-requests-remaining"]) \
        == ("30", "29")
    assert headers["x-ratelimit-remaining-tokens"] == left  # the x-ratelimit-* ones stay
    assert not any(name.startswith("anthropic-") for name in (await call(limiter, real=None)).headers())


async def test_a_refusal_carries_headers_that_agree_with_it(limiter_in):
    limiter = limiter_in(CLAUDE_CODE)
    for _ in range(15):
        await call(limiter)
    with pytest.raises(RateLimited) as info:
        await call(limiter, family="anthropic")
    headers = info.value.headers
    assert headers is not None
    retry_after = int(headers["Retry-After"])
    assert int(headers["anthropic-ratelimit-tokens-remaining"]) == 500 < NEED
    assert headers["anthropic-ratelimit-tokens-limit"] == "20000"
    assert retry_after - 1 <= rfc3339_in(headers["anthropic-ratelimit-tokens-reset"]) <= 61
    assert retry_after - 1 <= seconds_of(headers["x-ratelimit-reset-tokens"]) <= 60
    assert headers["x-ratelimit-remaining-tokens"] == "500"
