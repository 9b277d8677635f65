"""Where rate-limit buckets live: the store interface, the in-process `memory://` store, and the
registry that opens a store from its URL (`redis://` is in `ratelimit_redis`).

Every bucket is a sliding window over the last `WINDOW_S` seconds: what was admitted in that
window and its running total. A request fits a bucket when total + cost <= limit, so no 60-second
span ever admits more than the limit (a fixed window lets twice the limit through around its
boundary). The memory store keeps a bucket's admissions in time slots of `SLOT_S` (entries of one
slot are added up), so its memory is bounded by the window, not by the request rate: at most
WINDOW_S / SLOT_S slots a bucket, each a number. An entry leaves the window with its slot, at most
SLOT_S early (a 0.02% error at the window's edge). Each slot is added once and dropped once, so
checking a bucket costs amortised O(1). A cost larger than the whole limit is checked as the limit
itself (it fits an empty bucket only, then puts the bucket in debt) so that one large request is
not refused forever.

One `reserve` call checks a set of buckets and charges them all or none: the `mandatory` buckets
must all fit, and of the `groups` of buckets that follow (alternatives: a principal in several
limited groups) the first whose buckets all fit is charged; when there are groups and none fits,
the request is refused. `settle` corrects a reservation's token buckets from the estimate to the
real count: an overestimate is given back to the slot it was taken in (while that slot is still in
the window), an underestimate is added at settle time (the bucket may go into debt: later
requests wait).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from sidegate.health import Health
from sidegate.telemetry.store_url import redact_url

WINDOW_S = 60.0
SLOT_S = 0.01
_SWEEP_EVERY_S = 60.0
_TICK_S = 1e-6


class StoreUnavailable(Exception):
    """The store could not be reached or failed; the limiter applies `on_error`."""


class Verdict(NamedTuple):
    admitted: bool
    # admitted: index of the group charged (-1: none); refused: -1
    group: int
    # admitted: limit minus usage after this reservation, for each bucket charged (the mandatory
    # ones, then the chosen group's); refused: the same for the bucket that decided, before it
    remaining: Sequence[int]
    # refused: seconds until the request would fit; admitted: 0
    wait_s: float
    # refused: index into `keys` of the bucket that decided; admitted: -1
    fired: int
    # admitted: where the store filed the reservation, handed back to `settle` (memory: its slot)
    stamp: int = 0


class Store(ABC):
    """A place for buckets. Bucket keys are full strings built by the limiter (`key_prefix` + id)."""

    url: str
    key_prefix: str = ""
    local = False  # True: buckets in this process, settled without I/O (`settle_local`)
    _health: Health | None = None

    @property
    def health(self) -> Health:
        """Whether the store answers (kept with the store, so a limiter that takes it over on a
        reload knows an outage in progress); fed by the limiter and by `/readyz` probes."""
        if self._health is None:
            self._health = Health("rate limit store", redact_url(self.url))
        return self._health

    async def ping(self) -> None:
        """Raise `StoreUnavailable` when the store cannot be reached (a store in this process always can)."""
        return None

    def settle_local(self, keys: Sequence[str], reserved: int, actual: int, stamp: int) -> None:
        raise NotImplementedError("only a local store settles synchronously")

    @abstractmethod
    async def reserve(self, rid: str, keys: Sequence[str], limits: Sequence[int], costs: Sequence[int],
                      n_mandatory: int, group_sizes: Sequence[int]) -> Verdict:
        """Check and charge atomically (see the module doc). `rid` is unique per reservation."""

    @abstractmethod
    async def settle(self, rid: str, keys: Sequence[str], reserved: int, actual: int, stamp: int = 0) -> None:
        """Correct the entries `rid` added to `keys` (token buckets) from `reserved` to `actual`;
        `stamp` is the admitting verdict's."""

    async def close(self) -> None:
        return None


class _Bucket:
    __slots__ = ("slots", "total")

    def __init__(self) -> None:
        # [slot number, cost admitted in it], oldest first
        self.slots: deque[list[Any]] = deque()
        self.total = 0.0

    def purge(self, cutoff: int) -> None:
        """Drop the slots before slot number `cutoff`."""
        slots = self.slots
        while slots and slots[0][0] < cutoff:
            self.total -= slots.popleft()[1]

    def wait(self, limit: int, cost: int, now: float) -> float:
        """Seconds until `cost` fits (0: it fits now)."""
        excess = self.total + min(cost, limit) - limit
        if excess <= 0:
            return 0.0
        freed = 0.0
        for slot, slot_cost in self.slots:
            freed += slot_cost
            if freed >= excess:  # positive even where float rounding kept a slot one tick too long
                return max(slot * SLOT_S + WINDOW_S - now, _TICK_S)
        # Only if the total disagreed with the slots; every slot has left the window by then.
        return WINDOW_S

    def add(self, slot: int, cost: float) -> None:
        if cost:
            slots = self.slots
            if slots and slots[-1][0] == slot:
                slots[-1][1] += cost
            else:
                slots.append([slot, cost])
            self.total += cost

    def give_back(self, slot: int, amount: float) -> None:
        """Take up to `amount` off what slot `slot` admitted (nothing once it left the window)."""
        for entry in reversed(self.slots):
            if entry[0] == slot:
                returned = min(amount, entry[1])
                entry[1] -= returned
                self.total -= returned
                return
            if entry[0] < slot:
                return


