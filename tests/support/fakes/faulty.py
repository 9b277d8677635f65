"""FaultyUpstream: a raw asyncio HTTP/1.1 server (not aiohttp) that answers each request with
exactly the bytes a test scripts, so it can misbehave in ways a well-behaved server library never
would: reset or close the connection, hang, wait before its first byte, send broken framing or
bodies, cut a stream, split its bytes at chosen positions, compress them.

Each request gets the reply named by its `x-fault` header (`named`: concurrent requests each get
their own), else the next scripted reply (FIFO), or, when none is queued, the provider's realistic
default answer built from the wire fixtures (`tests/support/fakes/fixtures`). A reply is a list of parts:
bytes are written (then drained), a float sleeps that many seconds, HANG stays silent until the
client goes away or the fake closes, CLOSE ends the connection (FIN), RESET aborts it (RST).

    up = FaultyUpstream("openai"); await up.start()
    up.script(lambda req: [RESET])                        # next request: reset before any byte
    up.script(lambda req: whole(200, b"<html>", "text/html"))
    up.script(lambda req: sse(req.events()[:2]) + [CLOSE])  # headers, two events, then FIN
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import json
import re
import socket
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .fixtures import anthropic_wire, default_json, default_sse, gemini_wire, openai_wire
from .fixtures.common import dumps

HANG, CLOSE, RESET = "hang", "close", "reset"
Part = bytes | float | str
Script = Callable[["Request"], list[Part]]
_WIRES: dict[str, Any] = {"openai": openai_wire, "anthropic": anthropic_wire, "gemini": gemini_wire}
_GEMINI = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):(?P<method>\w+)")


@dataclass
class Request:
    """One request the fake read: its head (names lower-cased) and body."""

    kind: str
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def api(self) -> str:
        """The fixtures' name of the API asked for: chat, responses, messages or generate."""
        if self.kind == "gemini":
            return "generate"
        return {"/v1/chat/completions": "chat", "/v1/responses": "responses"}.get(self.path, "messages")

    @property
    def stream(self) -> bool:
        if self.kind == "gemini":
            return ":streamGenerateContent" in self.path
        return bool((self.json() or {}).get("stream"))

    def answer(self) -> dict[str, Any]:
        """The provider's default whole answer to this request."""
        return default_json(self.kind, self.api, self.json() or {}, model=self._gemini_model())  # type: ignore[arg-type]

    def events(self) -> list[bytes]:
        """The provider's default stream for this request, as SSE event blocks."""
        return default_sse(self.kind, self.api, self.json() or {}, model=self._gemini_model())  # type: ignore[arg-type]

    def _gemini_model(self) -> str | None:
        m = _GEMINI.match(self.path)
        return m["model"] if m else None

    def error_body(self, status: int) -> bytes:
        return dumps(_WIRES[self.kind].error_body(status)).encode()


# ------------------------------------------------------------------ building replies

def head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_REASONS = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 529: "Overloaded"}


def whole(status: int, body: bytes, content_type: str = "application/json",
          headers: Iterable[tuple[str, str]] = (), *, length: int | None = None) -> list[Part]:
    """One answer with a Content-Length (`length` may lie: a body cut short inside its framing)."""
    hdrs = [("Content-Type", content_type), ("Content-Length", str(len(body) if length is None else length)),
            *headers]
    return [head(status, hdrs) + body]


def ok(req: Request) -> list[Part]:
    """The provider's default answer, whole or streamed (chunked) as the request asked; a Gemini
    stream without `alt=sse` is one JSON array, element by element."""
    if req.stream and req.kind == "gemini" and "alt=sse" not in req.target:
        elements = [e[len(b"data: "):].rstrip(b"\n") for e in req.events()]
        pieces = [b"[" + elements[0], *(b",\r\n" + e for e in elements[1:]), b"]"]
        return [head(200, [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]),
                *(chunk(p) for p in pieces), b"0\r\n\r\n"]
    if req.stream:
        return [*sse(req.events()), b"0\r\n\r\n"]
    return whole(200, dumps(req.answer()).encode())


