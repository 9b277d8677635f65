"""Streams folded into one answer (`sidegate.formats.registry`): for every caller format,
the aggregated object read by the official SDK as a whole answer shows what the SDK's own stream
accumulator shows for the stream (text, thinking, tool calls with joined arguments, finish, usage,
model, ids), on provider streams and on streams sidegate translated; the mock provider's streams
fold into exactly its whole answers; and the shapes a stream can take on the wire (parallel tool
calls, several choices or candidates, citations, server tools, errors, cut streams, CRLF, Gemini's
JSON array) fold into what a caller would expect."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from tests.support.fakes import anthropic_wire, gemini_wire, openai_wire, sse_data, sse_event
from tests.support.translate_fixtures import answers as fx
from tests.unit.translate.test_translate_answers import CALLERS, JSON_VIEWS, STREAM_VIEWS, run_stream, translation

from sidegate import apis
from sidegate.formats.registry import AGGREGATORS, aggregate, aggregate_chunks
from sidegate.upstream.mock import render as mock


def caller_stream(name: str, caller: str) -> bytes:
    """The bytes a caller of `caller`'s format receives for the destination stream `name`."""
    answer = fx.STREAM_ANSWERS[name]
    assert answer.sse is not None
    if caller == answer.dest:
        return b"".join(answer.sse)
    return run_stream(translation(caller, answer.dest, True), answer.sse)


def without_pings(raw: bytes) -> bytes:
    """The anthropic SDK drops `ping` events before its types see them; its view here does too."""
    blocks = raw.split(b"\n\n")
    return b"\n\n".join(b for b in blocks if not b.startswith(b"event: ping\n"))


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("name", list(fx.STREAM_ANSWERS))
def test_aggregate_reads_as_the_stream_does_in_the_callers_sdk(name: str, caller: str) -> None:
    raw = caller_stream(name, caller)
    folded = aggregate(caller, raw)
    assert JSON_VIEWS[caller](folded) == STREAM_VIEWS[caller](without_pings(raw))


@pytest.mark.parametrize("name", sorted(set(fx.STREAM_ANSWERS) & set(fx.JSON_ANSWERS)))
def test_provider_stream_aggregates_to_its_whole_answer(name: str) -> None:
    """The same answer streamed and whole, from each provider: the SDK sees the same in both
    (ids aside: the fixtures mint them per answer)."""
    stream, whole = fx.STREAM_ANSWERS[name], fx.JSON_ANSWERS[name]
    assert stream.sse is not None and whole.body is not None
    seen = JSON_VIEWS[stream.dest](aggregate(stream.dest, b"".join(stream.sse)))
    expected = JSON_VIEWS[stream.dest](whole.body)
    seen.ids = expected.ids = []
    if stream.dest == apis.GEMINI_GENERATE:
        seen.model = expected.model = ""  # the fixtures name different Gemini versions per answer
    assert seen == expected


MOCK = {
    apis.OPENAI_CHAT: (mock.chat_events, mock.chat_json),
    apis.OPENAI_RESPONSES: (mock.responses_events, mock.responses_json),
    apis.ANTHROPIC_MESSAGES: (mock.anthropic_events, mock.anthropic_json),
    apis.GEMINI_GENERATE: (mock.gemini_events, mock.gemini_json),
}


@pytest.mark.parametrize("truncated", [False, True])
@pytest.mark.parametrize("api", list(MOCK))
def test_mock_provider_stream_aggregates_to_exactly_its_whole_answer(api: str, truncated: bool) -> None:
    c = mock.Completion(model="echo", digest="d1g3st", text="one two three", chunks=["one", " two", " three"],
                        truncated=truncated, input_tokens=4, body={"stream_options": {"include_usage": True}})
    events, whole = MOCK[api]
    folded = aggregate(api, b"".join(events(c)))
    expected = orjson.loads(whole(c))
    for obj in (folded, expected):  # clocks differ between the two renderings
        for key in ("created", "created_at", "completed_at"):
            obj.pop(key, None)
    if api == apis.OPENAI_CHAT:  # a chat stream carries no empty annotations list
        expected["choices"][0]["message"].pop("annotations")
    assert folded == expected


def test_every_streaming_format_has_an_aggregator() -> None:
    assert set(AGGREGATORS) == {apis.OPENAI_CHAT, apis.OPENAI_RESPONSES, apis.ANTHROPIC_MESSAGES, apis.GEMINI_GENERATE}
    with pytest.raises(ValueError, match="do not stream"):
        aggregate(apis.OPENAI_EMBEDDINGS, b"")


