"""Claude Code's wire, replayed raw with aiohttp: HEAD on the base URL, then a streamed
`POST /v1/messages?beta=true` with a long anthropic-beta list and an ~80 kB body, authenticated with
`x-api-key` or `Authorization: Bearer`. sidegate must forward body bytes, query and beta headers
unchanged, swap the credential, and relay the SSE byte for byte."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from tests.support.fakes import sse_event
from tests.support.fakes.fixtures import anthropic_wire
from tests.support.gateway import KEY

UPSTREAM_KEY = "sk-ant-upstream"
MODEL = "claude-sonnet-4-6"
BETAS = ("claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,"
         "fine-grained-tool-streaming-2025-05-14,context-management-2025-06-27")
UA = "claude-cli/2.0.37 (external, cli)"

POLICY = """
providers:
  anthropic: {{kind: anthropic, base_url: "{url}", api_key: "{key}"}}
models:
  "claude-*": {{destinations: [{{provider: anthropic}}]}}
"""


def claude_code_body() -> bytes:
    """A deterministic request shaped like Claude Code's (system blocks with cache_control, dozens
    of tools with input_schema, thinking, context_management, output_config, metadata, a field no
    API knows yet), serialised the way sidegate itself would not (ASCII escapes, Python floats)."""
    tools = []
    for i in range(40):
        tools.append({
            "name": f"Tool{i:02d}",
            "description": (f"Tool number {i} \u2013 does something specific. " * 30).strip(),
            "input_schema": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "path": {"type": "string", "description": "Absolute path of the file to operate on."},
                    "limit": {"type": "number", "description": "How many lines to read."},
                    "pattern": {"type": "string", "description": f"Glob pattern #{i}, e.g. **/*.py"},
                },
                "required": ["path"],
            },
        })
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\nAs you answer, use this context: café ☕\n"
                                         "</system-reminder>\n"},
                {"type": "text", "text": "Refactor src/app.py please.", "cache_control": {"type": "ephemeral"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should read the file.", "signature": "EqQBCkgIBh" + "A" * 200},
                {"type": "tool_use", "id": "toolu_01ABC", "name": "Tool00", "input": {"path": "/src/app.py"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01ABC",
                 "content": "\n".join(f"{n:>6}\tprint({n})" for n in range(300))},
            ]},
        ],
        "temperature": 1.0,
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "You are an interactive CLI tool. " * 200, "cache_control": {"type": "ephemeral"}},
        ],
        "tools": tools,
        "metadata": {"user_id": "user_0123abcd_account__session_4567ef"},
        "max_tokens": 32000,
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "future_field_2027": {"nested": [1, 2.50, None, True]},
        "stream": True,
    }
    return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode()


BODY = claude_code_body()


def scripted_stream() -> list[bytes]:
    """What the real API streams for such a request: thinking, text, a tool_use whose input arrives
    as input_json_delta pieces, and a message_delta repeating the cumulative usage."""
    usage = {"input_tokens": 3, "cache_creation_input_tokens": 1200, "cache_read_input_tokens": 18000,
             "cache_creation": {"ephemeral_5m_input_tokens": 1200, "ephemeral_1h_input_tokens": 0},
             "output_tokens": 1, "service_tier": "standard"}
    start = {"id": "msg_01XYZ", "type": "message", "role": "assistant", "model": MODEL, "content": [],
             "stop_reason": None, "stop_sequence": None, "usage": usage}
    events = [
        sse_event("message_start", {"type": "message_start", "message": start}),
        sse_event("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        sse_event("ping", {"type": "ping"}),
        sse_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "thinking_delta", "thinking": "Reading…"}}),
        sse_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "signature_delta", "signature": "EqQBsig=="}}),
        sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse_event("content_block_start", {"type": "content_block_start", "index": 1,
                                          "content_block": {"type": "text", "text": ""}}),
        sse_event("content_block_delta", {"type": "content_block_delta", "index": 1,
                                          "delta": {"type": "text_delta", "text": "Let me edit it."}}),
        sse_event("content_block_stop", {"type": "content_block_stop", "index": 1}),
        sse_event("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
            "type": "tool_use", "id": "toolu_01DEF", "name": "Tool01", "input": {}}}),
        *[sse_event("content_block_delta", {"type": "content_block_delta", "index": 2,
                                            "delta": {"type": "input_json_delta", "partial_json": piece}})
          for piece in ('{"pa', 'th": "/src/', 'app.py"}')],
        sse_event("content_block_stop", {"type": "content_block_stop", "index": 2}),
        sse_event("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"input_tokens": 3, "cache_creation_input_tokens": 1200, "cache_read_input_tokens": 18000,
                      "output_tokens": 87},
            "context_management": {"applied_edits": []}}),
        sse_event("message_stop", {"type": "message_stop"}),
    ]
    return events


def claude_headers(auth: str) -> dict[str, str]:
    headers = {
        "accept": "application/json",
        "anthropic-beta": BETAS,
        "anthropic-dangerous-direct-browser-access": "true",
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
        "user-agent": UA,
        "x-app": "cli",
        "x-stainless-arch": "x64",
        "x-stainless-helper-method": "stream",
        "x-stainless-lang": "js",
        "x-stainless-package-version": "0.60.0",
        "x-stainless-retry-count": "0",
        "x-stainless-runtime": "node",
        "x-stainless-timeout": "600",
    }
    if auth == "x-api-key":
        headers["x-api-key"] = KEY
    else:
        headers["authorization"] = f"Bearer {KEY}"
    return headers


def test_body_is_claude_code_sized() -> None:
    assert 70_000 < len(BODY) < 100_000
    assert b"\\u2013" in BODY and b"\\u00e9" in BODY  # escaped non-ASCII: a re-serialisation changes bytes


@pytest.mark.parametrize("auth", ["x-api-key", "authorization"])
async def test_claude_code_streamed_message(gateway, fake_upstream, auth):
    fake = await fake_upstream("anthropic", api_key=UPSTREAM_KEY)
    events = scripted_stream()
    fake.reply(sse=events)
    gw = await gateway(POLICY.format(url=fake.base_url, key=UPSTREAM_KEY))
    base = gw.base + "/anthropic"
    async with aiohttp.ClientSession(skip_auto_headers=("User-Agent",)) as session:
        async with session.head(base, headers={"user-agent": UA}) as probe:
            assert probe.status == 200
        async with session.post(base + "/v1/messages?beta=true", data=BODY,
                                headers=claude_headers(auth)) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/event-stream"
            assert resp.headers.get("x-sidegate-request-id")
            relayed = b"".join([chunk async for chunk in resp.content.iter_any()])
    assert relayed == b"".join(events)

    assert len(fake.received) == 1
    got = fake.last
    assert (got.method, got.path, got.query_string) == ("POST", "/v1/messages", "beta=true")
    assert got.body == BODY
    headers = got.headers
    assert headers.getall("anthropic-version") == ["2023-06-01"]
    assert headers.getall("anthropic-beta") == [BETAS]
    assert headers.getall("x-api-key") == [UPSTREAM_KEY]
    assert "authorization" not in headers
    assert headers.get("user-agent") == UA and headers.get("x-app") == "cli"
    assert headers.get("anthropic-dangerous-direct-browser-access") == "true"
    assert KEY not in str(dict(headers))

    rows = [r for r in await gw.rows() if r["api_type"] == "anthropic/messages"]
    assert len(rows) == 1
    row = rows[0]
    assert row["client"] == "claude-code" and row["user_agent"] == UA
    assert row["streaming"] is True and row["status_code"] == 200 and row["error_code"] is None
    assert row["requester"] == "alice@example.com"
    assert (row["model_service"], row["destination_type"], row["destination_model"]) == (
        "claude-*", "anthropic", MODEL)
    assert row["input_tokens"] == 3 + 1200 + 18000
    assert row["cache_read_input_tokens"] == 18000 and row["cache_creation_input_tokens"] == 1200
    assert row["output_tokens"] == 87 and row["total_tokens"] == 19203 + 87
    assert row["tokens_estimated"] is False


@pytest.mark.parametrize("path", ["", "/"])
async def test_head_on_base_url(gateway, fake_upstream, path):
    fake = await fake_upstream("anthropic", api_key=UPSTREAM_KEY)
    gw = await gateway(POLICY.format(url=fake.base_url, key=UPSTREAM_KEY))
    url = gw.base + "/anthropic" + path
    async with aiohttp.ClientSession() as session, session.head(url, headers={"user-agent": UA}) as probe:
        assert probe.status == 200
    assert fake.received == []


async def test_claude_code_count_tokens_with_beta_query(gateway, fake_upstream):
    fake = await fake_upstream("anthropic", api_key=UPSTREAM_KEY)
    gw = await gateway(POLICY.format(url=fake.base_url, key=UPSTREAM_KEY))
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "count"}],
                       "tools": json.loads(BODY)["tools"][:3]}).encode()
    url = gw.base + "/anthropic/v1/messages/count_tokens?beta=true"
    async with aiohttp.ClientSession() as session, session.post(
            url, data=body, headers=claude_headers("authorization")) as resp:
        assert resp.status == 200
        assert await resp.json() == anthropic_wire.count_tokens_json()
    got = fake.last
    assert (got.path, got.query_string, got.body) == ("/v1/messages/count_tokens", "beta=true", body)
    assert got.headers.get("anthropic-beta") == BETAS and got.headers.get("x-api-key") == UPSTREAM_KEY
    assert "authorization" not in got.headers
    row = await gw.row()
    assert row["api_type"] == "anthropic/count_tokens" and row["client"] == "claude-code"
    assert (row["input_tokens"], row["output_tokens"], row["tokens_estimated"]) == (0, 0, False)
