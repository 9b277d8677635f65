"""Incremental server-sent-events splitting: bytes in as they arrive, complete events out.

Linear in the bytes seen: each byte is scanned for an event boundary once, and an event's fields
are parsed once. The raw bytes of each event are kept so an unchanged event is relayed as is.
A line that is no SSE field sidegate knows (`data`, `event`, `id`, `retry`) or comment marks its
event as not SSE (`Event.sse` false): an HTML page or bare JSON sent as an event stream, which the
relay refuses to pass on.

`json_event` is the one parse of an event's data that every reader of a stream shares (the usage
observers, the stream translators, the output guardrails, the stream folds).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson


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


NOT_JSON = "an event whose data is not JSON"
NOT_OBJECT = "an event whose data is not a JSON object"


def json_event(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON object an event's `data` holds, or None and why not (`NOT_JSON`, `NOT_OBJECT`).
    Every streaming format sends objects, so anything else is a broken event."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None, NOT_JSON
    if isinstance(obj, dict):
        return obj, None
    return None, NOT_OBJECT


def sse_events(sse_bytes: bytes, piece: int = 1 << 16) -> Iterator[tuple[str | None, bytes]]:
    """(event name, data) of every event, a last one without its blank line included; read a
    piece at a time so that a long stream never has all its events alive at once."""
    splitter = SSESplitter()
    for start in range(0, len(sse_bytes), piece):
        for ev in splitter.feed(sse_bytes[start:start + piece]):
            yield ev.event, ev.data
    rest = splitter.rest()
    if rest.strip():
        yield parse_block(rest)
