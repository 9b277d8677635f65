"""The OpenAI surfaces (native `/openai/v1`, `/codex/v1`, unified `/mlflow/v1`) driven by the official
`openai` SDK and raw aiohttp against fake OpenAI upstreams: what the SDK parses, what the upstream
receives (path, headers, exact bytes), and the usage row."""

from __future__ import annotations

import asyncio
import math
import random
import socket
import struct
from collections import Counter
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from tests.support.fakes import DEFAULT_DELTAS, DEFAULT_TEXT, DEFAULT_USAGE, openai_wire
from tests.support.fakes.fixtures import fake_vector
from tests.support.gateway import BOT_KEY, KEY

CHAT = DEFAULT_USAGE["openai.chat"]
EMBED = DEFAULT_USAGE["openai.embeddings"]
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "total_tokens", "cache_read_input_tokens",
                 "cache_creation_input_tokens", "reasoning_tokens")
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
ROOTS = ("openai", "codex", "mlflow")


def tokens(row: dict[str, Any]) -> dict[str, int]:
    return {k: row[k] for k in TOKEN_COLUMNS}


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def post(url: str, **kwargs: Any) -> tuple[aiohttp.ClientResponse, bytes]:
    """A raw POST; the response (closed) and its body bytes."""
    async with aiohttp.ClientSession() as http, http.post(url, **kwargs) as resp:
        return resp, await resp.read()


def sdk(gw: Any, root: str = "openai", key: str = KEY, sent: list[bytes] | None = None,
        **kwargs: Any) -> openai.AsyncOpenAI:
    """An SDK client for one surface, without retries (so sidegate's own behaviour is what we see).
    With `sent`, the exact body bytes of every request the SDK sends are appended to it."""
    http_client = None
    if sent is not None:
        async def capture(request: Any) -> None:
            sent.append(request.content)
        http_client = openai.DefaultAsyncHttpxClient(event_hooks={"request": [capture]})
    return openai.AsyncOpenAI(base_url=f"{gw.base}/{root}/v1", api_key=key, max_retries=0,
                              http_client=http_client, **kwargs)


def one_fake_policy(fake: Any) -> str:
    return f"""
    providers:
      up: {{kind: openai, base_url: "{fake.base_url}", api_key: sk-upstream}}
      echo: {{kind: mock}}
    models:
      gpt-5: {{destinations: [{{provider: up}}]}}
      gpt-alias: {{destinations: [{{provider: up, model: gpt-real}}]}}
      text-embedding-3-small: {{destinations: [{{provider: up}}]}}
      restricted: {{destinations: [{{provider: up}}], permissions: {{groups: [ml-platform]}}}}
      mock-model: {{destinations: [{{provider: echo}}]}}
    """


@pytest.fixture
async def gw_fake(gateway, fake_upstream):
    fake = await fake_upstream("openai", api_key="sk-upstream")
    gw = await gateway(one_fake_policy(fake))
    return gw, fake


def assert_upstream_chat(fake: Any, model: str = "gpt-5") -> None:
    got = fake.last
    assert (got.method, got.path, got.query_string) == ("POST", "/v1/chat/completions", "")
    assert got.headers["Authorization"] == "Bearer sk-upstream"
    assert got.json()["model"] == model


# ---------------------------------------------------------------- chat completions on every surface


