"""Masked streams read through the official SDKs: a loopback server streams each format's events
through the output guard of tests/unit/governance/test_stream_guard.py, and the OpenAI, Anthropic and
Gen AI SDKs read the text back whole, masked, with their final answers agreeing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest
from aiohttp import web
from google import genai
from google.genai import types as gtypes
from tests.unit.governance.test_stream_guard import MASKED, PII_MASK, RENDER, SPLIT, active, completion, run

from sidegate import apis


def _serve_guarded(chunks: list[str]) -> Callable[[web.Request], Any]:
    async def serve(request: web.Request) -> web.StreamResponse:
        path = request.path
        api = (apis.OPENAI_CHAT if path.endswith("/chat/completions") else apis.OPENAI_RESPONSES
               if path.endswith("/responses") else apis.ANTHROPIC_MESSAGES if path.endswith("/messages")
               else apis.GEMINI_GENERATE)
        body = await request.json()
        guard = active(PII_MASK).stream(api)
        assert guard is not None
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for block in run(guard, RENDER[api](completion(chunks, **body))):
            await response.write(block)
        await response.write_eof()
        return response
    return serve


@pytest.fixture
async def sdk_base(aiohttp_server: Any) -> str:
    app = web.Application()
    app.router.add_post("/{tail:.*}", _serve_guarded(SPLIT))
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def test_openai_sdk_reads_masked_streams(sdk_base: str) -> None:
    client = openai.AsyncOpenAI(base_url=sdk_base + "/v1", api_key="k", max_retries=0)
    messages: Any = [{"role": "user", "content": "hi"}]
    stream = await client.chat.completions.create(model="m", messages=messages, stream=True,
                                                  stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == MASKED
    assert chunks[-1].usage is not None
    async with client.responses.stream(model="m", input="hi") as rs:
        deltas = [e.delta async for e in rs if e.type == "response.output_text.delta"]
        final = await rs.get_final_response()
    assert "".join(deltas) == final.output_text == MASKED
    await client.close()


async def test_anthropic_sdk_reads_masked_streams(sdk_base: str) -> None:
    client = anthropic.AsyncAnthropic(base_url=sdk_base, api_key="k", max_retries=0)
    async with client.messages.stream(model="m", max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as s:
        text = "".join([t async for t in s.text_stream])
        final = await s.get_final_message()
    assert text == MASKED == final.content[0].text  # type: ignore[union-attr]
    await client.close()


async def test_genai_sdk_reads_masked_streams(sdk_base: str) -> None:
    client = genai.Client(api_key="k", http_options=gtypes.HttpOptions(base_url=sdk_base))
    stream = await client.aio.models.generate_content_stream(model="m", contents="hi")
    assert "".join([c.text or "" async for c in stream]) == MASKED
