"""The native Anthropic surface (`{prefix}/anthropic`) driven by the official async `anthropic` SDK
against a fake Anthropic upstream, a `credentials: passthrough` provider, an OpenAI-kind destination
(no translation yet) and the built-in mock provider. Claude Code's raw wire facts are in
test_claude_code_wire.py."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anthropic
import pytest
from tests.support.fakes import DEFAULT_DELTAS, DEFAULT_TEXT, DEFAULT_TOOL_ARGS
from tests.support.fakes.fixtures import anthropic_wire
from tests.support.fakes.fixtures.common import dumps
from tests.support.gateway import BOT_KEY, KEY

UPSTREAM_KEY = "sk-ant-upstream"
OAUTH = "sk-ant-oat01-" + "Q" * 40 + "-subscriptionAA"

# Normalised per telemetry/usage/row.py: input = input_tokens + cache reads + cache creations.
U = anthropic_wire.MESSAGES_USAGE
NORM_INPUT = U["input_tokens"] + U["cache_read_input_tokens"] + U["cache_creation_input_tokens"]

TOOLS = [{
    "name": "lookup",
    "description": "Look something up.",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}]
THINKING = {"type": "enabled", "budget_tokens": 1024}


@pytest.fixture(autouse=True)
def _no_env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK would otherwise pick these up and send credentials the test did not choose.
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def policy(anthropic_url: str, *, passthrough_url: str | None = None, openai_url: str | None = None) -> str:
    text = f"""
providers:
  anthropic: {{kind: anthropic, base_url: "{anthropic_url}", api_key: "{UPSTREAM_KEY}"}}
  echo: {{kind: mock}}
"""
    if passthrough_url:
        text += f'  claude-max: {{kind: anthropic, base_url: "{passthrough_url}", credentials: passthrough}}\n'
    if openai_url:
        text += f'  oai: {{kind: openai, base_url: "{openai_url}", api_key: "sk-openai-upstream"}}\n'
    text += """
models:
  "claude-*": {destinations: [{provider: anthropic}]}
  echo: {destinations: [{provider: echo, model: mock-1}]}
  bot-only-model:
    destinations: [{provider: anthropic, model: claude-opus-4-1}]
    permissions: {principals: [ci-bot]}
