"""The one pooled HTTP client of the process, and the reply type the pipeline relays.

An upstream answer is a `Reply` whether it came over HTTP or from the in-process mock model, so
relaying, usage extraction and stream handling have a single code path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from sidegate.upstream.http1.client import Http1Client
from sidegate.upstream.http1.response import Response
from sidegate.upstream.mock.model import MockReply


def new_client() -> Http1Client:
    return Http1Client()


class Reply:
    status: int
    headers: list[tuple[str, str]]
    is_sse: bool
    media_type: str  # of the answer's content type, lower case, without parameters ("" when none)

    async def read(self) -> bytes:
        raise NotImplementedError

    async def load(self) -> None:
        """Read the whole answer now (before `read`), so that a failure surfaces in the attempt."""

    def chunks(self) -> AsyncIterator[bytes]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection; safe to call more than once."""

    def abort(self, error: BaseException) -> None:
        """End an answer still arriving: its reader gets `error` after what already arrived. An
        answer made in process has nothing left to wait for."""


class HttpReply(Reply):
    __slots__ = ("_body", "_response", "headers", "is_sse", "media_type", "status")

    def __init__(self, response: Response) -> None:
        self._response = response
        self._body: bytes | None = None
        self.status = response.status
        self.headers = response.headers
        self.media_type = ""
        for name, value in response.headers:
            if name.lower() == "content-type":
                self.media_type = value.split(";", 1)[0].strip().lower()
                break
        self.is_sse = self.media_type == "text/event-stream"

    async def read(self) -> bytes:
        if self._body is None:
            self._body = await self._response.read()
        return self._body

    async def load(self) -> None:
        await self.read()

    def chunks(self) -> AsyncIterator[bytes]:
        return self._response.chunks()

    def close(self) -> None:
        self._response.release()

    def abort(self, error: BaseException) -> None:
        self._response.abort(error)


class InProcessReply(Reply):
    __slots__ = ("_reply", "headers", "is_sse", "media_type", "status")

    def __init__(self, reply: MockReply) -> None:
        self._reply = reply
        self.status = reply.status
        self.headers = [("Content-Type", reply.content_type)]
        self.is_sse = reply.events is not None
        self.media_type = "text/event-stream" if self.is_sse else reply.content_type

    async def read(self) -> bytes:
        if self._reply.body is not None:
            return self._reply.body
        return b"".join(self._reply.events or ())

    async def chunks(self) -> AsyncIterator[bytes]:
        for event in self._reply.events or ():
            yield event


async def send(
    client: Http1Client,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    *,
    method: str = "POST",
    connect_timeout_s: float,
    timeout_s: float,
    stream: bool,
    idle_timeout_s: float | None = None,
) -> HttpReply:
    """Send one request; returns once the answer's status and headers arrived. `timeout_s` bounds
    the whole answer when it is read whole, else the wait for its first byte; for a stream,
    `idle_timeout_s` then bounds every silence between two chunks."""
    response = await client.request(
        method, url, headers, body, connect_timeout_s=connect_timeout_s,
        total_timeout_s=None if stream else timeout_s, first_byte_timeout_s=timeout_s if stream else None,
        idle_timeout_s=idle_timeout_s if stream else None)
    return HttpReply(response)
