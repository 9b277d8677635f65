"""Rate limits (DESIGN §4) with the memory store and an injected clock: every rule key at its edges,
the sliding window, token reservations and settlement, store outages, headers (the refusal in each
caller's shape over HTTP: tests/e2e/test_ratelimit_refusal_shape.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from sidegate import apis
from sidegate.auth.principal import PrincipalInfo
from sidegate.errors import GatewayError
from sidegate.governance.ratelimit.limiter import UNCHECKED, RateLimited, RateLimiter
from sidegate.governance.ratelimit.memory_store import MemoryStore
from sidegate.governance.ratelimit.store import StoreUnavailable, Verdict
from sidegate.governance.ratelimit.stores import open_store
from sidegate.governance.token_estimate import DEFAULT_OUTPUT_TOKENS, estimate_request_tokens
from sidegate.policy.model import PolicyModel, RateLimit

ALICE = PrincipalInfo("alice", "user", frozenset({"ml", "research"}))
BOB = PrincipalInfo("bob", "user", frozenset({"ml"}))
CAROL = PrincipalInfo("carol", "user", frozenset({"ml"}))
BOT = PrincipalInfo("ci-bot", "service_principal", frozenset())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(*rules: dict[str, Any], clock: Clock | None = None, store: MemoryStore | None = None,
         on_error: str = "allow") -> RateLimiter:
    clock = clock or Clock()
    store = store or MemoryStore(clock=clock)
    return RateLimiter([RateLimit(**rule) for rule in rules], store, on_error=on_error,  # type: ignore[arg-type]
                       clock=clock)


async def admitted(limiter: RateLimiter, principal: PrincipalInfo, attempts: int, service: str = "gpt-5",
                   tags: Mapping[str, str] | None = None, tokens: int = 0, model: str | None = None) -> int:
    count = 0
    for _ in range(attempts):
        try:
            await limiter.reserve(principal, service, tags or {}, tokens, model=model)
        except RateLimited:
            continue
        count += 1
    return count


async def refusal(limiter: RateLimiter, principal: PrincipalInfo, service: str = "gpt-5",
                  tags: Mapping[str, str] | None = None, tokens: int = 0) -> RateLimited:
    with pytest.raises(RateLimited) as info:
        await limiter.reserve(principal, service, tags or {}, tokens)
    return info.value


# --- user_default and the sliding window ----------------------------------------------------------

async def test_user_default_admits_exactly_the_limit_then_refuses_with_retry_after():
    clock = Clock()
    limiter = make({"key": "user_default", "requests_per_minute": 60}, clock=clock)
    assert await admitted(limiter, ALICE, 60) == 60
    clock.advance(10)
    err = await refusal(limiter, ALICE)
    assert (err.status, err.code, err.error_type) == (429, "rate_limit_exceeded", "rate_limit_error")
    assert "user_default: 60 requests per minute" in err.message
    assert err.headers == {"Retry-After": "50", "x-ratelimit-limit-requests": "60",
                           "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "50s"}
    assert await admitted(limiter, BOB, 61) == 60  # a bucket per principal


async def test_retry_after_is_when_the_oldest_entry_leaves_the_window():
    clock = Clock()
    limiter = make({"key": "user_default", "requests_per_minute": 2}, clock=clock)
    await limiter.reserve(ALICE, "gpt-5", {}, 0)
    clock.advance(20)
    await limiter.reserve(ALICE, "gpt-5", {}, 0)
    clock.advance(10.5)
    assert (await refusal(limiter, ALICE)).retry_after == 30  # 29.5 s, rounded up
    clock.advance(29.5)
    assert await admitted(limiter, ALICE, 2) == 1  # the first left the window, the second has not


async def test_no_second_burst_at_a_minute_boundary():
    clock = Clock()
    limiter = make({"key": "user_default", "requests_per_minute": 10}, clock=clock)
    clock.advance(59.5)  # a fixed window would reset at 60
    assert await admitted(limiter, ALICE, 10) == 10
    clock.advance(1.0)
    assert await admitted(limiter, ALICE, 10) == 0
    clock.advance(58.9)
    assert await admitted(limiter, ALICE, 10) == 0
    clock.advance(0.1)
    assert await admitted(limiter, ALICE, 11) == 10


async def test_no_sixty_second_span_admits_more_than_the_limit():
    clock = Clock()
    limiter = make({"key": "user_default", "requests_per_minute": 10}, clock=clock)
    times = []
    for tick in range(3000):  # a caller trying every 0.1 s for five minutes
        clock.now = 1000.0 + tick / 10
        if await admitted(limiter, ALICE, 1):
            times.append(clock.now)
    most = max(sum(1 for u in times if t - 60 < u <= t) for t in times)
    assert most == 10
    assert len(times) == 50  # and it is not stingy: the full rate over five minutes


async def test_idle_buckets_are_forgotten():
    clock = Clock()
    store = MemoryStore(clock=clock)
    limiter = make({"key": "user_default", "requests_per_minute": 5}, clock=clock, store=store)
    for n in range(100):
        await limiter.reserve(PrincipalInfo(f"user{n}", "user", frozenset()), "gpt-5", {}, 0)
    assert len(store.buckets) == 100
    clock.advance(61)
    await limiter.reserve(ALICE, "gpt-5", {}, 0)
    assert list(store.buckets) == [limiter.plan(ALICE, "gpt-5").mandatory[0].key]


# --- service, model scoping ----------------------------------------------------------------------

async def test_service_cap_is_global_per_model_service():
    limiter = make({"key": "service", "model": "gpt-5", "requests_per_minute": 3})
    assert await admitted(limiter, ALICE, 2) == 2
    assert await admitted(limiter, BOB, 2) == 1
    err = await refusal(limiter, BOT)
    assert "service gpt-5: 3 requests per minute" in err.message
    assert await admitted(limiter, ALICE, 5, service="claude") == 5


async def test_service_pattern_gives_each_matching_service_its_own_bucket():
    limiter = make({"key": "service", "model": "gpt-*", "requests_per_minute": 2})
    assert await admitted(limiter, ALICE, 3, service="gpt-5") == 2
    assert await admitted(limiter, ALICE, 3, service="gpt-4o") == 2
    assert await admitted(limiter, ALICE, 3, service="claude") == 3


async def test_rule_without_model_spans_all_services_in_one_bucket():
    limiter = make({"key": "user_default", "requests_per_minute": 3})
    assert await admitted(limiter, ALICE, 2, service="gpt-5") == 2
    assert await admitted(limiter, ALICE, 2, service="claude") == 1
    assert await admitted(limiter, ALICE, 1, service="gpt-5") == 0


async def test_rule_with_model_applies_to_that_service_only():
    limiter = make({"key": "user_default", "model": "gpt-5", "requests_per_minute": 2},
                   {"key": "user_default", "model": "gpt-*", "requests_per_minute": 3, "name": "gpt family"})
    assert await admitted(limiter, ALICE, 5, service="gpt-5") == 2
    assert await admitted(limiter, ALICE, 5, service="gpt-4o") == 3
    assert await admitted(limiter, ALICE, 5, service="claude") == 5


async def test_rule_model_matches_the_name_asked_of_a_pattern_service():
    limiter = make({"key": "service", "model": "claude-opus-*", "requests_per_minute": 1})
    assert await admitted(limiter, ALICE, 2, service="claude-*", model="claude-opus-4-1") == 1
    assert await admitted(limiter, BOB, 2, service="claude-*", model="claude-opus-4-5") == 0  # same service
    assert await admitted(limiter, ALICE, 2, service="claude-*", model="claude-haiku-4-5") == 2


# --- user / service_principal replace default and group limits -------------------------------------

async def test_own_rule_replaces_default_and_group_limits():
    limiter = make({"key": "user_default", "requests_per_minute": 2},
                   {"key": "user_group", "principal": "ml", "requests_per_minute": 3},
                   {"key": "user", "principal": "carol", "requests_per_minute": 5},
                   {"key": "service_principal", "principal": "ci-bot", "requests_per_minute": 4})
    assert await admitted(limiter, CAROL, 6) == 5
    assert await admitted(limiter, BOT, 6) == 4
    assert await admitted(limiter, BOB, 6) == 2  # others keep the default (and the ml group: 3 left)


async def test_own_rule_replaces_only_the_units_it_sets():
    limiter = make({"key": "user_default", "requests_per_minute": 2, "tokens_per_minute": 100},
                   {"key": "user", "principal": "carol", "requests_per_minute": 50})
    assert await admitted(limiter, CAROL, 5, tokens=30) == 3  # tokens still limit carol: 3 x 30 <= 100
    err = await refusal(limiter, CAROL, tokens=30)
    assert "user_default: 100 tokens per minute" in err.message


async def test_own_rule_scoped_to_a_model_replaces_only_there():
    limiter = make({"key": "user_default", "requests_per_minute": 2},
                   {"key": "user", "principal": "carol", "model": "gpt-5", "requests_per_minute": 5})
    assert await admitted(limiter, CAROL, 6, service="gpt-5") == 5
    assert await admitted(limiter, CAROL, 6, service="claude") == 2


# --- user_group --------------------------------------------------------------------------------------

async def test_group_bucket_is_shared_by_its_members():
    limiter = make({"key": "user_group", "principal": "ml", "requests_per_minute": 3})
    assert await admitted(limiter, BOB, 2) == 2
    assert await admitted(limiter, CAROL, 2) == 1
    assert "user_group ml: 3 requests per minute" in (await refusal(limiter, BOB)).message
    assert await admitted(limiter, BOT, 5) == 5  # not a member: the rule is not about it


async def test_member_of_several_groups_is_refused_only_when_all_are_exhausted():
    clock = Clock()
    limiter = make({"key": "user_group", "principal": "ml", "requests_per_minute": 2},
                   {"key": "user_group", "principal": "research", "requests_per_minute": 3}, clock=clock)
    assert await admitted(limiter, ALICE, 2) == 2  # the first group with room pays: ml
    assert await admitted(limiter, BOB, 1) == 0  # ml is full for every member
    clock.advance(10)
    assert await admitted(limiter, ALICE, 4) == 3  # then research
    clock.advance(5)
    err = await refusal(limiter, ALICE)
    assert err.retry_after == 45  # the group that frees up first: ml, charged at t=0


async def test_group_headers_describe_the_group_charged():
    limiter = make({"key": "user_group", "principal": "ml", "requests_per_minute": 1},
                   {"key": "user_group", "principal": "research", "requests_per_minute": 5})
    first = await limiter.reserve(ALICE, "gpt-5", {}, 0)
    second = await limiter.reserve(ALICE, "gpt-5", {}, 0)
    assert first.headers()["x-ratelimit-limit-requests"] == "1"
    assert second.headers() == {"x-ratelimit-limit-requests": "5", "x-ratelimit-remaining-requests": "4",
                                "x-ratelimit-reset-requests": "1m0s"}


# --- request_tag -------------------------------------------------------------------------------------

async def test_tag_rule_with_value_limits_that_value_for_any_caller():
    limiter = make({"key": "request_tag", "tag": "project", "value": "chatbot", "requests_per_minute": 2})
    assert await admitted(limiter, ALICE, 1, tags={"project": "chatbot"}) == 1
    assert await admitted(limiter, BOB, 2, tags={"project": "chatbot", "team": "x"}) == 1
    err = await refusal(limiter, BOT, tags={"project": "chatbot"})
    assert "request_tag project=chatbot: 2 requests per minute" in err.message
    assert await admitted(limiter, ALICE, 3, tags={"project": "other"}) == 3
    assert await admitted(limiter, ALICE, 3) == 3


async def test_tag_rule_without_value_has_a_bucket_per_value():
    limiter = make({"key": "request_tag", "tag": "project", "requests_per_minute": 2})
    assert await admitted(limiter, ALICE, 3, tags={"project": "a"}) == 2
    err = await refusal(limiter, BOT, tags={"project": "a"})
    assert "request_tag project (project=a): 2 requests per minute" in err.message
    assert await admitted(limiter, BOB, 3, tags={"project": "b"}) == 2
    assert await admitted(limiter, BOB, 3, tags={"project": "a|b"}) == 2  # no key confusion
    assert await admitted(limiter, ALICE, 3, tags={"team": "a"}) == 3


async def test_tag_rules_with_and_without_value_are_separate_buckets():
    limiter = make({"key": "request_tag", "tag": "project", "requests_per_minute": 3},
                   {"key": "request_tag", "tag": "project", "value": "a", "requests_per_minute": 2})
    assert await admitted(limiter, ALICE, 4, tags={"project": "a"}) == 2
    assert await admitted(limiter, ALICE, 4, tags={"project": "b"}) == 3


# --- stricter wins, merging, headers ------------------------------------------------------------------

async def test_stricter_limit_wins_and_headers_show_the_tightest():
    limiter = make({"key": "user_default", "requests_per_minute": 5},
                   {"key": "service", "model": "gpt-5", "requests_per_minute": 3, "name": "gpt-5 cap"})
    reservation = await limiter.reserve(ALICE, "gpt-5", {}, 0)
    assert reservation.headers() == {"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "2",
                                     "x-ratelimit-reset-requests": "1m0s"}
    assert await admitted(limiter, ALICE, 5) == 2
    assert "gpt-5 cap: 3 requests per minute" in (await refusal(limiter, ALICE)).message


async def test_headers_carry_both_units_only_when_both_are_limited():
    limiter = make({"key": "user_default", "tokens_per_minute": 1000},
                   {"key": "service", "model": "gpt-5", "requests_per_minute": 10, "tokens_per_minute": 5000})
    reservation = await limiter.reserve(ALICE, "gpt-5", {}, 300)
    assert reservation.headers() == {"x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "9",
                                     "x-ratelimit-reset-requests": "1m0s", "x-ratelimit-limit-tokens": "1000",
                                     "x-ratelimit-remaining-tokens": "700", "x-ratelimit-reset-tokens": "1m0s"}
    claude = await limiter.reserve(ALICE, "claude", {}, 300)
    assert claude.headers() == {"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "400",
                                "x-ratelimit-reset-tokens": "1m0s"}


async def test_rules_with_the_same_selector_merge_and_count_a_request_once():
    limiter = make({"key": "user_default", "requests_per_minute": 5},
                   {"key": "user_default", "requests_per_minute": 10, "tokens_per_minute": 1000})
    assert len(limiter.rules) == 1
    assert await admitted(limiter, ALICE, 6, tokens=10) == 5


async def test_no_applicable_rule_costs_no_store_call():
    store = CountingStore(clock=Clock())
    limiter = make({"key": "user", "principal": "carol", "requests_per_minute": 1},
                   {"key": "request_tag", "tag": "project", "requests_per_minute": 1}, store=store)
    assert await limiter.reserve(ALICE, "gpt-5", {"team": "x"}, 100) is UNCHECKED
    assert store.calls == 0
    assert UNCHECKED.headers() == {}
    assert limiter.plan(ALICE, "gpt-5") is limiter.plan(ALICE, "gpt-5")  # compiled once


# --- tokens: reserve the estimate, settle the real count ----------------------------------------------

async def test_settling_below_the_estimate_gives_tokens_back():
    limiter = make({"key": "user_default", "tokens_per_minute": 1000})
    first = await limiter.reserve(ALICE, "gpt-5", {}, 400)
    second = await limiter.reserve(ALICE, "gpt-5", {}, 400)
    await refusal(limiter, ALICE, tokens=400)
    await limiter.settle(first, 100)
    await limiter.settle(second, 100)
    third = await limiter.reserve(ALICE, "gpt-5", {}, 400)
    assert third.headers()["x-ratelimit-remaining-tokens"] == "400"


async def test_settling_above_the_estimate_puts_the_bucket_in_debt():
    clock = Clock()
    limiter = make({"key": "user_default", "tokens_per_minute": 1000}, clock=clock)
    reservation = await limiter.reserve(ALICE, "gpt-5", {}, 100)
    clock.advance(30)
    await limiter.settle(reservation, 1500)  # the 1400 extra count from now
    clock.advance(1)
    err = await refusal(limiter, ALICE, tokens=0)
    assert err.retry_after == 59
    assert err.headers is not None and err.headers["x-ratelimit-remaining-tokens"] == "0"
    clock.advance(59)
    assert await admitted(limiter, ALICE, 1, tokens=900) == 1


async def test_settle_happens_once_and_unchecked_settles_are_free():
    store = CountingStore(clock=Clock())
    limiter = make({"key": "user_default", "tokens_per_minute": 1000, "requests_per_minute": 10}, store=store)
    reservation = await limiter.reserve(ALICE, "gpt-5", {}, 400)
    await limiter.settle(reservation, 100)
    await limiter.settle(reservation, 100)
    await limiter.settle(UNCHECKED, 5000)
    same = await limiter.reserve(ALICE, "gpt-5", {}, 400)
    await limiter.settle(same, 400)  # nothing changed: no store call
    assert store.settles == 1
    assert same.headers()["x-ratelimit-remaining-tokens"] == "500"


async def test_an_estimate_above_the_whole_limit_needs_an_empty_bucket():
    clock = Clock()
    limiter = make({"key": "user_default", "tokens_per_minute": 1000}, clock=clock)
    assert await admitted(limiter, ALICE, 2, tokens=5000) == 1
    clock.advance(60)
    big = await limiter.reserve(ALICE, "gpt-5", {}, 5000)
    await limiter.settle(big, 200)
    assert await admitted(limiter, ALICE, 1, tokens=800) == 1


async def test_requests_cost_one_whatever_the_estimate():
    limiter = make({"key": "user_default", "requests_per_minute": 2, "tokens_per_minute": 10_000})
    assert await admitted(limiter, ALICE, 3, tokens=4000) == 2


# --- store outages -----------------------------------------------------------------------------------

class CountingStore(MemoryStore):
    """A memory store that counts its calls and can be switched off."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.calls = self.settles = 0
        self.down = False

    async def reserve(self, rid: str, keys: Sequence[str], limits: Sequence[int], tokens: Sequence[bool],
                      need: int, cap: int, n_mandatory: int, group_sizes: Sequence[int]) -> Verdict:
        self.calls += 1
        if self.down:
            raise StoreUnavailable("ConnectionError: refused")
        return await super().reserve(rid, keys, limits, tokens, need, cap, n_mandatory, group_sizes)

    async def settle(self, rid: str, keys: Sequence[str], reserved: Sequence[int], actual: int,
                     stamp: int = 0) -> None:
        self.settles += 1
        if self.down:
            raise StoreUnavailable("ConnectionError: refused")
        await super().settle(rid, keys, reserved, actual, stamp)