# ---------------------------------------------------------------- OpenAI chat


def chat_chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
    return sse_data({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-5",
                     "system_fingerprint": "fp_1", "choices": choices, **extra})


def test_chat_tool_call_stream_joins_arguments_and_drops_empty_content() -> None:
    raw = b"".join(openai_wire.chat_sse({"model": "gpt-5", "stream_options": {"include_usage": True},
                                         **fx.TOOLS_REQ}))
    folded = aggregate(apis.OPENAI_CHAT, raw)
    message = folded["choices"][0]["message"]
    assert message["content"] is None and message["role"] == "assistant"
    [call] = message["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_") and "index" not in call
    assert call["function"] == {"name": "lookup", "arguments": '{"query": "fake"}'}
    assert folded["choices"][0]["finish_reason"] == "tool_calls"
    assert folded["usage"]["prompt_tokens"] == openai_wire.CHAT_USAGE["input_tokens"]
    assert folded["system_fingerprint"] == openai_wire.SYSTEM_FINGERPRINT and folded["object"] == "chat.completion"


def test_chat_several_choices_interleaved_with_logprobs_and_refusal() -> None:
    def lp(token: str) -> dict[str, Any]:
        return {"content": [{"token": token, "logprob": -0.1, "bytes": list(token.encode()), "top_logprobs": []}]}

    raw = b"".join([
        chat_chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None},
                    {"index": 1, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]),
        chat_chunk([{"index": 1, "delta": {"content": "B1"}, "logprobs": lp("B1"), "finish_reason": None}]),
        chat_chunk([{"index": 0, "delta": {"content": "A1"}, "logprobs": lp("A1"), "finish_reason": None}]),
        chat_chunk([{"index": 1, "delta": {"content": " B2"}, "logprobs": lp(" B2"), "finish_reason": "stop"}]),
        chat_chunk([{"index": 0, "delta": {"refusal": "I can't"}, "finish_reason": None}]),
        chat_chunk([{"index": 0, "delta": {"refusal": " help."}, "finish_reason": "stop"}]),
        b"data: [DONE]\n\n",
    ])
    choices = aggregate(apis.OPENAI_CHAT, raw)["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    assert choices[0]["message"]["content"] == "A1" and choices[0]["message"]["refusal"] == "I can't help."
    assert choices[1]["message"]["content"] == "B1 B2" and choices[1]["finish_reason"] == "stop"
    assert [t["token"] for t in choices[1]["logprobs"]["content"]] == ["B1", " B2"]


def test_chat_in_stream_error_is_kept_with_what_came_before() -> None:
    raw = chat_chunk([{"index": 0, "delta": {"content": "partial"}, "finish_reason": None}]) + sse_data(
        openai_wire.error_body(500, "boom"))
    folded = aggregate(apis.OPENAI_CHAT, raw)
    assert folded["choices"][0]["message"]["content"] == "partial"
    assert folded["error"]["message"] == "boom" and folded["usage"] is None


def test_chat_stream_with_crlf_framing_and_no_final_blank_line() -> None:
    raw = b"".join(openai_wire.chat_sse({"model": "gpt-5"})).replace(b"\n\n", b"\r\n\r\n")
    raw = raw.removesuffix(b"\r\n\r\n")  # a last event without its blank line
    assert aggregate(apis.OPENAI_CHAT, raw)["choices"][0]["message"]["content"] == "Hello from the fake"


# ---------------------------------------------------------------- Anthropic


def anthropic_events(*events: tuple[str, dict[str, Any]]) -> bytes:
    return b"".join(sse_event(kind, {"type": kind, **fields}) for kind, fields in events)


def message_start(**usage: int) -> tuple[str, dict[str, Any]]:
    return ("message_start", {"message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                                          "content": [], "stop_reason": None, "stop_sequence": None,
                                          "usage": {"input_tokens": 12, "output_tokens": 1, **usage}}})


