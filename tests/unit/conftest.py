"""The unit layer runs in seconds because it opens no network socket and starts no process: a test
that does either fails here, naming what it did, and belongs in tests/e2e/.

The guard records what was attempted as well as refusing it, so that code which catches the refusal
(a store treating it as an outage, say) still fails the test at teardown."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

NETWORK = (socket.AF_INET, socket.AF_INET6)


@pytest.fixture(autouse=True)
def no_socket_no_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    attempts: list[str] = []

    def refuse(what: str) -> None:
        attempts.append(what)
        raise AssertionError(f"a unit test {what}: it belongs in tests/e2e/")

    def guarded(name: str) -> Any:
        original = getattr(socket.socket, name)

        def call(self: socket.socket, address: Any, *args: Any) -> Any:
            if self.family in NETWORK:
                refuse(f"called socket.{name}({address!r})")
            return original(self, address, *args)
        return call

    for name in ("bind", "connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, guarded(name))

    def no_process(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        refuse(f"started the process {args!r}")
    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
    yield
    assert not attempts, f"a unit test must not open sockets or start processes: {attempts}"