async def test_memory_is_bounded_by_the_window_not_the_rate():
    """100,000 admissions within one second fill a bucket with at most a second's slots, not an
    entry each; totals stay exact, a settlement gives back to the slot the reservation was taken
    in, and the slots leave the window with their time."""
    clock = Clock()
    store = MemoryStore(clock=clock)
    limiter = RateLimiter([RateLimit(key="user_default", requests_per_minute=10**9, tokens_per_minute=10**12)],
                          store)
    first = await limiter.reserve(ALICE, "gpt-5", {}, 500)
    for _ in range(100_000):
        clock.advance(0.00001)
        await limiter.reserve(ALICE, "gpt-5", {}, 10)
    requests, tokens = sorted(store.buckets.values(), key=lambda b: b.total)
    assert max(len(requests.slots), len(tokens.slots)) <= 101
    assert requests.total == 100_001 and tokens.total == 500 + 1_000_000
    before = dict(tokens.slots)[first.stamp]
    await limiter.settle(first, 100)
    assert tokens.total == 100 + 1_000_000 and dict(tokens.slots)[first.stamp] == before - 400
    clock.advance(60.0)
    await limiter.reserve(ALICE, "gpt-5", {}, 0)
    assert sorted(b.total for b in store.buckets.values()) == [0, 1]  # the old slots left the window