"""
    if passthrough_url:
        text += "  max-opus: {destinations: [{provider: claude-max, model: claude-opus-4-1}]}\n"
    if openai_url:
        text += "  gpt-5: {destinations: [{provider: oai, model: gpt-5}]}\n"
    return text


def sdk(gw: Any, **kwargs: Any) -> anthropic.AsyncAnthropic:
    kwargs.setdefault("api_key", KEY)
    return anthropic.AsyncAnthropic(base_url=gw.base + "/anthropic", max_retries=0, **kwargs)


def user(text: str = "Hi there") -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# The version the SDK sends: sidegate must forward it, not replace it with its own default.
SDK_VERSION = anthropic.AsyncAnthropic(api_key="x").default_headers["anthropic-version"]


def assert_swapped_credentials(received: Any) -> None:
    headers = received.headers
    assert headers.get("x-api-key") == UPSTREAM_KEY
    assert "authorization" not in headers
    assert "x-sidegate-token" not in headers
    assert headers.getall("anthropic-version") == [SDK_VERSION]


async def post_raw(url: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    """POST raw bytes as alice (x-api-key); the status, content type and decoded JSON answer."""
    sent = {"x-api-key": KEY, "content-type": "application/json", **(headers or {})}
    async with aiohttp.ClientSession() as session, session.post(url, data=data, headers=sent) as resp:
        return resp.status, resp.content_type, await resp.json()


def assert_fake_usage_row(row: dict[str, Any], *, streaming: bool, model: str) -> None:
    assert row["status_code"] == 200 and row["error_code"] is None
    assert row["api_type"] == "anthropic/messages"
    assert row["client"] == "anthropic-python"
    assert row["requester"] == "alice@example.com" and row["requester_type"] == "user"
    assert row["model_service"] == "claude-*"
    assert (row["destination_type"], row["destination_name"], row["destination_model"]) == (
        "anthropic", "anthropic", model)
    assert row["streaming"] is streaming
    assert row["input_tokens"] == NORM_INPUT == 16
    assert row["cache_read_input_tokens"] == U["cache_read_input_tokens"]
    assert row["cache_creation_input_tokens"] == U["cache_creation_input_tokens"]
    assert row["output_tokens"] == U["output_tokens"]
    assert row["total_tokens"] == NORM_INPUT + U["output_tokens"]
    assert row["reasoning_tokens"] == 0
    assert row["tokens_estimated"] is False
    assert [(a["destination"], a["status"], a["reason"]) for a in row["routing_information"]] == [
        ("anthropic", 200, "ok")]


# ---------------------------------------------------------------- messages through the fake upstream


async def test_messages_json_thinking_text_tool_use(gateway, fake_upstream):
    fake = await fake_upstream("anthropic", api_key=UPSTREAM_KEY)
    gw = await gateway(policy(fake.base_url))
    client = sdk(gw)
    msg = await client.messages.create(
        model="claude-sonnet-4-6", max_tokens=2048, messages=user("Find something"),
        tools=TOOLS, thinking=THINKING,
        system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
    )
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"]
    assert msg.content[0].thinking == anthropic_wire.THINKING_TEXT
    assert msg.content[0].signature == anthropic_wire.THINKING_SIGNATURE
    assert msg.content[1].text == DEFAULT_TEXT
    assert msg.content[2].name == "lookup" and msg.content[2].input == DEFAULT_TOOL_ARGS
    assert msg.stop_reason == "tool_use"
    assert msg.usage.cache_read_input_tokens == 4  # the caller sees the provider's own numbers

    assert len(fake.received) == 1
    got = fake.last
    assert (got.method, got.path) == ("POST", "/v1/messages")
    assert_swapped_credentials(got)
    sent = got.json()
    assert sent["thinking"] == THINKING and sent["tools"] == TOOLS
    assert sent["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert sent["model"] == "claude-sonnet-4-6"
    assert_fake_usage_row(await gw.row(), streaming=False, model="claude-sonnet-4-6")


async def test_messages_stream_helper_keeps_thinking_and_tool_input(gateway, fake_upstream):
    fake = await fake_upstream("anthropic", api_key=UPSTREAM_KEY)
    gw = await gateway(policy(fake.base_url))
    client = sdk(gw)
    json_pieces: list[str] = []
    thinking: list[str] = []
    async with client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=2048, messages=user("Stream please"),
        tools=TOOLS, thinking=THINKING,
    ) as stream:
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                json_pieces.append(event.delta.partial_json)
            if event.type == "content_block_delta" and event.delta.type == "thinking_delta":
                thinking.append(event.delta.thinking)
        final = await stream.get_final_message()
    assert "".join(json_pieces) and json.loads("".join(json_pieces)) == DEFAULT_TOOL_ARGS
    assert tuple(thinking) == anthropic_wire.THINKING_DELTAS
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[0].signature == anthropic_wire.THINKING_SIGNATURE
    assert final.content[1].text == DEFAULT_TEXT
    assert final.content[2].input == DEFAULT_TOOL_ARGS
    assert final.usage.output_tokens == U["output_tokens"]

    got = fake.last
    assert got.path == "/v1/messages" and got.json()["stream"] is True
    assert_swapped_credentials(got)
    assert_fake_usage_row(await gw.row(), streaming=True, model="claude-sonnet-4-6")


async def test_messages_create_stream_true_raw_events(gateway, fake_upstream):
    fake = await fake_upstream("anthropic", api_key=UPSTREAM_KEY)
    gw = await gateway(policy(fake.base_url))
    client = sdk(gw)
    stream = await client.messages.create(
        model="claude-haiku-4-5", max_tokens=100, messages=user(), stream=True,
    )
    kinds: list[str] = []
    texts: list[str] = []
    async for event in stream:
        kinds.append(event.type)
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            texts.append(event.delta.text)
    assert tuple(texts) == DEFAULT_DELTAS
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert_swapped_credentials(fake.last)
    assert_fake_usage_row(await gw.row(), streaming=True, model="claude-haiku-4-5")


async def test_stream_usage_when_message_delta_repeats_cumulative_usage(gateway, fake_upstream):
    """The current API repeats input and cache counts in message_delta: they must not be added twice."""
    fake = await fake_upstream("anthropic", api_key=UPSTREAM_KEY)
    events = anthropic_wire.message_sse({"model": "claude-sonnet-4-6"})
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
             "usage": {"input_tokens": 10, "cache_creation_input_tokens": 2, "cache_read_input_tokens": 4,
                       "output_tokens": 6, "server_tool_use": {"web_search_requests": 0}}}
    events = [e for e in events if not e.startswith(b"event: message_delta")]
    events.insert(-1, anthropic_wire.sse_event("message_delta", delta))
    fake.reply(sse=events)
    gw = await gateway(policy(fake.base_url))
    async with sdk(gw).messages.stream(model="claude-sonnet-4-6", max_tokens=10, messages=user()) as s:
        assert await s.get_final_text() == DEFAULT_TEXT
    assert_fake_usage_row(await gw.row(), streaming=True, model="claude-sonnet-4-6")


# ---------------------------------------------------------------- count_tokens


async def test_count_tokens_passthrough(gateway, fake_upstream):
    fake = await fake_upstream("anthropic", api_key=UPSTREAM_KEY)
    gw = await gateway(policy(fake.base_url))
    counted = await sdk(gw).messages.count_tokens(
        model="claude-sonnet-4-6", messages=user("count me"), tools=TOOLS, thinking=THINKING)
    assert counted.input_tokens == anthropic_wire.COUNT_TOKENS_USAGE["input_tokens"]
    got = fake.last
    assert (got.method, got.path) == ("POST", "/v1/messages/count_tokens")
    assert_swapped_credentials(got)
    assert got.json()["tools"] == TOOLS and got.json()["messages"] == user("count me")
    row = await gw.row()
    assert row["api_type"] == "anthropic/count_tokens" and row["status_code"] == 200
    assert row["destination_name"] == "anthropic" and row["streaming"] is False
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (0, 0, 0)
    assert row["cache_read_input_tokens"] == row["cache_creation_input_tokens"] == 0
    assert row["tokens_estimated"] is False


# ---------------------------------------------------------------- credentials: passthrough


async def test_passthrough_forwards_callers_oauth_bearer(gateway, fake_upstream):
    fake = await fake_upstream("anthropic", api_key=UPSTREAM_KEY)
    subscription = await fake_upstream("anthropic", api_key=OAUTH)
    gw = await gateway(policy(fake.base_url, passthrough_url=subscription.base_url))
    client = sdk(gw, api_key=None, auth_token=OAUTH, default_headers={"X-Sidegate-Token": KEY})
    msg = await client.messages.create(model="max-opus", max_tokens=64, messages=user(),
                                       extra_headers={"anthropic-beta": "oauth-2025-04-20"})
    assert msg.content[0].text == DEFAULT_TEXT
    assert fake.received == []
    got = subscription.last
    assert got.headers.get("authorization") == f"Bearer {OAUTH}"
    assert "x-api-key" not in got.headers
    assert "x-sidegate-token" not in got.headers
    assert got.headers.get("anthropic-beta") == "oauth-2025-04-20"
    assert got.json()["model"] == "claude-opus-4-1"
    row = await gw.row()
    assert row["requester"] == "alice@example.com" and row["status_code"] == 200
    assert (row["model_service"], row["destination_name"], row["destination_model"]) == (
        "max-opus", "claude-max", "claude-opus-4-1")
    assert row["input_tokens"] == NORM_INPUT and row["tokens_estimated"] is False


async def test_passthrough_forwards_callers_x_api_key(gateway, fake_upstream):
    """A Console API key of the caller's own, presented as x-api-key next to X-Sidegate-Token."""
    subscription = await fake_upstream("anthropic", api_key="sk-ant-api03-callers-own")
    fake = await fake_upstream("anthropic")
    gw = await gateway(policy(fake.base_url, passthrough_url=subscription.base_url))
    client = sdk(gw, api_key=None,
                 default_headers={"X-Sidegate-Token": BOT_KEY, "x-api-key": "sk-ant-api03-callers-own"})
    async with client.messages.stream(model="max-opus", max_tokens=64, messages=user()) as s:
        assert await s.get_final_text() == DEFAULT_TEXT
    got = subscription.last
    assert got.headers.get("x-api-key") == "sk-ant-api03-callers-own"
    assert "authorization" not in got.headers and "x-sidegate-token" not in got.headers
    row = await gw.row()
    assert row["requester"] == "ci-bot" and row["streaming"] is True and row["status_code"] == 200


