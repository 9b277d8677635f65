"""Streaming clients that time what a caller of a streamed completion sees.

wrk only reports a response once it is complete, so it cannot time the first event of a stream.
These clients speak HTTP/1.1 over plain sockets (keep-alive, TCP_NODELAY, chunked or
Content-Length bodies) and take the clock when the bytes arrive:

- time to first byte (TTFB): from just before the request is sent to the return of the recv()
  that delivered the first `data:` of the first SSE event (not the status line: aiohttp and
  uvicorn may send headers before any event exists);
- total: until the last byte of the body.

`sequential` is a blocking client (one request at a time, so nothing but the kernel sits between
the clock and the socket); `concurrent` drives many streams at once on one asyncio loop. Every
response is checked: status 200, the stream's own ending (`data: [DONE]`) and no more SSE events
than expected (output guardrails may send one more with text they held back, or fewer where an
event's text was all held and went out with a later one), else the run fails.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_SIZE, _DATA, _DATA_END, _LAST, _DONE = range(5)


class BodyReader:
    """Incremental HTTP/1.1 body framing (Content-Length, or chunked without trailer fields): feed
    raw bytes, get body bytes back; `done` once the body is complete."""

    def __init__(self, content_length: int | None) -> None:
        self.chunked = content_length is None
        self.left = content_length or 0  # Content-Length: bytes left; chunked: bytes left in the chunk
        self.buf = bytearray()
        self.state = _SIZE
        self.done = content_length == 0

    def feed(self, data: bytes | bytearray) -> bytes:
        if not self.chunked:
            self.left -= len(data)
            self.done = self.left <= 0
            return bytes(data)
        buf = self.buf
        buf += data
        out = bytearray()
        pos = 0
        while not self.done:
            if self.state == _DATA:
                take = min(self.left, len(buf) - pos)
                out += buf[pos:pos + take]
                pos += take
                self.left -= take
                if self.left:
                    break
                self.state = _DATA_END
            elif self.state in (_DATA_END, _LAST):  # the CRLF after chunk data, or the final empty line
                if len(buf) - pos < 2:
                    break
                pos += 2
                if self.state == _LAST:
                    self.state, self.done = _DONE, True
                else:
                    self.state = _SIZE
            else:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    break
                size = int(bytes(buf[pos:end]).split(b";")[0], 16)
                pos = end + 2
                self.left = size
                self.state = _DATA if size else _LAST
        del buf[:pos]
        return bytes(out)


def parse_head(head: bytes) -> tuple[int, int | None, bool]:
    """Status, Content-Length (None when chunked) and whether the server will close the connection."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length: int | None = None
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value == b"close":
            close = True
    return status, length, close


def build_request(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}",
             "Content-Type: application/json", "Accept: text/event-stream"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class StreamTiming:
    ttfb_ns: int
    total_ns: int
    events: int


class StreamError(RuntimeError):
    pass


def _count_events(body: bytes) -> int:
    return body.count(b"\n\n")


@dataclass
class Sequential:
    host: str
    port: int
    path: str
    headers: dict[str, str]
    body: bytes
    expect_events: int  # at most one more (held-back text sent in an event of its own); fewer is fine
    _sock: socket.socket | None = field(default=None, repr=False)

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def one(self) -> StreamTiming:
        request = build_request(self.host, self.port, self.path, self.headers, self.body)
        sock = self._sock or self._connect()
        self._sock = None
        recv = sock.recv
        clock = time.perf_counter_ns
        start = clock()
        sock.sendall(request)
        raw = bytearray()
        while (end := raw.find(b"\r\n\r\n")) < 0:
            data = recv(65536)
            if not data:
                raise StreamError("connection closed before the response head")
            raw += data
        first = 0
        status, length, close = parse_head(bytes(raw[:end]))
        reader = BodyReader(length)
        body = bytearray(reader.feed(raw[end + 4:]))
        if b"data:" in body:
            first = clock()
        while not reader.done:
            data = recv(65536)
            if not data:
                raise StreamError("connection closed mid-body")
            body += reader.feed(data)
            if not first and b"data:" in body:
                first = clock()
        total = clock() - start
        if status != 200:
            raise StreamError(f"status {status}: {bytes(body[:300])!r}")
        events = _count_events(bytes(body))
        _check_events(events, self.expect_events, bytes(body[-32:]))
        if close:
            sock.close()
        else:
            self._sock = sock
        return StreamTiming(first - start, total, events)

    def run(self, count: int, max_seconds: float) -> list[StreamTiming]:
        results: list[StreamTiming] = []
        deadline = time.monotonic() + max_seconds
        try:
            while len(results) < count and time.monotonic() < deadline:
                results.append(self.one())
        finally:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
        return results


def _check_events(events: int, expect: int, ending: bytes) -> None:
    if not ending.endswith(b"data: [DONE]\n\n"):
        raise StreamError(f"the stream did not end with data: [DONE]: {ending!r}")
    if events > expect + 1:
        raise StreamError(f"expected at most {expect + 1} SSE events, got {events}")


async def _one_async(host: str, port: int, request: bytes, expect_events: int,
                     on_events: Callable[[int], None] | None) -> StreamTiming:
    reader, writer = await asyncio.open_connection(host, port)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    clock = time.perf_counter_ns
    start = clock()
    try:
        writer.write(request)
        raw = bytearray()
        while (end := raw.find(b"\r\n\r\n")) < 0:
            data = await reader.read(65536)
            if not data:
                raise StreamError("connection closed before the response head")
            raw += data
        status, length, _ = parse_head(bytes(raw[:end]))
        body_reader = BodyReader(length)
        events = 0
        first = 0
        tail = ending = b""
        piece = body_reader.feed(raw[end + 4:])
        while True:
            if piece:
                if status != 200:
                    raise StreamError(f"status {status}: {piece[:300]!r}")
                if not first:
                    first = clock()
                joined = tail + piece
                ending = (ending + piece)[-32:]
                found = joined.count(b"\n\n")
                events += found
                tail = joined[-1:] if joined[-1:] == b"\n" and not joined.endswith(b"\n\n") else b""
                if on_events is not None and found:
                    on_events(events)
            if body_reader.done:
                break
            data = await reader.read(65536)
            if not data:
                raise StreamError("connection closed mid-body")
            piece = body_reader.feed(data)
        _check_events(events, expect_events, ending)
        return StreamTiming(first - start, clock() - start, events)
    finally:
        writer.close()


async def concurrent(host: str, port: int, path: str, headers: dict[str, str], body: bytes, streams: int,
                     expect_events: int, on_events: Callable[[int], None] | None = None) -> list[StreamTiming]:
    """`streams` streams at once, each on its own connection; `on_events(n)` is called as the
    running event count of a stream grows (used with a single stream to sample CPU along it)."""
    request = build_request(host, port, path, headers, body)
    return list(await asyncio.gather(*(_one_async(host, port, request, expect_events, on_events)
                                       for _ in range(streams))))