def _slot(now: float) -> int:
    return int(now / SLOT_S)


class MemoryStore(Store):
    """Buckets in this process only (one sidegate replica). `clock` is injectable for tests."""

    local = True

    def __init__(self, url: str = "memory://", clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.clock = clock
        self.buckets: dict[str, _Bucket] = {}
        self._next_sweep = clock() + _SWEEP_EVERY_S

    @classmethod
    def from_url(cls, url: str) -> MemoryStore:
        return cls(url)

    def _sweep(self, cutoff: int) -> None:
        """Forget buckets with nothing left in the window (per-principal and per-tag buckets come
        and go)."""
        for key in list(self.buckets):
            bucket = self.buckets[key]
            bucket.purge(cutoff)
            if not bucket.slots and bucket.total <= 0:
                del self.buckets[key]

    async def reserve(self, rid: str, keys: Sequence[str], limits: Sequence[int], costs: Sequence[int],
                      n_mandatory: int, group_sizes: Sequence[int]) -> Verdict:
        now = self.clock()
        slot = _slot(now)
        cutoff = _slot(now - WINDOW_S) + 1  # the slot holding now - WINDOW_S has left the window
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_EVERY_S
            self._sweep(cutoff)
        store = self.buckets
        buckets = []
        for key in keys:
            bucket = store.get(key)
            if bucket is None:
                bucket = store[key] = _Bucket()
            elif bucket.slots and bucket.slots[0][0] < cutoff:
                bucket.purge(cutoff)
            buckets.append(bucket)
        wait, fired = 0.0, -1
        for i in range(n_mandatory):
            bucket, limit, cost = buckets[i], limits[i], costs[i]
            if bucket.total + (cost if cost < limit else limit) > limit:  # else it fits: no wait
                w = bucket.wait(limit, cost, now)
                if w > wait:
                    wait, fired = w, i
        chosen, start = -1, n_mandatory
        if group_sizes:
            group_wait, group_fired = 0.0, -1
            for g, size in enumerate(group_sizes):
                worst, worst_at = 0.0, -1
                for i in range(start, start + size):
                    w = buckets[i].wait(limits[i], costs[i], now)
                    if w > worst:
                        worst, worst_at = w, i
                if worst == 0.0:
                    chosen = g
                    break
                if group_fired < 0 or worst < group_wait:
                    group_wait, group_fired = worst, worst_at
                start += size
            if chosen < 0 and group_wait > wait:
                wait, fired = group_wait, group_fired
        if fired >= 0:
            return Verdict(False, -1, (int(limits[fired] - buckets[fired].total),), wait, fired)
        charged = list(range(n_mandatory))
        if chosen >= 0:
            charged.extend(range(start, start + group_sizes[chosen]))
        remaining = []
        for i in charged:
            bucket = buckets[i]
            bucket.add(slot, costs[i])
            remaining.append(int(limits[i] - bucket.total))
        return Verdict(True, chosen, remaining, 0.0, -1, slot)

    async def settle(self, rid: str, keys: Sequence[str], reserved: int, actual: int, stamp: int = 0) -> None:
        self.settle_local(keys, reserved, actual, stamp)

    def settle_local(self, keys: Sequence[str], reserved: int, actual: int, stamp: int) -> None:
        delta = actual - reserved
        if not delta:
            return
        now = self.clock()
        for key in keys:
            bucket = self.buckets.get(key)
            if bucket is None:
                if delta < 0:
                    continue
                bucket = self.buckets[key] = _Bucket()
            if delta > 0:
                bucket.add(_slot(now), delta)
                continue
            bucket.give_back(stamp, -delta)


def _redis(url: str) -> Store:
    from sidegate.governance.ratelimit_redis import RedisStore  # imported only when a policy uses it

    return RedisStore.from_url(url)


# URL scheme -> factory
STORES: dict[str, Callable[[str], Store]] = {
    "memory": MemoryStore.from_url,
    "redis": _redis,
    "rediss": _redis,
}


def open_store(url: str) -> Store:
    scheme = url.partition("://")[0]
    factory = STORES.get(scheme)
    if factory is None:
        raise ValueError(f"rate_limit_store.url: unknown scheme {scheme!r} (known: {', '.join(STORES)})")
    return factory(url)
