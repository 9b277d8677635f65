"""The rate-limit headers of an answer (admitted or refused): x-ratelimit-{limit,remaining,reset}-
{requests,tokens} on every surface, as OpenAI sends them (reset as a duration: "20ms", "1.5s",
"1m0s"), and on a surface whose provider has headers of its own, those too (`NATIVE_HEADERS`:
Anthropic's anthropic-ratelimit-*, reset as an RFC 3339 time). A reset is the time until the bucket
is back to its full limit, its usage as it is now: a sliding window is full again once its newest
entry has left it, so a bucket the request was just charged to resets in a whole window.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable

from sidegate.governance.ratelimit.rules import Limit


@functools.lru_cache(maxsize=1024)
def _duration_ms(ms: int) -> str:
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    minutes, ms = divmod(ms, 60_000)
    hours, minutes = divmod(minutes, 60)
    seconds = f"{ms // 1000}.{ms % 1000:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{seconds}"
    return f"{minutes}m{seconds}" if minutes else seconds


def duration_text(seconds: float) -> str:
    """A wait as the x-ratelimit-reset-* headers give it: "20ms", "1.5s", "1m0s" (rounded up to the ms)."""
    return _duration_ms(max(0, math.ceil(seconds * 1000 - 1e-6)))


def _rfc3339_after(seconds: float) -> str:
    """The wall-clock time `seconds` from now, rounded up to the second, as RFC 3339 in UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(time.time() + seconds)))


# per unit (tokens?): the (limit, remaining, reset) header names
_ANTHROPIC_NAMES = {
    tokens: tuple(tuple(f"anthropic-ratelimit-{unit}-{part}" for part in ("limit", "remaining", "reset"))
                  for unit in units)
    for tokens, units in ((False, ("requests",)), (True, ("tokens", "input-tokens", "output-tokens")))
}


def _anthropic_headers(headers: dict[str, str], limit: Limit, left: str, reset_s: float) -> None:
    """anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}: a
    sidegate token limit counts input and output together, so it bounds each of them."""
    reset = _rfc3339_after(reset_s)
    for limit_name, remaining_name, reset_name in _ANTHROPIC_NAMES[limit.tokens]:
        headers[limit_name] = limit.limit_text
        headers[remaining_name] = left
        headers[reset_name] = reset


NativeHeaders = Callable[[dict[str, str], Limit, str, float], None]

# Per caller API family (`ingress.registry.FAMILIES`): the rate-limit headers of its own provider that
# its answers carry besides x-ratelimit-* (which every answer carries).
NATIVE_HEADERS: dict[str, NativeHeaders] = {"anthropic": _anthropic_headers}


def add_headers(headers: dict[str, str], limit: Limit, remaining: int, reset_s: float,
                native: NativeHeaders | None) -> None:
    left = str(max(0, remaining))
    headers[limit.limit_header] = limit.limit_text
    headers[limit.remaining_header] = left
    headers[limit.reset_header] = duration_text(reset_s)
    if native is not None:
        native(headers, limit, left, reset_s)
