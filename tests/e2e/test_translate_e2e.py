"""Translation end to end through the real sidegate app: the official SDK of the caller's format is
pointed at sidegate, whose model service routes to a fake upstream of another provider (or to a
chat-only OpenAI-compatible server, `apis: [openai.chat, openai.embeddings]`), and
* the fake receives a request its real API's documented schema accepts,
* the SDK (including its own stream helpers) parses every answer and sees the text, tool calls
  and usage the upstream produced,
* the usage row of each translated call carries the destination's own token counts (not an
  estimate) and the destination's kind."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from google.genai import types as gt
from tests.support.fakes import DEFAULT_TEXT, DEFAULT_TOOL_ARGS, FakeUpstream
from tests.support.fakes.fixtures import fake_vector
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.sdk_clients import claude, close_sdk_clients, gemini, oai  # noqa: F401  (fixture)
from tests.support.translate_fixtures.schema_check import (
    anthropic_count_problems,
    anthropic_messages_problems,
    gemini_batch_embed_problems,
    gemini_count_problems,
    gemini_generate_problems,
    openai_chat_problems,
    openai_embeddings_problems,
)

from sidegate import apis
from sidegate.upstream.providers import ADAPTERS

CHAT_ONLY = sorted(ADAPTERS["openai"].apis - {apis.OPENAI_RESPONSES, apis.OPENAI_MODELS})  # vLLM, Ollama
TOOL = {"type": "function", "function": {"name": "lookup", "description": "Look something up",
                                         "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}
# What each fake's default answer reports, as the usage row counts it (input with cache reads and
# writes, output with reasoning): openai chat 11 / 7, anthropic 10 + 4 read + 2 written / 6,
# gemini 9 / 5 + 2 thoughts.
ROW_TOKENS = {"openai": (11, 7), "anthropic": (16, 6), "gemini": (9, 7)}


async def serve(gateway: GatewayFactory, fake: FakeUpstream, model: str, chat_only: bool = False) -> Gateway:
    """sidegate with one provider, the fake, behind every model name (asking it for `model`)."""
    narrowed = f", apis: [{', '.join(CHAT_ONLY)}]" if chat_only else ""
    return await gateway(f"""
        providers:
          upstream: {{kind: {fake.kind}, base_url: '{fake.base_url}', api_key: up-key{narrowed}}}
        models:
          "*": {{destinations: [{{provider: upstream, model: {model}}}]}}
    """)


async def translated_row(gw: Gateway, kind: str, api_type: str, *, streaming: bool,
                         tokens: tuple[int, int] | None = None) -> dict[str, Any]:
    """The last usage row: a translated call answered by `kind`, with the destination's own counts."""
    row = await gw.row()
    assert (row["api_type"], row["status_code"], row["error_code"]) == (api_type, 200, None)
    assert (row["destination_type"], row["destination_name"], row["streaming"]) == (kind, "upstream", streaming)
    assert row["tokens_estimated"] is False
    assert (row["input_tokens"], row["output_tokens"]) == (tokens or ROW_TOKENS[kind])
    assert row["total_tokens"] == row["input_tokens"] + row["output_tokens"]
    return row


# ---------------------------------------------------------------- OpenAI chat callers


async def test_openai_chat_sdk_on_anthropic(gateway: GatewayFactory, fake_upstream: Any) -> None:
    fake = await fake_upstream("anthropic")
    gw = await serve(gateway, fake, "claude-sonnet-4-5")
    client = oai(gw.base)
    done = await client.chat.completions.create(model="gpt-5", tools=[TOOL], max_completion_tokens=200,  # type: ignore[list-item]
                                                messages=[{"role": "user", "content": "look up fake"}])
    assert anthropic_messages_problems(fake.last.json()) == []
    assert fake.last.headers["x-api-key"] == "up-key" and fake.last.json()["model"] == "claude-sonnet-4-5"
    call = done.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert (call.function.name, call.function.arguments) == ("lookup", '{"query":"fake"}')  # type: ignore[union-attr]
    assert done.choices[0].finish_reason == "tool_calls" and done.model == "claude-sonnet-4-5"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (16, 6)  # type: ignore[union-attr]
    row = await translated_row(gw, "anthropic", "openai/chat/completions", streaming=False)
    assert (row["cache_read_input_tokens"], row["cache_creation_input_tokens"]) == (4, 2)

    async with client.chat.completions.stream(model="gpt-5", messages=[{"role": "user", "content": "hi"}],
                                              stream_options={"include_usage": True}) as stream:
        final = await stream.get_final_completion()
    assert fake.last.json()["stream"] is True and anthropic_messages_problems(fake.last.json()) == []
    assert final.choices[0].message.content == DEFAULT_TEXT and final.usage.total_tokens == 22  # type: ignore[union-attr]
    await translated_row(gw, "anthropic", "openai/chat/completions", streaming=True)