async def test_passthrough_without_sidegate_token_is_401(gateway, fake_upstream):
    fake = await fake_upstream("anthropic", api_key=UPSTREAM_KEY)
    subscription = await fake_upstream("anthropic", api_key=OAUTH)
    gw = await gateway(policy(fake.base_url, passthrough_url=subscription.base_url))
    client = sdk(gw, api_key=None, auth_token=OAUTH)
    with pytest.raises(anthropic.AuthenticationError) as info:
        await client.messages.create(model="max-opus", max_tokens=64, messages=user())
    assert info.value.status_code == 401
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    assert OAUTH not in json.dumps(body)
    assert subscription.received == [] and fake.received == []
    row = await gw.row()
    assert row["status_code"] == 401 and row["error_code"] == "invalid_credentials"
    assert row["requester"] is None and row["api_type"] == "anthropic/messages"
    assert row["input_tokens"] == 0 and row["tokens_estimated"] is False


# ---------------------------------------------------------------- errors in the Anthropic shape


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_529_relayed_unchanged(gateway, fake_upstream, stream):
    fake = await fake_upstream("anthropic", api_key=UPSTREAM_KEY)
    body = anthropic_wire.error_body(529)
    fake.reply(529, json=body)
    gw = await gateway(policy(fake.base_url))
    with pytest.raises(anthropic.APIStatusError) as info:
        if stream:
            async with sdk(gw).messages.stream(model="claude-sonnet-4-6", max_tokens=8, messages=user()) as s:
                await s.get_final_message()
        else:
            await sdk(gw).messages.create(model="claude-sonnet-4-6", max_tokens=8, messages=user())
    assert isinstance(info.value, anthropic.InternalServerError)
    assert info.value.status_code == 529
    assert info.value.body == body
    assert info.value.response.content == dumps(body).encode()  # byte for byte
    assert len(fake.received) == 1
    row = await gw.row()
    assert (row["status_code"], row["error_code"]) == (529, "overloaded_error")
    assert row["streaming"] is stream
    assert row["input_tokens"] == row["output_tokens"] == 0 and row["tokens_estimated"] is False
    assert [(a["status"], a["reason"]) for a in row["routing_information"]] == [(529, "retryable_status")]


