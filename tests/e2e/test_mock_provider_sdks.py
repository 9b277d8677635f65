"""The mock provider end to end: the official SDK clients over HTTP against a loopback server that
answers with the mock's replies (the replies themselves are checked against the SDKs' own types in
tests/unit/upstream/test_mock_provider.py)."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from aiohttp import web
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes
from tests.unit.upstream.test_mock_provider import PROMPT, WORDS

from sidegate import apis
from sidegate.upstream.mock.model import mock_reply


async def _serve(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    path = request.path
    if ":" in path.rsplit("/", 1)[-1]:  # gemini: /v1beta/models/{model}:{method}
        model, method = path.rsplit("/", 1)[-1].split(":")
        api = {
            "generateContent": apis.GEMINI_GENERATE,
            "streamGenerateContent": apis.GEMINI_GENERATE,
            "countTokens": apis.GEMINI_COUNT_TOKENS,
            "embedContent": apis.GEMINI_EMBED,
        }[method]
        stream = method == "streamGenerateContent"
    else:
        api = {
            "/v1/chat/completions": apis.OPENAI_CHAT,
            "/v1/responses": apis.OPENAI_RESPONSES,
            "/v1/embeddings": apis.OPENAI_EMBEDDINGS,
            "/v1/messages": apis.ANTHROPIC_MESSAGES,
            "/v1/messages/count_tokens": apis.ANTHROPIC_COUNT_TOKENS,
        }[path]
        model, stream = body.get("model", ""), bool(body.get("stream"))
    reply = mock_reply(api, body, model, stream)
    if reply.events is None:
        return web.Response(status=reply.status, body=reply.body, content_type="application/json")
    response = web.StreamResponse(status=reply.status, headers={"Content-Type": reply.content_type})
    await response.prepare(request)
    for event in reply.events:
        await response.write(event)
    await response.write_eof()
    return response


@pytest.fixture
async def base_url(aiohttp_server):
    app = web.Application()
    app.router.add_post("/{tail:.*}", _serve)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def test_openai_sdk_end_to_end(base_url):
    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="k", max_retries=0)
    messages: Any = [{"role": "user", "content": PROMPT}]
    completion = await client.chat.completions.create(model="gpt-x", messages=messages)
    assert completion.choices[0].message.content == PROMPT
    stream = await client.chat.completions.create(
        model="gpt-x", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == PROMPT
    assert chunks[-1].usage == completion.usage

    async with client.responses.stream(model="gpt-x", input=PROMPT) as rs:
        deltas = [e.delta async for e in rs if e.type == "response.output_text.delta"]
        final = await rs.get_final_response()
    assert "".join(deltas) == final.output_text == PROMPT and final.status == "completed"
    # truncated: like the real service, the stream ends with response.incomplete (which the SDK's
    # stream helper does not treat as final: openai/openai-python#3538), so read the raw events
    events = [
        e
        async for e in await client.responses.create(
            model="gpt-x", input=PROMPT, max_output_tokens=3, stream=True
        )
    ]
    last = events[-1]
    assert last.type == "response.incomplete" and last.response.output_text == "The quick  brown"
    assert last.response.usage is not None and last.response.usage.output_tokens == 3

    embedded = await client.embeddings.create(model="e", input=["a", "b"], dimensions=16)  # SDK asks base64
    assert [len(d.embedding) for d in embedded.data] == [16, 16]
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": "mock:error:429"}]
        )
    await client.close()


async def test_anthropic_sdk_end_to_end(base_url):
    client = anthropic.AsyncAnthropic(base_url=base_url, api_key="k", max_retries=0)
    messages: Any = [{"role": "user", "content": PROMPT}]
    message = await client.messages.create(model="claude-x", max_tokens=100, messages=messages)
    async with client.messages.stream(model="claude-x", max_tokens=100, messages=messages) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == message.content[0].text == PROMPT  # type: ignore[union-attr]
    assert final.usage.output_tokens == message.usage.output_tokens == WORDS
    count = await client.messages.count_tokens(model="claude-x", messages=messages)
    assert count.input_tokens == message.usage.input_tokens
    with pytest.raises(anthropic.APIStatusError) as caught:
        await client.messages.create(
            model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "mock:error:529"}]
        )
    assert caught.value.status_code == 529
    await client.close()


async def test_genai_sdk_end_to_end(base_url):
    client = genai.Client(api_key="k", http_options=gtypes.HttpOptions(base_url=base_url))
    response = await client.aio.models.generate_content(model="gemini-x", contents=PROMPT)
    assert response.text == PROMPT
    stream = await client.aio.models.generate_content_stream(
        model="gemini-x", contents=PROMPT, config=gtypes.GenerateContentConfig(max_output_tokens=2)
    )
    chunks = [c async for c in stream]
    assert "".join(c.text or "" for c in chunks) == "The quick"
    assert chunks[-1].candidates[0].finish_reason == gtypes.FinishReason.MAX_TOKENS
    count = await client.aio.models.count_tokens(model="gemini-x", contents=PROMPT)
    assert count.total_tokens == response.usage_metadata.prompt_token_count
    with pytest.raises(genai_errors.ClientError) as caught:
        await client.aio.models.generate_content(model="gemini-x", contents="mock:error:429")
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
