"""Tool loops across formats: the caller's SDK-shaped follow-up request, built from the translated
answer exactly as each client appends it (Codex: output items + function_call_output; Claude Code:
assistant content + tool_result; Gemini CLI: model content + functionResponse; chat clients:
assistant message + tool messages), translates into a destination request that pairs every result
with its call and keeps the destination's thinking signature valid where the caller can carry it."""

from __future__ import annotations

from typing import Any

import orjson
from tests.support.translate_fixtures import answers as fx
from tests.support.translate_fixtures.schema_check import anthropic_messages_problems, gemini_generate_problems
from tests.support.translate_fixtures.sdk_view import events

from sidegate import apis
from sidegate.formats.sse import SSESplitter
from sidegate.translate import Translation
from sidegate.translate.codecs.gemini_generate.request import SKIP_SIGNATURE

WEATHER_TOOL = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
TIME_TOOL = {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}


def stream_through(t: Translation, sse: list[bytes]) -> list[tuple[str | None, bytes]]:
    stream = t.stream()
    out = [b for ev in SSESplitter().feed(b"".join(sse)) for b in stream.feed(ev.event, ev.data)]
    return events(b"".join(out + stream.finish()))


def test_codex_on_claude_keeps_thinking_valid_through_the_tool_loop() -> None:
    first: dict[str, Any] = {
        "model": "gpt-5-codex", "stream": True, "reasoning": {"effort": "medium"}, "store": False,
        "tools": [{"type": "function", **WEATHER_TOOL}, {"type": "function", **TIME_TOOL}],
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Paris? Tokyo?"}]}],
    }
    t = Translation(apis.OPENAI_RESPONSES, apis.ANTHROPIC_MESSAGES, "gpt-5-codex", "claude-sonnet-4-5", True)
    assert t.request(first)["thinking"]["type"] == "enabled"
    completed = orjson.loads(stream_through(t, fx.anthropic_parallel_sse())[-1][1])["response"]
    outputs = completed["output"]
    assert [o["type"] for o in outputs] == ["reasoning", "message", "function_call", "function_call"]
    results = [{"type": "function_call_output", "call_id": o["call_id"], "output": "ok"}
               for o in outputs if o["type"] == "function_call"]
    second = {**first, "input": first["input"] + outputs + results}
    t2 = Translation(apis.OPENAI_RESPONSES, apis.ANTHROPIC_MESSAGES, "gpt-5-codex", "claude-sonnet-4-5", True)
    body = t2.request(second)
    assert anthropic_messages_problems(body) == []
    assistant = body["messages"][1]["content"]
    assert assistant[0] == {"type": "thinking", "thinking": "Two lookups needed.", "signature": "EqQBsig=="}
    assert [b.get("id") for b in assistant[2:]] == ["toolu_W", "toolu_T"]
    assert [b["tool_use_id"] for b in body["messages"][2]["content"]] == ["toolu_W", "toolu_T"]
    assert body["thinking"]["type"] == "enabled", "the loop keeps thinking on: its block came back signed"


def test_gemini_cli_on_claude_carries_the_signature_in_thought_parts() -> None:
    first: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": "Paris? Tokyo?"}]}],
        "tools": [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": WEATHER_TOOL["parameters"]},
                                            {"name": "get_time", "parametersJsonSchema": TIME_TOOL["parameters"]}]}],
        "generationConfig": {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 2048}},
    }
    t = Translation(apis.GEMINI_GENERATE, apis.ANTHROPIC_MESSAGES, "gemini-2.5-pro", "claude", False)
    t.request(first)
    _, answer = t.response(200, fx.anthropic_parallel_json())
    model_content = answer["candidates"][0]["content"]
    calls = [p["functionCall"] for p in model_content["parts"] if "functionCall" in p]
    responses = [{"functionResponse": {"id": c["id"], "name": c["name"], "response": {"output": "ok"}}} for c in calls]
    second = {**first, "contents": [*first["contents"], model_content, {"role": "user", "parts": responses}]}
    t2 = Translation(apis.GEMINI_GENERATE, apis.ANTHROPIC_MESSAGES, "gemini-2.5-pro", "claude", False)
    body = t2.request(second)
    assert anthropic_messages_problems(body) == []
    assistant = body["messages"][1]["content"]
    assert assistant[0]["type"] == "thinking" and assistant[0]["signature"] == fx.anthropic_wire.THINKING_SIGNATURE
    assert [r["tool_use_id"] for r in body["messages"][2]["content"]] == ["toolu_W", "toolu_T"]


