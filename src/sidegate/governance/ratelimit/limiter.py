"""Rate limits on the request path: reserve before the upstream call, settle after it.

`RateLimiter.from_policy` compiles the policy's rules (`rules`) and opens the store
(`stores`: memory:// or redis://). Per request, `reserve` finds the buckets that apply
(one cached dict lookup per principal and model service) and checks-and-charges them all in one
store call: one request from each request bucket; from each token bucket the request's input
estimate, which must fit, plus an expectation of its output bounded by what is left (the rule is in
`store`). A refusal raises `RateLimited` (HTTP 429 with Retry-After, the time until the
request would be admitted, and the rule that fired). `settle` replaces what was taken with the real
count. Answers carry x-ratelimit-* headers (and the caller's provider's own, `NATIVE_HEADERS`).

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

from sidegate.auth.principal import PrincipalInfo
from sidegate.errors import GatewayError
from sidegate.governance.ratelimit.headers import NATIVE_HEADERS, NativeHeaders, add_headers
from sidegate.governance.ratelimit.rules import Limit, Plan, Rule, compile_rules, escape, plan_for
from sidegate.governance.ratelimit.store import WINDOW_S, Store, StoreUnavailable, Verdict
from sidegate.governance.ratelimit.stores import open_store
from sidegate.policy.model import PolicyModel, RateLimit

log = structlog.get_logger("sidegate.ratelimit")

PROBE_TIMEOUT_S = 0.5  # how long a /readyz probe waits for the store
PROBE_INTERVAL_S = 1.0  # while the store is down, at most one attempt to reach it per this interval
_CACHE_LIMIT = 4096
_PATTERN_CHARS = frozenset("*?[")


class RateLimited(GatewayError):
    """A request refused by a rate limit: 429, Retry-After (when it would be admitted), the rule that
    fired, and that bucket's headers (its remaining is below what this request needs)."""

    __slots__ = ("limit", "retry_after")

    def __init__(self, limit: Limit, wait_s: float, remaining: int, reset_s: float = 0.0, need: int = 1,
                 native: NativeHeaders | None = None) -> None:
        self.limit = limit
        self.retry_after = max(1, math.ceil(wait_s - 1e-9))
        if remaining < 0:  # answers longer than reserved put the bucket in debt
            detail = f"{-remaining} over the limit"
        else:
            detail = f"{remaining} left, this request's input needs about {need}" if limit.tokens else "0 left"
        headers = {"Retry-After": str(self.retry_after)}
        add_headers(headers, limit, remaining, max(reset_s, wait_s), native)
        super().__init__(
            429, "rate_limit_exceeded",
            f"Rate limit exceeded: {limit.describe()} ({detail}). Retry after {self.retry_after} s.",
            headers=headers,
        )


class Reservation:
    """What one request took from which buckets (all of `keys`' mandatory part and the chosen
    group's), for `settle` and the rate-limit response headers."""

    __slots__ = ("charged", "keys", "native", "remaining", "reset_s", "rid", "settled", "stamp", "taken")

    def __init__(self, rid: str, keys: Sequence[str], charged: Sequence[Limit], remaining: Sequence[int],
                 taken: Sequence[int] = (), reset_s: Sequence[float] = (), stamp: int = 0,
                 native: NativeHeaders | None = None) -> None:
        self.rid = rid
        self.stamp = stamp  # the store's filing of it (memory: its time slot)
        self.keys = keys  # the store keys of `charged`, in the same order
        self.charged = charged
        self.remaining = remaining
        self.taken = taken  # what each bucket of `charged` took
        self.reset_s = reset_s
        self.native = native
        self.settled = False

    def corrections(self, actual: int) -> tuple[list[str], list[int]]:
        """The token buckets whose charge `actual` changes, and what each took."""
        keys: list[str] = []
        taken: list[int] = []
        took = self.taken
        for i, limit in enumerate(self.charged):
            if limit.tokens and took[i] != actual:
                keys.append(self.keys[i])
                taken.append(took[i])
        return keys, taken

    def headers(self) -> dict[str, str]:
        """x-ratelimit-{limit,remaining,reset}-{requests,tokens} of the tightest bucket of each unit
        (least remaining, then the smaller limit), plus the caller's provider's own where it has
        them; a unit no rule limited is left out."""
        tightest: list[tuple[int, int, int] | None] = [None, None]  # requests, tokens: remaining, limit, index
        for i, (limit, remaining) in enumerate(zip(self.charged, self.remaining, strict=True)):
            best = tightest[limit.tokens]
            if best is None or (remaining, limit.limit) < best[:2]:
                tightest[limit.tokens] = (remaining, limit.limit, i)
        headers: dict[str, str] = {}
        for best in tightest:
            if best is not None:
                i = best[2]
                add_headers(headers, self.charged[i], best[0], self.reset_s[i] if self.reset_s else WINDOW_S,
                            self.native)
        return headers


