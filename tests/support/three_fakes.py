"""The three fake provider upstreams (OpenAI, Anthropic, Gemini) behind one sidegate, as the
end-to-end tests set them up: the fakes, the policy's `providers:` block that points at them, the
app with its fakes (`Env`), an answer read whole (`Answer`) and the usage row of a request.

Each test module adds its own `models:` to `providers_block(fakes)`; the providers are named `oa`,
`an` and `ge`, with the upstream keys of `UPSTREAM_KEYS`. The `fakes` fixture (the three fakes)
is every test's, through conftest."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
import pytest_asyncio

UPSTREAM_KEYS = {"openai": "up-oa", "anthropic": "up-an", "gemini": "up-ge"}


async def start_fakes(fake_upstream: Any) -> dict[str, Any]:
    """One fake of each kind (from the `fake_upstream` fixture), each requiring its upstream key."""
    return {kind: await fake_upstream(kind, api_key=key) for kind, key in UPSTREAM_KEYS.items()}


@pytest_asyncio.fixture
async def fakes(fake_upstream: Any) -> dict[str, Any]:
    """The three fakes by kind, closed at teardown."""
    return await start_fakes(fake_upstream)


def providers_block(fakes: dict[str, Any]) -> str:
    return f"""
providers:
  oa: {{kind: openai, base_url: "{fakes['openai'].base_url}", api_key: {UPSTREAM_KEYS['openai']}}}
  an: {{kind: anthropic, base_url: "{fakes['anthropic'].base_url}", api_key: {UPSTREAM_KEYS['anthropic']}}}
  ge: {{kind: gemini, base_url: "{fakes['gemini'].base_url}", api_key: {UPSTREAM_KEYS['gemini']}}}
"""


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def request_id(self) -> str:
        return str(self.headers["x-sidegate-request-id"])


@dataclass
class Env:
    """A running sidegate app (the `gateway` fixture's) and the fakes behind it, by kind."""

    gw: Any
    fakes: dict[str, Any]

    def url(self, path: str) -> str:
        return self.gw.base + path

    def upstream_calls(self) -> int:
        return sum(len(f.received) for f in self.fakes.values())

    async def row(self, request_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
        """The usage row of one request, waiting for it: a stream's row is written when sidegate
        notices the stream's end."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            rows = [r for r in await self.gw.rows() if r["request_id"] == request_id]
            if rows:
                assert len(rows) == 1, rows
                return rows[0]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no usage row for request {request_id}")
            await asyncio.sleep(0.01)