async def test_unknown_model_404_lists_only_visible_services(gateway, fake_upstream):
    fake = await fake_upstream("anthropic", api_key=UPSTREAM_KEY)
    gw = await gateway(policy(fake.base_url))
    for asked in ("gpt-unknown", "bot-only-model"):
        with pytest.raises(anthropic.NotFoundError) as info:
            await sdk(gw).messages.create(model=asked, max_tokens=8, messages=user())
        body = info.value.body
        assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
        message = body["error"]["message"]
        assert asked in message
        assert "claude-*" in message and "echo" in message
        assert "bot-only-model" not in message.replace(repr(asked), "")
    # the bot may see (and use) its model
    with pytest.raises(anthropic.NotFoundError) as info:
        await sdk(gw, api_key=BOT_KEY).messages.create(model="gpt-unknown", max_tokens=8, messages=user())
    assert "bot-only-model" in info.value.body["error"]["message"]
    assert fake.received == []
    rows = await gw.rows()
    assert [(r["status_code"], r["error_code"]) for r in rows] == [(404, "model_not_found")] * 3
    assert rows[0]["model_service"] == "gpt-unknown" and rows[0]["destination_name"] is None


async def test_missing_max_tokens_is_forwarded(gateway, fake_upstream):
    """Whether max_tokens is required is the provider's business: the body goes upstream as sent."""
    fake = await fake_upstream("anthropic", api_key=UPSTREAM_KEY)
    fake.error(400, "max_tokens: Field required")
    gw = await gateway(policy(fake.base_url))
    raw = b'{"model":"claude-sonnet-4-6","messages":[{"role":"user","content":"hi"}]}'
    status, _ctype, body = await post_raw(gw.base + "/anthropic/v1/messages", raw,
                                          {"anthropic-version": "2023-06-01"})
    assert status == 400
    assert body["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    assert fake.last.body == raw
    row = await gw.row()
    assert (row["status_code"], row["error_code"]) == (400, "invalid_request_error")
    assert row["destination_name"] == "anthropic"


@pytest.mark.parametrize("raw", [b'{"model": "claude-sonnet-4-6", "messages": [', b"not json", b"[1, 2]"])
async def test_malformed_json_is_400_in_anthropic_shape(gateway, fake_upstream, raw):
    fake = await fake_upstream("anthropic", api_key=UPSTREAM_KEY)
    gw = await gateway(policy(fake.base_url))
    status, ctype, body = await post_raw(gw.base + "/anthropic/v1/messages", raw)
    assert (status, ctype) == (400, "application/json")
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert fake.received == []
    row = await gw.row()
    assert (row["status_code"], row["error_code"]) == (400, "invalid_json")
    assert row["api_type"] == "anthropic/messages" and row["tokens_estimated"] is False


async def test_malformed_json_through_sdk_is_bad_request(gateway, fake_upstream):
    fake = await fake_upstream("anthropic", api_key=UPSTREAM_KEY)
    gw = await gateway(policy(fake.base_url))
    with pytest.raises(anthropic.BadRequestError) as info:
        await sdk(gw).post("/v1/messages", cast_to=object, content=b"{oops",
                           options={"headers": {"content-type": "application/json"}})
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert fake.received == []


async def test_openai_destination_is_reached_through_translation(gateway, fake_upstream):
    """A Messages call to a model service on an OpenAI provider goes out as a chat completion with
    the provider's key and none of the caller's Anthropic headers, and comes back as a message."""
    fake = await fake_upstream("anthropic", api_key=UPSTREAM_KEY)
    oai = await fake_upstream("openai", api_key="sk-openai-upstream")
    gw = await gateway(policy(fake.base_url, openai_url=oai.base_url))
    message = await sdk(gw).messages.create(model="gpt-5", max_tokens=8, messages=user(),
                                            extra_headers={"anthropic-beta": "context-management-2025-06-27"})
    assert message.type == "message" and message.model == "gpt-5"
    assert message.content[0].type == "text" and message.content[0].text
    assert fake.received == [] and len(oai.received) == 1
    sent = oai.received[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-openai-upstream"
    assert not [h for h in sent.headers if h.lower().startswith(("anthropic-", "x-api-key"))]
    body = json.loads(sent.body)
    assert (body["model"] == "gpt-5" and body["max_completion_tokens"] == 8) or body.get("max_tokens") == 8
    row = await gw.row()
    assert (row["status_code"], row["error_code"]) == (200, None)
    assert row["destination_type"] == "openai" and row["destination_model"] == "gpt-5"
    usage = message.usage  # the row counts cached tokens as input (see telemetry/usage/row.py)
    assert row["input_tokens"] == usage.input_tokens + usage.cache_read_input_tokens > 0
    assert row["cache_read_input_tokens"] == usage.cache_read_input_tokens
    assert row["output_tokens"] == usage.output_tokens and row["tokens_estimated"] is False
    assert [(a["destination"], a["reason"]) for a in row["routing_information"]] == [("oai", "ok")]


# ---------------------------------------------------------------- the mock provider on this surface


async def test_mock_provider_json_stream_and_count_tokens(gateway):
    gw = await gateway("""
providers:
  echo: {kind: mock}
models:
  echo: {destinations: [{provider: echo, model: mock-1}]}
""")
    client = sdk(gw)
    prompt = "one two three four five"
    system = "Be brief."
    msg = await client.messages.create(model="echo", max_tokens=100, system=system, messages=user(prompt))
    assert msg.content[0].text == prompt and msg.model == "mock-1"
    assert msg.stop_reason == "end_turn"
    async with client.messages.stream(model="echo", max_tokens=3, messages=user(prompt)) as stream:
        streamed = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(streamed) == "one two three" and final.stop_reason == "max_tokens"
    counted = await client.messages.count_tokens(model="echo", system=system, messages=user(prompt))
    expected_input = (len(system) + len(prompt) + 3) // 4
    assert counted.input_tokens == expected_input

    json_row, stream_row, count_row = await gw.rows()
    assert json_row["destination_type"] == "mock" and json_row["destination_model"] == "mock-1"
    assert (json_row["input_tokens"], json_row["output_tokens"]) == (expected_input, 5)
    assert json_row["total_tokens"] == expected_input + 5 and json_row["streaming"] is False
    assert (stream_row["input_tokens"], stream_row["output_tokens"]) == ((len(prompt) + 3) // 4, 3)
    assert stream_row["streaming"] is True
    assert count_row["api_type"] == "anthropic/count_tokens"
    assert (count_row["input_tokens"], count_row["output_tokens"]) == (0, 0)
    for row in (json_row, stream_row, count_row):
        assert row["status_code"] == 200 and row["tokens_estimated"] is False
        assert row["client"] == "anthropic-python"
