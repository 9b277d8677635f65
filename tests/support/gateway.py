"""The test harness: a real sidegate app on a loopback port, built from a policy written to a
temporary directory (the `gateway` fixture, registered for every test by `tests/conftest.py`), with
the test callers' keys (`KEY`, `BOT_KEY`) and their `principals:` block (`PRINCIPALS`)."""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from sidegate.app import build_app, close_state, start_state
from sidegate.state import AppState
from sidegate.telemetry.stores.registry import read_rows
from sidegate.telemetry.usage.row import USAGE

KEY = "sk-test-alice"
BOT_KEY = "sk-test-bot"


def key_hash(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


PRINCIPALS = f"""
principals:
  alice@example.com: {{type: user, groups: [ml-platform], keys: ["{key_hash(KEY)}"]}}
  ci-bot: {{type: service_principal, keys: ["{key_hash(BOT_KEY)}"]}}
"""


@dataclass
class Gateway:
    server: TestServer
    state: AppState
    directory: Path
    prefix: str

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def base(self) -> str:
        return self.origin + self.prefix

    async def rows(self) -> list[dict[str, Any]]:
        await self.state.usage.flush()
        return read_rows(self.state.usage_url, USAGE)

    async def row(self) -> dict[str, Any]:
        rows = await self.rows()
        assert rows, "no usage row was written"
        return rows[-1]

    def write_policy(self, text: str, name: str = "policy.yaml") -> None:
        (self.directory / name).write_text(textwrap.dedent(text))


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest_asyncio.fixture
async def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[GatewayFactory]:
    """`gw = await gateway(policy_yaml, principals=True)`: sidegate serving that policy.

    The policy gets the test principals (unless `principals=False`) and a SQLite usage store in the
    temporary directory (unless it names its own)."""
    started: list[Gateway] = []
    monkeypatch.chdir(tmp_path)

    async def start(policy: str, *, principals: bool = True, files: dict[str, str] | None = None) -> Gateway:
        directory = tmp_path / f"policies{len(started)}"
        directory.mkdir()
        text = textwrap.dedent(policy)
        if principals:
            text += PRINCIPALS
        if "usage:" not in text:
            text += f"\nusage: {{store: 'sqlite:///{tmp_path}/usage{len(started)}.db'}}\n"
        (directory / "policy.yaml").write_text(text)
        for name, content in (files or {}).items():
            (directory / name).write_text(textwrap.dedent(content))
        state = await start_state(directory)
        server = TestServer(build_app(state), host="127.0.0.1")
        await server.start_server()
        gw = Gateway(server, state, directory, state.policy.prefix)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        await gw.server.close()
        await close_state(gw.state)