async def test_outage_with_allow_admits_unchecked_probes_once_a_second_and_recovers():
    clock = Clock()
    store = CountingStore(clock)
    limiter = make({"key": "user_default", "requests_per_minute": 1, "tokens_per_minute": 100},
                   clock=clock, store=store)
    kept = await limiter.reserve(ALICE, "gpt-5", {}, 50)
    store.down = True
    with capture_logs() as logs:
        for _ in range(20):
            assert await limiter.reserve(ALICE, "gpt-5", {}, 50) is UNCHECKED
        await limiter.settle(kept, 10)
        assert store.calls == 2 and store.settles == 0  # one failed call, then none until a second passed
        clock.advance(1.0)
        assert await limiter.reserve(ALICE, "gpt-5", {}, 50) is UNCHECKED
        assert await limiter.reserve(ALICE, "gpt-5", {}, 50) is UNCHECKED
        assert store.calls == 3
        store.down = False
        clock.advance(1.0)
        with pytest.raises(RateLimited):  # checked again: alice's one request is still in the window
            await limiter.reserve(ALICE, "gpt-5", {}, 50)
    assert limiter.store_errors == 23
    assert [(entry["log_level"], entry["event"]) for entry in logs] == [
        ("warning", "rate limit store unavailable"), ("info", "rate limit store recovered")]
    assert logs[0]["on_error"] == "allow" and "refused" in logs[0]["error"]
    # the store was called (and failed) twice; 23 calls could not use it
    assert logs[1]["failed_calls"] == 23 and logs[1]["failures"] == 2 and logs[1]["outage_s"] >= 0
    assert not store.health.failing and "refused" in logs[1]["last_error"]