def test_anthropic_thinking_and_tool_use_fold_into_content_blocks() -> None:
    raw = b"".join(anthropic_wire.message_sse({"model": "claude-sonnet-4-5", **fx.ANTHROPIC_THINKING_TOOLS}))
    folded = aggregate(apis.ANTHROPIC_MESSAGES, raw)
    thinking, text, tool = folded["content"]
    assert thinking == {"type": "thinking", "thinking": anthropic_wire.THINKING_TEXT,
                        "signature": anthropic_wire.THINKING_SIGNATURE}
    assert text == {"type": "text", "text": "Hello from the fake"}
    assert tool["type"] == "tool_use" and tool["name"] == "lookup" and tool["input"] == {"query": "fake"}
    assert folded["stop_reason"] == "tool_use"
    assert folded["usage"]["output_tokens"] == anthropic_wire.MESSAGES_USAGE["output_tokens"]
    assert folded["usage"]["cache_read_input_tokens"] == anthropic_wire.MESSAGES_USAGE["cache_read_input_tokens"]


def test_anthropic_citations_server_tools_and_redacted_thinking() -> None:
    citation = {"type": "web_search_result_location", "url": "https://example.com", "title": "Ex",
                "encrypted_index": "abc", "cited_text": "fact"}
    raw = anthropic_events(
        message_start(),
        ("content_block_start", {"index": 0, "content_block": {"type": "redacted_thinking", "data": "opaque"}}),
        ("content_block_stop", {"index": 0}),
        ("content_block_start", {"index": 1, "content_block": {"type": "server_tool_use", "id": "srvtoolu_1",
                                                               "name": "web_search", "input": {}}}),
        ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"query": '}}),
        ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '"sidegate"}'}}),
        ("content_block_stop", {"index": 1}),
        ("content_block_start", {"index": 2, "content_block": {"type": "web_search_tool_result",
                                                               "tool_use_id": "srvtoolu_1", "content": []}}),
        ("content_block_stop", {"index": 2}),
        ("content_block_start", {"index": 3, "content_block": {"type": "text", "text": "", "citations": []}}),
        ("content_block_delta", {"index": 3, "delta": {"type": "citations_delta", "citation": citation}}),
        ("content_block_delta", {"index": 3, "delta": {"type": "text_delta", "text": "A fact."}}),
        ("content_block_stop", {"index": 3}),
        ("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 40, "server_tool_use": {"web_search_requests": 1}}}),
        ("message_stop", {}),
    )
    folded = aggregate(apis.ANTHROPIC_MESSAGES, raw)
    assert [b["type"] for b in folded["content"]] == [
        "redacted_thinking", "server_tool_use", "web_search_tool_result", "text"]
    assert folded["content"][0]["data"] == "opaque"
    assert folded["content"][1]["input"] == {"query": "sidegate"}
    assert folded["content"][3] == {"type": "text", "text": "A fact.", "citations": [citation]}
    assert folded["usage"] == {"input_tokens": 12, "output_tokens": 40, "server_tool_use": {"web_search_requests": 1}}


def test_anthropic_stream_cut_inside_a_tool_call_keeps_the_fragment_and_the_error() -> None:
    raw = anthropic_events(
        message_start(),
        ("content_block_start", {"index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "run",
                                                               "input": {}}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"cmd": "l'}}),
    ) + anthropic_wire.error_event(529)
    folded = aggregate(apis.ANTHROPIC_MESSAGES, raw)
    assert folded["content"] == [{"type": "tool_use", "id": "toolu_1", "name": "run", "input": '{"cmd": "l'}]
    assert folded["error"]["type"] == "overloaded_error" and folded["stop_reason"] is None


# ---------------------------------------------------------------- Gemini


def test_gemini_parts_join_by_kind_and_keep_calls_signatures_and_last_usage() -> None:
    folded = aggregate(apis.GEMINI_GENERATE, b"".join(fx.gemini_parallel_sse()))
    [candidate] = folded["candidates"]
    assert candidate["content"] == fx.gemini_parallel_json()["candidates"][0]["content"]
    assert candidate["finishReason"] == "STOP"
    assert folded["usageMetadata"]["candidatesTokenCount"] == 190 and folded["responseId"] == "resp-gem-s"


def test_gemini_candidates_citations_and_thought_signature_on_joined_text() -> None:
    def chunk(candidates: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"candidates": candidates, "modelVersion": "gemini-2.5-pro", "responseId": "r1", **extra}

    source = {"startIndex": 0, "endIndex": 4, "uri": "https://example.com"}
    chunks = [
        chunk([{"index": 0, "content": {"role": "model", "parts": [{"text": "Hm", "thought": True}]}},
               {"index": 1, "content": {"role": "model", "parts": [{"text": "Other"}]}}]),
        chunk([{"index": 0, "content": {"role": "model", "parts": [{"text": "m.", "thought": True,
                                                                     "thoughtSignature": "c2ln"}]}}]),
        chunk([{"index": 0, "content": {"role": "model", "parts": [{"text": "Yes"}]},
                "citationMetadata": {"citationSources": [source]}}]),
        chunk([{"index": 0, "content": {"role": "model", "parts": [{"text": "!"}]}, "finishReason": "STOP",
                "safetyRatings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"}]},
               {"index": 1, "content": {"role": "model", "parts": [{"text": " answer"}]}, "finishReason": "STOP"}],
              usageMetadata={"promptTokenCount": 3, "candidatesTokenCount": 5, "totalTokenCount": 8}),
    ]
    as_sse = aggregate(apis.GEMINI_GENERATE, b"".join(sse_data(c) for c in chunks))
    assert as_sse == aggregate_chunks(apis.GEMINI_GENERATE, chunks), "alt=sse or a JSON array: one answer"
    first, second = as_sse["candidates"]
    assert first["content"]["parts"] == [{"text": "Hmm.", "thought": True, "thoughtSignature": "c2ln"},
                                         {"text": "Yes!"}]
    assert first["citationMetadata"] == {"citationSources": [source]} and first["safetyRatings"]
    assert second["content"]["parts"] == [{"text": "Other answer"}] and second["finishReason"] == "STOP"
    assert as_sse["usageMetadata"]["totalTokenCount"] == 8


