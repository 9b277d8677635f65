"""Byte-level fidelity through sidegate under awkward delivery: the same answer written at once,
one byte per write, and cut inside CRLFs, chunk-size lines and SSE field names relays identically;
gzip answers (whole and streamed) reach the caller decoded; a 20 MB JSON answer and a 100,000-event
stream relay intact with their usage read. Native passthrough (the caller's bytes are the
upstream's), checked raw with aiohttp; one usage row per request id and the process healthy after."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from tests.support.fakes import sse_data
from tests.support.fakes.fault_env import CALLER_IDS, CALLERS, CHAT, GEMINI, Caller, FaultEnv, ends_cleanly, fault_env  # noqa: F401
from tests.support.fakes.faulty import (
    CLOSE,
    Part,
    Request,
    bytewise,
    chunk,
    gzipped_sse,
    gzipped_whole,
    joined,
    ok,
    split,
    sse,
)

pytestmark = pytest.mark.timeout(60)


def body_of(data: bytes) -> bytes:
    """The payload of a whole HTTP answer, de-chunked when chunked."""
    head, _, body = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" not in head.lower():
        return body
    out, rest = b"", body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out, rest = out + rest[:size], rest[size + 2:]


def awkward_cuts(data: bytes) -> list[int]:
    """Offsets inside every CRLF, inside every chunk-size line, inside every SSE field name and
    inside every JSON key quote: where a parser that assumes whole lines or fields would break."""
    cuts = [m.start() + 1 for m in re.finditer(rb"\r\n", data)]
    cuts += [m.start() + 1 for m in re.finditer(rb"\r\n[0-9a-f]{2,}\r\n", data)]  # "\r|\n1a" and "\r\n1|a"
    cuts += [m.start() + 3 for m in re.finditer(rb"\r\n[0-9a-f]{2,}\r\n", data)]
    cuts += [m.start() + 2 for m in re.finditer(rb"(?m)^(data|event):", data)]
    cuts += [m.start() + 1 for m in re.finditer(rb'"[a-z_]+":', data)][:50]
    return cuts


def unchanged(caller: Caller, stream: bool) -> dict[str, Any]:
    """A request sidegate forwards as it is (a chat stream that asks for its usage chunk itself)."""
    body = caller.body("big", stream)
    return {**body, "stream_options": {"include_usage": True}} if caller is CHAT and stream else body


class Recorded:
    """One answer built on the first request, then served again, whole or split as asked."""

    def __init__(self) -> None:
        self.data: bytes | None = None

    def serve(self, how: str) -> Any:
        def script(req: Request) -> list[Part]:
            if self.data is None:
                self.data = joined(ok(req))
            if how == "whole":
                return [self.data]
            return bytewise(self.data) if how == "bytewise" else split(self.data, awkward_cuts(self.data))
        return script


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("caller", CALLERS, ids=CALLER_IDS)
async def test_bytes_split_at_every_boundary_relay_identically(fault_env, caller: Caller,  # noqa: F811
                                                               stream: bool) -> None:
    env: FaultEnv = await fault_env(caller, False)
    recorded = Recorded()
    env.bad.script(*(recorded.serve(how) for how in ("whole", "bytewise", "awkward")))
    answers = [await env.call("big", stream, body=unchanged(caller, stream)) for _ in range(3)]
    assert recorded.data is not None and len(awkward_cuts(recorded.data)) > 10
    reference = answers[0]
    assert reference.status == 200 and reference.body == body_of(recorded.data), "relayed as it came"
    for answer in answers[1:]:
        assert (answer.status, answer.headers["Content-Type"]) == (200, reference.headers["Content-Type"])
        assert answer.body == reference.body
    if stream:
        ends_cleanly(caller, reference.body)
    rows = [await env.row(a) for a in answers]
    usage = {(r["input_tokens"], r["output_tokens"], r["tokens_estimated"], r["error_code"]) for r in rows}
    assert len(usage) == 1 and next(iter(usage))[2:] == (False, None), rows
    await env.healthy(stream)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("caller", CALLERS, ids=CALLER_IDS)
async def test_gzip_answers_reach_the_caller_decoded(fault_env, caller: Caller, stream: bool) -> None:  # noqa: F811
    env: FaultEnv = await fault_env(caller, False)
    sent: list[bytes] = []

    def script(req: Request) -> list[Part]:
        if stream:
            sent.append(b"".join(req.events()))
            return gzipped_sse(orjson_events(sent[-1]))
        sent.append(orjson.dumps(req.answer()))
        return gzipped_whole(sent[-1])

    env.bad.script(script)
    answer = await env.call("big", stream, body=unchanged(caller, stream))
    assert answer.status == 200, answer.body
    assert answer.body == sent[0], "decoded, byte for byte"
    assert "gzip" not in answer.headers.get("Content-Encoding", ""), dict(answer.headers)
    row = await env.row(answer)
    assert (row["error_code"], row["tokens_estimated"]) == (None, False) and row["input_tokens"] > 0, row
    await env.healthy(stream)


def orjson_events(data: bytes) -> list[bytes]:
    """The SSE blocks of a joined stream."""
    return [block + b"\n\n" for block in data.split(b"\n\n") if block]


async def test_a_20_mb_json_answer_relays_intact(fault_env) -> None:  # noqa: F811
    env: FaultEnv = await fault_env(CHAT, False)
    text = "".join(f"line {i:07d} of a very long answer\n" for i in range(600_000))
    sent: list[bytes] = []

    def script(req: Request) -> list[Part]:
        answer = req.answer()
        answer["choices"][0]["message"]["content"] = text
        sent.append(orjson.dumps(answer))
        return [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(sent[0]),
                *split(sent[0], range(0, len(sent[0]), 1 << 20))]

    env.bad.script(script)
    answer = await env.call("big")
    assert len(sent[0]) > 20_000_000
    assert answer.status == 200 and answer.body == sent[0]
    row = await env.row(answer)
    usage = orjson.loads(sent[0])["usage"]
    assert (row["input_tokens"], row["output_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    await env.healthy(False)


async def test_a_100k_event_stream_relays_intact(fault_env) -> None:  # noqa: F811
    env: FaultEnv = await fault_env(CHAT, False)
    sent: list[bytes] = []

    def script(req: Request) -> list[Part]:
        first, *_, finish, usage, done = req.events()  # role, deltas, finish, usage chunk, [DONE]
        base = orjson.loads(first[len(b"data: "):])
        deltas = []
        for i in range(100_000):
            base["choices"][0]["delta"] = {"content": f"{i % 10}"}
            deltas.append(sse_data(base))
        events = [first, *deltas, finish, usage, done]
        sent.append(b"".join(events))
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        return [head, *(chunk(b"".join(events[i:i + 500])) for i in range(0, len(events), 500)), b"0\r\n\r\n"]

    env.bad.script(script)
    answer = await env.call("big", True, body=unchanged(CHAT, True))
    assert answer.status == 200 and answer.body.count(b"\n\n") == 100_004
    assert answer.body == sent[0]
    row = await env.row(answer)
    assert (row["error_code"], row["tokens_estimated"], row["streaming"]) == (None, False, True), row
    await env.healthy(True)


ARRAY_PATH = "/gemini/v1beta/models/big:streamGenerateContent"


def array_texts(elements: list[dict[str, Any]]) -> list[str]:
    return [p["text"] for e in elements for c in e.get("candidates") or () for p in c["content"].get("parts") or ()
            if p.get("text")]


@pytest.mark.parametrize("translated", [False, True], ids=["native", "translated"])
async def test_a_gemini_stream_without_alt_sse_is_one_json_array(fault_env, translated: bool) -> None:  # noqa: F811
    """`:streamGenerateContent` without `alt=sse` is, in the Gemini API, one JSON array streamed
    element by element (clients that did not ask for SSE parse that array), whatever sidegate
    asks of the destination (events: `alt=sse` of a Gemini one)."""
    env: FaultEnv = await fault_env(GEMINI, translated)
    answer = await env.call("big", True, path=ARRAY_PATH)
    assert answer.status == 200, answer.body
    assert answer.headers["Content-Type"].startswith("application/json"), dict(answer.headers)
    assert answer.body[:1] == b"[" and answer.body.endswith(b"]"), answer.body[:200]
    elements = orjson.loads(answer.body)
    if translated:
        assert "".join(array_texts(elements)) == "Hello from the fake"
    else:
        assert array_texts(elements) == ["Hello", " from", " the fake"]
        assert "alt=sse" in env.bad.received[0].target and env.bad.received[0].stream
    assert elements[-1]["candidates"][0]["finishReason"] == "STOP", elements[-1]
    row = await env.row(answer)
    assert (row["error_code"], row["tokens_estimated"], row["streaming"]) == (None, False, True), row
    await env.healthy(True)


@pytest.mark.parametrize("translated", [False, True], ids=["native", "translated"])
async def test_a_broken_gemini_json_array_ends_with_an_error_element(fault_env, translated: bool) -> None:  # noqa: F811
    """A destination stream cut half way ends the array as Gemini ends a broken one: an error
    object as its last element, then `]`, so the body stays one JSON value and the client sees
    the error; nothing of the stream after the cut."""
    env: FaultEnv = await fault_env(GEMINI, translated)
    env.bad.script(lambda r: [*sse(r.events()[:len(r.events()) // 2]), CLOSE])
    answer = await env.call("big", True, path=ARRAY_PATH)
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("application/json")
    *head, last = orjson.loads(answer.body)
    assert array_texts(head) == ["Hello"], head
    error = last["error"]
    assert (error["code"], error["status"]) == (502, "UNAVAILABLE") and error["message"], last
    if not translated:  # sidegate's own error object (a translated stream's error is the codec's)
        assert error["details"][0]["reason"] == "upstream_stream_interrupted", last
    row = await env.row(answer)
    assert (row["status_code"], row["error_code"]) == (200, "upstream_stream_interrupted"), row
    await env.healthy(True)


@pytest.mark.parametrize("caller", CALLERS, ids=CALLER_IDS)
async def test_sse_with_crlf_line_endings_relays_identically(fault_env, caller: Caller) -> None:  # noqa: F811
    """SSE lines may end in CRLF (servers behind some proxies do): split one byte per write, the
    events still pass as they came and their usage is read."""
    env: FaultEnv = await fault_env(caller, False)
    sent: list[bytes] = []

    def script(req: Request) -> list[Part]:
        events = [e.replace(b"\n", b"\r\n") for e in req.events()]
        sent.append(b"".join(events))
        return bytewise(joined([*sse(events), b"0\r\n\r\n"]))

    env.bad.script(script)
    answer = await env.call("big", True, body=unchanged(caller, True))
    assert answer.status == 200 and answer.body == sent[0]
    ends_cleanly(caller, answer.body)
    row = await env.row(answer)
    assert (row["error_code"], row["tokens_estimated"]) == (None, False) and row["output_tokens"] > 0, row
    await env.healthy(True)


def _framed(how: str, body: bytes) -> list[Part]:
    """The same JSON answer in another valid HTTP/1.1 framing."""
    if how == "until-close":  # no length: the body ends with the connection
        return [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" + body, CLOSE]
    pieces = [body[i:i + 7] for i in range(0, len(body), 7)]
    ext = b";name=value" if how == "chunk-extensions" else b""
    trailer = b"X-Trailer: done\r\n" if how == "chunk-extensions" else b""
    return [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext, p) for p in pieces) + b"0\r\n" + trailer + b"\r\n"]


@pytest.mark.parametrize("how", ["until-close", "small-chunks", "chunk-extensions"])
async def test_every_valid_framing_of_a_whole_answer_relays_intact(fault_env, how: str) -> None:  # noqa: F811
    env: FaultEnv = await fault_env(CHAT, False)
    sent: list[bytes] = []

    def script(req: Request) -> list[Part]:
        sent.append(orjson.dumps(req.answer()))
        return _framed(how, sent[-1])

    env.bad.script(script)
    answer = await env.call("big")
    assert answer.status == 200 and answer.body == sent[0], answer.body
    row = await env.row(answer)
    assert (row["error_code"], row["tokens_estimated"]) == (None, False) and row["input_tokens"] > 0, row
    await env.healthy(False)
