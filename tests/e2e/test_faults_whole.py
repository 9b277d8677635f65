"""Faults of a destination before anything reached the caller, for every caller format, whole
and streamed, native and translated: a reset, a refused or closed connection, a hang, a slow
first byte, 5xx and 429 answers, bodies that are not the destination's API. Each case checks the
caller's status and error shape with no fallback left, the fallback being tried when there is one,
the breaker counting the failure, one usage row per request id and the process healthy after.
With no fallback left: a broken connection is 502 `upstream_unreachable`, no answer in time 504
`upstream_timeout`, a 5xx or 429 is relayed (429 with its Retry-After; routing reason
`retryable_status`, as when a fallback follows), and an answer that is not the destination's API
is 502 `upstream_invalid_response` (routing reason `invalid_response`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import anthropic
import openai
import orjson
import pytest
from google.genai import errors as genai_errors
from tests.support.fakes.fault_env import (  # noqa: F401
    ANTHROPIC,
    PAIR_IDS,
    PAIRS,
    Answer,
    Caller,
    FaultEnv,
    assert_error_shape,
    ends_cleanly,
    error_code,
    fault_env,
    reasons,
)
from tests.support.fakes.faulty import CLOSE, HANG, RESET, Part, Request, error, ok, whole
from tests.support.sdk_clients import claude, close_sdk_clients, gemini, oai  # noqa: F401  (fixture)

pytestmark = pytest.mark.timeout(30)
RETRY_AFTER = "7"


def _body(req: Request) -> bytes:
    return orjson.dumps(req.answer())


@dataclass(frozen=True)
class Fault:
    name: str
    script: Callable[[Request], list[Part]] | None  # None: the destination's port refuses connections
    outcome: str  # unreachable | timeout | relayed | invalid
    status: int = 502
    streams: bool = True  # also a fault for a streamed request (it happens before the first byte)


FAULTS = [
    Fault("refused", None, "unreachable"),
    Fault("reset", lambda req: [RESET], "unreachable"),
    Fault("closed", lambda req: [CLOSE], "unreachable"),
    Fault("not-http", lambda req: [b"SSH-2.0-OpenSSH_9.6\r\n", CLOSE], "unreachable"),
    Fault("body-cut-short", lambda req: [*whole(200, _body(req)[:40], length=len(_body(req))), CLOSE],
          "unreachable", streams=False),
    Fault("bad-chunk-size", lambda req: [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                         b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"],
          "unreachable", streams=False),
    Fault("gzip-corrupt", lambda req: whole(200, b"\x1f\x8b\x08\x00garbage", headers=[("Content-Encoding", "gzip")]),
          "unreachable"),
    Fault("unasked-encoding", lambda req: whole(200, b"(\xb5/\xfd", headers=[("Content-Encoding", "zstd")]),
          "unreachable"),
    Fault("hang", lambda req: [HANG], "timeout", 504),
    Fault("slow-first-byte", lambda req: [0.8, *ok(req)], "timeout", 504),
    Fault("500", lambda req: error(req, 500), "relayed", 500, streams=False),
    Fault("503", lambda req: error(req, 503), "relayed", 503),
    Fault("429", lambda req: error(req, 429, [("Retry-After", RETRY_AFTER)]), "relayed", 429),
    Fault("html-502", lambda req: whole(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
          "relayed", 502),
    Fault("html-200", lambda req: whole(200, b"<!DOCTYPE html><html><body>Bad gateway</body></html>",
                                        "text/html; charset=utf-8"), "invalid"),
    Fault("garbage-200", lambda req: whole(200, b"\x00\x9fnot json at all\xff"), "invalid", streams=False),
    Fault("truncated-json", lambda req: whole(200, _body(req)[: len(_body(req)) // 2]), "invalid",
          streams=False),
    Fault("empty-200", lambda req: whole(200, b""), "invalid", streams=False),
    Fault("sse-to-whole", lambda req: whole(200, b"data: {}\n\ndata: [DONE]\n\n", "text/event-stream"), "invalid",
          streams=False),
    Fault("json-array", lambda req: whole(200, b'[{"id": "x"}]'), "invalid", streams=False),  # not an object
    Fault("wrong-content-type", lambda req: whole(200, _body(req), "text/html"), "invalid", streams=False),
]
# Faults of the connection and timeouts take the same path whatever the formats: every caller
# natively, and one translated pair; answers the translation reads, every caller both ways.
BY_CONNECTION = ("unreachable", "timeout")
CASES = [(c, t, f, s) for c, t in PAIRS for f in FAULTS for s in (False, True)
         if (f.streams or not s) and (f.outcome not in BY_CONNECTION or not t or c is ANTHROPIC)]
CASE_IDS = [f"{c.name}-{'translated' if t else 'native'}-{f.name}-{'stream' if s else 'whole'}" for c, t, f, s in CASES]
FIRST = {"unreachable": "connection_error", "timeout": "first_byte_timeout", "invalid": "invalid_response"}
CODES = {"unreachable": "upstream_unreachable", "timeout": "upstream_timeout", "invalid": "upstream_invalid_response"}


def expected_status(fault: Fault, caller: Caller, translated: bool) -> int:
    """A translated overload keeps its meaning, not its number: an Anthropic caller's overload is 529."""
    return 529 if fault.status == 503 and translated and caller.family == "anthropic" else fault.status


