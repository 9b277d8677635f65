"""A destination's event stream as the relay reads it: split into events, each seen (and checked) by
the usage observer of its format. Pure: it reads the chunks it is handed, whatever reads the socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sidegate.formats.base import StreamObserver
from sidegate.formats.sse import Event, SSESplitter, parse_event


class JsonArrayFraming:
    """A stream's events re-framed as one JSON array sent element by element as they come (how
    Gemini streams when SSE was not asked for): each event's `data` is an element, `[` before the
    first, `,` before every other; `close` ends the array (an empty one when no element came)."""

    __slots__ = ("_begun", "_splitter")

    def __init__(self) -> None:
        self._splitter = SSESplitter()
        self._begun = False

    def frame(self, data: bytes) -> bytes:
        """The array's bytes for these SSE bytes (complete events; b"" when they carry no data)."""
        out = bytearray()
        for ev in self._splitter.feed(data):
            if ev.data:
                out += b",\r\n" if self._begun else b"["
                out += ev.data
                self._begun = True
        return bytes(out)

    def close(self) -> bytes:
        return b"]" if self._begun else b"[]"


class StreamReader:
    """An upstream's event stream as the relay reads it: chunk by chunk, split into events, each
    seen by the usage observer of the format the destination speaks (one parse per event, which
    also checks it). The attempt reads the first events (`start`) so that a stream broken before
    anything reached the caller can still fall back; the relay goes on, reading `chunks` itself and
    handing each to `feed`, then calling `end` when they run out.

    `problem` says, in words, why the stream cannot be relayed on: an event that is not SSE, data
    that is not a JSON object, or an end without the format's terminal event. Events after a
    problem are never handed out. Read errors of the upstream (timeouts, a broken connection)
    propagate to whoever reads `chunks`.
    """

    __slots__ = ("_pending", "_splitter", "chunks", "done", "first", "observer", "problem")

    def __init__(self, chunks: AsyncIterator[bytes], observer: StreamObserver) -> None:
        self.chunks = chunks
        self._splitter = SSESplitter()
        self.observer = observer
        self.first: list[tuple[Event, dict[str, Any] | None]] = []  # what `start` read, for the relay
        self._pending: list[Event] = []  # split from the first chunk(s) but not yet seen: see `rest`
        self.done = False  # the upstream's stream is over (cleanly, or at a problem)
        self.problem: str | None = None

    async def start(self) -> None:
        """Read until the first event the caller would get, a problem, or the end. Only the events up
        to that one are seen (parsed, checked): a chunk often holds many events, or the whole stream,
        and the caller's first byte does not wait for the rest of them (`rest`)."""
        pending = self._pending
        while not self.first and not self.done:
            if not pending:
                try:
                    chunk = await self.chunks.__anext__()
                except StopAsyncIteration:
                    self.first = self.end()
                    return
                pending += self._splitter.feed(chunk)
                continue
            self.first = self._observe([pending.pop(0)])
        if self.done:
            pending.clear()

    def rest(self) -> list[tuple[Event, dict[str, Any] | None]]:
        """The events `start` split but did not see yet, seen now (the relay calls it once the caller
        has its first byte)."""
        pending, self._pending = self._pending, []
        return self._observe(pending) if pending and not self.done else []

    def feed(self, chunk: bytes) -> list[tuple[Event, dict[str, Any] | None]]:
        """The events of a chunk the relay read from `chunks`, each with its parsed JSON object."""
        return self._observe(self._splitter.feed(chunk))

    def end(self) -> list[tuple[Event, dict[str, Any] | None]]:
        """Once `chunks` is exhausted: a last event without its blank line, then the check
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
