"""Incremental server-sent-events splitting: bytes in as they arrive, complete events out.

Linear in the bytes seen: each byte is scanned for an event boundary once, and an event's fields
are parsed once. The raw bytes of each event are kept so an unchanged event is relayed as is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Event:
    raw: bytes  # the whole event block as received, terminator included
    event: str | None
    data: bytes  # data lines joined by b"\n"; b"" for comment-only blocks


def parse_block(block: bytes) -> tuple[str | None, bytes]:
    event: str | None = None
    data: list[bytes] = []
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
    return event, b"\n".join(data)


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
            block = bytes(buf[start:end])
            event, data = parse_block(block)
            events.append(Event(block, event, data))
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
