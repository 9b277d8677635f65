"""Incremental server-sent-events splitting: bytes in as they arrive, complete events out.

Linear in the bytes seen: each byte is scanned for an event boundary once, and an event's fields
are parsed once. The raw bytes of each event are kept so an unchanged event is relayed as is.
A line that is no SSE field sidegate knows (`data`, `event`, `id`, `retry`) or comment marks its
event as not SSE (`Event.sse` false): an HTML page or bare JSON sent as an event stream, which the
relay refuses to pass on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sidegate.ingress.base import StreamObserver


@dataclass(slots=True)
class Event:
    raw: bytes  # the whole event block as received, terminator included
    event: str | None
    data: bytes  # data lines joined by b"\n"; b"" for comment-only blocks
    sse: bool = True  # False: a line of the block is not an SSE field (see the module's docstring)


_OTHER_FIELDS = (b"id", b"retry")


def parse_event(block: bytes) -> Event:
    event: str | None = None
    data: list[bytes] = []
    sse = True
    for line in block.splitlines():
        if not line or line[0] == 0x3A:  # ":" starts a comment
            continue
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
        elif name not in _OTHER_FIELDS:
            sse = False
    return Event(block, event, b"\n".join(data), sse)


def parse_block(block: bytes) -> tuple[str | None, bytes]:
    """The event name and data of one block (for readers that need not know whether it was SSE)."""
    ev = parse_event(block)
    return ev.event, ev.data


class SSESplitter:
    __slots__ = ("_buf", "_scan")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scan = 0  # where the next boundary search starts: bytes before it hold none

    def feed(self, chunk: bytes) -> list[Event]:
        buf = self._buf
        buf += chunk
        events: list[Event] = []
        start = 0
        # The next position of each terminator is searched for again only once an event has been
        # cut past it: a stream using one kind never rescans the buffer for the other, per event.
        lf = buf.find(b"\n\n", self._scan)
        crlf = buf.find(b"\r\n\r\n", self._scan)
        while lf >= 0 or crlf >= 0:
            end = crlf + 4 if crlf >= 0 and (lf < 0 or crlf < lf) else lf + 2
            events.append(parse_event(bytes(buf[start:end])))
            start = self._scan = end
            if 0 <= lf < end:
                lf = buf.find(b"\n\n", end)
            if 0 <= crlf < end:
                crlf = buf.find(b"\r\n\r\n", end)
        if start:
            del buf[:start]
            self._scan -= start
        # A boundary may straddle this chunk and the next: rescan the last 3 bytes next time.
        self._scan = max(self._scan, len(buf) - 3, 0)
        return events

    def rest(self) -> bytes:
        """Bytes after the last complete event (a stream that ended without a final blank line)."""
        rest = bytes(self._buf)
        self._buf.clear()
        self._scan = 0
        return rest


class StreamReader:
    """An upstream's event stream as the relay reads it: chunk by chunk, split into events, each
    seen by the usage observer of the format the destination speaks (one parse per event, which
    also checks it). The attempt reads the first events (`start`) so that a stream broken before
    anything reached the caller can still fall back; the relay goes on, reading `chunks` itself and
    handing each to `feed`, then calling `end` when they run out (`next` does both, for `start`).

    `problem` says, in words, why the stream cannot be relayed on: an event that is not SSE, data
    that is not a JSON object, or an end without the format's terminal event. Events after a
    problem are never handed out. Read errors of the upstream (timeouts, a broken connection)
    propagate to whoever reads `chunks`.
    """

    __slots__ = ("_splitter", "chunks", "done", "first", "observer", "problem")

    def __init__(self, chunks: AsyncIterator[bytes], observer: StreamObserver) -> None:
        self.chunks = chunks
        self._splitter = SSESplitter()
        self.observer = observer
        self.first: list[tuple[Event, dict[str, Any] | None]] = []  # what `start` read, for the relay
        self.done = False  # the upstream's stream is over (cleanly, or at a problem)
        self.problem: str | None = None

    async def start(self) -> None:
        """Read until the first event the caller would get, a problem, or the end."""
        while not self.first and not self.done:
            self.first = await self.next()

    async def next(self) -> list[tuple[Event, dict[str, Any] | None]]:
        """The events of the next chunk the caller gets, each with its parsed JSON object; at the end
        of the stream, a last event without its blank line. Empty once `done`."""
        if self.done:
            return []
        try:
            chunk = await self.chunks.__anext__()
        except StopAsyncIteration:
            return self.end()
        return self.feed(chunk)

    def feed(self, chunk: bytes) -> list[tuple[Event, dict[str, Any] | None]]:
        """`next` for a chunk the caller read from `chunks` itself (the relay: one coroutine less per chunk)."""
        return self._observe(self._splitter.feed(chunk))

    def end(self) -> list[tuple[Event, dict[str, Any] | None]]:
        """`next` once `chunks` is exhausted: a last event without its blank line, then the check
        that the stream reached its terminal event."""
        self.done = True
        rest = self._splitter.rest()
        out = self._observe([parse_event(rest)]) if rest.strip() else []
        if self.problem is None and not self.observer.ended:
            self.problem = f"the stream ended without {self.observer.closing}"
        return out

    def _observe(self, events: list[Event]) -> list[tuple[Event, dict[str, Any] | None]]:
        observer = self.observer
        out: list[tuple[Event, dict[str, Any] | None]] = []
        for ev in events:
            if not ev.sse:
                self.problem = "a line that is not server-sent events"
            elif not observer.on_event(ev.event, ev.data):
                if observer.broken is None:
                    out.append((ev, observer.parsed))
                    continue
                self.problem = observer.broken
            else:
                continue  # the usage chunk sidegate asked for on the caller's behalf
            self.done = True
            self._splitter.rest()  # nothing after a problem is read or relayed
            break
        return out