def test_gemini_function_call_stream_and_error_chunk() -> None:
    raw = b"".join(gemini_wire.stream_sse("gemini-2.5-flash", {"tools": [{"functionDeclarations": [
        {"name": "lookup"}]}]})) + sse_data(gemini_wire.error_body(503))
    folded = aggregate(apis.GEMINI_GENERATE, raw)
    assert folded["candidates"][0]["content"]["parts"] == [{"functionCall": {"name": "lookup",
                                                                             "args": {"query": "fake"}}}]
    assert folded["error"]["status"] == "UNAVAILABLE"


# ---------------------------------------------------------------- OpenAI Responses


def test_responses_stream_is_the_completed_response() -> None:
    events = openai_wire.responses_sse({"model": "gpt-5"})
    final = json.loads(events[-1].split(b"data: ", 1)[1])["response"]
    assert aggregate(apis.OPENAI_RESPONSES, b"".join(events)) == final


def test_responses_stream_cut_short_keeps_finished_items_and_partial_text() -> None:
    def ev(kind: str, **fields: Any) -> bytes:
        return sse_event(kind, {"type": kind, **fields})

    created = {"id": "resp_1", "object": "response", "status": "in_progress", "output": [], "model": "gpt-5"}
    call = {"id": "fc_1", "type": "function_call", "status": "in_progress", "call_id": "call_1", "name": "run",
            "arguments": ""}
    raw = b"".join([
        ev("response.created", response=created),
        ev("response.output_item.added", output_index=0, item=dict(call)),
        ev("response.function_call_arguments.delta", output_index=0, item_id="fc_1", delta='{"a":'),
        ev("response.function_call_arguments.delta", output_index=0, item_id="fc_1", delta=" 1}"),
        ev("response.output_item.done", output_index=0, item={**call, "status": "completed", "arguments": '{"a": 1}'}),
        ev("response.output_item.added", output_index=1, item={"id": "msg_1", "type": "message", "role": "assistant",
                                                               "status": "in_progress", "content": []}),
        ev("response.output_text.delta", output_index=1, content_index=0, item_id="msg_1", delta="Half a "),
        ev("response.output_text.delta", output_index=1, content_index=0, item_id="msg_1", delta="sentence"),
        ev("error", code="server_error", message="upstream went away", param=None),
    ])
    folded = aggregate(apis.OPENAI_RESPONSES, raw)
    assert folded["id"] == "resp_1" and folded["status"] == "in_progress"
    assert folded["output"][0]["arguments"] == '{"a": 1}' and folded["output"][0]["status"] == "completed"
    assert folded["output"][1]["content"] == [{"type": "output_text", "text": "Half a sentence", "annotations": []}]
    assert folded["error"] == {"code": "server_error", "message": "upstream went away", "param": None}