async def test_outage_with_deny_refuses_with_503():
    clock = Clock()
    store = CountingStore(clock)
    store.down = True
    limiter = make({"key": "user_default", "requests_per_minute": 10}, clock=clock, store=store, on_error="deny")
    for _ in range(3):
        with pytest.raises(GatewayError) as info:
            await limiter.reserve(ALICE, "gpt-5", {}, 0)
        assert (info.value.status, info.value.code) == (503, "rate_limit_store_unavailable")
        assert not isinstance(info.value, RateLimited)
    assert store.calls == 1 and limiter.store_errors == 3


# --- policy, reloads ---------------------------------------------------------------------------------

def test_no_rate_limits_means_no_limiter():
    assert RateLimiter.from_policy(PolicyModel()) is None


async def test_reload_takes_over_the_store_so_buckets_survive():
    policy = PolicyModel.model_validate({"rate_limits": [{"key": "user_default", "requests_per_minute": 2}]})
    old = RateLimiter.from_policy(policy)
    assert old is not None and isinstance(old.store, MemoryStore)
    assert await admitted(old, ALICE, 1) == 1
    stricter = PolicyModel.model_validate({"rate_limits": [{"key": "user_default", "requests_per_minute": 3}]})
    new = RateLimiter.from_policy(stricter, previous=old)
    assert new is not None and new.store is old.store
    await old.close()
    assert await admitted(new, ALICE, 5) == 2
    other = RateLimiter.from_policy(
        PolicyModel.model_validate({"rate_limit_store": {"url": "memory://"}, "rate_limits": [
            {"key": "user_default", "requests_per_minute": 2}]}), previous=old)
    assert other is not None and other.store is not new.store  # old no longer owns it: no sharing twice


