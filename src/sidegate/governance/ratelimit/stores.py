"""Which rate-limit store a `rate_limit_store.url` opens: the registry of URL schemes."""

from __future__ import annotations

from collections.abc import Callable

from sidegate.governance.ratelimit.memory_store import MemoryStore
from sidegate.governance.ratelimit.store import Store


def _redis(url: str) -> Store:
    from sidegate.governance.ratelimit.redis_store import RedisStore  # imported only when a policy uses it

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
