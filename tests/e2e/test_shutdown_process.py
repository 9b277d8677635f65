"""`sidegate serve` stopped with SIGTERM while 50 streams of every caller format (and two answers not
yet begun) are still running: /readyz turns 503 at once while /healthz stays 200, the requests get
the grace period, then each stream ends with its format's error event (`server_shutting_down`) in a
well-terminated body, each waiting answer gets a 503 in its caller's shape, the official SDKs raise
it, every request has exactly one usage row, and the process exits 0 within the grace period plus
one second, an idle keep-alive connection notwithstanding."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from tests.e2e.test_stream_failures import (
    CHAT_ONLY,
    FIRST_TEXT_AT,
    read_anthropic,
    read_chat,
    read_gemini,
    read_responses,
)
from tests.support.fakes import sse_data
from tests.support.gateway import KEY, PRINCIPALS
from tests.support.sdk_clients import close_sdk_clients  # noqa: F401  (fixture)
from tests.support.served import free_port, wait_until_up

from sidegate.formats.sse import SSESplitter

GRACE_S = 2.5
AUTH = {"Authorization": f"Bearer {KEY}"}
HI = [{"role": "user", "content": "hi"}]
P = "/ai-gateway"


def stream_request(fmt: str, model: str) -> tuple[str, dict[str, Any]]:
    """The path and body of a streaming call in caller format `fmt`."""
    if fmt == "chat":
        return f"{P}/openai/v1/chat/completions", {"model": model, "messages": HI, "stream": True}
    if fmt == "responses":
        return f"{P}/openai/v1/responses", {"model": model, "input": "hi", "stream": True}
    if fmt == "anthropic":
        return f"{P}/anthropic/v1/messages", {"model": model, "max_tokens": 20, "messages": HI, "stream": True}
    return (f"{P}/gemini/v1beta/models/{model}:streamGenerateContent?alt=sse",
            {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})


def shutdown_code(fmt: str, last: dict[str, Any]) -> str | None:
    """Where each format's error event carries sidegate's code."""
    if fmt == "responses":
        assert last["type"] == "response.failed" and last["response"]["status"] == "failed"
        return last["response"]["error"]["code"]
    if fmt == "anthropic":
        assert last["type"] == "error"
        return last["error"]["code"]
    if fmt == "gemini":
        assert last["error"]["status"] == "UNAVAILABLE"
        return last["error"]["details"][0]["reason"]
    return last["error"]["code"]


async def raw_stream(http: aiohttp.ClientSession, base: str, fmt: str, model: str,
                     started: asyncio.Event) -> tuple[str, list[Any], float]:
    """One stream read to its end over plain HTTP: its events (event name, JSON data) and when it ended.
    aiohttp raises on a chunked body that is not terminated, so returning means it was."""
    path, body = stream_request(fmt, model)
    async with http.post(base + path, json=body, headers=AUTH) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/event-stream")
        splitter, events = SSESplitter(), []
        async for chunk in r.content.iter_any():
            events += [(ev.event, orjson.loads(ev.data)) for ev in splitter.feed(chunk) if ev.data != b"[DONE]"]
            started.set()
        assert not splitter.rest().strip()
    return fmt, events, time.monotonic()


async def answer(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, str | None, Any]:
    """A call answered whole: status, Retry-After and JSON body."""
    async with http.post(url, json=body, headers=AUTH) as r:
        return r.status, r.headers.get("Retry-After"), await r.json()


async def sdk_stream(read: Callable[[str, str], Awaitable[tuple[str, Exception | None]]], base: str,
                     model: str) -> str:
    """What the official SDK says at the end of the stream: the error it raised (or handed over)."""
    text, error = await read(base + P, model)
    assert text, "the text streamed before the shutdown reached the SDK"
    assert error is not None, "the SDK saw the stream end well"
    return repr(error) + str(getattr(error, "body", ""))


async def arrived(fake: Any, name: str) -> None:
    """Wait until every request the fake was scripted for has reached it."""
    for _ in range(600):
        if not fake.pending:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name}: requests still to arrive")


def spec(kind: str, fake: Any, extra: str = "") -> str:
    """A policy `providers:` entry for a fake upstream."""
    return f"kind: {kind}, base_url: '{fake.base_url}', api_key: k{extra}"


class Served:
    """`sidegate serve` in a process of its own, with the admin port, a grace period of GRACE_S and
    one model service per provider (named alike)."""

    def __init__(self, tmp_path: Path, providers: dict[str, str]) -> None:
        self.db = tmp_path / "usage.db"
        port, admin = free_port(), free_port()
        self.base, self.admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}"
        directory = tmp_path / "policies"
        directory.mkdir()
        entries = "\n".join(f"  {name}: {{{entry}}}" for name, entry in providers.items())
        models = "\n".join(f"  {name}: {{destinations: [{{provider: {name}}}]}}" for name in providers)
        (directory / "main.yaml").write_text(
            f'server: {{admin_listen: "127.0.0.1:{admin}", healthz_on_listen: true, shutdown_grace_s: {GRACE_S}}}\n'
            f"providers:\n{entries}\nmodels:\n{models}\n"
            f'usage: {{store: "sqlite:///{self.db}"}}\n' + PRINCIPALS)
        self.proc = subprocess.Popen([sys.executable, "-m", "sidegate", "serve", "--policies", str(directory),
                                      "--listen", f"127.0.0.1:{port}", "--watch-interval", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)

    def output(self) -> str:
        self.stop()
        return self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""

    async def up(self, http: aiohttp.ClientSession) -> None:
        await wait_until_up(self.proc, self.admin + "/healthz", http, self.output)

    def sigterm(self) -> float:
        self.proc.send_signal(signal.SIGTERM)
        return time.monotonic()

    async def exited(self, since: float) -> float:
        """Seconds from `since` until the process exited (0 asserted), waiting up to GRACE_S + 5; timed
        in a thread of its own, so that a busy test loop does not delay the reading."""
        def wait() -> float:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(GRACE_S + 5)
            return time.monotonic()

        took = await asyncio.to_thread(wait) - since
        assert self.proc.poll() == 0, self.output()
        return took

    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        """The usage rows by model service: (status, error code, streaming, input tokens, output
        tokens, estimated)."""
        by_service: dict[str, list[tuple[Any, ...]]] = {}
        for service, *rest in sqlite3.connect(self.db).execute(
                "select model_service, status_code, error_code, streaming, input_tokens, output_tokens,"
                " tokens_estimated from usage"):
            by_service.setdefault(service, []).append(tuple(rest))
        return by_service

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def serve(tmp_path: Path):
    made: list[Served] = []

    def start(providers: dict[str, str]) -> Served:
        made.append(Served(tmp_path, providers))
        return made[-1]

    yield start
    for served in made:
        served.stop()


async def test_sigterm_ends_every_live_stream_with_its_formats_error_and_exits_in_time(serve, fake_upstream):
    kinds = {"chat": "openai", "responses": "openai", "anthropic": "anthropic", "gemini": "gemini"}
    fakes = {fmt: await fake_upstream(kind) for fmt, kind in kinds.items()}
    raw_counts = {"chat": 10, "responses": 10, "anthropic": 11, "gemini": 11}  # + 8 SDK streams: 50
    for fmt, fake in fakes.items():
        for _ in range(raw_counts[fmt] + 1):  # every stream sends its first text, then goes silent
            fake.reply(hang_after=FIRST_TEXT_AT["responses" if fmt == "responses" else kinds[fmt]])
    # Each SDK streams once from its own format's destination, and once from model `m`: an OpenAI
    # Chat destination, native to the Chat SDK and translated for the other three (their ending
    # goes through the translation).
    sdk_fake = await fake_upstream("openai")
    for _ in range(4):
        sdk_fake.reply(hang_after=FIRST_TEXT_AT["openai"])
    waiting = {"chat": await fake_upstream("openai"), "gemini": await fake_upstream("gemini")}
    for fake in waiting.values():
        fake.reply(hang=True)  # no answer at all before the deadline

    providers = {fmt: spec(kinds[fmt], fake) for fmt, fake in fakes.items()}
    providers |= {f"waiting-{fmt}": spec(kinds[fmt], fake) for fmt, fake in waiting.items()}
    providers["m"] = spec("openai", sdk_fake, f", apis: [{', '.join(CHAT_ONLY)}]")
    served = serve(providers)
    base, admin_base = served.base, served.admin

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http, \
            aiohttp.ClientSession() as idle:
        await served.up(http)
        await wait_until_up(served.proc, base + "/healthz", idle, served.output)  # then idle, kept alive
        starts = {fmt: [asyncio.Event() for _ in range(n)] for fmt, n in raw_counts.items()}
        raw = [asyncio.create_task(raw_stream(http, base, fmt, fmt, started))
               for fmt, events in starts.items() for started in events]
        readers = {"chat": read_chat, "responses": read_responses, "anthropic": read_anthropic,
                   "gemini": read_gemini}
        sdk = {(fmt, model): asyncio.create_task(sdk_stream(read, base, model))
               for fmt, read in readers.items() for model in (fmt, "m")}
        chat_path, chat_body = stream_request("chat", "waiting-chat")
        gemini_url = f"{base}{P}/gemini/v1beta/models/waiting-gemini:generateContent"
        answers = [asyncio.create_task(answer(http, base + chat_path, {**chat_body, "stream": False})),
                   asyncio.create_task(answer(http, gemini_url, stream_request("gemini", "")[1]))]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for events in starts.values() for e in events)), 30)
        for fmt, fake in [*fakes.items(), *waiting.items(), ("sdk", sdk_fake)]:
            await arrived(fake, fmt)
        await asyncio.sleep(0.3)  # the SDK streams' first text is on its way to them

        sigterm = served.sigterm()
        exit_watch = asyncio.create_task(served.exited(sigterm))
        await asyncio.sleep(0.3)
        async with http.get(admin_base + "/readyz") as r:
            assert r.status == 503 and (await r.json())["status"] == "shutting_down"
        async with http.get(admin_base + "/healthz") as r:
            assert r.status == 200
        async with idle.get(base + "/healthz") as r:  # the API port too, on a connection still open
            assert r.status == 200
        async with aiohttp.ClientSession() as fresh:
            with pytest.raises(aiohttp.ClientConnectionError):  # no new connections on the API port
                await fresh.get(base + "/healthz")
        assert time.monotonic() - sigterm < GRACE_S - 0.5
        assert not any(task.done() for task in raw), "a stream ended before the grace period did"

        streams = await asyncio.wait_for(asyncio.gather(*raw), GRACE_S + 5)
        said = await asyncio.wait_for(asyncio.gather(*sdk.values()), GRACE_S + 5)
        refused = await asyncio.wait_for(asyncio.gather(*answers), GRACE_S + 5)
        exited = await exit_watch

    assert exited <= GRACE_S + 1.0, exited
    for fmt, events, ended_at in streams:
        # it lived through the grace period (and ended before the process exited, timed above)
        assert ended_at - sigterm >= GRACE_S - 0.1, (fmt, ended_at - sigterm)
        assert len(events) >= 2, (fmt, events)  # what streamed before, then the ending
        assert shutdown_code(fmt, events[-1][1]) == "server_shutting_down", (fmt, events[-1])
        before = events[:-2] if fmt == "responses" else events[:-1]  # Responses: `error`, `response.failed`
        assert not any("error" in data or data.get("type") in ("error", "response.failed")
                       for _, data in before), (fmt, before)
        if fmt == "responses":
            assert events[-2] == ("error", {"type": "error", "code": "server_shutting_down",
                                            "message": "sidegate is shutting down; retry the request",
                                            "param": None})
    for (fmt, model), text in zip(sdk, said, strict=True):
        native = model == fmt or fmt == "chat"
        assert ("server_shutting_down" if native else "sidegate is shutting down") in text, (fmt, model, text)
    for status, retry_after, _ in refused:
        assert (status, retry_after) == (503, "1")
    (_, _, chat_error), (_, _, gemini_error) = refused
    assert chat_error["error"]["code"] == "server_shutting_down"
    assert gemini_error["error"]["details"][0]["reason"] == "server_shutting_down"

    by_service = served.rows()
    assert sorted((s, len(r)) for s, r in by_service.items()) == sorted(
        [*((fmt, n + 1) for fmt, n in raw_counts.items()), ("m", 4), ("waiting-chat", 1), ("waiting-gemini", 1)])
    for fmt in [*fakes, "m"]:
        for status, code, streaming, input_tokens, output_tokens, estimated in by_service[fmt]:
            assert (status, code, streaming, estimated) == (200, "server_shutting_down", 1, 1), fmt
            assert input_tokens > 0 and output_tokens > 0, fmt  # partial: the text streamed before the end
    for fmt in waiting:
        assert [row[:3] for row in by_service[f"waiting-{fmt}"]] == [(503, "server_shutting_down", 0)]


async def test_a_caller_that_stops_reading_is_cut_at_the_end_and_its_row_is_written(serve, fake_upstream):
    """The one request shutdown cannot end well: its caller reads nothing, so sidegate's writes to it
    wait. It is cut when the grace period and the ending are over; the process still exits in time."""
    fake = await fake_upstream("openai")
    piece = sse_data({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "chat",
                      "choices": [{"index": 0, "delta": {"content": "x" * 65536}, "finish_reason": None}]})
    fake.reply(sse=[piece] * 512, hang_after=512)  # 32 MB: more than the sockets on the way hold
    served = serve({"chat": spec("openai", fake)})
    async with aiohttp.ClientSession() as http:
        await served.up(http)
    host, port = served.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = orjson.dumps({"model": "chat", "stream": True, "messages": HI})
    writer.write(b"POST /ai-gateway/openai/v1/chat/completions HTTP/1.1\r\nHost: sidegate\r\n"
                 + f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n".encode()
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    head = await reader.readuntil(b"\r\n\r\n")  # the answer began; from here on the caller reads no more
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower()
    await asyncio.sleep(0.5)  # sidegate's writes to the caller fill the buffers on the way and wait

    sigterm = served.sigterm()
    exited = await served.exited(sigterm)
    assert GRACE_S <= exited <= GRACE_S + 1.0, exited
    rest = await reader.read()  # what the buffers held, then the connection closed
    writer.close()
    assert rest and not rest.endswith(b"0\r\n\r\n")  # the body was cut, not terminated
    [(status, code, streaming, input_tokens, output_tokens, estimated)] = served.rows()["chat"]
    assert (status, code, streaming, estimated) == (499, "client_disconnected", 1, 1)
    assert input_tokens > 0 and output_tokens > 16384  # at least the first piece went out
