"""Output guardrails on streams that end badly or hold everything of a chunk.

A stream the destination breaks off (connection cut, idle timeout) or ends with an error event of
its own: the text the guard still holds is scanned as final and reaches the caller masked, before
the error event (through the real app and each caller's official SDK, with and without translation).
A chunk whose text is all held sends no event with empty text, in any format, while events that
carry something else (a role, a finish reason, usage, a tool call) still go out.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.e2e.test_stream_failures import CALLERS, FIRST_TEXT_AT, Caller, start
from tests.support.gateway import GatewayFactory
from tests.support.governance_env import answer_text
from tests.support.sdk_clients import close_sdk_clients  # noqa: F401  (fixture: closes the SDK clients the readers open)
from tests.unit.governance.test_stream_guard import RENDER, active, completion, payloads, run, streamed_text

from sidegate import apis
from sidegate.formats.sse import SSESplitter

PIECES = ["Mail ", "bob@exam", "ple.org", " now."]
PII = {"name": "pii", "phase": "output", "detect": {"pii": ["email", "phone"]}, "action": "mask"}
GUARDRAILS = """
        guardrails:
          - {name: pii, phase: output, detect: {pii: [email, phone]}, action: mask}
"""


# ---------------------------------------------------------------- ended badly, through the app


@pytest.mark.parametrize("translated", [False, True], ids=["native", "translated"])
@pytest.mark.parametrize("how", ["cut", "idle"])
@pytest.mark.parametrize("caller", CALLERS, ids=[c.name for c in CALLERS])
async def test_held_text_is_released_masked_before_the_error_event(
        gateway: GatewayFactory, fake_upstream: Any, caller: Caller, how: str, translated: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    answer_text(PIECES, monkeypatch)
    kind = caller.other if translated else caller.native
    gw, dest, _ = await start(gateway, fake_upstream, kind, caller.other_apis if translated else None, GUARDRAILS)
    keep = FIRST_TEXT_AT["responses" if caller.name == "openai-responses" and not translated else kind] + 2
    if how == "idle":
        dest.reply(hang_after=keep)
    else:
        dest.reply(cut_after=keep)
    text, error = await caller.read(gw.base)
    assert error is not None
    assert text == "Mail <EMAIL_ADDRESS>", "the held address was dropped or sent unmasked"
    row = await gw.row()
    assert row["error_code"] == ("upstream_idle_timeout" if how == "idle" else "upstream_stream_interrupted")
    assert [(r["category"], r["action"]) for r in row["guardrail_results"]] == [("email", "mask")]


# ---------------------------------------------------------------- an error event from the upstream

UPSTREAM_ERROR = {
    apis.OPENAI_CHAT: b'data: {"error": {"message": "overloaded", "type": "server_error", "code": null}}\n\n',
    apis.OPENAI_RESPONSES: b'event: error\ndata: {"type": "error", "code": "server_error", "message": "overloaded",'
                           b' "param": null, "sequence_number": 99}\n\n',
    apis.ANTHROPIC_MESSAGES: b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error",'
                             b' "message": "overloaded"}}\n\n',
    apis.GEMINI_GENERATE: b'data: {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}\n\n',
}


def broken_off(api: str) -> list[bytes]:
    """The format's stream of PIECES up to the event carrying "ple.org", then the upstream's error."""
    events = RENDER[api](completion(PIECES))
    last = next(i for i, e in enumerate(events) if b"ple.org" in e)
    error = UPSTREAM_ERROR[api]
    if api == apis.OPENAI_RESPONSES:  # numbered after the events before it
        error = error.replace(b"99", str(payloads(events[last:last + 1])[0]["sequence_number"] + 1).encode())
    return [*events[:last + 1], error]


@pytest.mark.parametrize("api", sorted(RENDER))
def test_an_upstream_error_event_follows_the_held_text_masked(api: str) -> None:
    guard = active(PII).stream(api)
    assert guard is not None
    out = run(guard, broken_off(api))
    last, error = payloads(out[-1:])[0], payloads(broken_off(api)[-1:])[0]
    if api == apis.OPENAI_RESPONSES:  # renumbered after the events the guard took out or added
        assert last.pop("sequence_number") == payloads(out[:-1])[-1]["sequence_number"] + 1
        error.pop("sequence_number")
    assert last == error  # the upstream's error event comes last
    assert streamed_text(api, out[:-1]) == "Mail <EMAIL_ADDRESS>"
    assert b"bob" not in b"".join(out)


@pytest.mark.parametrize("api", sorted(RENDER))
def test_held_text_blocked_at_the_end_sends_the_block_instead_of_the_upstream_error(api: str) -> None:
    block = {**PII, "name": "no-mail", "action": "block"}
    a = active(block)
    guard = a.stream(api, request_id="req-7")
    assert guard is not None
    out = run(guard, broken_off(api))
    assert guard.blocked and b"output_guardrail_triggered" in out[-1] and b"no-mail" in out[-1]
    assert UPSTREAM_ERROR[api] not in out and b"bob" not in b"".join(out)
    assert [(r["category"], r["action"]) for r in a.results] == [("email", "block")]


# ---------------------------------------------------------------- no empty events


def texts_of(api: str, obj: dict[str, Any]) -> list[str]:
    """The text deltas an event carries (empty list: it carries none, or carries a role with it)."""
    if api == apis.OPENAI_CHAT:
        return [c["delta"]["content"] for c in obj.get("choices") or ()
                if "content" in (c.get("delta") or {}) and not c["delta"].get("role")]
    if api == apis.OPENAI_RESPONSES:
        return [obj["delta"]] if obj["type"] == "response.output_text.delta" else []
    if api == apis.ANTHROPIC_MESSAGES:
        return [obj["delta"]["text"]] if obj["type"] == "content_block_delta" else []
    return [p["text"] for c in obj.get("candidates") or () for p in c["content"]["parts"] if "text" in p]


def kinds(api: str, events: list[dict[str, Any]]) -> list[str]:
    """What each event carries besides text: the kinds of event a caller sees, in order."""
    out = []
    for obj in events:
        if api == apis.OPENAI_CHAT:
            choice = (obj.get("choices") or [{}])[0]
            role, finish = choice.get("delta", {}).get("role"), choice.get("finish_reason")
            if role or finish or obj.get("usage"):
                out.append(f"role={role} finish={finish} usage={bool(obj.get('usage'))}")
        elif api == apis.GEMINI_GENERATE:
            if any(c.get("finishReason") for c in obj.get("candidates") or ()):
                out.append("finish")
        elif obj["type"] not in ("response.output_text.delta", "content_block_delta"):
            out.append(obj["type"])
    return out


@pytest.mark.parametrize("api", sorted(RENDER))
def test_a_chunk_whose_text_is_all_held_sends_no_event(api: str) -> None:
    # "Hello" and "bob@exam" are held whole (they may go on as e-mail addresses)
    chunks = ["Hello", " there, ", "bob@exam", "ple.org", " bye."]
    upstream = RENDER[api](completion(chunks, stream_options={"include_usage": True}))
    guard = active(PII).stream(api)
    assert guard is not None
    out = payloads(run(guard, upstream))
    assert all(t for obj in out for t in texts_of(api, obj)), [texts_of(api, o) for o in out]
    assert streamed_text(api, run_again(api, chunks)) == "Hello there, <EMAIL_ADDRESS> bye."
    assert kinds(api, out) == kinds(api, payloads(upstream))  # role, finish, usage, lifecycle events all kept
    if api == apis.OPENAI_RESPONSES:
        assert [e["sequence_number"] for e in out] == list(range(len(out)))
    text_events = [obj for obj in out if texts_of(api, obj)]
    assert len(text_events) < len(chunks) + 1  # fewer text events than chunks: the held ones went unsent


def run_again(api: str, chunks: list[str]) -> list[bytes]:
    guard = active(PII).stream(api)
    assert guard is not None
    return run(guard, RENDER[api](completion(chunks, stream_options={"include_usage": True})))


def test_a_chat_chunk_with_a_role_or_a_tool_call_is_sent_without_its_held_text() -> None:
    guard = active(PII).stream(apis.OPENAI_CHAT)
    assert guard is not None
    first = {"id": "c", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"role": "assistant", "content": "Hello"}, "logprobs": None, "finish_reason": None}]}
    tool = {"id": "c", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"content": "bob", "tool_calls": [{"index": 0, "id": "t", "type": "function",
                                                                  "function": {"name": "f", "arguments": ""}}]},
         "logprobs": None, "finish_reason": None}]}
    splitter = SSESplitter()
    sent = [out for obj in (first, tool) for ev in splitter.feed(b"data: " + orjson.dumps(obj) + b"\n\n")
            for out in guard.feed(ev)]
    got = payloads(sent)
    assert [c["choices"][0]["delta"] for c in got] == [
        {"role": "assistant", "content": ""}, {"content": "", "tool_calls": tool["choices"][0]["delta"]["tool_calls"]}]
