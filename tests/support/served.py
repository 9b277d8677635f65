"""`sidegate serve` run as a process of its own by the tests: a free port for it to listen on, and
waiting until it answers."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Callable

import aiohttp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_until_up(proc: subprocess.Popen[bytes], url: str, http: aiohttp.ClientSession,
                        output: Callable[[], str]) -> None:
    """Poll `url` until it answers 200 (up to 20 s); a process that exits first, or never answers,
    fails the test with its output."""
    for _ in range(400):
        if proc.poll() is not None:
            raise AssertionError(f"sidegate exited early:\n{output()}")
        try:
            async with http.get(url) as r:
                if r.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"sidegate did not answer 200 at {url}:\n{output()}")