def error(req: Request, status: int, headers: Iterable[tuple[str, str]] = ()) -> list[Part]:
    """The provider's own error body for that status."""
    return whole(status, req.error_body(status), headers=headers)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse(events: Iterable[bytes], headers: Iterable[tuple[str, str]] = ()) -> list[Part]:
    """A stream's head, then each event as a chunk of its own (the terminating chunk not included)."""
    hdrs = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
            ("Transfer-Encoding", "chunked"), *headers]
    return [head(200, hdrs), *(chunk(e) for e in events)]


def gzipped_whole(body: bytes, content_type: str = "application/json") -> list[Part]:
    return whole(200, gzip.compress(body), content_type, [("Content-Encoding", "gzip")])


def gzipped_sse(events: Iterable[bytes]) -> list[Part]:
    """A stream compressed as one gzip member, flushed after each event (as a proxy would)."""
    z = zlib.compressobj(wbits=31)
    pieces = [z.compress(e) + z.flush(zlib.Z_SYNC_FLUSH) for e in events] + [z.flush()]
    return [*sse([], [("Content-Encoding", "gzip")]), *(chunk(p) for p in pieces if p), b"0\r\n\r\n"]


def split(data: bytes, at: Iterable[int]) -> list[Part]:
    """`data` cut at these offsets, each piece written on its own."""
    cuts = sorted({0, *(i for i in at if 0 < i < len(data)), len(data)})
    return [data[a:b] for a, b in itertools.pairwise(cuts)]


def bytewise(data: bytes) -> list[Part]:
    """One write per byte."""
    return [data[i:i + 1] for i in range(len(data))]


def joined(parts: list[Part]) -> bytes:
    """The bytes of a reply's parts (its actions left out)."""
    return b"".join(p for p in parts if isinstance(p, bytes))


# ------------------------------------------------------------------ the server

class FaultyUpstream:
    """A raw HTTP/1.1 server on 127.0.0.1 for one provider kind, replying as scripted."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.received: list[Request] = []
        self.queue: deque[Script] = deque()
        self.named: dict[str, Script] = {}  # replies chosen by the request's `x-fault` header
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin + "/v1" if self.kind == "openai" else self.origin

    @property
    def open_connections(self) -> int:
        """Connections from clients the fake still serves (hanging ones included)."""
        return len(self._tasks)

    def script(self, *scripts: Script) -> None:
        """Queue replies for the next requests, one per request, in order."""
        self.queue.extend(scripts)

    async def start(self) -> FaultyUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self._closed.set()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while (req := await self._read(reader)) is not None:
                self.received.append(req)
                script = self.named.get(req.headers.get("x-fault", "")) or (self.queue.popleft() if self.queue else ok)
                if not await self._play(script(req), reader, writer):
                    return
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> Request | None:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        first, *lines = raw.decode("latin-1").split("\r\n")
        method, target, _ = first.split(" ", 2)
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Request(self.kind, method, target, headers, body)

    async def _play(self, parts: list[Part], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Write the parts; False when the connection is over (closed, reset, or hung until the end)."""
        for part in parts:
            if isinstance(part, bytes):
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0)  # let the reader take this piece before the next is written
            elif isinstance(part, float):
                await asyncio.sleep(part)
            elif part == HANG:
                await self._hang(reader)
                return False
            elif part == CLOSE:
                writer.close()
                return False
            elif part == RESET:
                sock = writer.get_extra_info("socket")
                if sock is not None:  # zero linger: the close sends RST
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return False
        return True

    async def _hang(self, reader: asyncio.StreamReader) -> None:
        """Silent until the client closes its end or the fake closes."""
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            while not closed.done():
                with contextlib.suppress(TimeoutError):
                    if not await asyncio.wait_for(reader.read(65536), 0.05):
                        return
        finally:
            closed.cancel()
