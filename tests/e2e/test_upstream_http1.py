"""The upstream HTTP/1.1 client (`sidegate.upstream.http1`) against raw asyncio servers on loopback
writing exact bytes, so that every framing, timing and connection case is under the test's control."""

from __future__ import annotations

import asyncio
import gzip
import re
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
import trustme
from tests.support.fakes import blackhole

from sidegate.upstream.http1.client import Http1Client, _origin
from sidegate.upstream.http1.errors import ConnectTimeout, UpstreamBroken
from sidegate.upstream.http1.response import _HIGH_WATER, Response

pytestmark = pytest.mark.timeout(10)

HOLD, CLOSE = "hold", "close"  # reply parts: stay silent until the client's end; close the connection now
Part = bytes | str | asyncio.Event  # an Event part: wait until the test sets it
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: 1\r\nServer: raw\r\n\r\nhello"
OK2 = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nworld"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
READ_SIZE = 256 * 1024  # the most an asyncio socket transport hands over in one data_received


class Upstream:
    """A raw HTTP/1.1 server on loopback answering each request, on whichever connection, with the
    next reply: its parts written one by one, 10 ms apart; then it waits for the client's end."""

    def __init__(self, replies: tuple[Part | tuple[Part, ...], ...]) -> None:
        self.replies, self.accepted, self.eofs, self.port = list(replies), 0, 0, 0  # eofs: closed by the client
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await self.answer(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while self.replies and await self.next_request(reader):
            reply = self.replies.pop(0)
            for i, part in enumerate(reply if isinstance(reply, tuple) else (reply,)):
                if isinstance(part, asyncio.Event):
                    await part.wait()
                elif part == HOLD:
                    break
                elif part == CLOSE:
                    return
                elif isinstance(part, bytes):
                    await asyncio.sleep(0.01 if i else 0)
                    writer.write(part)
                    await writer.drain()
        while await reader.read(65536):
            pass
        self.eofs += 1

    async def next_request(self, reader: asyncio.StreamReader) -> bool:
        """Read one request (head, then a Content-Length body); False at the client's end."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        self.heads.append(head)
        if length := re.search(rb"\r\ncontent-length: (\d+)\r\n", head, re.IGNORECASE):
            self.bodies.append(await reader.readexactly(int(length[1])))
        return True


Serve = Callable[..., Awaitable[Upstream]]


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Serve]:
    started: list[tuple[Upstream, asyncio.Server]] = []

    async def start(*replies: Part | tuple[Part, ...], tls: ssl.SSLContext | None = None,
                    host: str = "127.0.0.1") -> Upstream:
        up = Upstream(replies)
        server = await asyncio.start_server(up.serve, host, 0, ssl=tls)
        up.port = server.sockets[0].getsockname()[1]
        started.append((up, server))
        return up

    yield start
    for up, server in started:
        server.close()
        for task in up.tasks:
            task.cancel()
        await asyncio.gather(*up.tasks, return_exceptions=True)
        await server.wait_closed()


@pytest_asyncio.fixture
async def client() -> AsyncIterator[Http1Client]:
    http = Http1Client()
    yield http
    await http.close()


async def get(client: Http1Client, up: Upstream, path: str = "/", /, **timeouts: float) -> Response:
    timeouts.setdefault("connect_timeout_s", 2.0)
    return await client.request("GET", up.url + path, {}, None, **timeouts)


def idle(client: Http1Client) -> int:
    return sum(len(pool.idle) for pool in client._pools.values())


async def eventually(check: Callable[[], object], within: float = 2.0) -> None:
    async with asyncio.timeout(within):
        while not check():
            await asyncio.sleep(0.005)


async def test_length_body_whole_and_connection_reused(serve: Serve, client: Http1Client) -> None:
    up = await serve(OK, OK2)
    reply = await client.request("POST", up.url + "/v1/chat?x=1", {"Authorization": "Bearer k"}, b'{"a":1}',
                                 connect_timeout_s=2)
    assert (reply.status, reply.headers, await reply.read()) == (200, [("X-Up", "1")], b"hello")
    assert up.heads == [f"POST /v1/chat?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{up.port}\r\nAuthorization: Bearer k\r\n"
                        f"Content-Length: 7\r\n\r\n".encode()]
    assert (up.bodies, idle(client)) == ([b'{"a":1}'], 1)
    assert await (await get(client, up, "/again")).read() == b"world"
    assert (up.accepted, len(up.heads), up.heads[1][:19]) == (1, 2, b"GET /again HTTP/1.1")


async def test_chunked_body_whole_and_as_it_is_sent(serve: Serve, client: Http1Client) -> None:
    go = asyncio.Event()
    parts = (b"4\r\nde", b"fg\r\n1", b"\r\nh\r\n0\r\n\r\n")
    up = await serve((CHUNKED + b"3\r\nabc\r\n", *parts), (CHUNKED + b"3\r\nabc\r\n", go, *parts))
    assert await (await get(client, up, total_timeout_s=2)).read() == b"abcdefgh"
    chunks = (await get(client, up, first_byte_timeout_s=2, idle_timeout_s=2)).chunks()
    async with asyncio.timeout(2):
        assert await anext(chunks) == b"abc"  # while the server still holds the rest back
    go.set()
    assert b"".join([chunk async for chunk in chunks]) == b"defgh"
    assert (up.accepted, idle(client)) == (1, 1)


async def test_body_until_the_connection_closes(serve: Serve, client: Http1Client) -> None:
    up = await serve((b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart1", b"part2", CLOSE), OK2)
    reply = await get(client, up, total_timeout_s=2)
    assert await reply.read() == b"part1part2"
    assert reply.conn.closed and idle(client) == 0
    assert await (await get(client, up)).read() == b"world"
    assert up.accepted == 2


@pytest.mark.parametrize("encoding, compress", [("gzip", gzip.compress), ("deflate", zlib.compress)])
async def test_compressed_answers_are_decoded(serve: Serve, client: Http1Client, encoding: str,
                                              compress: Callable[[bytes], bytes]) -> None:
    data = b"sidegate streams tokens. " * 400
    packed = compress(data)
    third = len(packed) // 3
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\nContent-Length: {len(packed)}\r\n\r\n".encode()
    up = await serve((head + packed[:third], packed[third:2 * third], packed[2 * third:]))
    reply = await get(client, up)
    assert (reply.headers, await reply.read()) == ([], data)
    assert idle(client) == 1


async def test_malformed_or_undecodable_answers_break(serve: Serve, client: Http1Client) -> None:
    up = await serve(b"HTTP/1.1 abc\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\nok",
                     b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 8\r\n\r\nnot gzip")
    with pytest.raises(UpstreamBroken, match="malformed"):
        await get(client, up)
    with pytest.raises(UpstreamBroken):
        await get(client, up)
    with pytest.raises(UpstreamBroken, match="corrupt"):
        await (await get(client, up)).read()
    await eventually(lambda: up.eofs == 3)  # the client closed each one
    assert (up.accepted, idle(client)) == (3, 0)


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_server_closes_mid_body(serve: Serve, client: Http1Client, framing: str) -> None:
    head = CHUNKED + b"4\r\n" if framing == "chunked" else b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    up = await serve((head + b"abcd", CLOSE), (head + b"abcd", CLOSE))
    with pytest.raises(UpstreamBroken, match="closed the connection"):
        await (await get(client, up)).read()
    got = []
    with pytest.raises(UpstreamBroken, match="closed the connection"):
        async for chunk in (await get(client, up)).chunks():
            got.append(chunk)
    assert (got, idle(client)) == ([b"abcd"], 0)


async def test_connect_timeout(client: Http1Client) -> None:
    started = time.monotonic()
    with blackhole() as url, pytest.raises(ConnectTimeout):
        await client.request("GET", url + "/", {}, None, connect_timeout_s=0.2)
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("setting, first, message", [
    ("total_timeout_s", (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcde", HOLD), "no complete answer"),
    ("first_byte_timeout_s", HOLD, "no answer")])
async def test_timeout_closes_the_connection(serve: Serve, client: Http1Client, setting: str, first: Any,
                                             message: str) -> None:
    up = await serve(first, OK2)  # total: the head and half the body, then silence; first byte: silence
    with pytest.raises(TimeoutError, match=message) as raised:
        await (await get(client, up, **{setting: 0.2})).read()
    assert not isinstance(raised.value, ConnectTimeout)
    await eventually(lambda: up.eofs == 1)
    assert await (await get(client, up)).read() == b"world"
    assert up.accepted == 2


async def test_idle_timeout_between_chunks(serve: Serve, client: Http1Client) -> None:
    late = asyncio.Event()
    up = await serve((CHUNKED, late, b"3\r\nabc\r\n", HOLD))
    reply = await get(client, up, first_byte_timeout_s=0.15, idle_timeout_s=0.3)
    await asyncio.sleep(0.2)  # past the first-byte deadline: it ended with the head
    late.set()
    chunks = reply.chunks()
    assert await anext(chunks) == b"abc"
    with pytest.raises(TimeoutError, match="idle_timeout_s"):
        await anext(chunks)
    await eventually(lambda: up.eofs == 1)
    assert idle(client) == 0


async def test_closed_connections_are_not_reused(serve: Serve, client: Http1Client) -> None:
    up = await serve(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", (OK, CLOSE), OK2)
    assert await (await get(client, up)).read() == b"ok"
    assert idle(client) == 0
    await eventually(lambda: up.eofs == 1)  # the client closed it; the server did not
    second = await get(client, up)
    assert await second.read() == b"hello"  # then the server closes this one while it is idle
    await eventually(lambda: second.conn.closed)  # noticed while idle in the pool
    assert await (await get(client, up)).read() == b"world"
    assert up.accepted == 3


async def test_flow_control_pauses_a_slow_reader(serve: Serve, client: Http1Client,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data)
    up = await serve(head + data)
    peak, pauses, original = 0, 0, Response.body

    def body(self: Response, chunk: bytes) -> None:
        nonlocal peak, pauses
        was_paused = self._paused
        original(self, chunk)
        peak = max(peak, self._buffered)
        pauses += self._paused and not was_paused

    monkeypatch.setattr(Response, "body", body)
    reply = await get(client, up, first_byte_timeout_s=2)
    await eventually(lambda: reply._paused)
    assert reply.conn.transport is not None and not reply.conn.transport.is_reading()
    await asyncio.sleep(0.05)  # nothing more is read while the caller does not read
    assert reply._paused and _HIGH_WATER < reply._buffered <= _HIGH_WATER + READ_SIZE
    got = bytearray()
    async for chunk in reply.chunks():
        got += chunk
        await asyncio.sleep(0.002)
    assert bytes(got) == data  # all of it, in order
    assert pauses >= 1 and peak <= _HIGH_WATER + READ_SIZE
    assert (up.accepted, idle(client)) == (1, 1)


@pytest.mark.parametrize("headers", [{"X-A": "v\r\nInjected: 1"}, {"X-A": "v\nInjected: 1"}, {"X-A": "v\rInjected: 1"},
                                     {"X-A\r\nInjected": "1"}, {"Injected: 1": "v"}])
async def test_header_injection_is_refused(serve: Serve, client: Http1Client, headers: dict[str, str]) -> None:
    up = await serve(OK, OK2)
    assert await (await get(client, up)).read() == b"hello"
    with pytest.raises(ValueError):
        await client.request("GET", up.url + "/", headers, None, connect_timeout_s=2)
    assert await (await get(client, up)).read() == b"world"  # nothing reached the idle connection
    assert (up.accepted, len(up.heads)) == (1, 2)
    assert not any(b"Injected" in head for head in up.heads)


async def test_requests_refused_before_sending(serve: Serve, client: Http1Client) -> None:
    up = await serve(OK)
    for method, url in [("HEAD", up.url + "/"), ("GET", "ftp://127.0.0.1/"), ("GET", "http:///path")]:
        with pytest.raises(ValueError):
            await client.request(method, url, {}, None, connect_timeout_s=2)
    await client.close()
    with pytest.raises(RuntimeError):
        await get(client, up)
    assert up.accepted == 0


def tls_server(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


async def test_https_trusted_and_untrusted(serve: Serve, client: Http1Client) -> None:
    ca = trustme.CA()
    client._ssl = ssl.create_default_context()
    ca.configure_trust(client._ssl)
    up = await serve(OK, OK2, tls=tls_server(ca))
    for expected in (b"hello", b"world"):
        reply = await client.request("GET", f"https://127.0.0.1:{up.port}/v1", {}, None, connect_timeout_s=2)
        assert (reply.status, await reply.read()) == (200, expected)
    assert up.accepted == 1
    assert up.heads[0] == f"GET /v1 HTTP/1.1\r\nHost: 127.0.0.1:{up.port}\r\n\r\n".encode()
    other = await serve(OK, tls=tls_server(trustme.CA()))  # a CA the client does not trust
    with pytest.raises(UpstreamBroken, match="TLS"):
        await client.request("GET", f"https://127.0.0.1:{other.port}/", {}, None, connect_timeout_s=2)
    assert (other.accepted, idle(client)) == (0, 1)


async def test_release_twice_and_releasing_an_unfinished_answer(serve: Serve, client: Http1Client) -> None:
    up = await serve(OK, (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcde", HOLD))
    done = await get(client, up)
    assert await done.read() == b"hello"
    done.release()
    done.release()
    assert idle(client) == 1  # put back once
    unfinished = await get(client, up)
    unfinished.release()
    unfinished.release()
    assert unfinished.conn.closed and idle(client) == 0
    await eventually(lambda: up.eofs == 1)


async def test_client_close_closes_idle_connections(serve: Serve, client: Http1Client) -> None:
    up = await serve(OK, OK2)
    pooled = await get(client, up)
    in_flight = await get(client, up)  # a second connection: the first is still busy
    assert await pooled.read() == b"hello"
    assert (up.accepted, idle(client)) == (2, 1)
    await client.close()
    await eventually(lambda: up.eofs == 1)  # the idle one
    assert await in_flight.read() == b"world"
    assert in_flight.conn.closed  # a closed client pools nothing
    await eventually(lambda: up.eofs == 2)


@pytest.mark.parametrize("url, origin, host, target", [
    ("http://example.com/v1/chat", ("http", "example.com", 80), "example.com", "/v1/chat"),
    ("http://example.com:80/", ("http", "example.com", 80), "example.com", "/"),
    ("https://example.com:443/x?y=1", ("https", "example.com", 443), "example.com", "/x?y=1"),
    ("http://example.com:8080", ("http", "example.com", 8080), "example.com:8080", "/"),
    ("https://[::1]/v1", ("https", "::1", 443), "[::1]", "/v1"),
    ("http://[::1]:8080/", ("http", "::1", 8080), "[::1]:8080", "/"),
])
def test_origin_and_host_header(url: str, origin: tuple[str, str, int], host: str, target: str) -> None:
    assert _origin(url) == (origin, host, target)


async def test_host_header_over_ipv6(serve: Serve, client: Http1Client) -> None:
    try:
        up = await serve(OK, host="::1")
    except OSError:
        pytest.skip("::1 is unavailable")
    reply = await client.request("GET", f"http://[::1]:{up.port}/", {}, None, connect_timeout_s=2)
    assert await reply.read() == b"hello"
    assert up.heads == [f"GET / HTTP/1.1\r\nHost: [::1]:{up.port}\r\n\r\n".encode()]


# Answers that once went wrong: trailing bytes, interim answers, compressed bodies cut short.
async def test_bytes_after_the_answer_do_not_join_its_body(serve: Serve, client: Http1Client) -> None:
    up = await serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad")
    assert await (await get(client, up)).read() == b"ok"  # not b"okbad"
    assert idle(client) == 0  # a connection that said more than it was asked is not reused


async def test_interim_answer_is_skipped(serve: Serve, client: Http1Client) -> None:
    up = await serve((b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", OK2))
    reply = await get(client, up)
    assert (reply.status, await reply.read()) == (200, b"world")  # not (103, b"")


async def test_truncated_gzip_breaks(serve: Serve, client: Http1Client) -> None:
    packed = gzip.compress(b"hello world" * 100)[:-12]
    up = await serve(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed) + packed)
    with pytest.raises(UpstreamBroken):
        await (await get(client, up)).read()  # not the decoded prefix


async def test_abort_ends_a_stream_after_what_arrived_and_spares_a_released_connection(
        serve: Serve, client: Http1Client) -> None:
    up = await serve((CHUNKED + b"3\r\nabc\r\n", HOLD), OK, OK2)
    reply = await get(client, up, first_byte_timeout_s=2, idle_timeout_s=2)
    chunks = reply.chunks()
    await asyncio.sleep(0.1)  # "abc" arrived; the server holds the rest back
    reply.abort(ConnectionAbortedError("shutting down"))
    async with asyncio.timeout(2):
        assert await anext(chunks) == b"abc"
        with pytest.raises(ConnectionAbortedError, match="shutting down"):
            await anext(chunks)
    await eventually(lambda: up.eofs == 1)  # the connection was closed, not kept
    done = await get(client, up)
    assert await done.read() == b"hello"  # read whole and released: its connection is back in the pool
    done.abort(ConnectionAbortedError("too late"))  # the pooled connection, maybe serving another answer now
    assert idle(client) == 1
    assert await (await get(client, up)).read() == b"world"
    assert up.accepted == 2
