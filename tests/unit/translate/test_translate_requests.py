"""Translated requests: every caller fixture, to every destination format the registry pairs it
with, yields a body the destination's documented schema accepts (required fields, no unknown
field, allowed values), and carries the caller's meaning (system, turns, images, tools, limits)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.support.translate_fixtures import requests as fx
from tests.support.translate_fixtures.schema_check import (
    anthropic_messages_problems,
    gemini_generate_problems,
    openai_chat_problems,
)

from sidegate import apis
from sidegate.translate import Translation, TranslationError
from sidegate.translate.codecs.gemini_generate.request import SKIP_SIGNATURE

CHECKERS = {
    apis.OPENAI_CHAT: openai_chat_problems,
    apis.ANTHROPIC_MESSAGES: anthropic_messages_problems,
    apis.GEMINI_GENERATE: gemini_generate_problems,
}
FIXTURES = {apis.OPENAI_CHAT: fx.CHAT, apis.ANTHROPIC_MESSAGES: fx.ANTHROPIC, apis.GEMINI_GENERATE: fx.GEMINI,
            apis.OPENAI_RESPONSES: fx.RESPONSES}
DESTS = {
    apis.OPENAI_CHAT: (apis.ANTHROPIC_MESSAGES, apis.GEMINI_GENERATE),
    apis.ANTHROPIC_MESSAGES: (apis.OPENAI_CHAT, apis.GEMINI_GENERATE),
    apis.GEMINI_GENERATE: (apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES),
    apis.OPENAI_RESPONSES: (apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, apis.GEMINI_GENERATE),
}
CASES = [(caller, name, dest) for caller, fixtures in FIXTURES.items() for name in fixtures for dest in DESTS[caller]]


def translate(caller: str, dest: str, body: dict[str, Any], stream: bool | None = None) -> dict[str, Any]:
    streaming = body.get("stream") is True if stream is None else stream
    return Translation(caller, dest, "asked-model", "dest-model", streaming).request(body)


@pytest.mark.parametrize(("caller", "name", "dest"), CASES, ids=[f"{c}-{n}-{d}" for c, n, d in CASES])
def test_translated_request_matches_destination_schema(caller: str, name: str, dest: str) -> None:
    body = translate(caller, dest, FIXTURES[caller][name])
    assert CHECKERS[dest](body) == []
    if dest != apis.GEMINI_GENERATE:
        assert body["model"] == "dest-model"


# ---------------------------------------------------------------- chat callers


def test_chat_simple_to_anthropic_and_gemini() -> None:
    a = translate(apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, fx.CHAT["simple"])
    assert a["system"] == "Be terse."
    assert a["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hello ✓"}]}]
    assert a["max_tokens"] == 300 and "temperature" not in a and "top_p" not in a  # no sampling controls now
    assert a["stop_sequences"] == ["END", "STOP"] and a["metadata"] == {"user_id": "alice"}
    assert "seed" not in a and "stream" not in a
    g = translate(apis.OPENAI_CHAT, apis.GEMINI_GENERATE, fx.CHAT["simple"])
    assert g["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert g["generationConfig"] == {"maxOutputTokens": 300, "temperature": 0.3, "topP": 0.9, "seed": 7,
                                     "stopSequences": ["END", "STOP"]}
    assert g["contents"] == [{"role": "user", "parts": [{"text": "Hello ✓"}]}]


def test_chat_images_and_late_system_message() -> None:
    a = translate(apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, fx.CHAT["multi_turn_images"])
    assert a["system"] == [{"type": "text", "text": "You describe images."},
                           {"type": "text", "text": "Answer in French from now on."}]
    first = a["messages"][0]["content"]
    assert first[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": fx.PNG}}
    assert first[2] == {"type": "image", "source": {"type": "url", "url": fx.IMAGE_URL}}
    assert [m["role"] for m in a["messages"]] == ["user", "assistant", "user"]
    g = translate(apis.OPENAI_CHAT, apis.GEMINI_GENERATE, fx.CHAT["multi_turn_images"])
    parts = g["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": fx.PNG}}
    assert parts[2] == {"fileData": {"mimeType": "image/png", "fileUri": fx.IMAGE_URL}}
    assert g["systemInstruction"]["parts"][1] == {"text": "Answer in French from now on."}


def test_chat_tool_loop_to_anthropic() -> None:
    a = translate(apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, fx.CHAT["tool_loop"])
    assert [t["name"] for t in a["tools"]] == ["get_weather", "get_time"]
    assert a["tools"][0]["input_schema"] == fx.WEATHER and a["tools"][1]["strict"] is True
    assert a["tool_choice"] == {"type": "auto"}
    assistant, results = a["messages"][1], a["messages"][2]
    assert assistant["content"] == [
        {"type": "tool_use", "id": "call_A1", "name": "get_weather", "input": {"city": "Paris", "unit": "c"}},
        {"type": "tool_use", "id": "call_B2", "name": "get_time", "input": {"tz": "Asia/Tokyo"}},
    ]
    assert results == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_A1", "content": "18°C, cloudy"},
        {"type": "tool_result", "tool_use_id": "call_B2", "content": "21:04"},
    ]}
    assert [m["role"] for m in a["messages"]] == ["user", "assistant", "user", "assistant", "user"]


def test_chat_tool_loop_to_gemini_names_results_and_signs_calls() -> None:
    g = translate(apis.OPENAI_CHAT, apis.GEMINI_GENERATE, fx.CHAT["tool_loop"])
    model_turn, results = g["contents"][1], g["contents"][2]
    assert model_turn["role"] == "model"
    assert model_turn["parts"][0] == {"functionCall": {"id": "call_A1", "name": "get_weather",
                                                       "args": {"city": "Paris", "unit": "c"}},
                                      "thoughtSignature": SKIP_SIGNATURE}
    assert "thoughtSignature" not in model_turn["parts"][1]
    assert results["parts"] == [
        {"functionResponse": {"id": "call_A1", "name": "get_weather", "response": {"output": "18°C, cloudy"}}},
        {"functionResponse": {"id": "call_B2", "name": "get_time", "response": {"output": "21:04"}}},
    ]
    assert g["tools"][0]["functionDeclarations"][1] == {"name": "get_time", "description": "Time in a zone",
                                                        "parametersJsonSchema": fx.TIME}


def test_chat_forced_serial_tool_choice() -> None:
    a = translate(apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, fx.CHAT["forced_tool_serial"])
    assert a["tool_choice"] == {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
    g = translate(apis.OPENAI_CHAT, apis.GEMINI_GENERATE, fx.CHAT["forced_tool_serial"])
    assert g["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}


def test_chat_json_schema_and_stream_flags() -> None:
    t = Translation(apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, "m", "claude", True)
    a = t.request(fx.CHAT["json_schema"])
    assert a["output_config"] == {"format": {"type": "json_schema", "schema": fx.ANSWER_SCHEMA}}
    assert a["stream"] is True and t.dest_stream
    t = Translation(apis.OPENAI_CHAT, apis.GEMINI_GENERATE, "m", "gemini-2.5-flash", True)
    g = t.request(fx.CHAT["json_schema"])
    assert t.dest_stream and "stream" not in g and "model" not in g
    assert g["generationConfig"] == {"responseMimeType": "application/json", "responseJsonSchema": fx.ANSWER_SCHEMA}


def test_chat_reasoning_effort_becomes_thinking_budget() -> None:
    a = translate(apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, fx.CHAT["reasoning"])
    assert a["thinking"] == {"type": "enabled", "budget_tokens": 16384} and a["max_tokens"] == 20000
    g = translate(apis.OPENAI_CHAT, apis.GEMINI_GENERATE, fx.CHAT["reasoning"])
    assert g["generationConfig"]["thinkingConfig"] == {"includeThoughts": True, "thinkingBudget": 16384}


# ---------------------------------------------------------------- Anthropic callers


def test_claude_code_request_to_chat() -> None:
    c = translate(apis.ANTHROPIC_MESSAGES, apis.OPENAI_CHAT, fx.ANTHROPIC["claude_code_like"])
    msgs = c["messages"]
    assert msgs[0] == {"role": "system", "content": "You are Claude Code.\n\nUse tools."}
    assert msgs[1]["content"] == [{"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                                  {"type": "text", "text": "Weather in Paris and time in Tokyo?"}]
    assert msgs[2] == {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "toolu_01A", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "toolu_01B", "type": "function", "function": {"name": "get_time", "arguments": '{"tz":"Asia/Tokyo"}'}},
    ]}
    assert msgs[3:] == [{"role": "tool", "tool_call_id": "toolu_01A", "content": "18°C"},
                        {"role": "tool", "tool_call_id": "toolu_01B", "content": "tz service down"}]
    assert c["tools"][1] == {"type": "function", "function": {"name": "get_time", "description": "Time in a zone",
                                                              "parameters": fx.TIME}}
    assert c["max_completion_tokens"] == 32000 and c["reasoning_effort"] == "medium"
    assert c["user"] == "user_abc_account__session_1"
    assert c["stream"] is True and c["stream_options"] == {"include_usage": True}


def test_claude_code_request_to_gemini_keeps_error_results() -> None:
    g = translate(apis.ANTHROPIC_MESSAGES, apis.GEMINI_GENERATE, fx.ANTHROPIC["claude_code_like"])
    model_turn = g["contents"][1]["parts"]
    assert model_turn[0] == {"text": "Checking."}  # Anthropic's signed thinking is not Gemini's to verify
    assert model_turn[1]["functionCall"]["id"] == "toolu_01A"
    assert g["contents"][2]["parts"][1] == {"functionResponse": {
        "id": "toolu_01B", "name": "get_time", "response": {"error": "tz service down"}}}
    assert g["generationConfig"]["maxOutputTokens"] == 32000


def test_anthropic_images_and_document() -> None:
    c = translate(apis.ANTHROPIC_MESSAGES, apis.OPENAI_CHAT, fx.ANTHROPIC["images"])
    parts = c["messages"][0]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{fx.PNG}"}}
    assert parts[1] == {"type": "image_url", "image_url": {"url": fx.IMAGE_URL}}
    assert parts[2] == {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{fx.PDF}",
                                                 "filename": "document.pdf"}}
    g = translate(apis.ANTHROPIC_MESSAGES, apis.GEMINI_GENERATE, fx.ANTHROPIC["images"])
    assert g["contents"][0]["parts"][2] == {"inlineData": {"mimeType": "application/pdf", "data": fx.PDF}}


def test_anthropic_tool_choice_and_structured_output() -> None:
    c = translate(apis.ANTHROPIC_MESSAGES, apis.OPENAI_CHAT, fx.ANTHROPIC["tool_choice_any_serial"])
    assert c["tool_choice"] == "required" and c["parallel_tool_calls"] is False
    c = translate(apis.ANTHROPIC_MESSAGES, apis.OPENAI_CHAT, fx.ANTHROPIC["structured_stop"])
    assert c["response_format"] == {"type": "json_schema", "json_schema": {"name": "response",
                                                                          "schema": fx.ANSWER_SCHEMA}}
    assert c["stop"] == ["\n\nHuman:"] and "top_k" not in c
    g = translate(apis.ANTHROPIC_MESSAGES, apis.GEMINI_GENERATE, fx.ANTHROPIC["structured_stop"])
    assert g["generationConfig"]["topK"] == 40 and g["contents"][-1] == {"role": "model", "parts": [{"text": "{"}]}


# ---------------------------------------------------------------- Gemini callers


def test_gemini_cli_request_pairs_calls_and_responses_without_ids() -> None:
    c = translate(apis.GEMINI_GENERATE, apis.OPENAI_CHAT, fx.GEMINI["cli_like"], stream=True)
    msgs = c["messages"]
    assert msgs[0] == {"role": "system", "content": "You are Gemini CLI."}
    calls = msgs[2]["tool_calls"]
    assert [(x["id"], x["function"]["name"]) for x in calls] == [("call_1", "get_weather"), ("call_2", "get_time")]
    assert msgs[3] == {"role": "tool", "tool_call_id": "call_1", "content": "18°C"}
    assert msgs[4] == {"role": "tool", "tool_call_id": "call_2", "content": "tz service down"}
    tz = c["tools"][1]["function"]["parameters"]
    assert tz == {"type": "object", "properties": {"tz": {"type": ["string", "null"]}}, "required": ["tz"]}
    assert c["stream"] is True
    a = translate(apis.GEMINI_GENERATE, apis.ANTHROPIC_MESSAGES, fx.GEMINI["cli_like"], stream=False)
    assert a["messages"][2]["content"][1] == {"type": "tool_result", "tool_use_id": "call_2",
                                              "content": "tz service down", "is_error": True}
    assert a["thinking"] == {"type": "enabled", "budget_tokens": 2047} and a["max_tokens"] == 2048


def test_gemini_schema_and_forced_tool() -> None:
    a = translate(apis.GEMINI_GENERATE, apis.ANTHROPIC_MESSAGES, fx.GEMINI["json_schema"])
    assert a["output_config"]["format"]["schema"] == {
        "type": "object", "properties": {"answer": {"type": "string"}, "score": {"type": "number"}}}
    assert a["stop_sequences"] == ["END"]
    c = translate(apis.GEMINI_GENERATE, apis.OPENAI_CHAT, fx.GEMINI["forced_tool"])
    assert c["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}


# ---------------------------------------------------------------- Responses callers (Codex CLI)


def test_codex_request_to_chat() -> None:
    c = translate(apis.OPENAI_RESPONSES, apis.OPENAI_CHAT, fx.RESPONSES["codex_like"])
    msgs = c["messages"]
    assert msgs[0] == {"role": "system", "content": "You are Codex, running in the Codex CLI."}
    assert [m["role"] for m in msgs] == ["system", "user", "user", "assistant", "tool", "assistant", "tool",
                                         "assistant", "user"]
    assert msgs[3]["tool_calls"] == [{"id": "call_ls", "type": "function",
                                      "function": {"name": "shell", "arguments": '{"command":["cat","a.py"]}'}}]
    assert msgs[5]["tool_calls"][0]["function"] == {"name": "apply_patch", "arguments": orjson.dumps(
        {"input": fx.PATCH}).decode()}
    assert msgs[6] == {"role": "tool", "tool_call_id": "call_patch", "content": "Done!"}
    patch_tool = c["tools"][1]["function"]
    assert patch_tool["name"] == "apply_patch" and patch_tool["parameters"]["required"] == ["input"]
    assert c["parallel_tool_calls"] is False and c["reasoning_effort"] == "medium"
    assert c["stream"] is True and c["stream_options"] == {"include_usage": True}


def test_codex_request_to_anthropic_drops_foreign_reasoning() -> None:
    a = translate(apis.OPENAI_RESPONSES, apis.ANTHROPIC_MESSAGES, fx.RESPONSES["codex_like"])
    assistant = a["messages"][1]
    assert assistant["content"][0] == {"type": "tool_use", "id": "call_ls", "name": "shell",
                                       "input": {"command": ["cat", "a.py"]}}
    assert a["messages"][2]["content"][0]["type"] == "tool_result"
    assert a["messages"][3]["content"][0] == {"type": "tool_use", "id": "call_patch", "name": "apply_patch",
                                              "input": {"input": fx.PATCH}}
    # the last assistant turn called no tool, so thinking stays on
    assert a["thinking"] == {"type": "enabled", "budget_tokens": 8192}


def test_responses_images_files_and_formats() -> None:
    c = translate(apis.OPENAI_RESPONSES, apis.OPENAI_CHAT, fx.RESPONSES["images_files"])
    parts = c["messages"][1]["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{fx.PNG}", "detail": "high"}}
    assert parts[3] == {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{fx.PDF}",
                                                 "filename": "spec.pdf"}}
    assert (c["max_completion_tokens"], c["temperature"], c["top_p"]) == (800, 0.4, 0.9)
    g = translate(apis.OPENAI_RESPONSES, apis.GEMINI_GENERATE, fx.RESPONSES["json_schema"])
    assert g["generationConfig"]["responseJsonSchema"] == fx.ANSWER_SCHEMA
    c = translate(apis.OPENAI_RESPONSES, apis.OPENAI_CHAT, fx.RESPONSES["forced_function"])
    assert c["tool_choice"] == {"type": "function", "function": {"name": "shell"}}


# ---------------------------------------------------------------- what cannot be expressed


REFUSALS = [
    (apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, {"n": 2}, "n"),
    (apis.OPENAI_CHAT, apis.GEMINI_GENERATE, {"logprobs": True}, "logprobs"),
    (apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, {"response_format": {"type": "json_object"}}, "response_format"),
    (apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES,
     {"tools": [{"type": "custom", "custom": {"name": "patch"}}]}, "tools[0]"),
    (apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, {"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_id": "file-abc"}}]}]}, "messages[0].content[0].file.file_id"),
    (apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]}]}, "messages[0].parts[0]"),
    (apis.ANTHROPIC_MESSAGES, apis.OPENAI_CHAT, {"tools": [{"type": "web_search_20250305", "name": "web_search"}],
                                                 "tool_choice": {"type": "tool", "name": "web_search"}}, "tool_choice"),
    (apis.ANTHROPIC_MESSAGES, apis.OPENAI_CHAT, {"mcp_servers": [{"type": "url", "url": "https://x"}]},
     "mcp_servers"),
    (apis.GEMINI_GENERATE, apis.ANTHROPIC_MESSAGES, {"cachedContent": "cachedContents/abc"}, "cachedContent"),
    (apis.GEMINI_GENERATE, apis.OPENAI_CHAT, {"generationConfig": {"candidateCount": 2}},
     "generationConfig.candidateCount"),
    (apis.OPENAI_RESPONSES, apis.OPENAI_CHAT, {"previous_response_id": "resp_1"}, "previous_response_id"),
    (apis.OPENAI_RESPONSES, apis.ANTHROPIC_MESSAGES,
     {"tools": [{"type": "web_search"}], "tool_choice": {"type": "function", "name": "web"}}, "tool_choice"),
    (apis.OPENAI_RESPONSES, apis.OPENAI_CHAT, {"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
    (apis.OPENAI_RESPONSES, apis.GEMINI_GENERATE, {"input": [{"role": "user", "content": [
        {"type": "input_file", "file_id": "file-1"}]}]}, "input[0].content[0].file_id"),
]
BASES = {apis.OPENAI_RESPONSES: {"model": "m", "input": "hi"},
         apis.OPENAI_CHAT: {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
         apis.ANTHROPIC_MESSAGES: {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
         apis.GEMINI_GENERATE: {"contents": [{"parts": [{"text": "hi"}]}]}}


@pytest.mark.parametrize(("caller", "dest", "extra", "field"), REFUSALS, ids=[r[3] for r in REFUSALS])
def test_untranslatable_fields_are_a_400_naming_them(caller: str, dest: str, extra: dict[str, Any],
                                                     field: str) -> None:
    with pytest.raises(TranslationError) as caught:
        translate(caller, dest, {**BASES[caller], **extra})
    assert caught.value.status == 400 and caught.value.param == field
    assert field in caught.value.message


HOSTED = [
    (apis.OPENAI_RESPONSES, {"tools": [{"type": "web_search", "external_web_access": True}, fx.SHELL_TOOL]},
     ["tools[0]"]),
    (apis.ANTHROPIC_MESSAGES, {"tools": [{"type": "web_search_20250305", "name": "web_search"},
                                         {"type": "bash_20250124", "name": "bash"}]}, ["tools[0]", "tools[1]"]),
    (apis.GEMINI_GENERATE, {"tools": [{"googleSearch": {}, "functionDeclarations": [{"name": "f"}]},
                                      {"codeExecution": {}}]}, ["tools[0].googleSearch", "tools[1].codeExecution"]),
]


@pytest.mark.parametrize(("caller", "extra", "dropped"), HOSTED, ids=[h[0] for h in HOSTED])
def test_hosted_tools_are_left_out_and_listed(caller: str, extra: dict[str, Any], dropped: list[str]) -> None:
    for dest in DESTS[caller]:
        t = Translation(caller, dest, "m", "d", False)
        body = t.request({**BASES[caller], **extra})
        assert CHECKERS[dest](body) == [] and t.dropped == dropped


def test_codex_namespaced_tools_are_flattened_and_come_back_namespaced() -> None:
    namespace = {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents", "tools": [
        {"type": "function", "name": "close_agent", "description": "Close one", "strict": False,
         "parameters": {"type": "object", "properties": {"target": {"type": "string"}}}}]}
    history = [{"type": "function_call", "call_id": "c1", "name": "close_agent", "namespace": "multi_agent_v1",
                "arguments": '{"target":"a1"}'},
               {"type": "function_call_output", "call_id": "c1", "output": "closed"}]
    t = Translation(apis.OPENAI_RESPONSES, apis.OPENAI_CHAT, "m", "d", False)
    body = t.request({"model": "m", "input": [{"role": "user", "content": "go"}, *history],
                      "tools": [fx.SHELL_TOOL, namespace]})
    assert [tool["function"]["name"] for tool in body["tools"]] == ["shell", "multi_agent_v1__close_agent"]
    assert body["messages"][1]["tool_calls"][0]["function"]["name"] == "multi_agent_v1__close_agent"
    answer = {"id": "x", "object": "chat.completion", "created": 1, "model": "d", "choices": [{
        "index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c2", "type": "function",
             "function": {"name": "multi_agent_v1__close_agent", "arguments": '{"target":"a2"}'}}]}}]}
    _, out = t.response(200, answer)
    from openai.types.responses import Response

    call = Response.model_validate(out).output[0]
    assert (call.type, call.name, call.namespace) == ("function_call", "close_agent", "multi_agent_v1")  # type: ignore[union-attr]


def test_advisory_fields_are_accepted() -> None:
    body = {**BASES[apis.OPENAI_CHAT], "store": True, "metadata": {"a": "b"}, "service_tier": "flex",
            "prompt_cache_key": "k", "verbosity": "low", "parallel_tool_calls": False}
    assert anthropic_messages_problems(translate(apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, body)) == []
    body = {**BASES[apis.ANTHROPIC_MESSAGES], "service_tier": "auto", "cache_control": {"type": "ephemeral"},
            "context_management": {"edits": []}, "future_field_2027": {"x": 1}}
    assert openai_chat_problems(translate(apis.ANTHROPIC_MESSAGES, apis.OPENAI_CHAT, body)) == []


ADVISORY_CODECS = [
    (apis.OPENAI_CHAT, "sidegate.translate.codecs.openai_chat.request"),
    (apis.OPENAI_RESPONSES, "sidegate.translate.codecs.openai_responses.request"),
    (apis.ANTHROPIC_MESSAGES, "sidegate.translate.codecs.anthropic_messages.request"),
    (apis.GEMINI_GENERATE, "sidegate.translate.codecs.gemini_generate.request"),
]


@pytest.mark.parametrize(("caller", "module"), ADVISORY_CODECS, ids=[c for c, _ in ADVISORY_CODECS])
def test_every_documented_advisory_field_is_accepted_and_not_sent(caller: str, module: str) -> None:
    import importlib

    advisory = importlib.import_module(module).ADVISORY
    body = {**BASES[caller], **{key: {"any": "value"} for key in advisory}}
    for dest in DESTS[caller]:
        out = translate(caller, dest, body)
        assert CHECKERS[dest](out) == []
        sent = orjson.dumps(out).decode()
        assert '"any"' not in sent