async def test_openai_chat_sdk_on_gemini_streams(gateway: GatewayFactory, fake_upstream: Any) -> None:
    fake = await fake_upstream("gemini")
    gw = await serve(gateway, fake, "gemini-2.5-flash")
    stream = await oai(gw.base).chat.completions.create(
        model="gpt-5", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}])
    chunks = [c async for c in stream]
    got = fake.last
    assert got.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent" and got.query == {"alt": "sse"}
    assert got.headers["x-goog-api-key"] == "up-key"
    assert gemini_generate_problems(got.json()) == []
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == DEFAULT_TEXT
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 9
    row = await translated_row(gw, "gemini", "openai/chat/completions", streaming=True)
    assert (row["reasoning_tokens"], row["cache_read_input_tokens"]) == (2, 1)


# ---------------------------------------------------------------- Responses callers (Codex CLI's API)


CODEX_TOOLS: list[Any] = [
    {"type": "function", "name": "shell", "description": "Run a command", "strict": False,
     "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}},
                    "required": ["command"]}},
    {"type": "custom", "name": "apply_patch", "description": "Apply a patch"},
]


async def test_responses_sdk_on_a_chat_only_server(gateway: GatewayFactory, fake_upstream: Any) -> None:
    fake = await fake_upstream("openai")
    gw = await serve(gateway, fake, "qwen3-32b", chat_only=True)
    client = oai(gw.base)
    async with client.responses.stream(
            model="gpt-5-codex", instructions="You are Codex.", tools=CODEX_TOOLS, parallel_tool_calls=False,
            reasoning={"effort": "medium"}, store=False, include=["reasoning.encrypted_content"],
            input=[{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ls"}]}],
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    sent = fake.last.json()
    assert fake.last.path == "/v1/chat/completions" and openai_chat_problems(sent) == []
    assert sent["messages"][0] == {"role": "system", "content": "You are Codex."}
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    call = final.output[0]
    assert call.type == "function_call" and call.name == "shell" and call.arguments == '{"query": "fake"}'
    assert final.usage is not None and final.usage.input_tokens == 11 and final.usage.output_tokens == 7
    await translated_row(gw, "openai", "openai/responses", streaming=True)

    plain = await client.responses.create(model="gpt-5-codex", input="hi")
    assert plain.output_text == DEFAULT_TEXT and plain.status == "completed"
    await translated_row(gw, "openai", "openai/responses", streaming=False)


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
async def test_responses_sdk_on_other_providers(gateway: GatewayFactory, fake_upstream: Any, kind: str) -> None:
    fake = await fake_upstream(kind)
    check = anthropic_messages_problems if kind == "anthropic" else gemini_generate_problems
    gw = await serve(gateway, fake, "dest-model")
    stream = await oai(gw.base).responses.create(model="gpt-5", input="hi", stream=True, max_output_tokens=500)
    events = [e async for e in stream]
    assert check(fake.last.json()) == []
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == DEFAULT_TEXT  # type: ignore[union-attr]
    await translated_row(gw, kind, "openai/responses", streaming=True)


# ---------------------------------------------------------------- Anthropic callers (Claude Code's API)


CLAUDE_TOOLS: list[Any] = [{"name": "lookup", "description": "Look up", "input_schema": {
    "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}]


async def test_anthropic_sdk_on_a_chat_server(gateway: GatewayFactory, fake_upstream: Any) -> None:
    fake = await fake_upstream("openai")
    gw = await serve(gateway, fake, "qwen3-32b", chat_only=True)
    client = claude(gw.base)
    async with client.messages.stream(
            model="claude-sonnet-4-5", max_tokens=1000, tools=CLAUDE_TOOLS,
            system=[{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[{"role": "user", "content": "look it up"}]) as stream:
        final = await stream.get_final_message()
    sent = fake.last.json()
    assert openai_chat_problems(sent) == [] and sent["stream_options"] == {"include_usage": True}
    assert fake.last.headers["authorization"] == "Bearer up-key"
    assert not [h for h in fake.last.headers if h.lower().startswith("anthropic-")]
    use = final.content[-1]
    assert use.type == "tool_use" and use.name == "lookup" and use.input == DEFAULT_TOOL_ARGS
    assert final.stop_reason == "tool_use" and final.model == "qwen3-32b"
    assert (final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0), final.usage.output_tokens) \
        == (11, 7)
    row = await translated_row(gw, "openai", "anthropic/messages", streaming=True)
    assert (row["cache_read_input_tokens"], row["reasoning_tokens"]) == (3, 2)


async def test_anthropic_sdk_on_gemini(gateway: GatewayFactory, fake_upstream: Any) -> None:
    fake = await fake_upstream("gemini")
    gw = await serve(gateway, fake, "gemini-2.5-pro")
    message = await claude(gw.base).messages.create(model="claude-sonnet-4-5", max_tokens=100,
                                                    messages=[{"role": "user", "content": "hi"}])
    assert gemini_generate_problems(fake.last.json()) == []
    assert fake.last.path == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert message.content[0].type == "text" and message.content[0].text == DEFAULT_TEXT
    await translated_row(gw, "gemini", "anthropic/messages", streaming=False)


# ---------------------------------------------------------------- token counts (issue 3)


async def test_anthropic_count_tokens_on_gemini_is_translated(gateway: GatewayFactory, fake_upstream: Any) -> None:
    fake = await fake_upstream("gemini")
    gw = await serve(gateway, fake, "gemini-2.5-pro")
    count = await claude(gw.base).messages.count_tokens(model="claude-sonnet-4-5",
                                                        messages=[{"role": "user", "content": "hi"}])
    assert fake.last.path == "/v1beta/models/gemini-2.5-pro:countTokens"
    assert gemini_count_problems(fake.last.json()) == []
    assert count.input_tokens == 9
    row = await gw.row()
    assert (row["api_type"], row["status_code"], row["error_code"]) == ("anthropic/count_tokens", 200, None)
    assert (row["destination_type"], row["destination_model"]) == ("gemini", "gemini-2.5-pro")
    assert (row["input_tokens"], row["output_tokens"], row["tokens_estimated"]) == (0, 0, False)  # nothing billed
    assert [(a["destination"], a["status"]) for a in row["routing_information"]] == [("upstream", 200)]


async def test_anthropic_count_tokens_on_openai_is_estimated_locally(
        gateway: GatewayFactory, fake_upstream: Any) -> None:
    fake = await fake_upstream("openai")
    gw = await serve(gateway, fake, "qwen3-32b", chat_only=True)
    count = await claude(gw.base).messages.count_tokens(model="claude-sonnet-4-5", tools=CLAUDE_TOOLS,
                                                        messages=[{"role": "user", "content": "x" * 400}])
    assert count.input_tokens >= 100
    assert fake.received == [], "estimated: nothing sent upstream"
    row = await gw.row()
    assert (row["api_type"], row["status_code"], row["error_code"]) == ("anthropic/count_tokens", 200, None)
    assert (row["model_service"], row["streaming"]) == ("*", False)
    assert (row["input_tokens"], row["output_tokens"], row["tokens_estimated"]) == (0, 0, False)  # nothing billed
    assert [(a["destination"], a["status"], a["reason"]) for a in row["routing_information"]] == [
        ("upstream", 200, "estimated_locally")]


# ---------------------------------------------------------------- Gemini callers (Gemini CLI's API)


async def test_genai_sdk_on_a_chat_server(gateway: GatewayFactory, fake_upstream: Any) -> None:
    fake = await fake_upstream("openai")
    gw = await serve(gateway, fake, "qwen3-32b", chat_only=True)
    client = gemini(gw.base)
    config = gt.GenerateContentConfig(system_instruction="terse", max_output_tokens=100, temperature=0.2)
    answer = await client.models.generate_content(model="gemini-2.5-pro", contents="hi", config=config)
    assert openai_chat_problems(fake.last.json()) == []
    assert answer.text == DEFAULT_TEXT and answer.usage_metadata.prompt_token_count == 11  # type: ignore[union-attr]
    await translated_row(gw, "openai", "gemini/generateContent", streaming=False)
    tool = gt.Tool(function_declarations=[gt.FunctionDeclaration(
        name="lookup", parameters_json_schema={"type": "object", "properties": {"query": {"type": "string"}}})])
    pieces = [c async for c in await client.models.generate_content_stream(
        model="gemini-2.5-pro", contents="look it up", config=gt.GenerateContentConfig(tools=[tool]))]
    assert openai_chat_problems(fake.last.json()) == []
    calls = [fc for c in pieces for fc in c.function_calls or []]
    assert [(fc.name, fc.args) for fc in calls] == [("lookup", DEFAULT_TOOL_ARGS)]
    await translated_row(gw, "openai", "gemini/streamGenerateContent", streaming=True)
    received = len(fake.received)
    count = await client.models.count_tokens(model="gemini-2.5-pro", contents="x" * 40)
    assert count.total_tokens == 10 + 3 and len(fake.received) == received  # estimated locally
    embedded = await client.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
    assert openai_embeddings_problems(fake.last.json()) == []
    assert [e.values for e in embedded.embeddings or []] == [fake_vector("a"), fake_vector("b")]
    await translated_row(gw, "openai", "gemini/batchEmbedContents", streaming=False, tokens=(5, 0))


async def test_genai_sdk_on_anthropic(gateway: GatewayFactory, fake_upstream: Any) -> None:
    fake = await fake_upstream("anthropic")
    gw = await serve(gateway, fake, "claude-sonnet-4-5")
    client = gemini(gw.base)
    pieces = [c async for c in await client.models.generate_content_stream(
        model="gemini-2.5-pro", contents="hi", config=gt.GenerateContentConfig(
            thinking_config=gt.ThinkingConfig(include_thoughts=True, thinking_budget=2048)))]
    assert anthropic_messages_problems(fake.last.json()) == []
    thoughts = "".join(p.text or "" for c in pieces for p in c.candidates[0].content.parts or [] if p.thought)  # type: ignore[index,union-attr]
    assert thoughts == "Let me think." and "".join(c.text or "" for c in pieces) == DEFAULT_TEXT
    await translated_row(gw, "anthropic", "gemini/streamGenerateContent", streaming=True)
    count = await client.models.count_tokens(model="gemini-2.5-pro", contents="hi")
    assert anthropic_count_problems(fake.last.json()) == [] and count.total_tokens == 16
    assert fake.last.path == "/v1/messages/count_tokens"


# ---------------------------------------------------------------- embeddings and errors


async def test_openai_embeddings_sdk_on_gemini(gateway: GatewayFactory, fake_upstream: Any) -> None:
    fake = await fake_upstream("gemini")
    gw = await serve(gateway, fake, "gemini-embedding-001")
    result = await oai(gw.base).embeddings.create(model="text-embedding-3-small", input=["a", "b"], dimensions=8)
    assert gemini_batch_embed_problems(fake.last.json()) == []
    # the SDK asks for base64 (float32) by default: the translation packs Gemini's floats that way
    assert fake.last.json()["requests"][0]["outputDimensionality"] == 8
    assert [d.embedding for d in result.data] == [pytest.approx(fake_vector(s), abs=1e-6) for s in ("a", "b")]
    row = await gw.row()
    assert (row["api_type"], row["status_code"], row["destination_type"]) == ("openai/embeddings", 200, "gemini")


async def test_upstream_errors_reach_each_sdk_as_its_own_exception(
        gateway: GatewayFactory, fake_upstream: Any) -> None:
    fake = await fake_upstream("anthropic")
    gw = await serve(gateway, fake, "claude")
    fake.error(529)
    with pytest.raises(openai.InternalServerError) as caught:
        await oai(gw.base).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 503
    row = await gw.row()
    assert (row["status_code"], row["error_code"], row["destination_type"]) == (503, "overloaded_error", "anthropic")

    fake = await fake_upstream("gemini")
    gw = await serve(gateway, fake, "gemini-2.5-pro")
    fake.error(429)
    with pytest.raises(anthropic.RateLimitError):
        await claude(gw.base).messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert (await gw.row())["error_code"] == "RESOURCE_EXHAUSTED"
    with pytest.raises(anthropic.BadRequestError) as bad:
        await claude(gw.base).messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}],
                                              tools=[{"type": "web_search_20250305", "name": "web_search"}],
                                              tool_choice={"type": "tool", "name": "web_search"})
    assert "tool_choice" in str(bad.value)
    row = await gw.row()
    assert (row["status_code"], row["destination_type"]) == (400, None)
    assert [a["reason"] for a in row["routing_information"]] == ["translation_error"]
