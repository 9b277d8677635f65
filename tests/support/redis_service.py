"""The real Redis the rate-limit store tests use (127.0.0.1:6379, or SIDEGATE_TEST_REDIS).

`redis_url` gives each test a store URL with a key prefix of its own; the test's keys are deleted
afterwards. Without a reachable server the tests skip, except under CI=true where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

REDIS = os.environ.get("SIDEGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest_asyncio.fixture
async def redis_url() -> AsyncIterator[str]:
    """A redis:// store URL with a key prefix of this test's own; its keys are deleted afterwards."""
    client = aioredis.from_url(REDIS, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        message = f"Redis is not reachable at {REDIS} ({exc}); start one or set SIDEGATE_TEST_REDIS"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    prefix = f"sidegate-test:{secrets.token_hex(8)}:"
    yield f"{REDIS}?key_prefix={prefix}"
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
