"""One upstream connection: an asyncio protocol whose httptools parser (llhttp, the parser Node.js
uses) hands each answer's parts to the answer being received (a `Receiver`, in practice a
`response.Response`), one exchange at a time."""

from __future__ import annotations

import asyncio
from typing import Protocol

import httptools

from sidegate.upstream.http1.errors import UpstreamBroken


class Receiver(Protocol):
    """What a connection feeds the answer it is receiving, as the parser reads it."""

    def header(self, name: str, value: str) -> None: ...

    def headers_complete(self, status: int, keep_alive: bool) -> None: ...

    def body(self, data: bytes) -> None: ...

    def message_complete(self) -> None: ...

    def fail(self, error: BaseException) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...


class Connection(asyncio.Protocol):
    """One upstream connection, one exchange at a time; the httptools parser calls back into it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.response: Receiver | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:  # bytes nobody asked for: the connection cannot be trusted any more
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            response.fail(UpstreamBroken("the upstream switched protocols"))
            self.close()
        except httptools.HttpParserError as exc:
            response.fail(UpstreamBroken(f"malformed answer from the upstream: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self.response
        if response is not None:
            response.connection_lost(exc)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.response.header(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        assert self.response is not None
        self.response.headers_complete(self.parser.get_status_code(), self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        assert self.response is not None
        self.response.body(body)

    def on_message_complete(self) -> None:
        assert self.response is not None
        self.response.message_complete()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
