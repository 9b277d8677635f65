"""Idle keep-alive connections to one origin, and opening new ones (TCP, and TLS for https).

A connection the server closed while it was idle is known closed before it would be reused (its
end arrived while it was idle), and one idle longer than `KEEPALIVE_S` is not reused.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import Callable

from sidegate.upstream.http1.connection import Connection
from sidegate.upstream.http1.errors import ConnectTimeout, UpstreamBroken

KEEPALIVE_S = 60.0  # idle connections older than this are closed rather than reused


class Pool:
    """Idle keep-alive connections to one origin; the most recently used is reused first."""

    def __init__(self, origin: tuple[str, str, int], ssl_context: Callable[[], ssl.SSLContext]) -> None:
        self.scheme, self.host, self.port = origin
        self._ssl_context = ssl_context  # the client's, made once for all its pools when first needed
        self.idle: collections.deque[Connection] = collections.deque()
        self.closed = False  # the client closed: a connection handed back is closed, not kept

    def take(self) -> Connection | None:
        idle = self.idle
        stale_before = time.monotonic() - KEEPALIVE_S
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            if conn.idle_since < stale_before:  # so were all older ones: close them all
                conn.close()
                for old in idle:
                    old.close()
                idle.clear()
                return None
            return conn
        return None

    def put(self, conn: Connection) -> None:
        if self.closed:
            conn.close()
            return
        conn.idle_since = time.monotonic()  # (its parser, after a complete answer, reads the next one)
        self.idle.append(conn)

    async def connect(self, timeout_s: float | None) -> Connection:
        loop = asyncio.get_running_loop()
        ssl_context = self._ssl_context() if self.scheme == "https" else None
        try:
            async with asyncio.timeout(timeout_s):
                _, conn = await loop.create_connection(
                    lambda: Connection(loop), self.host, self.port, ssl=ssl_context,
                    server_hostname=self.host if ssl_context is not None else None)
        except TimeoutError as exc:
            raise ConnectTimeout(f"connecting to {self.host}:{self.port} took longer than {timeout_s}s") from exc
        except ssl.SSLError as exc:
            raise UpstreamBroken(f"TLS with {self.host}:{self.port} failed: {exc}") from exc
        return conn

    def close(self) -> None:
        self.closed = True
        for conn in self.idle:
            conn.close()
        self.idle.clear()
