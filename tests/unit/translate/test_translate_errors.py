"""Upstream errors in translation: each destination's error body becomes the caller's error shape
(as the caller's SDK parses it) with a status the caller's SDK treats right: 429 stays 429, an
overload is 503 for OpenAI and Gemini callers and Anthropic's own 529 for Anthropic callers.
Errors inside a stream become the caller's in-stream error event and end the stream."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.support.fakes import anthropic_wire, error_body, gemini_wire, openai_wire
from tests.support.translate_fixtures.sdk_view import events

from sidegate import apis
from sidegate.formats.sse import SSESplitter
from sidegate.translate import Translation

BASE = {
    apis.OPENAI_CHAT: {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    apis.OPENAI_RESPONSES: {"model": "m", "input": "hi"},
    apis.ANTHROPIC_MESSAGES: {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
    apis.GEMINI_GENERATE: {"contents": [{"parts": [{"text": "hi"}]}]},
}
DEST_KIND = {apis.OPENAI_CHAT: "openai", apis.ANTHROPIC_MESSAGES: "anthropic", apis.GEMINI_GENERATE: "gemini"}

# (destination, upstream status, caller, status the caller gets, the caller's error type / status name)
CASES = [
    (apis.ANTHROPIC_MESSAGES, 529, apis.OPENAI_CHAT, 503, "server_error"),
    (apis.ANTHROPIC_MESSAGES, 529, apis.GEMINI_GENERATE, 503, "UNAVAILABLE"),
    (apis.ANTHROPIC_MESSAGES, 529, apis.OPENAI_RESPONSES, 503, "server_error"),
    (apis.ANTHROPIC_MESSAGES, 429, apis.OPENAI_CHAT, 429, "rate_limit_error"),
    (apis.ANTHROPIC_MESSAGES, 429, apis.GEMINI_GENERATE, 429, "RESOURCE_EXHAUSTED"),
    (apis.ANTHROPIC_MESSAGES, 401, apis.GEMINI_GENERATE, 401, "UNAUTHENTICATED"),
    (apis.OPENAI_CHAT, 503, apis.ANTHROPIC_MESSAGES, 529, "overloaded_error"),
    (apis.OPENAI_CHAT, 429, apis.ANTHROPIC_MESSAGES, 429, "rate_limit_error"),
    (apis.OPENAI_CHAT, 400, apis.GEMINI_GENERATE, 400, "INVALID_ARGUMENT"),
    (apis.OPENAI_CHAT, 404, apis.ANTHROPIC_MESSAGES, 404, "not_found_error"),
    (apis.GEMINI_GENERATE, 503, apis.ANTHROPIC_MESSAGES, 529, "overloaded_error"),
    (apis.GEMINI_GENERATE, 429, apis.OPENAI_CHAT, 429, "rate_limit_error"),
    (apis.GEMINI_GENERATE, 400, apis.ANTHROPIC_MESSAGES, 400, "invalid_request_error"),
    (apis.GEMINI_GENERATE, 500, apis.OPENAI_RESPONSES, 500, "server_error"),
]


def caller_error_type(caller: str, body: dict[str, Any]) -> str:
    """The error's type as the caller's SDK reads it (and proof that the SDK can read it)."""
    if caller == apis.ANTHROPIC_MESSAGES:
        from anthropic.types.shared.error_response import ErrorResponse

        return ErrorResponse.model_validate(body).error.type
    if caller == apis.GEMINI_GENERATE:
        from google.genai import errors

        err = errors.APIError(body["error"]["code"], body)
        assert err.message == body["error"]["message"]
        return str(err.status)
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"} and isinstance(error["message"], str)
    return str(error["type"])


@pytest.mark.parametrize(("dest", "status", "caller", "want_status", "want_type"), CASES)
def test_upstream_error_in_caller_shape(dest: str, status: int, caller: str, want_status: int, want_type: str) -> None:
    t = Translation(caller, dest, "m", "d", False)
    t.request(BASE[caller])
    upstream = error_body(DEST_KIND[dest], status, "upstream says no")  # type: ignore[arg-type]
    got_status, body = t.response(status, upstream)
    assert got_status == want_status
    assert caller_error_type(caller, body) == want_type
    assert "upstream says no" in orjson.dumps(body).decode()


def test_openai_quota_error_and_unparseable_bodies() -> None:
    t = Translation(apis.ANTHROPIC_MESSAGES, apis.OPENAI_CHAT, "m", "d", False)
    t.request(BASE[apis.ANTHROPIC_MESSAGES])
    status, body = t.response(429, openai_wire.error_body(429, "quota", code="insufficient_quota"))
    assert status == 429 and body["error"]["type"] == "billing_error"
    status, body = t.response(502, "<html>bad gateway</html>")
    assert status == 502 and body["error"]["type"] == "api_error"
    status, body = t.response(200, "not json")  # a 200 that is not an object is the upstream's failure
    assert status == 502


def _translate_stream(t: Translation, sse: list[bytes]) -> bytes:
    stream = t.stream()
    splitter = SSESplitter()
    out = [block for ev in splitter.feed(b"".join(sse)) for block in stream.feed(ev.event, ev.data)]
    out += stream.finish()
    return b"".join(out)


def test_anthropic_overload_mid_stream_reaches_chat_caller_as_error_chunk() -> None:
    t = Translation(apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, "m", "d", True)
    t.request({**BASE[apis.OPENAI_CHAT], "stream": True})
    sse = [*anthropic_wire.message_sse({"model": "d"})[:4], anthropic_wire.error_event(529)]
    raw = _translate_stream(t, sse)
    last = events(raw)[-1]
    assert b"[DONE]" not in raw, "an errored stream must not look complete"
    error = orjson.loads(last[1])["error"]
    assert error["type"] == "server_error" and error["message"] == "Overloaded"


def test_chat_error_chunk_reaches_anthropic_caller_as_error_event() -> None:
    t = Translation(apis.ANTHROPIC_MESSAGES, apis.OPENAI_CHAT, "m", "d", True)
    t.request({**BASE[apis.ANTHROPIC_MESSAGES], "stream": True})
    broken = b'data: {"error": {"message": "boom", "type": "server_error", "code": 500}}\n\n'
    sse = [*openai_wire.chat_sse({"model": "d"})[:2], broken]
    evs = events(_translate_stream(t, sse))
    assert evs[0][0] == "message_start" and evs[-1][0] == "error"
    assert "message_stop" not in [name for name, _ in evs]
    from anthropic.types.shared.error_response import ErrorResponse

    assert ErrorResponse.model_validate_json(evs[-1][1]).error.type == "api_error"


def test_gemini_stream_error_reaches_responses_caller_as_failed_response() -> None:
    t = Translation(apis.OPENAI_RESPONSES, apis.GEMINI_GENERATE, "m", "d", True)
    t.request({**BASE[apis.OPENAI_RESPONSES], "stream": True})
    sse = [*gemini_wire.stream_sse("d", {})[:1], b"data: " + orjson.dumps(gemini_wire.error_body(429)) + b"\n\n"]
    evs = events(_translate_stream(t, sse))
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    parsed = [TypeAdapter(ResponseStreamEvent).validate_json(data) for _, data in evs]
    assert [e.type for e in parsed][-2:] == ["error", "response.failed"]
    assert parsed[-1].response.error.code == "rate_limit_exceeded"  # type: ignore[union-attr]
