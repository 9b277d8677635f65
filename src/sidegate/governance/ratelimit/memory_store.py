"""The `memory://` rate-limit store: buckets in this process (one sidegate replica).

Admission and settlement are the store interface's (`store`, read its doc first). The memory store
keeps a bucket's admissions in time slots of `SLOT_S` (entries of one slot are added up), so its
memory is bounded by the window, not by the request rate: at most WINDOW_S / SLOT_S slots a bucket,
each a number. An entry leaves the window with its slot, at most SLOT_S early (a 0.02% error at the
window's edge). Each slot is added once and dropped once, so checking a bucket costs amortised O(1).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from sidegate.governance.ratelimit.store import WINDOW_S, Store, Verdict

SLOT_S = 0.01
_SWEEP_EVERY_S = 60.0
_TICK_S = 1e-6


class _Bucket:
    __slots__ = ("slots", "total")

    def __init__(self) -> None:
        # [slot number, cost admitted in it], oldest first
        self.slots: deque[list[Any]] = deque()
        self.total = 0  # costs are whole tokens or requests

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

    def reset(self, now: float) -> float:
        """Seconds until the newest entry has left the window (0: nothing in it)."""
        slots = self.slots
        return max(slots[-1][0] * SLOT_S + WINDOW_S - now, 0.0) if slots else 0.0

    def add(self, slot: int, cost: int) -> None:
        if cost:
            slots = self.slots
            if slots and slots[-1][0] == slot:
                slots[-1][1] += cost
            else:
                slots.append([slot, cost])
            self.total += cost

    def give_back(self, slot: int, amount: int) -> None:
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

    async def reserve(self, rid: str, keys: Sequence[str], limits: Sequence[int], tokens: Sequence[bool],
                      need: int, cap: int, n_mandatory: int, group_sizes: Sequence[int]) -> Verdict:
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
            bucket, limit = buckets[i], limits[i]
            cost = need if tokens[i] else 1
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
                    w = buckets[i].wait(limits[i], need if tokens[i] else 1, now)
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
            bucket = buckets[fired]
            return Verdict(False, -1, (limits[fired] - bucket.total,), wait, fired, reset_s=(bucket.reset(now),))
        charged = list(range(n_mandatory))
        if chosen >= 0:
            charged.extend(range(start, start + group_sizes[chosen]))
        remaining, taken = [], []
        resets: list[float] | tuple[()] = ()  # empty: every bucket took something, so resets in a window
        for i in charged:
            bucket, limit = buckets[i], limits[i]
            take = 1
            if tokens[i]:
                half = (limit - bucket.total - need) // 2
                take = need + (cap if cap < half else half if half > 0 else 0)
                if not take:
                    resets = [WINDOW_S] * len(charged)
            bucket.add(slot, take)
            remaining.append(limit - bucket.total)
            taken.append(take)
        if resets:
            for j, i in enumerate(charged):
                if not taken[j]:
                    resets[j] = buckets[i].reset(now)
        return Verdict(True, chosen, remaining, 0.0, -1, slot, taken, resets)

    async def settle(self, rid: str, keys: Sequence[str], reserved: Sequence[int], actual: int,
                     stamp: int = 0) -> None:
        self.settle_local(keys, reserved, actual, stamp)

    def settle_local(self, keys: Sequence[str], reserved: Sequence[int], actual: int, stamp: int) -> None:
        now = self.clock()
        for key, taken in zip(keys, reserved, strict=True):
            delta = actual - taken
            if not delta:
                continue
            bucket = self.buckets.get(key)
            if bucket is None:
                if delta < 0:
                    continue
                bucket = self.buckets[key] = _Bucket()
            if delta > 0:
                bucket.add(_slot(now), delta)
            else:
                bucket.give_back(stamp, -delta)
