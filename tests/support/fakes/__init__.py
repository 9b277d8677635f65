"""Fake provider upstreams for the test suite.

    async with running_fake("anthropic") as fake:
        fake.error(529)                      # next request: overloaded_error
        ... point a sidegate provider's base_url at fake.base_url ...
        assert fake.received[0].json()["model"] == "claude-sonnet-4-5"

or, as a pytest fixture (import it into a test module or conftest):

    from tests.support.fakes import fake_upstream   # noqa: F401

    async def test_x(fake_upstream):
        fake = await fake_upstream("openai")  # closed at teardown
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest_asyncio

from .connection import blackhole
from .fixtures import (
    DEFAULT_DELTAS,
    DEFAULT_TEXT,
    DEFAULT_TOOL_ARGS,
    DEFAULT_USAGE,
    anthropic_wire,
    default_json,
    default_sse,
    error_body,
    gemini_wire,
    openai_wire,
    sse_data,
    sse_event,
)
from .upstream import FakeUpstream, Kind, Received


@asynccontextmanager
async def running_fake(kind: Kind, *, api_key: str | None = None) -> AsyncIterator[FakeUpstream]:
    """Start a fake upstream of that kind, yield it, close it."""
    fake = FakeUpstream(kind, api_key=api_key)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest_asyncio.fixture
async def fake_upstream() -> AsyncIterator[Callable[..., Awaitable[FakeUpstream]]]:
    """Factory fixture: `fake = await fake_upstream("gemini")`; every fake it made is closed at teardown."""
    made: list[FakeUpstream] = []

    async def make(kind: Kind, *, api_key: str | None = None) -> FakeUpstream:
        fake = FakeUpstream(kind, api_key=api_key)
        await fake.start()
        made.append(fake)
        return fake

    yield make
    for fake in made:
        await fake.close()


__all__ = [
    "DEFAULT_DELTAS",
    "DEFAULT_TEXT",
    "DEFAULT_TOOL_ARGS",
    "DEFAULT_USAGE",
    "FakeUpstream",
    "Kind",
    "Received",
    "anthropic_wire",
    "blackhole",
    "default_json",
    "default_sse",
    "error_body",
    "fake_upstream",
    "gemini_wire",
    "openai_wire",
    "running_fake",
    "sse_data",
    "sse_event",
]
