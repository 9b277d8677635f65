"""Rate limits on the request path: reserve before the upstream call, settle after it.

`RateLimiter.from_policy` compiles the policy's rules (`ratelimit_rules`) and opens the store
(`ratelimit_store`: memory:// or redis://). Per request, `reserve` finds the buckets that apply
(one cached dict lookup per principal and model service) and checks-and-charges them all in one
store call: one request, plus the token estimate, in each. A refusal raises `RateLimited` (HTTP 429
with Retry-After and the rule that fired). `settle` replaces the token estimate with the real count.

When the store fails, `on_error` decides (allow: admit unchecked; deny: 503) and the limiter stops
calling the store for a second at a time, so an outage costs no round trips and no reconnect storm;
the next call after that second probes the store, and success ends the outage. `probe` (/readyz)
tries the store the same way without a request. The store's `health` logs each outage (a warning
when it starts, a reminder every minute while it lasts, an info line when it ends) and is what
/readyz shows; `store_errors` counts the requests' calls that could not use the store.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Literal

import structlog

from sidegate.errors import GatewayError
from sidegate.governance.ratelimit_rules import Limit, Plan, Rule, compile_rules, escape, plan_for
from sidegate.governance.ratelimit_store import Store, StoreUnavailable, Verdict, open_store
from sidegate.policy.compiled import PrincipalInfo
from sidegate.policy.model import PolicyModel, RateLimit

log = structlog.get_logger("sidegate.ratelimit")

PROBE_TIMEOUT_S = 0.5  # how long a /readyz probe waits for the store
PROBE_INTERVAL_S = 1.0  # while the store is down, at most one attempt to reach it per this interval
_CACHE_LIMIT = 4096
_PATTERN_CHARS = frozenset("*?[")


def _headers_for(limit: Limit, remaining: int) -> dict[str, str]:
    return {limit.limit_header: limit.limit_text, limit.remaining_header: str(max(0, remaining))}


class RateLimited(GatewayError):
    """A request refused by a rate limit: 429, Retry-After, the rule that fired."""

    __slots__ = ("limit", "retry_after")

    def __init__(self, limit: Limit, wait_s: float, remaining: int) -> None:
        self.limit = limit
        self.retry_after = max(1, math.ceil(wait_s))
        super().__init__(
            429, "rate_limit_exceeded",
            f"Rate limit exceeded: {limit.describe()}. Retry after {self.retry_after} s.",
            headers={"Retry-After": str(self.retry_after), **_headers_for(limit, remaining)},
        )


class Reservation:
    """What one request took from which buckets (all of `keys`' mandatory part and the chosen
    group's), for `settle` and the x-ratelimit-* response headers."""

    __slots__ = ("charged", "estimate", "keys", "remaining", "rid", "settled", "stamp")

    def __init__(self, rid: str, estimate: int, keys: Sequence[str], charged: Sequence[Limit],
                 remaining: Sequence[int], stamp: int = 0) -> None:
        self.rid = rid
        self.stamp = stamp  # the store's filing of it (memory: its time slot)
        self.estimate = estimate
        self.keys = keys  # the store keys of `charged`, in the same order
        self.charged = charged
        self.remaining = remaining
        self.settled = False

    def token_keys(self) -> list[str]:
        return [key for key, limit in zip(self.keys, self.charged, strict=True) if limit.tokens]

    def headers(self) -> dict[str, str]:
        """x-ratelimit-{limit,remaining}-{requests,tokens} of the tightest bucket of each unit
        (least remaining, then the smaller limit); a unit no rule limited is left out."""
        tightest: list[tuple[int, int, Limit] | None] = [None, None]  # requests, tokens
        for limit, remaining in zip(self.charged, self.remaining, strict=True):
            best = tightest[limit.tokens]
            if best is None or (remaining, limit.limit) < best[:2]:
                tightest[limit.tokens] = (remaining, limit.limit, limit)
        headers: dict[str, str] = {}
        for best in tightest:
            if best is not None:
                remaining, _, limit = best
                headers.update(_headers_for(limit, remaining))
        return headers


UNCHECKED = Reservation("", 0, (), (), ())  # nothing applied (or the store was down with allow)


class RateLimiter:
    def __init__(self, rules: Iterable[RateLimit], store: Store, *, on_error: Literal["allow", "deny"] = "allow",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rules: tuple[Rule, ...] = compile_rules(rules)
        self.store = store
        self.on_error = on_error
        self.clock = clock
        self.store_errors = 0
        self._owns_store = True
        self._plans: dict[tuple[str, str, str | None], Plan] = {}
        self._rid_prefix = secrets.token_hex(6) + "."
        self._rids = itertools.count()
        self._down_since: float | None = None
        self._probe_at = 0.0
        self._failures = 0

    @classmethod
    def from_policy(cls, model: PolicyModel, previous: RateLimiter | None = None) -> RateLimiter | None:
        """The limiter for a policy, or None when it has no rate_limits. On a reload, pass the
        limiter being replaced: its store (and so the buckets of a memory:// store) is taken over
        when the URL is unchanged; closing the previous limiter then leaves that store open."""
        if not model.rate_limits:
            return None
        config = model.rate_limit_store
        if previous is not None and previous._owns_store and previous.store.url == config.url:
            store = previous.store
            previous._owns_store = False
        else:
            store = open_store(config.url)
        limiter = cls(model.rate_limits, store, on_error=config.on_error)
        if store.health.failing:  # an outage in progress goes on: probe once a second, not per request
            limiter._down_since = limiter.clock()
        return limiter

    def plan(self, principal: PrincipalInfo, service: str, model: str | None = None) -> Plan:
        """The buckets for this principal and model service (computed once, then cached).
        `model` matters only for a pattern service ("claude-*"): the name the caller asked for,
        which rules with `model:` also match against."""
        asked = model if model is not None and model != service and not _PATTERN_CHARS.isdisjoint(service) else None
        cache_key = (principal.name, service, asked)
        plan = self._plans.get(cache_key)
        if plan is None:
            plan = plan_for(self.rules, self.store.key_prefix, principal, service, asked)
            if len(self._plans) >= _CACHE_LIMIT:
                self._plans.clear()
            self._plans[cache_key] = plan
        return plan

    async def reserve(self, principal: PrincipalInfo, service: str, tags: Mapping[str, str],
                      estimated_tokens: int, model: str | None = None) -> Reservation:
        """Take one request and `estimated_tokens` from every bucket that applies, or raise
        `RateLimited` (nothing taken). One store call; none when no rule applies."""
        plan = self.plan(principal, service, model)
        if plan.empty:
            return UNCHECKED
        estimated_tokens = max(0, estimated_tokens)
        if plan.fixed:  # the common case: the buckets do not depend on the request's tags
            return await self._reserve(plan.mandatory, plan.keys, plan.bounds,
                                       [estimated_tokens if limit.tokens else 1 for limit in plan.mandatory],
                                       len(plan.keys), (), estimated_tokens, tags)
        limits = list(plan.mandatory)
        keys = [limit.key for limit in limits]
        for tag_limit in plan.tags:
            value = tags.get(tag_limit.tag)
            if value is None or (tag_limit.value is not None and value != tag_limit.value):
                continue
            limit = tag_limit.limit
            limits.append(limit)
            keys.append(limit.key if limit.tag is None else limit.key + escape(value))
        n_mandatory = len(limits)
        for group in plan.groups:
            limits.extend(group)
            keys.extend(limit.key for limit in group)
        if not limits:
            return UNCHECKED
        return await self._reserve(limits, keys, [limit.limit for limit in limits],
                                   [estimated_tokens if limit.tokens else 1 for limit in limits],
                                   n_mandatory, [len(group) for group in plan.groups], estimated_tokens, tags)

    async def _reserve(self, limits: Sequence[Limit], keys: Sequence[str], bounds: Sequence[int],
                       costs: Sequence[int], n_mandatory: int, group_sizes: Sequence[int], estimate: int,
                       tags: Mapping[str, str]) -> Reservation:
        rid = f"{self._rid_prefix}{next(self._rids)}"
        if self._down_since is not None and not self._may_probe():
            return self._store_failed(None)
        try:
            verdict = await self.store.reserve(rid, keys, bounds, costs, n_mandatory, group_sizes)
        except StoreUnavailable as exc:
            return self._store_failed(exc)
        if self._down_since is not None:
            self._recovered()
        return self._decide(verdict, rid, estimate, keys, limits, n_mandatory, group_sizes, tags)

    def _decide(self, verdict: Verdict, rid: str, estimate: int, keys: Sequence[str], limits: Sequence[Limit],
                n_mandatory: int, group_sizes: Sequence[int], tags: Mapping[str, str]) -> Reservation:
        if not verdict.admitted:
            fired = limits[verdict.fired]
            if fired.tag is not None:  # a bucket per tag value: say which value
                value = tags[fired.tag]
                fired = replace(fired, label=f"{fired.label} ({fired.tag}={value})")
            raise RateLimited(fired, verdict.wait_s, verdict.remaining[0])
        if verdict.group >= 0:  # charged: the mandatory buckets and the chosen group's
            start = n_mandatory + sum(group_sizes[:verdict.group])
            end = start + group_sizes[verdict.group]
            keys = [*keys[:n_mandatory], *keys[start:end]]
            limits = [*limits[:n_mandatory], *limits[start:end]]
        return Reservation(rid, estimate, keys, limits, verdict.remaining, verdict.stamp)

    def settle_now(self, reservation: Reservation, actual_tokens: int) -> bool:
        """Settle at once when that needs no I/O (nothing to correct, or a store in this process);
        False when `settle` must be awaited (a remote store), which the caller does off the request path."""
        if reservation.settled or not reservation.charged or max(0, actual_tokens) == reservation.estimate:
            reservation.settled = True
            return True
        if not self.store.local:
            return False
        keys = reservation.token_keys()
        reservation.settled = True
        if keys:
            self.store.settle_local(keys, reservation.estimate, max(0, actual_tokens), reservation.stamp)
        return True

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Replace the reservation's token estimate with `actual_tokens` (at most once; one store
        call, none when nothing changes or no token bucket was charged)."""
        if reservation.settled or not reservation.charged:
            return
        reservation.settled = True
        actual_tokens = max(0, actual_tokens)
        if actual_tokens == reservation.estimate:
            return
        keys = reservation.token_keys()
        if not keys:
            return
        if self._down_since is not None and not self._may_probe():
            self._count_failure()
            return
        try:
            await self.store.settle(reservation.rid, keys, reservation.estimate, actual_tokens, reservation.stamp)
        except StoreUnavailable as exc:
            self._failed(exc)
            return
        if self._down_since is not None:
            self._recovered()

    async def probe(self, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        """Check that the store answers within `timeout_s` (for /readyz, whose caller waits): a
        failure starts or continues an outage, a success ends one, as a request's call would."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.store.ping()
        except (StoreUnavailable, TimeoutError) as exc:
            failure = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(f"no answer within {timeout_s} s")
            self._failed(failure, count=False)  # not a request's call: store_errors does not count it
            return
        if self._down_since is not None:
            self._recovered()

    async def close(self) -> None:
        if self._owns_store:
            await self.store.close()

    # --- store outages -------------------------------------------------------------------------

    def _may_probe(self) -> bool:
        """While down: True once per PROBE_INTERVAL_S (that call tries the store; others don't)."""
        now = self.clock()
        if now < self._probe_at:
            return False
        self._probe_at = now + PROBE_INTERVAL_S
        return True

    def _count_failure(self) -> None:
        self.store_errors += 1
        self._failures += 1

    def _failed(self, exc: StoreUnavailable, count: bool = True) -> None:
        if count:
            self._count_failure()
        if self._down_since is None:
            self._down_since = self.clock()
            self._probe_at = self._down_since + PROBE_INTERVAL_S
        self.store.health.failed(exc, on_error=self.on_error)  # logs the start, then every minute

    def _recovered(self) -> None:
        assert self._down_since is not None
        self._down_since = None
        self.store.health.ok(failed_calls=self._failures)
        self._failures = 0

    def _store_failed(self, exc: StoreUnavailable | None) -> Reservation:
        if exc is None:
            self._count_failure()
        else:
            self._failed(exc)
        if self.on_error == "allow":
            return UNCHECKED
        raise GatewayError(503, "rate_limit_store_unavailable",
                           "Rate limits cannot be checked right now (the rate limit store is unreachable); "
                           "retry shortly.", headers={"Retry-After": "1"})

