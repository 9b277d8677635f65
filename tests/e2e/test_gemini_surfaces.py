"""Native Gemini surfaces (`{p}/gemini/v1beta/models/{model}:{method}`), driven by google-genai's
async client and by raw HTTP, against a fake Gemini upstream and the built-in mock provider.

Checked on every call: what the SDK parsed, what the fake upstream received (path with the model
of the destination, query, credential swapped for the provider's, body bytes) and the usage row.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from tests.support.fakes import DEFAULT_TEXT, FakeUpstream, Received, gemini_wire, sse_data
from tests.support.fakes.fixtures.common import fake_vector
from tests.support.gateway import BOT_KEY, KEY, Gateway

UPSTREAM_KEY = "upstream-gem-key"
GEMINI_CLI_UA = "GeminiCLI/0.15.0 (linux; x64)"
JSON = {"content-type": "application/json"}

# The fake's default usageMetadata (see tests/support/fakes/fixtures/gemini_wire.py), normalised: output
# counts candidates + thoughts, reasoning is the thoughts, cache reads are cachedContentTokenCount.
DEFAULT_ROW_TOKENS = {
    "input_tokens": 9,
    "output_tokens": 5 + 2,
    "total_tokens": 16,
    "cache_read_input_tokens": 1,
    "cache_creation_input_tokens": 0,
    "reasoning_tokens": 2,
    "tokens_estimated": False,
}

# A usage block with every field Gemini reports, tool-use prompt tokens included.
RICH_USAGE = {
    "promptTokenCount": 100,
    "toolUsePromptTokenCount": 20,
    "candidatesTokenCount": 30,
    "thoughtsTokenCount": 12,
    "cachedContentTokenCount": 40,
    "totalTokenCount": 162,
}
RICH_ROW_TOKENS = {
    "input_tokens": 120,
    "output_tokens": 42,
    "total_tokens": 162,
    "cache_read_input_tokens": 40,
    "cache_creation_input_tokens": 0,
    "reasoning_tokens": 12,
    "tokens_estimated": False,
}


def policy(fake: FakeUpstream, *, rewrite: bool = True) -> str:
    rewrites = """
      gemini-2.5-pro: {destinations: [{provider: gem, model: gemini-2.5-pro-002}]}
      text-embedding-004: {destinations: [{provider: gem, model: gemini-embedding-001}]}
      secret-model: {destinations: [{provider: gem}], permissions: {principals: [ci-bot]}}""" if rewrite else ""
    return f"""
    providers:
      gem: {{kind: gemini, base_url: "{fake.base_url}", api_key: "{UPSTREAM_KEY}"}}
      echo: {{kind: mock}}
    models:{rewrites}
      "gemini-*": {{destinations: [{{provider: gem}}]}}
      mock-echo: {{destinations: [{{provider: echo}}]}}
    """


@dataclass
class Env:
    gw: Gateway
    fake: FakeUpstream

    def url(self, model: str, method: str, query: str = "") -> str:
        return f"{self.gw.base}/gemini/v1beta/models/{model}:{method}" + (f"?{query}" if query else "")


@pytest_asyncio.fixture
async def env(gateway: Any, fake_upstream: Any) -> Env:
    fake = await fake_upstream("gemini", api_key=UPSTREAM_KEY)
    return Env(await gateway(policy(fake)), fake)


@pytest_asyncio.fixture
async def client(env: Env) -> AsyncIterator[Any]:
    aio = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=f"{env.gw.base}/gemini")).aio
    yield aio
    await aio.aclose()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def assert_upstream_auth(received: Received) -> None:
    """The provider's key is the only credential sent; nothing of the caller's sidegate key leaks."""
    assert received.headers.getall("x-goog-api-key") == [UPSTREAM_KEY]
    for name in ("authorization", "x-api-key", "x-sidegate-token", "x-databricks-ai-gateway-token"):
        assert name not in received.headers
    assert "key" not in received.query
    for name, value in received.headers.items():
        assert KEY not in value, f"sidegate key forwarded in header {name}"
    assert KEY not in received.query_string


def assert_tokens(row: dict[str, Any], expected: dict[str, Any]) -> None:
    assert {k: row[k] for k in expected} == expected


def parse_sse(raw: bytes) -> list[dict[str, Any]]:
    events = [block for block in raw.replace(b"\r\n", b"\n").split(b"\n\n") if block.strip()]
    out = []
    for block in events:
        lines = [ln[len(b"data: "):] for ln in block.split(b"\n") if ln.startswith(b"data: ")]
        out.append(orjson.loads(b"\n".join(lines)))
    return out


def sse_text(raw: bytes) -> str:
    return "".join(
        part.get("text", "")
        for event in parse_sse(raw)
        for cand in event.get("candidates", [])
        for part in cand["content"]["parts"]
    )


# ---------------------------------------------------------------- google-genai against the fake


async def test_sdk_generate_content(env: Env, client: Any) -> None:
    resp = await client.models.generate_content(model="gemini-2.5-flash", contents="Hi there")
    assert resp.text == DEFAULT_TEXT
    assert resp.usage_metadata.prompt_token_count == 9
    assert resp.usage_metadata.thoughts_token_count == 2

    [got] = env.fake.received
    assert got.method == "POST"
    assert got.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert got.query == {}
    assert_upstream_auth(got)
    assert got.json()["contents"] == [{"parts": [{"text": "Hi there"}], "role": "user"}]

    row = await env.gw.row()
    assert row["api_type"] == "gemini/generateContent"
    assert row["client"] == "google-genai-python"
    assert row["requester"] == "alice@example.com"
    assert row["model_service"] == "gemini-*"
    assert (row["destination_type"], row["destination_name"], row["destination_model"]) == (
        "gemini", "gem", "gemini-2.5-flash")
    assert (row["status_code"], row["error_code"], row["streaming"]) == (200, None, False)
    assert_tokens(row, DEFAULT_ROW_TOKENS)
    [attempt] = row["routing_information"]
    assert {k: attempt[k] for k in ("destination", "provider", "model", "status", "reason")} == {
        "destination": "gem", "provider": "gemini", "model": "gemini-2.5-flash", "status": 200, "reason": "ok"}


async def test_sdk_generate_content_stream(env: Env, client: Any) -> None:
    pieces = [chunk.text async for chunk in await client.models.generate_content_stream(
        model="gemini-2.5-flash", contents="Stream please")]
    assert "".join(p or "" for p in pieces) == DEFAULT_TEXT
    assert len(pieces) == 3

    [got] = env.fake.received
    assert got.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert got.query == {"alt": "sse"}
    assert got.query_string == "alt=sse"  # sidegate adds alt=sse itself; never sent twice
    assert_upstream_auth(got)

    row = await env.gw.row()
    assert row["api_type"] == "gemini/streamGenerateContent"
    assert (row["status_code"], row["streaming"], row["destination_model"]) == (200, True, "gemini-2.5-flash")
    assert row["time_to_first_byte_ms"] is not None
    assert_tokens(row, DEFAULT_ROW_TOKENS)


async def test_sdk_count_tokens(env: Env, client: Any) -> None:
    resp = await client.models.count_tokens(model="gemini-2.5-flash", contents="Count these")
    assert resp.total_tokens == 9

    [got] = env.fake.received
    assert got.path == "/v1beta/models/gemini-2.5-flash:countTokens"
    assert_upstream_auth(got)
    assert got.json()["contents"] == [{"parts": [{"text": "Count these"}], "role": "user"}]

    row = await env.gw.row()
    assert row["api_type"] == "gemini/countTokens"
    assert row["status_code"] == 200
    # counting tokens generates and bills nothing
    assert_tokens(row, {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "tokens_estimated": False})


async def test_sdk_embed_content_uses_batch_embed_contents(env: Env, client: Any) -> None:
    resp = await client.models.embed_content(
        model="gemini-embedding-001", contents=["first text", "second text"],
        config=types.EmbedContentConfig(output_dimensionality=4))
    assert [e.values for e in resp.embeddings] == [fake_vector("first text", 4), fake_vector("second text", 4)]

    [got] = env.fake.received
    assert got.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert_upstream_auth(got)
    requests = got.json()["requests"]
    assert [r["model"] for r in requests] == ["models/gemini-embedding-001"] * 2
    assert [r["content"]["parts"][0]["text"] for r in requests] == ["first text", "second text"]

    row = await env.gw.row()
    assert row["api_type"] == "gemini/batchEmbedContents"
    assert (row["status_code"], row["model_service"], row["destination_model"]) == (
        200, "gemini-*", "gemini-embedding-001")
    # the embeddings API reports no usage: the input is estimated, nothing is generated
    assert row["tokens_estimated"] is True
    assert row["output_tokens"] == 0
    assert row["input_tokens"] > 0


# ---------------------------------------------------------------- model rewrite


async def test_model_rewritten_in_url(env: Env, client: Any) -> None:
    resp = await client.models.generate_content(model="gemini-2.5-pro", contents="rewrite me")
    assert resp.text == DEFAULT_TEXT
    stream = await client.models.generate_content_stream(model="gemini-2.5-pro", contents="and me")
    assert "".join([c.text or "" async for c in stream]) == DEFAULT_TEXT

    assert [r.path for r in env.fake.received] == [
        "/v1beta/models/gemini-2.5-pro-002:generateContent",
        "/v1beta/models/gemini-2.5-pro-002:streamGenerateContent",
    ]
    assert env.fake.received[1].query_string == "alt=sse"
    for got in env.fake.received:
        assert b"gemini-2.5-pro" not in got.body  # the model lives in the URL only
        assert_upstream_auth(got)

    rows = await env.gw.rows()
    assert [(r["model_service"], r["destination_model"], r["streaming"]) for r in rows] == [
        ("gemini-2.5-pro", "gemini-2.5-pro-002", False),
        ("gemini-2.5-pro", "gemini-2.5-pro-002", True),
    ]
    assert [r["routing_information"][0]["model"] for r in rows] == ["gemini-2.5-pro-002"] * 2


async def test_model_rewrite_reaches_batch_embed_requests(env: Env, client: Any) -> None:
    """batchEmbedContents names the model again in every request; it must match the URL's."""
    resp = await client.models.embed_content(model="text-embedding-004", contents=["a", "b"])
    assert len(resp.embeddings) == 2

    [got] = env.fake.received
    assert got.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert [r["model"] for r in got.json()["requests"]] == ["models/gemini-embedding-001"] * 2
    row = await env.gw.row()
    assert (row["model_service"], row["destination_model"]) == ("text-embedding-004", "gemini-embedding-001")