def test_store_passwords_stay_out_of_logs():
    assert open_store("redis://app:s3cret@cache:6380/1?key_prefix=x").health.target == \
        "redis://app:***@cache:6380/1?key_prefix=x"
    assert open_store("redis://cache:6379/0").health.target == "redis://cache:6379/0"


def test_unknown_store_scheme_is_named():
    with pytest.raises(ValueError, match="unknown scheme 'etcd'"):
        open_store("etcd://x")



# --- token estimates ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("api", "body", "expected"), [
    (apis.OPENAI_CHAT, {"model": "m", "messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 50},
     (100, 50)),
    (apis.OPENAI_CHAT, {"messages": [{"role": "user", "content": "x" * 40}], "max_completion_tokens": 7,
                        "max_tokens": 99}, (10, 7)),
    (apis.OPENAI_CHAT, {"messages": [{"role": "user", "content": "hi"}]}, (1, DEFAULT_OUTPUT_TOKENS)),
    (apis.OPENAI_CHAT, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, (1, DEFAULT_OUTPUT_TOKENS)),
    (apis.OPENAI_RESPONSES, {"input": "y" * 80, "max_output_tokens": 30}, (20, 30)),
    (apis.ANTHROPIC_MESSAGES, {"system": "s" * 40, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "t" * 40}]}], "max_tokens": 32000}, (20, 32000)),
    (apis.GEMINI_GENERATE, {"contents": [{"parts": [{"text": "g" * 8}]}],
                            "generationConfig": {"maxOutputTokens": 64}}, (2, 64)),
    (apis.GEMINI_GENERATE, {"contents": [{"parts": [{"text": "g" * 8}]}]}, (2, DEFAULT_OUTPUT_TOKENS)),
    (apis.OPENAI_EMBEDDINGS, {"input": ["a" * 40, "b" * 40]}, (20, 0)),
    (apis.OPENAI_EMBEDDINGS, {"input": [[1, 2, 3], [4, 5]]}, (5, 0)),
    (apis.GEMINI_EMBED, {"content": {"parts": [{"text": "e" * 400}]}}, (100, 0)),
    (apis.ANTHROPIC_COUNT_TOKENS, {"messages": [{"role": "user", "content": "x" * 4000}]}, (0, 0)),
    (apis.GEMINI_COUNT_TOKENS, {"contents": [{"parts": [{"text": "x" * 4000}]}]}, (0, 0)),
])
def test_estimate_request_tokens(api: str, body: dict[str, Any], expected: tuple[int, int]):
    assert estimate_request_tokens(api, body) == expected


