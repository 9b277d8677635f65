"""End to end through a translating gateway (tests/translate_fixtures/proxy.py): the official SDK
of the caller's format talks to it, the fake upstream of another provider answers, and
* the fake receives a request its real API's documented schema accepts,
* the SDK (including its own stream helpers) parses every answer and sees the text, tool calls
  and usage the upstream produced."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as gt
from tests.fakes import DEFAULT_TEXT, DEFAULT_TOOL_ARGS, FakeUpstream
from tests.fakes.fixtures import fake_vector
from tests.translate_fixtures.proxy import Destination, translating_gateway
from tests.translate_fixtures.schema_check import (
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

MakeFake = Callable[..., Awaitable[FakeUpstream]]
CHAT_ONLY = ADAPTERS["openai"].apis - {apis.OPENAI_RESPONSES}  # vLLM, Ollama: no Responses API
TOOL = {"type": "function", "function": {"name": "lookup", "description": "Look something up",
                                         "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}


@asynccontextmanager
async def gateway(fake: FakeUpstream, model: str, speaks: frozenset[str] | None = None) -> AsyncIterator[str]:
    async with translating_gateway(Destination(fake.kind, fake.base_url, model, speaks)) as base:
        yield base


def oai(base: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base}/openai/v1", api_key="k", max_retries=0)


def claude(base: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=f"{base}/anthropic", api_key="k", max_retries=0)


def gemini(base: str) -> genai.Client:
    return genai.Client(api_key="k", http_options=gt.HttpOptions(base_url=f"{base}/gemini",
                                                                  retry_options=gt.HttpRetryOptions(attempts=1)))


# ---------------------------------------------------------------- OpenAI chat callers


async def test_openai_chat_sdk_on_anthropic(fake_upstream: MakeFake) -> None:
    fake = await fake_upstream("anthropic")
    async with gateway(fake, "claude-sonnet-4-5") as base:
        client = oai(base)
        done = await client.chat.completions.create(model="gpt-5", tools=[TOOL], max_completion_tokens=200,
                                                    messages=[{"role": "user", "content": "look up fake"}])
        assert anthropic_messages_problems(fake.last.json()) == []
        call = done.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert (call.function.name, call.function.arguments) == ("lookup", '{"query":"fake"}')  # type: ignore[union-attr]
        assert done.choices[0].finish_reason == "tool_calls" and done.model == "gpt-5"
        assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (16, 6)  # type: ignore[union-attr]

        async with client.chat.completions.stream(model="gpt-5", messages=[{"role": "user", "content": "hi"}],
                                                  stream_options={"include_usage": True}) as stream:
            final = await stream.get_final_completion()
        assert fake.last.json()["stream"] is True and anthropic_messages_problems(fake.last.json()) == []
        assert final.choices[0].message.content == DEFAULT_TEXT and final.usage.total_tokens == 22  # type: ignore[union-attr]


async def test_openai_chat_sdk_on_gemini_streams(fake_upstream: MakeFake) -> None:
    fake = await fake_upstream("gemini")
    async with gateway(fake, "gemini-2.5-flash") as base:
        stream = await oai(base).chat.completions.create(
            model="gpt-5", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}])
        chunks = [c async for c in stream]
    got = fake.last
    assert got.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent" and got.query == {"alt": "sse"}
    assert gemini_generate_problems(got.json()) == []
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == DEFAULT_TEXT
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 9


# ---------------------------------------------------------------- Responses callers (Codex CLI's API)


CODEX_TOOLS: list[Any] = [
    {"type": "function", "name": "shell", "description": "Run a command", "strict": False,
     "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}},
                    "required": ["command"]}},
    {"type": "custom", "name": "apply_patch", "description": "Apply a patch"},
]


async def test_responses_sdk_on_a_chat_only_server(fake_upstream: MakeFake) -> None:
    fake = await fake_upstream("openai")
    async with gateway(fake, "qwen3-32b", CHAT_ONLY) as base:
        client = oai(base)
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

        plain = await client.responses.create(model="gpt-5-codex", input="hi")
        assert plain.output_text == DEFAULT_TEXT and plain.status == "completed"


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
async def test_responses_sdk_on_other_providers(fake_upstream: MakeFake, kind: str) -> None:
    fake = await fake_upstream(kind)
    check = anthropic_messages_problems if kind == "anthropic" else gemini_generate_problems
    async with gateway(fake, "dest-model") as base:
        client = oai(base)
        stream = await client.responses.create(model="gpt-5", input="hi", stream=True, max_output_tokens=500)
        events = [e async for e in stream]
        assert check(fake.last.json()) == []
        assert events[-1].type == "response.completed"
        assert events[-1].response.output_text == DEFAULT_TEXT  # type: ignore[union-attr]


# ---------------------------------------------------------------- Anthropic callers (Claude Code's API)


CLAUDE_TOOLS: list[Any] = [{"name": "lookup", "description": "Look up", "input_schema": {
    "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}]


async def test_anthropic_sdk_on_a_chat_server(fake_upstream: MakeFake) -> None:
    fake = await fake_upstream("openai")
    async with gateway(fake, "qwen3-32b", CHAT_ONLY) as base:
        client = claude(base)
        async with client.messages.stream(
                model="claude-sonnet-4-5", max_tokens=1000, tools=CLAUDE_TOOLS,
                system=[{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
                thinking={"type": "enabled", "budget_tokens": 1024},
                messages=[{"role": "user", "content": "look it up"}]) as stream:
            final = await stream.get_final_message()
        sent = fake.last.json()
        assert openai_chat_problems(sent) == [] and sent["stream_options"] == {"include_usage": True}
        use = final.content[-1]
        assert use.type == "tool_use" and use.name == "lookup" and use.input == DEFAULT_TOOL_ARGS
        assert final.stop_reason == "tool_use" and final.model == "claude-sonnet-4-5"
        assert (final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0), final.usage.output_tokens) \
            == (11, 7)

        count = await client.messages.count_tokens(model="claude-sonnet-4-5", tools=CLAUDE_TOOLS,
                                                   messages=[{"role": "user", "content": "x" * 400}])
        assert count.input_tokens >= 100 and len(fake.received) == 1, "estimated: nothing sent upstream"


async def test_anthropic_sdk_on_gemini(fake_upstream: MakeFake) -> None:
    fake = await fake_upstream("gemini")
    async with gateway(fake, "gemini-2.5-pro") as base:
        client = claude(base)
        message = await client.messages.create(model="claude-sonnet-4-5", max_tokens=100,
                                               messages=[{"role": "user", "content": "hi"}])
        assert gemini_generate_problems(fake.last.json()) == []
        assert message.content[0].type == "text" and message.content[0].text == DEFAULT_TEXT
        count = await client.messages.count_tokens(model="claude-sonnet-4-5",
                                                   messages=[{"role": "user", "content": "hi"}])
        assert fake.last.path.endswith(":countTokens") and gemini_count_problems(fake.last.json()) == []
        assert count.input_tokens == 9


# ---------------------------------------------------------------- Gemini callers (Gemini CLI's API)


async def test_genai_sdk_on_a_chat_server(fake_upstream: MakeFake) -> None:
    fake = await fake_upstream("openai")
    async with gateway(fake, "qwen3-32b", CHAT_ONLY) as base:
        client = gemini(base).aio
        config = gt.GenerateContentConfig(system_instruction="terse", max_output_tokens=100, temperature=0.2)
        answer = await client.models.generate_content(model="gemini-2.5-pro", contents="hi", config=config)
        assert openai_chat_problems(fake.last.json()) == []
        assert answer.text == DEFAULT_TEXT and answer.usage_metadata.prompt_token_count == 11  # type: ignore[union-attr]
        tool = gt.Tool(function_declarations=[gt.FunctionDeclaration(
            name="lookup", parameters_json_schema={"type": "object", "properties": {"query": {"type": "string"}}})])
        pieces = [c async for c in await client.models.generate_content_stream(
            model="gemini-2.5-pro", contents="look it up", config=gt.GenerateContentConfig(tools=[tool]))]
        assert openai_chat_problems(fake.last.json()) == []
        calls = [fc for c in pieces for fc in c.function_calls or []]
        assert [(fc.name, fc.args) for fc in calls] == [("lookup", DEFAULT_TOOL_ARGS)]
        count = await client.models.count_tokens(model="gemini-2.5-pro", contents="x" * 40)
        assert count.total_tokens == 10 + 3
        embedded = await client.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
        assert openai_embeddings_problems(fake.last.json()) == []
        assert [e.values for e in embedded.embeddings or []] == [fake_vector("a"), fake_vector("b")]


async def test_genai_sdk_on_anthropic(fake_upstream: MakeFake) -> None:
    fake = await fake_upstream("anthropic")
    async with gateway(fake, "claude-sonnet-4-5") as base:
        client = gemini(base).aio
        pieces = [c async for c in await client.models.generate_content_stream(
            model="gemini-2.5-pro", contents="hi", config=gt.GenerateContentConfig(
                thinking_config=gt.ThinkingConfig(include_thoughts=True, thinking_budget=2048)))]
        assert anthropic_messages_problems(fake.last.json()) == []
        thoughts = "".join(p.text or "" for c in pieces for p in c.candidates[0].content.parts or [] if p.thought)  # type: ignore[index,union-attr]
        assert thoughts == "Let me think." and "".join(c.text or "" for c in pieces) == DEFAULT_TEXT
        count = await client.models.count_tokens(model="gemini-2.5-pro", contents="hi")
        assert anthropic_count_problems(fake.last.json()) == [] and count.total_tokens == 16


# ---------------------------------------------------------------- embeddings and errors


async def test_openai_embeddings_sdk_on_gemini(fake_upstream: MakeFake) -> None:
    fake = await fake_upstream("gemini")
    async with gateway(fake, "gemini-embedding-001") as base:
        result = await oai(base).embeddings.create(model="text-embedding-3-small", input=["a", "b"], dimensions=8)
    assert gemini_batch_embed_problems(fake.last.json()) == []
    # the SDK asks for base64 (float32) by default: the translation packs Gemini's floats that way
    assert fake.last.json()["requests"][0]["outputDimensionality"] == 8
    assert [d.embedding for d in result.data] == [pytest.approx(fake_vector(s), abs=1e-6) for s in ("a", "b")]


async def test_upstream_errors_reach_each_sdk_as_its_own_exception(fake_upstream: MakeFake) -> None:
    fake = await fake_upstream("anthropic")
    async with gateway(fake, "claude") as base:
        fake.error(529)
        with pytest.raises(openai.InternalServerError) as caught:
            await oai(base).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert caught.value.status_code == 503
    fake = await fake_upstream("gemini")
    async with gateway(fake, "gemini-2.5-pro") as base:
        fake.error(429)
        with pytest.raises(anthropic.RateLimitError):
            await claude(base).messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(anthropic.BadRequestError) as bad:
            await claude(base).messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}],
                                               tools=[{"type": "web_search_20250305", "name": "web_search"}],
                                               tool_choice={"type": "tool", "name": "web_search"})
        assert "tool_choice" in str(bad.value)