@pytest.mark.parametrize("root", ROOTS)
async def test_chat_json_every_surface(gw_fake, root):
    gw, fake = gw_fake
    sent: list[bytes] = []
    async with sdk(gw, root, sent=sent) as client:
        raw = await client.chat.completions.with_raw_response.create(model="gpt-5", messages=MESSAGES)
    reply = raw.parse()
    assert reply.choices[0].message.content == DEFAULT_TEXT
    assert reply.usage is not None and reply.usage.prompt_tokens == CHAT["input_tokens"]
    assert_upstream_chat(fake)
    assert fake.last.body == sent[0]  # nothing to change: the SDK's bytes go upstream as they are
    row = await gw.row()
    assert raw.headers["x-sidegate-request-id"] == row["request_id"] == fake.last.headers["x-request-id"]
    assert tokens(row) == CHAT
    assert row["tokens_estimated"] is False and row["streaming"] is False
    assert row["status_code"] == 200 and row["error_code"] is None
    assert row["api_type"] == f"{root}/chat/completions"
    assert row["client"] == "openai-python" and row["user_agent"].startswith("AsyncOpenAI/Python ")
    assert (row["requester"], row["requester_type"]) == ("alice@example.com", "user")
    assert (row["model_service"], row["destination_type"], row["destination_name"], row["destination_model"]) \
        == ("gpt-5", "openai", "up", "gpt-5")
    assert [(a["destination"], a["status"], a["reason"]) for a in row["routing_information"]] \
        == [("up", 200, "ok")]


@pytest.mark.parametrize("root", ROOTS)
async def test_chat_stream_injects_and_strips_usage(gw_fake, root):
    gw, fake = gw_fake
    sent: list[bytes] = []
    async with sdk(gw, root, sent=sent) as client:
        stream = await client.chat.completions.create(model="gpt-5", messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]
    assert "stream_options" not in orjson.loads(sent[0])
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == DEFAULT_TEXT
    # The usage chunk sidegate asked for on its own never reaches this caller.
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert_upstream_chat(fake)
    upstream_body = fake.last.json()
    assert upstream_body["stream_options"] == {"include_usage": True}
    assert {k: v for k, v in upstream_body.items() if k != "stream_options"} == orjson.loads(sent[0])
    row = await gw.row()
    assert tokens(row) == CHAT
    assert row["tokens_estimated"] is False and row["streaming"] is True
    assert row["status_code"] == 200 and row["api_type"] == f"{root}/chat/completions"