async def test_raw_body_forwarded_byte_for_byte_even_when_model_rewritten(
    env: Env, http: aiohttp.ClientSession,
) -> None:
    body = (b'{ "contents":[{"role":"user","parts":[{"text":"caf\xc3\xa9 \\u00e9"}]}],\n'
            b'  "generationConfig": {"temperature": 0.30, "thinkingConfig": {"thinkingBudget": -1}},\n'
            b'  "futureField": {"x": [1, 2.50, null]} }')
    for model, method, query in (
        ("gemini-2.5-pro", "generateContent", ""),
        ("gemini-2.5-pro", "streamGenerateContent", "alt=sse"),
    ):
        async with http.post(env.url(model, method, query), data=body,
                             headers={"x-goog-api-key": KEY, **JSON}) as resp:
            assert resp.status == 200, await resp.text()
            await resp.read()
        got = env.fake.last
        assert got.path == f"/v1beta/models/gemini-2.5-pro-002:{method}"
        assert got.body == body
        assert got.headers["content-type"] == "application/json"


# ---------------------------------------------------------------- exact relay and usage normalisation


async def test_json_answer_relayed_unchanged_and_usage_normalised(env: Env, http: aiohttp.ClientSession) -> None:
    answer = orjson.dumps({
        "candidates": [{"content": {"parts": [{"text": "thought-through"}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": RICH_USAGE, "modelVersion": "gemini-2.5-flash", "responseId": "abc",
    }) + b"\n"
    env.fake.reply(body=answer, headers={"Content-Type": "application/json; charset=UTF-8"})
    async with http.post(env.url("gemini-2.5-flash", "generateContent"), data=b'{"contents":[]}',
                         headers={"x-goog-api-key": KEY, **JSON}) as resp:
        assert resp.status == 200
        assert resp.headers["content-type"] == "application/json; charset=UTF-8"
        assert await resp.read() == answer
        assert resp.headers["x-sidegate-request-id"]
    row = await env.gw.row()
    assert row["request_id"] == resp.headers["x-sidegate-request-id"]
    assert_tokens(row, RICH_ROW_TOKENS)


async def test_stream_relayed_unchanged_and_final_usage_normalised(
    env: Env, http: aiohttp.ClientSession,
) -> None:
    def chunk(text: str, usage: dict[str, int], finish: str | None = None) -> bytes:
        cand: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        if finish:
            cand["finishReason"] = finish
        return sse_data({"candidates": [cand], "usageMetadata": usage, "modelVersion": "gemini-2.5-pro"})

    early = {"promptTokenCount": 100, "toolUsePromptTokenCount": 20, "totalTokenCount": 120}
    events = [chunk("Hel", early), chunk("lo ", early), chunk("world", RICH_USAGE, "STOP")]
    env.fake.reply(sse=events)
    async with http.post(env.url("gemini-2.5-flash", "streamGenerateContent", "alt=sse"),
                         data=b'{"contents":[{"parts":[{"text":"x"}]}]}',
                         headers={"x-goog-api-key": KEY, **JSON}) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        raw = await resp.read()
    assert raw == b"".join(events)
    assert sse_text(raw) == "Hello world"
    row = await env.gw.row()
    assert row["streaming"] is True
    assert_tokens(row, RICH_ROW_TOKENS)


# ---------------------------------------------------------------- Gemini CLI wire facts


async def test_gemini_cli_routing_then_stream(
    gateway: Any, fake_upstream: Any, http: aiohttp.ClientSession,
) -> None:
    """Gemini CLI: x-goog-api-key only, a :generateContent on a small routing model, then
    :streamGenerateContent?alt=sse on the main model — the model in the URL changes between them."""
    fake = await fake_upstream("gemini", api_key=UPSTREAM_KEY)
    gw = await gateway(policy(fake, rewrite=False))
    env = Env(gw, fake)
    headers = {"x-goog-api-key": KEY, "user-agent": GEMINI_CLI_UA, "content-type": "application/json",
               "x-goog-api-client": "google-genai-sdk/1.16.0 gl-node/v22.17.0"}
    router_body = orjson.dumps({
        "contents": [{"role": "user", "parts": [{"text": "pick a model for: refactor utils.py"}]}],
        "systemInstruction": {"role": "user", "parts": [{"text": "You are a routing classifier."}]},
        "generationConfig": {"temperature": 0, "responseMimeType": "application/json",
                             "responseJsonSchema": {"type": "object",
                                                    "properties": {"model_choice": {"type": "string"}}},
                             "thinkingConfig": {"thinkingBudget": 0}},
    })
    async with http.post(env.url("gemini-2.5-flash-lite", "generateContent"), data=router_body,
                         headers=headers) as resp:
        assert resp.status == 200
        routed = await resp.json()
    assert routed["candidates"][0]["content"]["parts"][0]["text"] == DEFAULT_TEXT

    main_body = orjson.dumps({
        "contents": [{"role": "user", "parts": [{"text": "refactor utils.py"}]}],
        "tools": [{"functionDeclarations": [{"name": "read_file", "parameters": {"type": "object"}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "NONE"}},
        "generationConfig": {"temperature": 0, "topP": 1, "thinkingConfig": {"includeThoughts": True}},
        "session_id": "0f6c9d0e-cli-session",
    })
    async with http.post(env.url("gemini-2.5-pro", "streamGenerateContent", "alt=sse"), data=main_body,
                         headers=headers) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        raw = await resp.read()
    assert sse_text(raw) == DEFAULT_TEXT

    first, second = fake.received
    assert first.path == "/v1beta/models/gemini-2.5-flash-lite:generateContent"
    assert first.query_string == ""
    assert second.path == "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
    assert second.query_string == "alt=sse"
    assert (first.body, second.body) == (router_body, main_body)
    for got in (first, second):
        assert_upstream_auth(got)

    rows = await gw.rows()
    assert [(r["client"], r["user_agent"], r["model_service"]) for r in rows] == [
        ("gemini-cli", GEMINI_CLI_UA, "gemini-*")] * 2
    assert [(r["api_type"], r["destination_model"], r["streaming"], r["status_code"]) for r in rows] == [
        ("gemini/generateContent", "gemini-2.5-flash-lite", False, 200),
        ("gemini/streamGenerateContent", "gemini-2.5-pro", True, 200),
    ]
    for row in rows:
        assert_tokens(row, DEFAULT_ROW_TOKENS)


# ---------------------------------------------------------------- ?key= query auth


async def test_query_key_auth_is_stripped_upstream(env: Env, http: aiohttp.ClientSession) -> None:
    body = b'{"contents":[{"parts":[{"text":"hello"}]}]}'
    async with http.post(env.url("gemini-2.5-flash", "generateContent", f"key={KEY}"), data=body,
                         headers=JSON) as resp:
        assert resp.status == 200
        assert (await resp.json())["candidates"][0]["content"]["parts"][0]["text"] == DEFAULT_TEXT
    async with http.post(env.url("gemini-2.5-flash", "streamGenerateContent", f"key={KEY}&alt=sse"),
                         data=body, headers=JSON) as resp:
        assert resp.status == 200
        assert sse_text(await resp.read()) == DEFAULT_TEXT

    first, second = env.fake.received
    assert (first.query_string, second.query_string) == ("", "alt=sse")
    for got in (first, second):
        assert_upstream_auth(got)
        assert got.body == body
    rows = await env.gw.rows()
    assert [(r["requester"], r["status_code"]) for r in rows] == [("alice@example.com", 200)] * 2


async def test_wrong_query_key_is_refused(env: Env, http: aiohttp.ClientSession) -> None:
    async with http.post(env.url("gemini-2.5-flash", "generateContent", "key=sk-not-a-key"),
                         data=b'{"contents":[]}', headers=JSON) as resp:
        assert resp.status == 401
        err = (await resp.json())["error"]
    assert (err["code"], err["status"]) == (401, "UNAUTHENTICATED")
    assert "sk-not-a-key" not in err["message"]
    assert env.fake.received == []


# ---------------------------------------------------------------- embedContent (raw)


async def test_embed_content_raw(env: Env, http: aiohttp.ClientSession) -> None:
    body = (b'{"model": "models/gemini-embedding-001",'
            b' "content": {"parts": [{"text": "embed this"}]}, "outputDimensionality": 6}')
    async with http.post(env.url("gemini-embedding-001", "embedContent"), data=body,
                         headers={"x-goog-api-key": KEY, **JSON}) as resp:
        assert resp.status == 200
        answer = await resp.json()
    assert answer == {"embedding": {"values": fake_vector("embed this", 6)}}

    [got] = env.fake.received
    assert got.path == "/v1beta/models/gemini-embedding-001:embedContent"
    assert got.body == body
    assert_upstream_auth(got)
    row = await env.gw.row()
    assert (row["api_type"], row["status_code"], row["destination_model"]) == (
        "gemini/embedContent", 200, "gemini-embedding-001")
    assert (row["tokens_estimated"], row["output_tokens"]) == (True, 0)
    # no usage in the answer: ≈ 4 characters a token over the request's text ("embed this")
    assert row["input_tokens"] == math.ceil(len("embed this") / 4)


# ---------------------------------------------------------------- errors in Google's shape


def assert_google_error(body: dict[str, Any], code: int, status: str) -> dict[str, Any]:
    err = body["error"]
    assert (err["code"], err["status"]) == (code, status)
    assert isinstance(err["message"], str) and err["message"]
    return err


async def test_upstream_429_relayed_to_sdk(env: Env, client: Any, http: aiohttp.ClientSession) -> None:
    env.fake.error(429)
    with pytest.raises(genai_errors.ClientError) as info:
        await client.models.generate_content(model="gemini-2.5-flash", contents="too much")
    assert info.value.code == 429
    assert info.value.status == "RESOURCE_EXHAUSTED"
    assert len(env.fake.received) == 1  # one destination, no fallback: tried once, relayed

    env.fake.error(429, "Quota exceeded for metric generate_content_requests")
    async with http.post(env.url("gemini-2.5-flash", "streamGenerateContent", "alt=sse"),
                         data=b'{"contents":[]}', headers={"x-goog-api-key": KEY, **JSON}) as resp:
        assert resp.status == 429
        assert await resp.json() == gemini_wire.error_body(429, "Quota exceeded for metric generate_content_requests")

    rows = await env.gw.rows()
    for row, streaming in zip(rows, (False, True), strict=True):
        assert (row["status_code"], row["error_code"], row["streaming"]) == (429, "RESOURCE_EXHAUSTED", streaming)
        assert_tokens(row, {"input_tokens": 0, "output_tokens": 0, "tokens_estimated": False})
        assert [(a["status"], a["reason"]) for a in row["routing_information"]] == [(429, "retryable_status")]


async def test_unknown_model_is_404_not_found(env: Env, client: Any, http: aiohttp.ClientSession) -> None:
    with pytest.raises(genai_errors.ClientError) as info:
        await client.models.generate_content(model="claude-sonnet-4-5", contents="hi")
    assert (info.value.code, info.value.status) == (404, "NOT_FOUND")

    # a service the caller may not use is reported as unknown, and never listed
    async with http.post(env.url("secret-model", "generateContent"), data=b'{"contents":[]}',
                         headers={"x-goog-api-key": KEY, **JSON}) as resp:
        assert resp.status == 404
        err = assert_google_error(await resp.json(), 404, "NOT_FOUND")
    assert "secret-model" in err["message"].split(";")[0]
    assert "secret-model" not in err["message"].split(";", 1)[1]
    assert "gemini-*" in err["message"]
    assert env.fake.received == []

    rows = await env.gw.rows()
    assert [(r["status_code"], r["error_code"], r["model_service"], r["destination_name"]) for r in rows] == [
        (404, "model_not_found", "claude-sonnet-4-5", None),
        (404, "model_not_found", "secret-model", None),
    ]


async def test_permitted_caller_reaches_restricted_service(env: Env, http: aiohttp.ClientSession) -> None:
    async with http.post(env.url("secret-model", "generateContent"), data=b'{"contents":[]}',
                         headers={"x-goog-api-key": BOT_KEY, **JSON}) as resp:
        assert resp.status == 200
    assert env.fake.last.path == "/v1beta/models/secret-model:generateContent"
    assert (await env.gw.row())["requester"] == "ci-bot"


@pytest.mark.parametrize("body", [b'{"contents": [', b"[1, 2]", b""])
async def test_bad_json_is_400_invalid_argument(env: Env, http: aiohttp.ClientSession, body: bytes) -> None:
    async with http.post(env.url("gemini-2.5-flash", "generateContent"), data=body,
                         headers={"x-goog-api-key": KEY, **JSON}) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/json"
        assert_google_error(await resp.json(), 400, "INVALID_ARGUMENT")
    assert env.fake.received == []
    row = await env.gw.row()
    assert (row["api_type"], row["status_code"], row["error_code"]) == (
        "gemini/generateContent", 400, "invalid_json")


@pytest.mark.parametrize("path", [
    "/gemini/v1beta/models/gemini-2.5-flash:fooBar",
    "/gemini/v1beta/models/gemini-2.5-flash",
    "/gemini/v1beta/tunedModels/x:generateContent",
])
async def test_unknown_method_is_404_in_google_shape(
    env: Env, http: aiohttp.ClientSession, path: str,
) -> None:
    async with http.post(env.gw.base + path, data=b'{"contents":[]}', headers={"x-goog-api-key": KEY, **JSON}) as resp:
        assert resp.status == 404
        assert_google_error(await resp.json(), 404, "NOT_FOUND")
    assert env.fake.received == []
    row = await env.gw.row()
    assert (row["status_code"], row["error_code"]) == (404, "not_found")


async def test_missing_or_wrong_key_is_401_unauthenticated(env: Env, http: aiohttp.ClientSession) -> None:
    async with http.post(env.url("gemini-2.5-flash", "generateContent"), data=b'{"contents":[]}',
                         headers=JSON) as resp:
        assert resp.status == 401
        assert_google_error(await resp.json(), 401, "UNAUTHENTICATED")
    wrong = genai.Client(api_key="sk-wrong",
                         http_options=types.HttpOptions(base_url=f"{env.gw.base}/gemini")).aio
    try:
        with pytest.raises(genai_errors.ClientError) as info:
            await wrong.models.generate_content(model="gemini-2.5-flash", contents="hi")
    finally:
        await wrong.aclose()
    assert (info.value.code, info.value.status) == (401, "UNAUTHENTICATED")
    assert env.fake.received == []
    rows = await env.gw.rows()
    assert [(r["status_code"], r["error_code"], r["requester"]) for r in rows] == [
        (401, "missing_credentials", None), (401, "invalid_credentials", None)]


# ---------------------------------------------------------------- the mock provider on gemini surfaces


async def test_mock_generate_json_and_stream(env: Env, client: Any) -> None:
    resp = await client.models.generate_content(model="mock-echo", contents="echo these four words")
    assert resp.text == "echo these four words"
    assert resp.candidates[0].finish_reason == types.FinishReason.STOP
    # input: ceil(21 characters / 4) = 6; output: one token a word
    assert (resp.usage_metadata.prompt_token_count, resp.usage_metadata.candidates_token_count) == (6, 4)

    chunks = [c async for c in await client.models.generate_content_stream(
        model="mock-echo", contents="streamed mock answer",
        config=types.GenerateContentConfig(max_output_tokens=2))]
    assert [c.text for c in chunks] == ["streamed ", "mock"]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert env.fake.received == []

    rows = await env.gw.rows()
    assert [(r["destination_type"], r["destination_name"], r["destination_model"], r["streaming"])
            for r in rows] == [("mock", "echo", "mock-echo", False), ("mock", "echo", "mock-echo", True)]
    assert_tokens(rows[0], {"input_tokens": 6, "output_tokens": 4, "total_tokens": 10, "tokens_estimated": False})
    assert_tokens(rows[1], {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7, "tokens_estimated": False})


async def test_mock_count_tokens_and_batch_embed(env: Env, client: Any) -> None:
    counted = await client.models.count_tokens(model="mock-echo", contents="twelve chars")
    assert counted.total_tokens == 3

    resp = await client.models.embed_content(
        model="mock-echo", contents=["same", "other", "same"],
        config=types.EmbedContentConfig(output_dimensionality=16))
    vectors = [e.values for e in resp.embeddings]
    assert [len(v) for v in vectors] == [16, 16, 16]
    assert vectors[0] == vectors[2] != vectors[1]
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-9) for v in vectors)
    assert env.fake.received == []

    rows = await env.gw.rows()
    assert [(r["api_type"], r["status_code"], r["destination_type"]) for r in rows] == [
        ("gemini/countTokens", 200, "mock"), ("gemini/batchEmbedContents", 200, "mock")]


async def test_mock_error_directive_in_google_shape(env: Env, client: Any) -> None:
    with pytest.raises(genai_errors.ServerError) as info:
        await client.models.generate_content(model="mock-echo", contents="mock:error:503")
    assert (info.value.code, info.value.status) == (503, "UNAVAILABLE")
    row = await env.gw.row()
    assert (row["status_code"], row["error_code"], row["tokens_estimated"]) == (503, "UNAVAILABLE", False)
