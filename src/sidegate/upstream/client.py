"""The one pooled HTTP client of the process, and the reply type the pipeline relays.

An upstream answer is a `Reply` whether it came over HTTP or from the in-process mock model, so
relaying, usage extraction and stream handling have a single code path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from yarl import URL

from sidegate.upstream.mock import MockReply

# Response headers that describe the upstream hop, not the answer; aiohttp sets its own.
_HOP_HEADERS = frozenset({
    "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "date",
    "server", "proxy-authenticate", "trailer", "upgrade", "alt-svc", "set-cookie", "via",
})


def new_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=True,
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
        timeout=aiohttp.ClientTimeout(total=None),
    )


class Reply:
    status: int
    headers: list[tuple[str, str]]
    is_sse: bool

    async def read(self) -> bytes:
        raise NotImplementedError

    async def load(self) -> None:
        """Read the whole answer now (before `read`), so that a failure surfaces in the attempt."""

    def chunks(self) -> AsyncIterator[bytes]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection; safe to call more than once."""


class HttpReply(Reply):
    __slots__ = ("_body", "_response", "headers", "is_sse", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._body: bytes | None = None
        self.status = response.status
        self.headers = [(k, v) for k, v in response.headers.items() if k.lower() not in _HOP_HEADERS]
        self.is_sse = response.content_type == "text/event-stream"

    async def read(self) -> bytes:
        if self._body is not None:
            return self._body
        try:
            return await self._response.read()
        finally:
            self._response.release()

    async def load(self) -> None:
        self._body = await self.read()

    def chunks(self) -> AsyncIterator[bytes]:
        return self._response.content.iter_any()

    def close(self) -> None:
        self._response.close() if not self._response.content.at_eof() else self._response.release()


class InProcessReply(Reply):
    __slots__ = ("_reply", "headers", "is_sse", "status")

    def __init__(self, reply: MockReply) -> None:
        self._reply = reply
        self.status = reply.status
        self.headers = [("Content-Type", reply.content_type)]
        self.is_sse = reply.events is not None

    async def read(self) -> bytes:
        if self._reply.body is not None:
            return self._reply.body
        return b"".join(self._reply.events or ())

    async def chunks(self) -> AsyncIterator[bytes]:
        for event in self._reply.events or ():
            yield event


async def send(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    *,
    method: str = "POST",
    timeout: aiohttp.ClientTimeout,
    idle_timeout_s: float | None = None,
) -> HttpReply:
    """Send one request; returns once the answer's status and headers arrived. `timeout` bounds the
    connect and the wait for the first byte (or the whole answer); for a stream, `idle_timeout_s` then
    bounds every silence between two chunks."""
    kwargs: dict[str, Any] = {"headers": headers, "timeout": timeout, "allow_redirects": False}
    if body is not None:
        kwargs["data"] = body
    response = await session.request(method, URL(url, encoded=True), **kwargs)
    if idle_timeout_s is not None and response.connection is not None:
        protocol = response.connection.protocol
        assert protocol is not None
        protocol.read_timeout = idle_timeout_s
        # The running timer was armed with the first-byte setting by the read that brought the
        # headers (often with the first chunks): from here on silence is bounded by the idle one.
        protocol.start_timeout()
    return HttpReply(response)