UNCHECKED = Reservation("", (), (), ())  # nothing applied (or the store was down with allow)


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
                      input_tokens: int, model: str | None = None, output_cap: int = 0,
                      family: str | None = None) -> Reservation:
        """Take one request from every request bucket that applies and, from every token bucket,
        `input_tokens` (the request's input estimate, which must fit) plus an expectation of its
        output bounded by `output_cap` and by what is left (see `store`); or raise
        `RateLimited` (nothing taken). `family` (the caller's API family) adds its provider's own
        rate-limit headers. One store call; none when no rule applies."""
        plan = self.plan(principal, service, model)
        if plan.empty:
            return UNCHECKED
        need = input_tokens if input_tokens > 0 else 0
        cap = output_cap if output_cap > 0 else 0
        native = NATIVE_HEADERS.get(family) if family is not None else None
        if plan.fixed:  # the common case: the buckets do not depend on the request's tags
            return await self._reserve(plan.mandatory, plan.keys, plan.bounds, plan.units, need, cap,
                                       len(plan.keys), (), tags, native)
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
        return await self._reserve(limits, keys, [limit.limit for limit in limits], [limit.tokens for limit in limits],
                                   need, cap, n_mandatory, [len(group) for group in plan.groups], tags, native)

    async def _reserve(self, limits: Sequence[Limit], keys: Sequence[str], bounds: Sequence[int],
                       units: Sequence[bool], need: int, cap: int, n_mandatory: int, group_sizes: Sequence[int],
                       tags: Mapping[str, str], native: NativeHeaders | None) -> Reservation:
        rid = f"{self._rid_prefix}{next(self._rids)}"
        if self._down_since is not None and not self._may_probe():
            return self._store_failed(None)
        try:
            verdict = await self.store.reserve(rid, keys, bounds, units, need, cap, n_mandatory, group_sizes)
        except StoreUnavailable as exc:
            return self._store_failed(exc)
        if self._down_since is not None:
            self._recovered()
        return self._decide(verdict, rid, need, keys, limits, n_mandatory, group_sizes, tags, native)

    def _decide(self, verdict: Verdict, rid: str, need: int, keys: Sequence[str], limits: Sequence[Limit],
                n_mandatory: int, group_sizes: Sequence[int], tags: Mapping[str, str],
                native: NativeHeaders | None) -> Reservation:
        if not verdict.admitted:
            fired = limits[verdict.fired]
            if fired.tag is not None:  # a bucket per tag value: say which value
                value = tags[fired.tag]
                fired = replace(fired, label=f"{fired.label} ({fired.tag}={value})")
            raise RateLimited(fired, verdict.wait_s, verdict.remaining[0], verdict.reset_s[0],
                              need if fired.tokens else 1, native)
        if verdict.group >= 0:  # charged: the mandatory buckets and the chosen group's
            start = n_mandatory + sum(group_sizes[:verdict.group])
            end = start + group_sizes[verdict.group]
            keys = [*keys[:n_mandatory], *keys[start:end]]
            limits = [*limits[:n_mandatory], *limits[start:end]]
        return Reservation(rid, keys, limits, verdict.remaining, verdict.taken, verdict.reset_s, verdict.stamp,
                           native)

    def settle_now(self, reservation: Reservation, actual_tokens: int) -> bool:
        """Settle at once when that needs no I/O (nothing to correct, or a store in this process);
        False when `settle` must be awaited (a remote store), which the caller does off the request path."""
        if reservation.settled or not reservation.charged:
            reservation.settled = True
            return True
        actual = max(0, actual_tokens)
        keys, taken = reservation.corrections(actual)
        if not keys:
            reservation.settled = True
            return True
        if not self.store.local:
            return False
        reservation.settled = True
        self.store.settle_local(keys, taken, actual, reservation.stamp)
        return True

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Replace what the reservation took from each token bucket with `actual_tokens` (at most once;
        one store call, none when nothing changes or no token bucket was charged)."""
        if reservation.settled or not reservation.charged:
            return
        reservation.settled = True
        actual_tokens = max(0, actual_tokens)
        keys, taken = reservation.corrections(actual_tokens)
        if not keys:
            return
        if self._down_since is not None and not self._may_probe():
            self._count_failure()
            return
        try:
            await self.store.settle(reservation.rid, keys, taken, actual_tokens, reservation.stamp)
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