async def test_probe_follows_the_store_without_counting_request_errors():
    clock = Clock()
    store = CountingStore(clock)
    limiter = make({"key": "user_default", "requests_per_minute": 10}, clock=clock, store=store, on_error="deny")

    async def failing_ping() -> None:
        if store.down:
            raise StoreUnavailable("ConnectionError: refused")
    store.ping = failing_ping  # type: ignore[method-assign]
    await limiter.probe()
    assert not store.health.failing
    store.down = True
    with capture_logs() as logs:
        await limiter.probe()
        assert store.health.failing and limiter.store_errors == 0
        with pytest.raises(GatewayError):  # the outage the probe found spares the store a call
            await limiter.reserve(ALICE, "gpt-5", {}, 0)
        assert store.calls == 0 and limiter.store_errors == 1
        store.down = False
        await limiter.probe()
    assert not store.health.failing
    assert [e["event"] for e in logs] == ["rate limit store unavailable", "rate limit store recovered"]
    assert (await limiter.reserve(ALICE, "gpt-5", {}, 0)).charged and store.calls == 1


async def test_a_probe_gives_up_after_its_timeout():
    clock = Clock()
    store = CountingStore(clock)
    limiter = make({"key": "user_default", "requests_per_minute": 10}, clock=clock, store=store, on_error="deny")

    async def hanging_ping() -> None:
        await asyncio.sleep(30)
    store.ping = hanging_ping  # type: ignore[method-assign]
    started = asyncio.get_running_loop().time()
    await limiter.probe(timeout_s=0.05)
    assert asyncio.get_running_loop().time() - started < 5
    assert store.health.failing and store.health.last_error == "no answer within 0.05 s"
