"""One upstream answer as the HTTP/1.1 client (`sidegate.upstream.http1.client`) receives it:
status and headers first, then the body whole or chunk by chunk, decompressed when the upstream
compressed it, with reading from the upstream paused while a slow caller leaves too much of a
stream unread."""

from __future__ import annotations

import asyncio
import collections
import zlib
from collections.abc import AsyncIterator
from typing import Any

from sidegate.upstream.http1.connection import Connection
from sidegate.upstream.http1.errors import UpstreamBroken
from sidegate.upstream.http1.pool import Pool

# Answer headers that describe the upstream hop, not the answer; sidegate's server sets its own.
HOP_HEADERS = frozenset({
    "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "date",
    "server", "proxy-authenticate", "trailer", "upgrade", "alt-svc", "set-cookie", "via",
})
_FRAMING = frozenset({"content-length", "transfer-encoding", "content-encoding"})
_HIGH_WATER = 256 * 1024  # stream bytes buffered before reading from the upstream pauses
_LOW_WATER = 64 * 1024


class Response:
    """One answer: `status` and `headers` once `Http1Client.request` returns; then the body whole
    (`read`) or chunk by chunk (`chunks`). `release` hands a finished connection back to its pool,
    or closes one whose answer was not read to the end."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_complete",
        "_deadline_timer",
        "_decoder",
        "_done",
        "_error",
        "_head",
        "_idle_timeout_s",
        "_interim",
        "_keep_alive",
        "_paused",
        "_pool",
        "_until_eof",
        "_waiter",
        "conn",
        "framing",
        "headers",
        "status",
    )

    def __init__(self, pool: Pool, conn: Connection, idle_timeout_s: float | None) -> None:
        self._pool = pool
        self.conn = conn
        self.headers: list[tuple[str, str]] = []  # the answer's own, without hop-by-hop ones
        self.framing: list[tuple[str, str]] = []  # content-length, transfer-encoding, content-encoding
        self.status = 0
        loop = conn.loop
        self._head: asyncio.Future[None] = loop.create_future()
        self._waiter: asyncio.Future[None] | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._complete = False
        self._done = False  # released: the connection is back in the pool or closed
        self._error: BaseException | None = None
        self._keep_alive = False
        self._until_eof = False
        self._interim = False
        self._decoder: Any = None
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._idle_timeout_s = idle_timeout_s

    # -- driven by the connection
    def header(self, name: str, value: str) -> None:
        if self._complete:
            self._trailing_bytes()
            return
        lower = name.lower()
        if lower in HOP_HEADERS:
            if lower in _FRAMING:
                self.framing.append((lower, value))
        else:
            self.headers.append((name, value))

    def headers_complete(self, status: int, keep_alive: bool) -> None:
        if self._complete:
            self._trailing_bytes()
            return
        if status < 200:  # an interim answer (103 Early Hints, 100 Continue): the real one follows
            self._interim = True
            self.headers.clear()
            self.framing.clear()
            return
        self.status, self._keep_alive = status, keep_alive
        length = chunked = False
        for lower, value in self.framing:
            if lower == "content-length":
                length = True
            elif lower == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif lower == "content-encoding":
                try:
                    self._decoder = _decoder(value)
                except UpstreamBroken as exc:
                    self.fail(exc)
                    self.conn.close()
                    return
        self._until_eof = not length and not chunked and status not in (204, 304) and status >= 200
        if not self._head.done():
            self._head.set_result(None)

    def body(self, data: bytes) -> None:
        if self._complete or self._error is not None:
            self._trailing_bytes()
            return
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data)
            except zlib.error as exc:
                self.fail(UpstreamBroken(f"the upstream's compressed answer is corrupt: {exc}"))
                self.conn.close()
                return
            if not data:
                return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and not self._paused and self.conn.transport is not None:
            self._paused = True
            self.conn.transport.pause_reading()
        self._wake()

    def message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self._complete or self._error is not None:
            self._trailing_bytes()
            return
        decoder = self._decoder
        if decoder is not None:
            tail = decoder.flush()
            if tail:
                self._chunks.append(tail)
            if not decoder.eof:
                self.fail(UpstreamBroken("the upstream's compressed answer ended before its compressed stream did"))
                self.conn.close()
                return
        self._complete = True
        self._cancel_deadline()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._complete:
            return
        if self._head.done() and self._until_eof and exc is None:
            self.message_complete()  # a body delimited by the end of the connection
            self._keep_alive = False
            return
        error = UpstreamBroken("the upstream closed the connection before the answer was complete"
                               + (f": {exc}" if exc else ""))
        error.__cause__ = exc  # what broke it (a reset), for the words of the caller's error
        self.fail(error)

    def _trailing_bytes(self) -> None:
        """More answer after the answer (or after a failure): what was read stands, the connection goes."""
        self._keep_alive = False
        self.conn.close()

    def fail(self, error: BaseException) -> None:
        if self._error is None and not self._complete:
            self._error = error
        self._cancel_deadline()
        if not self._head.done():
            self._head.set_exception(error)
            self._head.exception()  # retrieved: an abandoned wait must not log it
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- timeouts
    def set_deadline(self, seconds: float | None, what: str) -> None:
        self._cancel_deadline()
        if seconds is not None:
            self._deadline_timer = self.conn.loop.call_later(seconds, self._timed_out, what)

    def _cancel_deadline(self) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None

    def _timed_out(self, what: str) -> None:
        self._deadline_timer = None
        self.abort(TimeoutError(what))

    def abort(self, error: BaseException) -> None:
        """Give up on the answer from this side: the reader gets `error` after what already arrived,
        the connection is closed. Once released, the connection may serve another answer: left alone."""
        if self._done:
            return
        self.fail(error)
        self.conn.close()

    # -- used by the caller
    async def wait_head(self) -> None:
        await self._head

    async def _next(self, idle_timeout_s: float | None) -> bytes | None:
        """The next body bytes, or None at the end of the answer."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._complete:
                return None
            self._waiter = self.conn.loop.create_future()
            timer = None
            if idle_timeout_s is not None:
                timer = self.conn.loop.call_later(idle_timeout_s, self._idle, self._waiter)
            try:
                await self._waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._paused and self._buffered < _LOW_WATER and self.conn.transport is not None:
            self._paused = False
            self.conn.transport.resume_reading()
        return data

    def _idle(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            self.fail(TimeoutError("no data from the upstream within idle_timeout_s"))
            self.conn.close()

    async def read(self) -> bytes:
        """The whole body; the connection is released after it."""
        try:
            parts = []
            while (data := await self._next(self._idle_timeout_s)) is not None:
                parts.append(data)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        finally:
            self.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, each silence bounded by the idle timeout; released at the end."""
        try:
            while (data := await self._next(self._idle_timeout_s)) is not None:
                yield data
        finally:
            self.release()

    def release(self) -> None:
        """Hand the connection back (answer complete, keep-alive) or close it; idempotent."""
        if self._done:
            return
        self._done = True
        self._cancel_deadline()
        conn = self.conn
        conn.response = None
        if self._complete and self._error is None and self._keep_alive and not conn.closed:
            if self._paused and conn.transport is not None:
                conn.transport.resume_reading()
            self._pool.put(conn)
        else:
            conn.close()


def _decoder(encoding: str) -> Any:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(32 + zlib.MAX_WBITS)  # zlib-wrapped (what "deflate" means) or gzip
    raise UpstreamBroken(f"the upstream answered with content-encoding {encoding!r}, which sidegate did not ask for")
