"""The upstream HTTP/1.1 client: one keep-alive connection pool per origin, each request written in
one go, answers parsed by httptools (`connection`).

Why not a general-purpose HTTP client: every call through sidegate pays for its client twice
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
it, and the caller's fallbacks decide what happens next. Reusing idle connections: `pool`.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from urllib.parse import urlsplit

from sidegate.upstream.http1.pool import Pool
from sidegate.upstream.http1.response import Response


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


class Http1Client:
    """The process's upstream client: a pool per origin, shared by every request."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, str, int], Pool] = {}
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
            pool = self._pools[origin] = Pool(origin, self.ssl_context)
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
