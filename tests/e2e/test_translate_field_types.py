"""Caller fields of the wrong JSON type in a translated request are a 400 `invalid_request_field`
naming the field by its JSON path (never a 500, never forwarded); integers at their edges; answers
of the wrong shape are a 502 `upstream_invalid_response`. Unit level through `Translation`, then
the issue's own examples end to end through the real app, by raw HTTP and the official SDKs."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from tests.support.fakes import FakeUpstream, openai_wire
from tests.support.gateway import KEY, Gateway, GatewayFactory
from tests.support.sdk_clients import claude, close_sdk_clients, oai  # noqa: F401  (fixture)

from sidegate import apis
from sidegate.errors import GatewayError
from sidegate.translate import Translation
from sidegate.translate.errors import UnreadableAnswer

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
RESPONSES = {"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}]}
ANTHROPIC = {"model": "m", "max_tokens": 10,
             "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 10}}
BASES = {apis.OPENAI_CHAT: CHAT, apis.OPENAI_RESPONSES: RESPONSES, apis.ANTHROPIC_MESSAGES: ANTHROPIC,
         apis.GEMINI_GENERATE: GEMINI, apis.OPENAI_EMBEDDINGS: {"model": "e", "input": ["a"]},
         apis.GEMINI_EMBED: {"content": {"parts": [{"text": "a"}]}}}
DEST = {apis.OPENAI_CHAT: apis.ANTHROPIC_MESSAGES, apis.OPENAI_RESPONSES: apis.GEMINI_GENERATE,
        apis.ANTHROPIC_MESSAGES: apis.OPENAI_CHAT, apis.GEMINI_GENERATE: apis.OPENAI_CHAT,
        apis.OPENAI_EMBEDDINGS: apis.GEMINI_BATCH_EMBED, apis.GEMINI_EMBED: apis.OPENAI_EMBEDDINGS}


def with_value(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    copy = orjson.loads(orjson.dumps(body))
    node = copy
    for step in path[:-1]:
        node = node.setdefault(step, {}) if isinstance(step, str) else node[step]
    node[path[-1]] = value
    return copy


def translate(caller: str, body: dict[str, Any], dest: str | None = None) -> dict[str, Any]:
    return Translation(caller, dest or DEST[caller], "m", "dest-m", False).request(body)


# (caller, where in the body, the wrong value, the field the 400 names)
WRONG = [
    (apis.GEMINI_GENERATE, ("contents", 0), "hello", "contents[0]"),
    (apis.GEMINI_GENERATE, ("generationConfig", "maxOutputTokens"), "10", "generationConfig.maxOutputTokens"),
    (apis.GEMINI_GENERATE, ("generationConfig", "temperature"), "hot", "generationConfig.temperature"),
    (apis.GEMINI_GENERATE, ("generationConfig",), "x", "generationConfig"),
    (apis.GEMINI_GENERATE, ("generationConfig", "maxOutputTokens"), 1e20, "generationConfig.maxOutputTokens"),
    (apis.GEMINI_GENERATE, ("generationConfig", "maxOutputTokens"), 2**63, "generationConfig.maxOutputTokens"),
    (apis.GEMINI_GENERATE, ("generationConfig", "maxOutputTokens"), True, "generationConfig.maxOutputTokens"),
    (apis.GEMINI_GENERATE, ("generationConfig", "stopSequences"), ["END", 3], "generationConfig.stopSequences[1]"),
    (apis.GEMINI_GENERATE, ("generationConfig", "thinkingConfig", "thinkingBudget"), "lots",
     "generationConfig.thinkingConfig.thinkingBudget"),
    (apis.GEMINI_GENERATE, ("contents", 0, "parts", 0, "text"), 5, "contents[0].parts[0].text"),
    (apis.GEMINI_GENERATE, ("contents", 0, "parts"), {"text": "hi"}, "contents[0].parts"),
    (apis.GEMINI_GENERATE, ("contents", 0, "parts", 0), "hi", "contents[0].parts[0]"),
    (apis.GEMINI_GENERATE, ("systemInstruction",), "be terse", "systemInstruction"),
    (apis.GEMINI_GENERATE, ("tools",), {"functionDeclarations": []}, "tools"),
    (apis.OPENAI_CHAT, ("max_tokens",), True, "max_tokens"),
    (apis.OPENAI_CHAT, ("max_tokens",), 10.5, "max_tokens"),
    (apis.OPENAI_CHAT, ("max_tokens",), -1, "max_tokens"),
    (apis.OPENAI_CHAT, ("max_completion_tokens",), "100", "max_completion_tokens"),
    (apis.OPENAI_CHAT, ("temperature",), "hot", "temperature"),
    (apis.OPENAI_CHAT, ("temperature",), False, "temperature"),
    (apis.OPENAI_CHAT, ("stop",), 5, "stop"),
    (apis.OPENAI_CHAT, ("messages", 0), "hi", "messages[0]"),
    (apis.OPENAI_CHAT, ("messages", 0, "content"), 5, "messages[0].content"),
    (apis.OPENAI_CHAT, ("tools",), [{"type": "function", "function": {"name": 5}}], "tools[0].function.name"),
    (apis.OPENAI_CHAT, ("response_format",), "json", "response_format"),
    (apis.OPENAI_CHAT, ("stream",), "yes", "stream"),
    (apis.OPENAI_CHAT, ("tool_choice",), 5, "tool_choice"),
    (apis.ANTHROPIC_MESSAGES, ("max_tokens",), "10", "max_tokens"),
    (apis.ANTHROPIC_MESSAGES, ("max_tokens",), 0, "max_tokens"),
    (apis.ANTHROPIC_MESSAGES, ("messages", 0, "content", 0, "text"), ["hi"], "messages[0].content[0].text"),
    (apis.ANTHROPIC_MESSAGES, ("messages", 0, "content", 0), "hi", "messages[0].content[0]"),
    (apis.ANTHROPIC_MESSAGES, ("system",), 5, "system"),
    (apis.ANTHROPIC_MESSAGES, ("stop_sequences",), "END", "stop_sequences"),
    (apis.ANTHROPIC_MESSAGES, ("tool_choice",), "auto", "tool_choice"),
    (apis.ANTHROPIC_MESSAGES, ("thinking",), {"type": "enabled", "budget_tokens": "2k"}, "thinking.budget_tokens"),
    (apis.ANTHROPIC_MESSAGES, ("top_k",), 4.5, "top_k"),
    (apis.OPENAI_RESPONSES, ("max_output_tokens",), True, "max_output_tokens"),
    (apis.OPENAI_RESPONSES, ("input", 0, "content", 0, "text"), 5, "input[0].content[0].text"),
    (apis.OPENAI_RESPONSES, ("reasoning",), "high", "reasoning"),
    (apis.OPENAI_RESPONSES, ("text",), {"format": {"type": 5}}, "text.format.type"),
    (apis.OPENAI_RESPONSES, ("instructions",), ["be terse"], "instructions"),
    (apis.OPENAI_RESPONSES, ("tool_choice",), ["auto"], "tool_choice"),
    (apis.OPENAI_EMBEDDINGS, ("dimensions",), "8", "dimensions"),
    (apis.OPENAI_EMBEDDINGS, ("input",), ["a", {"text": "b"}], "input[1]"),
    (apis.GEMINI_EMBED, ("outputDimensionality",), True, "outputDimensionality"),
    (apis.GEMINI_EMBED, ("content", "parts", 0, "text"), 7, "content.parts[0].text"),
]


@pytest.mark.parametrize(("caller", "path", "value", "field"), WRONG, ids=[f"{c}-{f}" for c, _, _, f in WRONG])
def test_wrong_json_type_is_a_400_naming_the_field(caller: str, path: tuple[Any, ...], value: Any, field: str) -> None:
    with pytest.raises(GatewayError) as info:
        translate(caller, with_value(BASES[caller], path, value))
    err = info.value
    assert (err.status, err.code, err.param) == (400, "invalid_request_field", field)
    assert err.message.startswith(f"{field}: must be ")
    if isinstance(value, str) and len(value) > 1:
        assert repr(value) not in err.message  # the type is named, the caller's content is not echoed


def test_integers_at_their_edges() -> None:
    body = translate(apis.OPENAI_CHAT, {**CHAT, "max_tokens": 10.0, "seed": -(2**63)}, apis.GEMINI_GENERATE)
    config = body["generationConfig"]
    assert config["maxOutputTokens"] == 10 and type(config["maxOutputTokens"]) is int
    assert config["seed"] == -(2**63)
    assert translate(apis.OPENAI_CHAT, {**CHAT, "max_tokens": 2**63 - 1})["max_tokens"] == 2**63 - 1
    for bad in (2**63, 0, -5, 1.5, float(2**63)):
        with pytest.raises(GatewayError, match="max_tokens: must be an integer"):
            translate(apis.OPENAI_CHAT, {**CHAT, "max_tokens": bad})
    with pytest.raises(GatewayError, match="seed: must be an integer between"):
        translate(apis.OPENAI_CHAT, {**CHAT, "seed": 2**63}, apis.GEMINI_GENERATE)
    dynamic = translate(apis.GEMINI_GENERATE, with_value(GEMINI, ("generationConfig", "thinkingConfig"),
                                                          {"thinkingBudget": -1}))  # -1: the model decides
    assert dynamic["reasoning_effort"] == "medium"


def test_null_reads_as_not_given() -> None:
    body = translate(apis.OPENAI_CHAT, {**CHAT, "temperature": None, "max_tokens": None, "stop": None, "tools": None})
    assert "stop_sequences" not in body and body["max_tokens"] == 4096


def test_unreadable_answers_are_a_502_naming_the_field() -> None:
    translation = Translation(apis.ANTHROPIC_MESSAGES, apis.OPENAI_CHAT, "m", "dest-m", False)
    translation.request(ANTHROPIC)
    with pytest.raises(UnreadableAnswer) as info:
        translation.response(200, {"choices": [{"message": {"content": ["hi"]}}]})
    assert (info.value.status, info.value.code) == (502, "upstream_invalid_response")
    assert "choices[0].message.content: must be a string" in info.value.message
    status, error = translation.response(500, {"error": {"message": 5}})  # an error body stays the upstream's error
    assert status == 500 and error["error"]["type"] == "api_error"


def test_an_unreadable_stream_event_ends_the_callers_stream_with_its_error_event() -> None:
    translation = Translation(apis.OPENAI_CHAT, apis.GEMINI_GENERATE, "m", "dest-m", True)
    translation.request({**CHAT, "stream": True})
    stream = translation.stream()
    assert stream.feed(None, b'{"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]}')
    blocks = stream.feed(None, b'{"candidates": [{"content": {"parts": [{"text": 5}]}}]}')
    assert stream.failure is not None and (stream.failure.status, stream.failure.code) == (
        502, "upstream_invalid_response")
    assert "candidates[0].content.parts[0].text: must be a string" in stream.failure.message
    error = orjson.loads(blocks[-1][len(b"data: "):])["error"]
    assert error["type"] == "server_error" and error["message"] == stream.failure.message
    assert stream.feed(None, b'{"candidates": [{"content": {"parts": [{"text": "lo"}]}}]}') == []
    assert stream.finish() == []  # no [DONE] after the error: the SDK raises


def test_a_stream_event_that_is_not_json_is_unreadable() -> None:
    translation = Translation(apis.GEMINI_GENERATE, apis.ANTHROPIC_MESSAGES, "m", "dest-m", True)
    translation.request(GEMINI)
    stream = translation.stream()
    assert stream.feed("error", b"<html>") != [] and stream.failure is not None
    assert "not valid JSON" in stream.failure.message


# ---------------------------------------------------------------- end to end, the examples


async def serve(gateway: GatewayFactory, fake: FakeUpstream) -> Gateway:
    return await gateway(f"""
        providers:
          upstream: {{kind: {fake.kind}, base_url: '{fake.base_url}', api_key: up-key}}
        models:
          "*": {{destinations: [{{provider: upstream, model: dest-model}}]}}
    """)


async def refused_row(gw: Gateway, fake: FakeUpstream) -> None:
    row = await gw.row()
    assert (row["status_code"], row["error_code"]) == (400, "invalid_request_field")
    assert fake.received == []  # refused before any upstream call


GEMINI_CASES = [
    ({"contents": ["hello"]}, "contents[0]"),
    ({"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": "10"}},
     "generationConfig.maxOutputTokens"),
    ({"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"temperature": "hot"}},
     "generationConfig.temperature"),
    ({"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": "x"}, "generationConfig"),
    (b'{"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 99999999999999999999}}',
     "generationConfig.maxOutputTokens"),  # orjson reads it as the float 1e20
]


@pytest.mark.parametrize(("body", "field"), GEMINI_CASES, ids=[f for _, f in GEMINI_CASES])
async def test_gemini_caller_on_a_chat_server(gateway: GatewayFactory, fake_upstream: Any,
                                              body: dict[str, Any] | bytes, field: str) -> None:
    fake = await fake_upstream("openai")
    gw = await serve(gateway, fake)
    async with aiohttp.ClientSession() as session, session.post(
            f"{gw.base}/gemini/v1beta/models/gemini-2.5-pro:generateContent",
            data=body if isinstance(body, bytes) else orjson.dumps(body),
            headers={"x-goog-api-key": KEY, "Content-Type": "application/json"}) as resp:
        status, answer = resp.status, await resp.json()
    assert status == 400
    assert (answer["error"]["code"], answer["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert answer["error"]["message"].startswith(f"{field}: must be ")
    assert answer["error"]["details"][0]["reason"] == "invalid_request_field"
    await refused_row(gw, fake)


async def test_openai_sdk_on_anthropic(gateway: GatewayFactory, fake_upstream: Any) -> None:
    fake = await fake_upstream("anthropic")
    gw = await serve(gateway, fake)
    client = oai(gw.base)
    for kwargs, field in (({"temperature": "hot"}, "temperature"), ({"max_tokens": True}, "max_tokens"),
                          ({"max_tokens": 10.5}, "max_tokens")):
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}],
                                                 **kwargs)  # type: ignore[call-overload]
        error = info.value.body
        assert isinstance(error, dict)
        assert (error["param"], error["code"], error["type"]) == (field, "invalid_request_field",
                                                                   "invalid_request_error")
        await refused_row(gw, fake)


async def test_anthropic_sdk_on_a_chat_server(gateway: GatewayFactory, fake_upstream: Any) -> None:
    fake = await fake_upstream("openai")
    gw = await serve(gateway, fake)
    client = claude(gw.base)
    cases = (({"stop_sequences": "END"}, "stop_sequences: must be an array"),
             ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
              "messages[0].content[0].text: must be a string"))
    for kwargs, message in cases:
        with pytest.raises(anthropic.BadRequestError) as info:
            await client.messages.create(**{"model": "claude-sonnet-4-5", "max_tokens": 10,  # type: ignore[call-overload]
                                            "messages": [{"role": "user", "content": "hi"}], **kwargs})
        error = info.value.body["error"]  # type: ignore[index]
        assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_request_field")
        assert error["message"].startswith(message)
        await refused_row(gw, fake)


async def test_unreadable_answer_is_a_502_in_the_callers_shape(gateway: GatewayFactory,
                                                               fake_upstream: Any) -> None:
    fake = await fake_upstream("openai")
    answer = openai_wire.chat_json({"model": "gpt-5"})
    answer["choices"][0]["message"]["content"] = {"text": "not a string"}
    fake.reply(200, answer)
    gw = await serve(gateway, fake)
    with pytest.raises(anthropic.APIStatusError) as info:
        await claude(gw.base).messages.create(model="claude-sonnet-4-5", max_tokens=10,
                                              messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 502
    assert info.value.body["error"]["code"] == "upstream_invalid_response"  # type: ignore[index]
    row = await gw.row()
    assert (row["status_code"], row["error_code"]) == (502, "upstream_invalid_response")
    assert [a["reason"] for a in row["routing_information"]] == ["invalid_response"]


async def test_an_answer_the_translation_cannot_read_falls_back(gateway: GatewayFactory, fake_upstream: Any) -> None:
    """Translated in the attempt, before anything reached the caller: the next destination answers."""
    bad, good = await fake_upstream("openai"), await fake_upstream("openai")
    answer = openai_wire.chat_json({"model": "gpt-5"})
    answer["choices"][0]["message"]["content"] = {"text": "not a string"}
    bad.reply(200, answer)
    good.reply(200, openai_wire.chat_json({"model": "gpt-5"}))
    gw = await gateway(f"""
        providers:
          bad: {{kind: openai, base_url: '{bad.base_url}', api_key: up-key}}
          good: {{kind: openai, base_url: '{good.base_url}', api_key: up-key}}
        models:
          "*": {{destinations: [{{provider: bad, model: dest-model}}], fallbacks: [{{provider: good, model: spare}}]}}
    """)
    message = await claude(gw.base).messages.create(model="claude-sonnet-4-5", max_tokens=10,
                                                    messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].type == "text" and len(bad.received) == len(good.received) == 1
    row = await gw.row()
    assert (row["status_code"], row["error_code"], row["destination_name"]) == (200, None, "good")
    assert [a["reason"] for a in row["routing_information"]] == ["invalid_response", "ok"]
    assert "choices[0].message.content: must be a string" in row["routing_information"][0]["error"]


async def test_unreadable_stream_event_ends_the_anthropic_sdk_stream(gateway: GatewayFactory,
                                                                     fake_upstream: Any) -> None:
    fake = await fake_upstream("openai")
    events = openai_wire.chat_sse({"model": "gpt-5"})
    bad = b'data: {"id": "x", "choices": [{"index": 0, "delta": {"content": 5}}]}\n\n'
    fake.reply(200, sse=[*events[:2], bad, *events[2:]])
    gw = await serve(gateway, fake)
    with pytest.raises(anthropic.APIStatusError) as info:
        async with claude(gw.base).messages.stream(model="claude-sonnet-4-5", max_tokens=10,
                                                   messages=[{"role": "user", "content": "hi"}]) as stream:
            async for _ in stream:
                pass
    assert "choices[0].delta.content: must be a string" in str(info.value)
    row = await gw.row()  # recorded as the destination's failure, not as a success
    assert (row["status_code"], row["error_code"], row["streaming"]) == (200, "upstream_invalid_response", True)
    assert [a["reason"] for a in row["routing_information"]] == ["invalid_response"]


def test_empty_media_type_reads_as_not_given() -> None:
    """Found by the property test: an empty mimeType made the image a document with no type."""
    from tests.support.translate_fixtures.schema_check import anthropic_messages_problems, openai_chat_problems

    body = with_value(GEMINI, ("contents", 0, "parts", 0), {"inlineData": {"mimeType": "", "data": "AAAA"}})
    chat = translate(apis.GEMINI_GENERATE, body)
    assert openai_chat_problems(chat) == []
    assert chat["messages"][0]["content"][0]["image_url"]["url"] == "data:image/jpeg;base64,AAAA"
    messages = translate(apis.GEMINI_GENERATE, body, apis.ANTHROPIC_MESSAGES)
    assert anthropic_messages_problems(messages) == []
    assert messages["messages"][0]["content"][0]["source"]["media_type"] == "image/jpeg"
    odd = with_value(GEMINI, ("contents", 0, "parts", 0), {"inlineData": {"mimeType": "x", "data": "AAAA"}})
    with pytest.raises(GatewayError, match="inline document type 'x'") as info:
        translate(apis.GEMINI_GENERATE, odd, apis.ANTHROPIC_MESSAGES)
    assert (info.value.status, info.value.code) == (400, "untranslatable_field")


@pytest.mark.parametrize("count", [-1, 2**64 - 1])
def test_absurd_usage_counts_are_unreadable(count: int) -> None:
    """Found by the property test: counts near 2**64 summed past what JSON encoders take."""
    translation = Translation(apis.OPENAI_CHAT, apis.GEMINI_GENERATE, "m", "dest-m", False)
    translation.request(CHAT)
    answer = {"candidates": [{"content": {"parts": [{"text": "hi"}]}}], "usageMetadata": {"promptTokenCount": count}}
    with pytest.raises(UnreadableAnswer, match="usageMetadata: must be token counts between 0 and"):
        translation.response(200, answer)