def test_claude_code_on_gemini_pairs_generated_ids_and_signs_calls() -> None:
    first: dict[str, Any] = {
        "model": "claude-sonnet-4-5", "max_tokens": 1000,
        "tools": [{"name": t["name"], "input_schema": t["parameters"]} for t in (WEATHER_TOOL, TIME_TOOL)],
        "messages": [{"role": "user", "content": "Paris? Tokyo?"}],
    }
    t = Translation(apis.ANTHROPIC_MESSAGES, apis.GEMINI_GENERATE, "claude-sonnet-4-5", "gemini-2.5-pro", False)
    t.request(first)
    _, answer = t.response(200, fx.gemini_parallel_json())
    uses = [b for b in answer["content"] if b["type"] == "tool_use"]
    results = [{"type": "tool_result", "tool_use_id": u["id"], "content": "ok"} for u in uses]
    second = {**first, "messages": [*first["messages"], {"role": "assistant", "content": answer["content"]},
                                    {"role": "user", "content": results}]}
    t2 = Translation(apis.ANTHROPIC_MESSAGES, apis.GEMINI_GENERATE, "claude-sonnet-4-5", "gemini-2.5-pro", False)
    body = t2.request(second)
    assert gemini_generate_problems(body) == []
    model_parts = body["contents"][1]["parts"]
    calls = [p for p in model_parts if "functionCall" in p]
    assert [c["functionCall"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert calls[0]["thoughtSignature"] == SKIP_SIGNATURE  # Gemini's own signature cannot ride in Anthropic blocks
    answers = [p["functionResponse"] for p in body["contents"][2]["parts"]]
    assert [(a["id"], a["name"]) for a in answers] == [(c["functionCall"]["id"], c["functionCall"]["name"])
                                                       for c in calls]


def test_chat_client_on_claude_turns_thinking_off_when_the_block_cannot_come_back() -> None:
    first: dict[str, Any] = {
        "model": "m", "reasoning_effort": "low", "messages": [{"role": "user", "content": "Paris? Tokyo?"}],
        "tools": [{"type": "function", "function": WEATHER_TOOL}, {"type": "function", "function": TIME_TOOL}],
    }
    t = Translation(apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, "m", "claude", False)
    assert t.request(first)["thinking"]["type"] == "enabled"
    _, answer = t.response(200, fx.anthropic_parallel_json())
    message = answer["choices"][0]["message"]
    assert message["reasoning_content"] == "Two lookups needed."
    tools = [{"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in message["tool_calls"]]
    second = {**first, "messages": [*first["messages"], message, *tools]}
    body = Translation(apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES, "m", "claude", False).request(second)
    assert anthropic_messages_problems(body) == []
    assert "thinking" not in body
    assert [b["type"] for b in body["messages"][1]["content"]] == ["text", "tool_use", "tool_use"]


def test_claude_code_on_a_chat_server_keeps_ids() -> None:
    first: dict[str, Any] = {
        "model": "claude-sonnet-4-5", "max_tokens": 1000, "stream": True,
        "tools": [{"name": t["name"], "input_schema": t["parameters"]} for t in (WEATHER_TOOL, TIME_TOOL)],
        "messages": [{"role": "user", "content": "Paris? Tokyo?"}],
    }
    t = Translation(apis.ANTHROPIC_MESSAGES, apis.OPENAI_CHAT, "claude-sonnet-4-5", "qwen3", True)
    t.request(first)
    evs = stream_through(t, fx.chat_parallel_sse())
    starts = [orjson.loads(d)["content_block"] for name, d in evs if name == "content_block_start"]
    uses = [b for b in starts if b["type"] == "tool_use"]
    assert [u["id"] for u in uses] == ["call_W", "call_T"]
    results = [{"type": "tool_result", "tool_use_id": u["id"], "content": "ok"} for u in uses]
    content = [{"type": "thinking", "thinking": "Two lookups needed.", "signature": ""},
               {"type": "text", "text": "Let me check both."},
               *[{"type": "tool_use", "id": u["id"], "name": u["name"], "input": {}} for u in uses]]
    second = {**first, "messages": [*first["messages"], {"role": "assistant", "content": content},
                                    {"role": "user", "content": results}]}
    body = Translation(apis.ANTHROPIC_MESSAGES, apis.OPENAI_CHAT, "claude-sonnet-4-5", "qwen3", True).request(second)
    assert [c["id"] for c in body["messages"][1]["tool_calls"]] == ["call_W", "call_T"]
    assert [m["tool_call_id"] for m in body["messages"][2:]] == ["call_W", "call_T"]