async def test_chat_stream_strip_is_exact_on_the_wire(gw_fake):
    """Raw bytes: the caller gets every upstream event unchanged except the injected usage chunk,
    and keeps any stream_options it set itself."""
    gw, fake = gw_fake
    events = openai_wire.chat_sse({"model": "gpt-5", "stream_options": {"include_usage": True}})
    fake.reply(sse=events)
    usage_events = [e for e in events if b'"choices":[]' in e]
    assert len(usage_events) == 1
    body = {"model": "gpt-5", "messages": MESSAGES, "stream": True, "stream_options": {"include_obfuscation": False}}
    resp, got = await post(f"{gw.base}/openai/v1/chat/completions", json=body,
                           headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    assert got == b"".join(e for e in events if e not in usage_events)
    assert fake.last.json()["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    row = await gw.row()
    assert tokens(row) == CHAT and row["tokens_estimated"] is False


@pytest.mark.parametrize("root", ["openai", "mlflow"])
async def test_chat_stream_caller_asked_usage_bytes_unchanged(gw_fake, root):
    gw, fake = gw_fake
    sent: list[bytes] = []
    async with sdk(gw, root, sent=sent) as client:
        stream = await client.chat.completions.create(
            model="gpt-5", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    assert fake.last.body == sent[0]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) \
        == (CHAT["input_tokens"], CHAT["output_tokens"])
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == DEFAULT_TEXT
    row = await gw.row()
    assert tokens(row) == CHAT and row["tokens_estimated"] is False


async def test_stream_without_usage_is_estimated(gateway, fake_upstream):
    """A provider with stream_usage off gets the caller's bytes; no usage arrives, so it is estimated."""
    fake = await fake_upstream("openai")
    gw = await gateway(f"""
    providers: {{up: {{kind: openai, base_url: "{fake.base_url}", stream_usage: false}}}}
    models: {{gpt-5: {{destinations: [{{provider: up}}]}}}}
    """)
    sent: list[bytes] = []
    async with sdk(gw, sent=sent) as client:
        stream = await client.chat.completions.create(model="gpt-5", messages=MESSAGES, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == DEFAULT_TEXT
    assert fake.last.body == sent[0]
    row = await gw.row()
    assert row["tokens_estimated"] is True
    assert row["output_tokens"] == math.ceil(len(DEFAULT_TEXT) / 4)
    assert row["input_tokens"] > 0 and row["cache_read_input_tokens"] == 0


# ---------------------------------------------------------------- byte-for-byte passthrough

ODD_BODY = (
    b'{  "model" : "gpt-5",\n\t"messages":[{"role":"user","content":"h\\u00e9llo \xe2\x9c\x93 \xf0\x9f\x98\x80"}],'
    b'\r\n "x_unknown_field": {"nested": [1, 2.50, null, true, "\\/"]}, "temperature":0.70 ,'
    b' "metadata": {"k\xc3\xa9y": "v"}   }'
)


async def test_native_body_passthrough_bytes(gw_fake):
    gw, fake = gw_fake
    answer = b'{\n  "id": "chatcmpl-fixed",\n  "object": "chat.completion",  "choices": [],\n  "x": 1.50\n}'
    fake.reply(body=answer, headers={"Content-Type": "application/json"})
    resp, got = await post(f"{gw.base}/openai/v1/chat/completions", data=ODD_BODY,
                           headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert resp.status == 200 and got == answer
    assert fake.last.body == ODD_BODY
    assert fake.last.path == "/v1/chat/completions"


async def test_native_body_model_rewrite_keeps_other_fields(gw_fake):
    gw, fake = gw_fake
    body = ODD_BODY.replace(b'"gpt-5"', b'"gpt-alias"')
    resp, got = await post(f"{gw.base}/openai/v1/chat/completions", data=body,
                           headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert resp.status == 200 and orjson.loads(got)["model"] == "gpt-real"
    assert fake.last.json() == {**orjson.loads(body), "model": "gpt-real"}
    row = await gw.row()
    assert (row["model_service"], row["destination_model"]) == ("gpt-alias", "gpt-real")
    assert tokens(row) == CHAT


# ---------------------------------------------------------------- headers


async def test_headers_forwarded_and_credentials_swapped(gw_fake):
    gw, fake = gw_fake
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{gw.base}/openai/v1/chat/completions", json={"model": "gpt-5", "messages": MESSAGES},
                             headers={"Authorization": f"Bearer {KEY}", "OpenAI-Beta": "assistants=v2",
                                      "OpenAI-Organization": "org-123", "X-Custom-Trace": "abc 123",
                                      "User-Agent": "my-app/1.0"}) as resp:
            assert resp.status == 200
            request_id = resp.headers["x-sidegate-request-id"]
            assert resp.headers["openai-version"] == "2020-10-01"  # upstream answer headers relayed
        got = fake.last.headers
        assert got["OpenAI-Beta"] == "assistants=v2"
        assert got["OpenAI-Organization"] == "org-123"
        assert got["X-Custom-Trace"] == "abc 123"
        assert got["User-Agent"] == "my-app/1.0"
        assert got.getall("Authorization") == ["Bearer sk-upstream"]
        assert KEY not in str(list(got.items()))
        row = await gw.row()
        assert row["request_id"] == request_id and row["client"] == "other"

        # Identified by X-Sidegate-Token while carrying its own provider key: neither goes upstream.
        async with http.post(f"{gw.base}/codex/v1/chat/completions", json={"model": "gpt-5", "messages": MESSAGES},
                             headers={"X-Sidegate-Token": BOT_KEY, "Authorization": "Bearer sk-caller-own",
                                      "OpenAI-Beta": "responses=v1"}) as resp:
            assert resp.status == 200
            assert resp.headers["x-sidegate-request-id"]
        got = fake.last.headers
        assert "X-Sidegate-Token" not in got
        assert got.getall("Authorization") == ["Bearer sk-upstream"]
        assert got["OpenAI-Beta"] == "responses=v1"
        headers_text = str(list(got.items()))
        assert BOT_KEY not in headers_text and "sk-caller-own" not in headers_text
        assert (await gw.row())["requester"] == "ci-bot"


async def test_sdk_headers_forwarded(gw_fake):
    gw, fake = gw_fake
    async with sdk(gw, "mlflow", default_headers={"OpenAI-Beta": "assistants=v2", "X-Team": "search"}) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-5", messages=MESSAGES, extra_headers={"X-Per-Call": "1"})
    got = fake.last.headers
    assert (got["OpenAI-Beta"], got["X-Team"], got["X-Per-Call"]) == ("assistants=v2", "search", "1")
    assert got["X-Stainless-Lang"] == "python"
    assert got["Authorization"] == "Bearer sk-upstream"
    assert raw.headers["x-sidegate-request-id"] == (await gw.row())["request_id"]


# ---------------------------------------------------------------- embeddings and the model list


@pytest.mark.parametrize("root", ROOTS)
async def test_embeddings_sdk(gw_fake, root):
    gw, fake = gw_fake
    async with sdk(gw, root) as client:
        result = await client.embeddings.create(model="text-embedding-3-small", input="embed me")
    sent = fake.last.json()
    assert fake.last.path == "/v1/embeddings"
    assert sent["encoding_format"] == "base64"  # the SDK's default; decoded by the SDK
    expected = struct.unpack("<8f", struct.pack("<8f", *fake_vector("embed me", 8)))
    assert result.data[0].embedding == pytest.approx(list(expected))
    assert result.usage.prompt_tokens == EMBED["input_tokens"]
    row = await gw.row()
    assert tokens(row) == EMBED and row["tokens_estimated"] is False
    assert row["api_type"] == f"{root}/embeddings" and row["status_code"] == 200


@pytest.mark.parametrize("root", ROOTS)
async def test_models_list_respects_permissions(gw_fake, root):
    gw, fake = gw_fake
    everything = {"gpt-5", "gpt-alias", "text-embedding-3-small", "restricted", "mock-model"}
    async with sdk(gw, root) as client:
        alice = [m.id async for m in client.models.list()]
    async with sdk(gw, root, key=BOT_KEY) as client:
        bot = [m.id async for m in client.models.list()]
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model="restricted", messages=MESSAGES)
    assert sorted(alice) == sorted(everything)
    assert sorted(bot) == sorted(everything - {"restricted"})
    assert "restricted" not in caught.value.message.replace("'restricted'", "")
    assert fake.received == []  # the list is sidegate's own; the refused call never went upstream
    rows = await gw.rows()
    assert [r["status_code"] for r in rows] == [200, 200, 404]
    assert rows[0]["api_type"] == f"{root}/models"
    assert rows[2]["error_code"] == "model_not_found" and rows[2]["requester"] == "ci-bot"


# ---------------------------------------------------------------- traffic split


async def test_traffic_split_by_weight(gateway, fake_upstream):
    a, b = await fake_upstream("openai"), await fake_upstream("openai")
    gw = await gateway(f"""
    providers:
      a: {{kind: openai, base_url: "{a.base_url}", api_key: sk-a}}
      b: {{kind: openai, base_url: "{b.base_url}", api_key: sk-b}}
    models:
      split: {{destinations: [{{provider: a, model: gpt-a, weight: 1}}, {{provider: b, model: gpt-b, weight: 3}}]}}
    """)
    n = 200
    random.seed(20240601)
    gate = asyncio.Semaphore(16)

    async def call(http: aiohttp.ClientSession) -> str:
        async with gate, http.post(f"{gw.base}/mlflow/v1/chat/completions",
                                   json={"model": "split", "messages": MESSAGES},
                                   headers={"Authorization": f"Bearer {KEY}"}) as resp:
            assert resp.status == 200
            return str((await resp.json())["model"])

    async with aiohttp.ClientSession() as http:
        answered = await asyncio.gather(*(call(http) for _ in range(n)))
    count_a = len(a.received)
    assert count_a + len(b.received) == n
    sigma = math.sqrt(n * 0.25 * 0.75)
    assert abs(count_a - n / 4) <= 4 * sigma, count_a
    assert Counter(answered) == {"gpt-a": count_a, "gpt-b": n - count_a}
    assert {r.json()["model"] for r in a.received} == {"gpt-a"}
    assert {r.headers["Authorization"] for r in b.received} == {"Bearer sk-b"}
    went = {r.headers["x-request-id"]: "a" for r in a.received} | {r.headers["x-request-id"]: "b" for r in b.received}
    rows = await gw.rows()
    assert len(rows) == n
    for row in rows:
        assert row["destination_name"] == went[row["request_id"]]
        assert row["destination_model"] == f"gpt-{went[row['request_id']]}"
        assert len(row["routing_information"]) == 1


# ---------------------------------------------------------------- fallbacks


@pytest.fixture
async def gw_fallback(gateway, fake_upstream):
    a, b = await fake_upstream("openai"), await fake_upstream("openai")
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    gw = await gateway(f"""
    providers:
      a: {{kind: openai, base_url: "{a.base_url}", api_key: sk-a}}
      b: {{kind: openai, base_url: "{b.base_url}", api_key: sk-b}}
      dead: {{kind: openai, base_url: "{dead}", api_key: sk-dead}}
    models:
      fb: {{destinations: [{{provider: a, model: gpt-a}}], fallbacks: [{{provider: b, model: gpt-b}}]}}
      refused: {{destinations: [{{provider: dead}}], fallbacks: [{{provider: b}}]}}
      doomed: {{destinations: [{{provider: a}}], fallbacks: [{{provider: dead}}]}}
      lonely: {{destinations: [{{provider: a}}]}}
    """)
    return gw, a, b


def attempts(row: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(x["destination"], x["model"], x["status"], x["reason"]) for x in row["routing_information"]]


async def test_fallback_on_429(gw_fallback):
    gw, a, b = gw_fallback
    a.error(429)
    async with sdk(gw, "mlflow") as client:
        reply = await client.chat.completions.create(model="fb", messages=MESSAGES)
    assert reply.choices[0].message.content == DEFAULT_TEXT and reply.model == "gpt-b"
    assert a.last.json()["model"] == "gpt-a" and b.last.json()["model"] == "gpt-b"
    assert b.last.headers["Authorization"] == "Bearer sk-b"
    row = await gw.row()
    assert attempts(row) == [("a", "gpt-a", 429, "retryable_status"), ("b", "gpt-b", 200, "ok")]
    assert (row["status_code"], row["destination_name"], row["destination_model"]) == (200, "b", "gpt-b")
    assert tokens(row) == CHAT and row["tokens_estimated"] is False


async def test_fallback_on_429_stream(gw_fallback):
    gw, a, b = gw_fallback
    a.error(429)
    async with sdk(gw, "openai") as client:
        stream = await client.chat.completions.create(model="fb", messages=MESSAGES, stream=True)
        chunks = [c async for c in stream]
    assert [c.choices[0].delta.content for c in chunks[1:-1]] == list(DEFAULT_DELTAS)
    assert all(c.usage is None for c in chunks)
    assert a.last.json()["stream_options"] == {"include_usage": True}
    assert b.last.json()["stream_options"] == {"include_usage": True}
    row = await gw.row()
    assert attempts(row) == [("a", "gpt-a", 429, "retryable_status"), ("b", "gpt-b", 200, "ok")]
    assert tokens(row) == CHAT and row["tokens_estimated"] is False and row["streaming"] is True


async def test_fallback_on_connection_refused(gw_fallback):
    gw, _a, b = gw_fallback
    async with sdk(gw, "codex") as client:
        reply = await client.chat.completions.create(model="refused", messages=MESSAGES)
    assert reply.choices[0].message.content == DEFAULT_TEXT
    assert b.last.json()["model"] == "refused"
    row = await gw.row()
    assert attempts(row) == [("dead", "refused", None, "connection_error"), ("b", "refused", 200, "ok")]
    assert row["destination_name"] == "b" and row["status_code"] == 200


async def test_all_destinations_failing(gw_fallback):
    gw, a, b = gw_fallback
    a.error(503)
    async with sdk(gw, "mlflow") as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="doomed", messages=MESSAGES)
    err = caught.value
    assert err.status_code == 502
    assert err.code == "upstream_unreachable" and err.type == "server_error"
    assert err.response.headers["x-sidegate-request-id"]
    assert set(orjson.loads(err.response.content)) == {"error"}
    assert b.received == []
    row = await gw.row()
    assert attempts(row) == [("a", "doomed", 503, "retryable_status"), ("dead", "doomed", None, "connection_error")]
    assert (row["status_code"], row["error_code"]) == (502, "upstream_unreachable")
    assert row["tokens_estimated"] is False and row["input_tokens"] == 0


async def test_last_destination_429_relayed(gw_fallback):
    gw, a, _b = gw_fallback
    a.error(429)
    async with sdk(gw, "openai") as client:
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="lonely", messages=MESSAGES)
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    row = await gw.row()
    assert (row["status_code"], row["error_code"]) == (429, "rate_limit_exceeded")
    assert attempts(row) == [("a", "lonely", 429, "retryable_status")]


# ---------------------------------------------------------------- upstream errors


async def test_upstream_400_passthrough(gw_fallback):
    gw, a, b = gw_fallback
    error = (b'{\n  "error": {\n    "message": "Invalid value: \'robot\'. Supported values are: \'system\', '
             b'\'assistant\', \'user\'.",\n    "type": "invalid_request_error",\n    "param": "messages[0].role",'
             b'\n    "code": "invalid_value"\n  }\n}')
    for _ in range(2):
        a.reply(400, body=error, headers={"Content-Type": "application/json"})
    body = {"model": "fb", "messages": [{"role": "robot", "content": "hi"}]}
    resp, got = await post(f"{gw.base}/openai/v1/chat/completions", json=body,
                           headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status == 400 and got == error
    async with sdk(gw, "mlflow") as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="fb", messages=body["messages"])  # type: ignore[arg-type]
    assert caught.value.code == "invalid_value" and caught.value.param == "messages[0].role"
    assert b.received == []  # a 400 is the caller's problem: no fallback
    rows = await gw.rows()
    for row in rows:
        assert (row["status_code"], row["error_code"]) == (400, "invalid_value")
        assert attempts(row) == [("a", "gpt-a", 400, "error")]
        assert row["tokens_estimated"] is False and row["output_tokens"] == 0


# ---------------------------------------------------------------- the mock provider via the unified surface


async def test_mock_chat_json_and_stream(gw_fake):
    gw, fake = gw_fake
    prompt = "one two three four five"
    async with sdk(gw, "mlflow") as client:
        reply = await client.chat.completions.create(
            model="mock-model", messages=[{"role": "user", "content": prompt}])
        stream = await client.chat.completions.create(
            model="mock-model", messages=[{"role": "user", "content": prompt}], stream=True)
        chunks = [c async for c in stream]
    assert reply.choices[0].message.content == prompt
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == prompt
    assert all(c.choices and c.usage is None for c in chunks)
    assert fake.received == []
    first, second = await gw.rows()
    assert (first["input_tokens"], first["output_tokens"]) == (reply.usage.prompt_tokens, 5)
    assert tokens(second) == tokens(first)
    for row in (first, second):
        assert row["tokens_estimated"] is False and row["destination_type"] == "mock"
        assert row["api_type"] == "mlflow/chat/completions" and row["status_code"] == 200
    assert second["streaming"] is True


async def test_mock_responses_stream_and_embeddings(gw_fake):
    gw, _fake = gw_fake
    async with sdk(gw, "mlflow") as client:
        stream = await client.responses.create(model="mock-model", input="alpha beta gamma", stream=True)
        events = [e async for e in stream]
        embedded = await client.embeddings.create(model="mock-model", input=["abcdefgh", "ijk"])
    assert events[-1].type == "response.completed"
    done = events[-1].response
    assert done.output_text == "alpha beta gamma"
    assert done.usage is not None and done.usage.output_tokens == 3
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "alpha beta gamma"
    assert [len(d.embedding) for d in embedded.data] == [256, 256]
    assert sum(x * x for x in embedded.data[0].embedding) == pytest.approx(1.0, rel=1e-4)
    assert embedded.usage.prompt_tokens == 2 + 1
    responses_row, embeddings_row = await gw.rows()
    assert responses_row["api_type"] == "mlflow/responses" and responses_row["streaming"] is True
    assert (responses_row["input_tokens"], responses_row["output_tokens"]) == (done.usage.input_tokens, 3)
    assert responses_row["tokens_estimated"] is False
    assert embeddings_row["api_type"] == "mlflow/embeddings"
    assert (embeddings_row["input_tokens"], embeddings_row["output_tokens"]) == (3, 0)
    assert embeddings_row["tokens_estimated"] is False


# ---------------------------------------------------------------- a databricks-kind destination (another sidegate)


async def test_databricks_destination_is_another_gateway(gateway, fake_upstream):
    fake = await fake_upstream("openai", api_key="sk-upstream")
    inner = await gateway(f"""
    providers: {{up: {{kind: openai, base_url: "{fake.base_url}", api_key: sk-upstream}}}}
    models: {{gpt-5: {{destinations: [{{provider: up}}]}}}}
    """)
    outer = await gateway(f"""
    providers: {{ws: {{kind: databricks, base_url: "{inner.base}", api_key: "{BOT_KEY}"}}}}
    models: {{workspace-gpt: {{destinations: [{{provider: ws, model: gpt-5}}]}}}}
    """)
    sent: list[bytes] = []
    async with sdk(outer, "openai", sent=sent) as client:
        reply = await client.chat.completions.create(model="workspace-gpt", messages=MESSAGES)
        stream = await client.chat.completions.create(model="workspace-gpt", messages=MESSAGES, stream=True)
        chunks = [c async for c in stream]
        embedded = await client.embeddings.create(model="workspace-gpt", input="x")
    assert reply.choices[0].message.content == DEFAULT_TEXT
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == DEFAULT_TEXT
    assert all(c.choices and c.usage is None for c in chunks)
    assert embedded.usage.prompt_tokens == EMBED["input_tokens"]
    assert [r.path for r in fake.received] == ["/v1/chat/completions", "/v1/chat/completions", "/v1/embeddings"]
    assert {r.headers["Authorization"] for r in fake.received} == {"Bearer sk-upstream"}
    assert fake.received[0].json() == {**orjson.loads(sent[0]), "model": "gpt-5"}
    assert fake.received[1].json()["stream_options"] == {"include_usage": True}

    inner_rows = await inner.rows()
    assert [r["api_type"] for r in inner_rows] == ["mlflow/chat/completions"] * 2 + ["mlflow/embeddings"]
    assert {r["requester"] for r in inner_rows} == {"ci-bot"}  # the databricks provider's key
    outer_rows = await outer.rows()
    assert [r["api_type"] for r in outer_rows] == ["openai/chat/completions"] * 2 + ["openai/embeddings"]
    for row in outer_rows:
        assert (row["destination_type"], row["destination_name"], row["destination_model"]) \
            == ("databricks", "ws", "gpt-5")
        assert row["requester"] == "alice@example.com" and row["status_code"] == 200
        assert row["tokens_estimated"] is False
    assert tokens(outer_rows[0]) == tokens(outer_rows[1]) == tokens(inner_rows[1]) == CHAT
    assert tokens(outer_rows[2]) == EMBED

