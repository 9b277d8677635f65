"""Fidelity of the fake upstreams: the official SDKs, pointed straight at them, must parse what they send."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
import pytest_asyncio
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from tests.support.fakes import (
    DEFAULT_DELTAS,
    DEFAULT_TEXT,
    DEFAULT_TOOL_ARGS,
    DEFAULT_USAGE,
    FakeUpstream,
    anthropic_wire,
    default_sse,
    fake_upstream,
    running_fake,
)
from tests.support.fakes.fixtures import fake_vector

_ = fake_upstream  # the factory fixture, used by test_fixture_factory
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

TOOLS_OPENAI: Any = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
TOOLS_ANTHROPIC: Any = [{"name": "lookup", "input_schema": {"type": "object"}}]


@pytest_asyncio.fixture
async def oai() -> AsyncIterator[tuple[FakeUpstream, openai.AsyncOpenAI]]:
    async with running_fake("openai") as fake:
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
        yield fake, client
        await client.close()


@pytest_asyncio.fixture
async def ant() -> AsyncIterator[tuple[FakeUpstream, anthropic.AsyncAnthropic]]:
    async with running_fake("anthropic") as fake:
        client = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=fake.base_url, max_retries=0)
        yield fake, client
        await client.close()


@pytest_asyncio.fixture
async def gem() -> AsyncIterator[tuple[FakeUpstream, genai.Client]]:
    async with running_fake("gemini") as fake:
        opts = genai_types.HttpOptions(base_url=fake.base_url, api_version="v1beta")
        client = genai.Client(api_key="g-test", http_options=opts)
        yield fake, client
        await client.aio.aclose()


# ------------------------------------------------------------------ openai


async def test_openai_chat_json(oai: tuple[FakeUpstream, openai.AsyncOpenAI]) -> None:
    fake, client = oai
    out = await client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    u = DEFAULT_USAGE["openai.chat"]
    assert out.choices[0].message.content == DEFAULT_TEXT and out.model == "gpt-5"
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None and out.usage.prompt_tokens == u["input_tokens"] == 11
    assert out.usage.completion_tokens == 7 and out.usage.total_tokens == 18
    assert out.usage.prompt_tokens_details and out.usage.prompt_tokens_details.cached_tokens == 3
    assert out.usage.completion_tokens_details and out.usage.completion_tokens_details.reasoning_tokens == 2
    got = fake.last
    assert (got.method, got.path) == ("POST", "/v1/chat/completions")
    assert got.headers["authorization"] == "Bearer sk-test" and got.json()["messages"][0]["content"] == "hi"


async def test_openai_chat_stream_with_usage(oai: tuple[FakeUpstream, openai.AsyncOpenAI]) -> None:
    _, client = oai
    stream = await client.chat.completions.create(
        model="gpt-5-mini",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert tuple(deltas) == DEFAULT_DELTAS and {c.model for c in chunks} == {"gpt-5-mini"}
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 11 and chunks[-1].usage.completion_tokens == 7


async def test_openai_chat_stream_without_usage_and_tools(
    oai: tuple[FakeUpstream, openai.AsyncOpenAI],
) -> None:
    _, client = oai
    stream = await client.chat.completions.create(
        model="gpt-5", messages=[{"role": "user", "content": "x"}], stream=True
    )
    chunks = [c async for c in stream]
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    out = await client.chat.completions.create(
        model="gpt-5", messages=[{"role": "user", "content": "x"}], tools=TOOLS_OPENAI
    )
    call: Any = (out.choices[0].message.tool_calls or [])[0]
    assert out.choices[0].finish_reason == "tool_calls" and call.function.name == "lookup"
    assert call.function.arguments == '{"query": "fake"}'


async def test_openai_responses_json_and_stream(oai: tuple[FakeUpstream, openai.AsyncOpenAI]) -> None:
    fake, client = oai
    out = await client.responses.create(model="gpt-5", input="hi")
    assert out.output_text == DEFAULT_TEXT and out.model == "gpt-5" and out.status == "completed"
    assert out.usage is not None and out.usage.input_tokens == 12 and out.usage.output_tokens == 9
    assert out.usage.input_tokens_details.cached_tokens == 4
    assert out.usage.output_tokens_details.reasoning_tokens == 3
    events = [e async for e in await client.responses.create(model="gpt-4.1", input="hi", stream=True)]
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 3,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas: list[Any] = [e for e in events if e.type == "response.output_text.delta"]
    assert tuple(e.delta for e in deltas) == DEFAULT_DELTAS
    final = events[-1].response  # type: ignore[union-attr]
    assert final.model == "gpt-4.1" and final.output_text == DEFAULT_TEXT
    assert final.usage is not None and final.usage.total_tokens == 21
    assert fake.last.path == "/v1/responses" and fake.last.json()["stream"] is True


async def test_openai_embeddings_and_models(oai: tuple[FakeUpstream, openai.AsyncOpenAI]) -> None:
    _, client = oai
    out = await client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"]
    )  # base64 on the wire
    assert [d.index for d in out.data] == [0, 1] and out.usage.prompt_tokens == 5
    assert out.data[0].embedding == pytest.approx(fake_vector("a"), abs=1e-6)
    flt = await client.embeddings.create(model="e", input="a", encoding_format="float", dimensions=4)
    assert flt.data[0].embedding == fake_vector("a", 4) and flt.model == "e"
    models = [m.id async for m in client.models.list()]
    assert "gpt-5" in models


async def test_openai_error_shape(oai: tuple[FakeUpstream, openai.AsyncOpenAI]) -> None:
    fake, client = oai
    fake.error(429, "slow down")
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "rate_limit_exceeded" and info.value.type == "requests"
    assert info.value.body == {
        "message": "slow down",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    fake.error(500)
    with pytest.raises(openai.InternalServerError):
        await client.responses.create(model="gpt-5", input="hi")
    fake.reply(status=404)  # no body given: the provider's own error body for that status
    with pytest.raises(openai.NotFoundError) as nf:
        await client.embeddings.create(model="nope", input="a")
    assert nf.value.code == "model_not_found"
    assert fake.pending == 0


# ------------------------------------------------------------------ anthropic


async def test_anthropic_json_with_thinking_and_tools(
    ant: tuple[FakeUpstream, anthropic.AsyncAnthropic],
) -> None:
    fake, client = ant
    msg = await client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=2048,
        messages=[{"role": "user", "content": "hi"}],
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=TOOLS_ANTHROPIC,
    )
    assert [b.type for b in msg.content] == [
        "thinking",
        "text",
        "tool_use",
    ] and msg.model == "claude-sonnet-4-6"
    blocks: list[Any] = list(msg.content)
    assert blocks[1].text == DEFAULT_TEXT and msg.stop_reason == "tool_use"
    assert blocks[2].input == DEFAULT_TOOL_ARGS
    u = DEFAULT_USAGE["anthropic.messages"]
    assert (
        (msg.usage.input_tokens, msg.usage.output_tokens)
        == (u["input_tokens"], u["output_tokens"])
        == (10, 6)
    )
    assert msg.usage.cache_read_input_tokens == 4 and msg.usage.cache_creation_input_tokens == 2
    auth = fake.last.headers.get("x-api-key") or fake.last.headers["authorization"].removeprefix("Bearer ")
    assert auth == "sk-ant-test" and "anthropic-version" in fake.last.headers


async def test_anthropic_stream(ant: tuple[FakeUpstream, anthropic.AsyncAnthropic]) -> None:
    _, client = ant
    async with client.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=2048,
        messages=[{"role": "user", "content": "hi"}],
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=TOOLS_ANTHROPIC,
    ) as stream:
        texts = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert tuple(texts) == DEFAULT_DELTAS and final.model == "claude-haiku-4-5"
    thinking, text, tool = list[Any](final.content)
    assert thinking.thinking == anthropic_wire.THINKING_TEXT
    assert thinking.signature == anthropic_wire.THINKING_SIGNATURE
    assert text.text == DEFAULT_TEXT and tool.input == DEFAULT_TOOL_ARGS
    assert final.usage.output_tokens == 6 and final.usage.input_tokens == 10
    assert final.usage.cache_read_input_tokens == 4 and final.stop_reason == "tool_use"
    raw = [
        e
        async for e in await client.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=True
        )
    ]
    assert [e.type for e in raw][:4] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
    ]  # the SDK swallows `ping`
    assert raw[-2].type == "message_delta" and raw[-1].type == "message_stop"


async def test_anthropic_count_tokens_and_errors(ant: tuple[FakeUpstream, anthropic.AsyncAnthropic]) -> None:
    fake, client = ant
    n = await client.messages.count_tokens(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "x"}], extra_query={"beta": "true"}
    )
    assert n.input_tokens == DEFAULT_USAGE["anthropic.count_tokens"]["input_tokens"] == 16
    assert fake.last.path == "/v1/messages/count_tokens" and fake.last.query == {"beta": "true"}
    fake.error(529)
    with pytest.raises(anthropic.InternalServerError) as info:
        await client.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 529 and info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    fake.error(429)
    with pytest.raises(anthropic.RateLimitError):
        await client.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    # an `event: error` mid-stream, as the API sends when it overloads after message_start
    fake.reply(sse=[*default_sse("anthropic", "messages")[:3], anthropic_wire.error_event(529)])
    with pytest.raises(anthropic.APIStatusError):
        async for _ in await client.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}], stream=True
        ):
            pass


# ------------------------------------------------------------------ gemini


async def test_gemini_generate_and_stream(gem: tuple[FakeUpstream, genai.Client]) -> None:
    fake, client = gem
    out = await client.aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
    u = DEFAULT_USAGE["gemini.generate"]
    assert out.text == DEFAULT_TEXT and out.model_version == "gemini-2.5-flash" and out.response_id
    md = out.usage_metadata
    assert md is not None and (md.prompt_token_count, md.candidates_token_count) == (9, 5) == (
        u["input_tokens"],
        u["output_tokens"],
    )
    assert (md.thoughts_token_count, md.cached_content_token_count, md.total_token_count) == (2, 1, 16)
    assert fake.last.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert fake.last.headers["x-goog-api-key"] == "g-test"
    chunks = [
        c
        async for c in await client.aio.models.generate_content_stream(model="gemini-2.5-pro", contents="hi")
    ]
    assert tuple(c.text for c in chunks) == DEFAULT_DELTAS
    assert chunks[-1].usage_metadata is not None and chunks[-1].usage_metadata.total_token_count == 16
    assert chunks[-1].model_version == "gemini-2.5-pro"
    assert fake.last.path.endswith(":streamGenerateContent") and fake.last.query == {"alt": "sse"}


async def test_gemini_tools_count_embed(gem: tuple[FakeUpstream, genai.Client]) -> None:
    _, client = gem
    tool = genai_types.Tool(function_declarations=[genai_types.FunctionDeclaration(name="lookup")])
    out = await client.aio.models.generate_content(
        model="gemini-2.5-flash",
        contents="hi",
        config=genai_types.GenerateContentConfig(
            tools=[tool], automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(disable=True)
        ),
    )
    assert out.function_calls and out.function_calls[0].name == "lookup"
    assert out.function_calls[0].args == DEFAULT_TOOL_ARGS
    n = await client.aio.models.count_tokens(model="gemini-2.5-flash", contents="hi")
    assert n.total_tokens == 9
    emb = await client.aio.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
    assert emb.embeddings and [e.values for e in emb.embeddings] == [fake_vector("a"), fake_vector("b")]


async def test_gemini_errors(gem: tuple[FakeUpstream, genai.Client]) -> None:
    fake, client = gem
    fake.error(429)
    with pytest.raises(genai_errors.ClientError) as info:
        await client.aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    fake.error(503, "overloaded")
    with pytest.raises(genai_errors.ServerError) as srv:
        await client.aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert srv.value.message == "overloaded"


async def test_gemini_raw_embed_and_json_array_stream(gem: tuple[FakeUpstream, genai.Client]) -> None:
    fake, _ = gem
    async with aiohttp.ClientSession() as s:
        url = fake.base_url + "/v1beta/models/gemini-embedding-001:embedContent"
        async with s.post(url, json={"content": {"parts": [{"text": "a"}]}}) as r:
            assert (await r.json())["embedding"]["values"] == fake_vector("a")
        url = fake.base_url + "/v1beta/models/g:streamGenerateContent"  # no alt=sse: one JSON array
        async with s.post(url, json={"contents": []}) as r:
            body = await r.json()
        assert [c["candidates"][0]["content"]["parts"][0]["text"] for c in body] == list(DEFAULT_DELTAS)


# ------------------------------------------------------------------ stream control


async def test_cut_after_aborts_mid_stream(oai: tuple[FakeUpstream, openai.AsyncOpenAI]) -> None:
    fake, client = oai
    fake.reply(cut_after=3)  # role chunk + 2 text deltas, then the connection drops
    got: list[str] = []
    stream = await client.chat.completions.create(
        model="gpt-5", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "Hello from"
    fake.reply(disconnect=True)
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    ok = await client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    assert ok.choices[0].message.content == DEFAULT_TEXT


async def test_chunk_delay_spaces_events_and_scripted_sse() -> None:
    async with running_fake("anthropic") as fake, aiohttp.ClientSession() as s:
        events = default_sse("anthropic", "messages", {"model": "claude-x"})
        fake.reply(sse=events, chunk_delay_s=0.03, headers={"x-extra": "1"})
        arrivals: list[float] = []
        async with s.post(fake.base_url + "/v1/messages?beta=true", json={"stream": True}) as r:
            assert r.headers["Content-Type"].startswith("text/event-stream") and r.headers["x-extra"] == "1"
            buf = b""
            async for data in r.content.iter_any():
                buf += data
                arrivals.extend(time.monotonic() for _ in range(data.count(b"\n\n")))
        assert buf == b"".join(events) and len(arrivals) == len(events)
        # spaced out on the wire: the whole stream took the gaps, and most events came in their own read
        assert arrivals[-1] - arrivals[0] >= 0.9 * 0.03 * (len(events) - 1)
        assert sum(b > a for a, b in itertools.pairwise(arrivals)) >= len(events) // 2
        fake.reply(json={"custom": True}, status=201, delay_s=0.05)
        t0 = time.monotonic()
        async with s.post(fake.base_url + "/v1/messages", json={}) as r:
            assert r.status == 201 and await r.json() == {"custom": True}
        assert time.monotonic() - t0 >= 0.05


async def test_api_key_enforcement_and_unknown_path() -> None:
    async with running_fake("gemini", api_key="right") as fake, aiohttp.ClientSession() as s:
        url = fake.base_url + "/v1beta/models/g:generateContent"
        async with s.post(url, json={}, headers={"x-goog-api-key": "wrong"}) as r:
            assert r.status == 401 and (await r.json())["error"]["status"] == "UNAUTHENTICATED"
        async with s.post(url + "?key=right", json={}) as r:
            assert r.status == 200
        async with s.post(fake.base_url + "/v1beta/nothing?key=right", json={}) as r:
            assert r.status == 404 and (await r.json())["error"]["code"] == 404
    assert [x.query.get("key") for x in fake.received] == [None, "right", "right"]


async def test_fixture_factory(fake_upstream) -> None:
    a = await fake_upstream("openai")
    b = await fake_upstream("anthropic")
    assert a.base_url.endswith("/v1") and a.port != b.port and not b.base_url.endswith("/v1")
    async with aiohttp.ClientSession() as s, s.get(a.base_url + "/models") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
    await asyncio.sleep(0)
