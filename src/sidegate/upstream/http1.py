"""The upstream HTTP/1.1 client: one keep-alive connection pool per origin, each request written in
one go, answers parsed by httptools (llhttp, the parser Node.js uses).

Why not a general-purpose client session: every call through sidegate pays for its client twice
over the bare socket work, and a general client's per-request machinery (request and response
objects, payload registries, cookie jars, timer contexts) cost about 80 µs a call here, more than
all of sidegate's governance together. This client does what an upstream call needs and no more:
HTTP and HTTPS origins, keep-alive reuse, chunked and length-delimited and read-to-close bodies,
gzip/deflate answers, per-phase timeouts, and flow control for streams.

Timeouts, per call:
- `connect_timeout_s` bounds opening a connection (TCP and TLS): `ConnectTimeout`.
- `total_timeout_s` bounds the whole exchange of an answer read whole (from sending to the last
  body byte), `first_byte_timeout_s` the wait for the status line of a stream; then, for a stream,
  `idle_timeout_s` bounds every silence between two chunks. Each raises `TimeoutError`.
A connection that breaks, closes early or speaks malformed HTTP raises `UpstreamBroken`
(a `ConnectionError`). A failed request is never sent again here: the server may have acted on
it, and the caller's fallbacks decide what happens next. An idle connection the server closed is
known closed before it would be reused (its end arrived while it was idle), and one idle longer
than `KEEPALIVE_S` is not reused.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from functools import lru_cache
from urllib.parse import urlsplit

import httptools

from sidegate.upstream.http1_response import Response, UpstreamBroken

__all__ = ["ConnectTimeout", "Http1Client", "Response", "UpstreamBroken"]

KEEPALIVE_S = 60.0  # idle connections older than this are closed rather than reused




class ConnectTimeout(TimeoutError):
    """No connection to the upstream within `connect_timeout_s`."""


@lru_cache(maxsize=1024)
def _origin(url: str) -> tuple[tuple[str, str, int], str, str]:
    """(scheme, host, port), the Host header, and the request target of an absolute URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    default = 443 if parts.scheme == "https" else 80
    port = parts.port or default
    host = parts.hostname
    host_header = f"[{host}]" if ":" in host else host
    if port != default:
        host_header += f":{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, host, port), host_header, target


def _head(method: str, target: str, host: str, headers: dict[str, str], body: bytes | None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    for name, value in headers.items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
            raise ValueError(f"header {name!r} holds a line break or a colon in its name")
        lines.append(f"{name}: {value}\r\n")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


class _Connection(asyncio.Protocol):
    """One upstream connection, one exchange at a time; the httptools parser calls back into it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.response: Response | None = None

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


class _Pool:
    """Idle keep-alive connections to one origin; the most recently used is reused first."""

    def __init__(self, client: Http1Client, origin: tuple[str, str, int]) -> None:
        self.client = client
        self.scheme, self.host, self.port = origin
        self.idle: collections.deque[_Connection] = collections.deque()

    def take(self) -> _Connection | None:
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

    def put(self, conn: _Connection) -> None:
        if self.client.closed:
            conn.close()
            return
        conn.idle_since = time.monotonic()  # (its parser, after a complete answer, reads the next one)
        self.idle.append(conn)

    async def connect(self, timeout_s: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        ssl_context = self.client.ssl_context() if self.scheme == "https" else None
        try:
            async with asyncio.timeout(timeout_s):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop), self.host, self.port, ssl=ssl_context,
                    server_hostname=self.host if ssl_context is not None else None)
        except TimeoutError as exc:
            raise ConnectTimeout(f"connecting to {self.host}:{self.port} took longer than {timeout_s}s") from exc
        except ssl.SSLError as exc:
            raise UpstreamBroken(f"TLS with {self.host}:{self.port} failed: {exc}") from exc
        return conn

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


class Http1Client:
    """The process's upstream client: a pool per origin, shared by every request."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._ssl: ssl.SSLContext | None = None
        self.closed = False

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()  # system CAs; SSL_CERT_FILE / SSL_CERT_DIR honoured
        return self._ssl

    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        connect_timeout_s: float | None,
        total_timeout_s: float | None = None,
        first_byte_timeout_s: float | None = None,
        idle_timeout_s: float | None = None,
    ) -> Response:
        """Send one request; returns once the status line and headers arrived. With
        `total_timeout_s` the deadline keeps running through `read`."""
        if self.closed:
            raise RuntimeError("the upstream client is closed")
        if method == "HEAD":  # its answer has no body whatever its headers say: not framed here
            raise ValueError("HEAD requests are not sent upstream")
        origin, host, target = _origin(url)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _Pool(self, origin)
        head = _head(method, target, host, headers, body)
        data = head if body is None else head + body
        deadline, what = ((total_timeout_s, "no complete answer from the upstream within timeout_s")
                          if total_timeout_s is not None
                          else (first_byte_timeout_s, "no answer from the upstream within timeout_s"))
        conn = pool.take() or await pool.connect(connect_timeout_s)
        response = Response(pool, conn, idle_timeout_s)
        conn.response = response
        response.set_deadline(deadline, what)
        assert conn.transport is not None
        conn.transport.write(data)
        try:
            await response.wait_head()
        except BaseException:
            response.release()
            raise
        if total_timeout_s is None:
            response.set_deadline(None, what)  # a stream: from here on, silences are bounded instead
        return response

    async def close(self) -> None:
        self.closed = True
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
