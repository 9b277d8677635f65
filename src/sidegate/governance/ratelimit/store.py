"""The rate-limit store interface: what a place for buckets answers, whatever it keeps them in
(`memory_store` in this process, `redis_store` shared by replicas; `stores` opens one from its URL).

Every bucket is a sliding window over the last `WINDOW_S` seconds: what was admitted in that
window and its running total.

Admission (the same in every store). A request costs a request bucket 1; a token bucket it costs
`need`, the estimate of its input, and fits while total + need <= limit (a need larger than the
whole limit is checked as the limit itself: it fits an empty bucket only, so one large prompt is
not refused forever). The request's output cap is never checked against the limit: a token bucket
that admits a request is charged its need plus an expectation of its output, the cap but at most
half of the room left after the need, (limit - total - need) // 2 (none when there is no room), so
that one call with a large `max_tokens` never holds the whole bucket while it runs and a few calls
can run side by side.
`settle` then replaces what was charged with the real count. A refused request waits until
enough of the window's usage has left it for its need (and its request) to fit, in every bucket
that refused it; nothing is charged.

One `reserve` call checks a set of buckets and charges them all or none: the `mandatory` buckets
must all fit, and of the `groups` of buckets that follow (alternatives: a principal in several
limited groups) the first whose buckets all fit is charged; when there are groups and none fits,
the request is refused, and waits for the group that frees first. `settle` corrects each token
bucket from what it was charged to the real count: an overestimate is given back to the slot it
was taken in (while that slot is still in the window), an underestimate is added at settle time
(the bucket may go into debt: later requests wait).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import NamedTuple

from sidegate.health import Health
from sidegate.telemetry.stores.url import redact_url

WINDOW_S = 60.0


class StoreUnavailable(Exception):
    """The store could not be reached or failed; the limiter applies `on_error`."""


class Verdict(NamedTuple):
    admitted: bool
    # admitted: index of the group charged (-1: none); refused: -1
    group: int
    # admitted: limit minus usage after this reservation, for each bucket charged (the mandatory
    # ones, then the chosen group's); refused: the same for the bucket that decided, before it
    remaining: Sequence[int]
    # refused: seconds until the request would fit in every bucket; admitted: 0
    wait_s: float
    # refused: index into `keys` of the bucket that decided; admitted: -1
    fired: int
    # admitted: where the store filed the reservation, handed back to `settle` (memory: its slot)
    stamp: int = 0
    # admitted: what each charged bucket took (1 request, or need + expected output in tokens)
    taken: Sequence[int] = ()
    # seconds until each bucket of `remaining` is back to its full limit (its newest entry has left
    # the window, usage as it is now); empty when admitted and every bucket took something (so each
    # resets in a whole window)
    reset_s: Sequence[float] = ()


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

    def settle_local(self, keys: Sequence[str], reserved: Sequence[int], actual: int, stamp: int) -> None:
        raise NotImplementedError("only a local store settles synchronously")

    @abstractmethod
    async def reserve(self, rid: str, keys: Sequence[str], limits: Sequence[int], tokens: Sequence[bool],
                      need: int, cap: int, n_mandatory: int, group_sizes: Sequence[int]) -> Verdict:
        """Check and charge atomically (see the module doc): `tokens[i]` tells a token bucket from a
        request bucket; `need` and `cap` are the request's input estimate and output cap. `rid` is
        unique per reservation."""

    @abstractmethod
    async def settle(self, rid: str, keys: Sequence[str], reserved: Sequence[int], actual: int,
                     stamp: int = 0) -> None:
        """Correct the entries `rid` added to `keys` (token buckets) from what each took, `reserved`,
        to `actual`; `stamp` is the admitting verdict's."""

    async def close(self) -> None:
        return None