async def check_no_fallback_left(env: FaultEnv, answer: Answer, fault: Fault, stream: bool, status: int) -> None:
    assert answer.status == status, answer.body
    row = await env.row(answer)
    assert (row["status_code"], row["streaming"], row["destination_name"]) == (status, stream, "bad")
    if fault.outcome == "relayed":
        if fault.name != "html-502" or env.translated:  # relayed as it came when the caller speaks it
            assert_error_shape(env.caller, answer)
        assert reasons(row) == [("bad", "retryable_status")]
        assert row["error_code"], row
        if fault.status == 429:
            assert answer.headers.get("Retry-After") == RETRY_AFTER, dict(answer.headers)
    else:
        assert error_code(env.caller, answer) == CODES[fault.outcome]
        assert row["error_code"] == CODES[fault.outcome]
        assert reasons(row) == [("bad", FIRST[fault.outcome])]


async def check_fallback(env: FaultEnv, answer: Answer, stream: bool, first: str) -> None:
    assert answer.status == 200, answer.body
    if stream:
        ends_cleanly(env.caller, answer.body)
    row = await env.row(answer)
    assert reasons(row) == [("bad", first), ("good", "ok")]
    assert (row["status_code"], row["error_code"], row["destination_name"]) == (200, None, "good")
    assert row["input_tokens"] > 0 and not row["tokens_estimated"], row


@pytest.mark.parametrize(("caller", "translated", "fault", "stream"), CASES, ids=CASE_IDS)
async def test_fault_before_the_first_byte(fault_env, caller: Caller, translated: bool,  # noqa: F811
                                           fault: Fault, stream: bool) -> None:
    env = await fault_env(caller, translated, refused=fault.script is None)
    if fault.script is not None:
        env.bad.script(fault.script, fault.script)
    alone, helped = await asyncio.gather(env.call("m", stream), env.call("mf", stream))
    assert env.gw.state.breakers.is_open(("bad", "bad-m")), "the failure counted against the breaker"
    await env.healthy(stream)
    await check_no_fallback_left(env, alone, fault, stream, expected_status(fault, caller, translated))
    await check_fallback(env, helped, stream, FIRST.get(fault.outcome, "retryable_status"))
    assert env.good.received, "the fallback was asked"


async def sdk_call(caller: Caller, base: str) -> Exception | None:
    """One whole call of the caller's official SDK on model service `m`; the error it raised."""
    try:
        if caller.name == "chat":
            await oai(base).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        elif caller.name == "responses":
            await oai(base).responses.create(model="m", input="hi")
        elif caller.name == "anthropic":
            await claude(base).messages.create(model="m", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
        else:
            await gemini(base).models.generate_content(model="m", contents="hi")
    except (openai.APIError, anthropic.APIError, genai_errors.APIError) as err:
        return err
    return None


SDK_FAULTS = [f for f in FAULTS if f.name in ("reset", "hang", "429", "html-200")]


@pytest.mark.parametrize("fault", SDK_FAULTS, ids=[f.name for f in SDK_FAULTS])
@pytest.mark.parametrize(("caller", "translated"), PAIRS, ids=PAIR_IDS)
async def test_the_sdk_raises_the_status_with_a_readable_error(fault_env, caller: Caller,  # noqa: F811
                                                               translated: bool, fault: Fault) -> None:
    env: FaultEnv = await fault_env(caller, translated)
    env.bad.script(fault.script)  # type: ignore[arg-type]
    async with asyncio.timeout(10):  # the SDK must not hang on it
        err = await sdk_call(caller, env.gw.base)
    assert err is not None, "the SDK raised"
    status = getattr(err, "status_code", None) or getattr(err, "code", None)
    assert status == fault.status, err
    assert "Traceback" not in str(err) and str(err), err
    if fault.status == 429:
        response = getattr(err, "response", None)
        assert response is not None and response.headers.get("retry-after") == RETRY_AFTER, err
    if fault.outcome != "relayed":  # sidegate's own code, where the SDK keeps the error body
        assert CODES[fault.outcome] in repr(getattr(err, "body", None) or getattr(err, "details", None)), err
