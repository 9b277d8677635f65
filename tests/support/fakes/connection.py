"""Connection-level misbehaviour for the fake upstreams: dropping a connection (orderly or with a
TCP reset), staying silent on an open one, and an address whose TCP connect never completes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Iterator

from aiohttp import web


class Dropped(asyncio.CancelledError):
    """Raised after the fake closed the transport on purpose; aiohttp then stops handling quietly."""


def drop(request: web.Request, reset: bool = False) -> None:
    """Close the connection: an orderly close (FIN), or with `reset` a TCP reset (RST)."""
    transport = request.transport
    if transport is None:
        return
    if not reset:
        transport.close()
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:  # linger on with a zero timeout: closing sends RST and discards unsent data
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def hang(request: web.Request, released: asyncio.Event) -> None:
    """Stay silent on the open connection until `released` is set or the client goes away, then
    end the reply quietly (raises Dropped)."""
    while not released.is_set():
        transport = request.transport
        if transport is None or transport.is_closing():
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(released.wait(), 0.05)
    drop(request)
    raise Dropped()


@contextlib.contextmanager
def blackhole() -> Iterator[str]:
    """`with blackhole() as url:` an http:// URL on 127.0.0.1 whose TCP connect never completes.

    A listening socket that never accepts, with its accept queue filled: Linux then drops further
    SYNs, so a client's connect waits until its own connect timeout."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        for _ in range(3):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        yield f"http://127.0.0.1:{port}"
    finally:
        for filler in fillers:
            filler.close()
        server.close()
