"""The OpenAI Responses API as Codex CLI uses it: base URL `{gateway}/codex/v1`, streamed
`POST /responses` with Bearer auth, tools and Codex's own headers, ending in `response.completed`
with usage. Driven by the `openai` SDK and raw aiohttp against a fake OpenAI upstream."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import orjson
import pytest
from tests.support.fakes import DEFAULT_TEXT, DEFAULT_USAGE, openai_wire, sse_event
from tests.support.gateway import KEY

RESPONSES = DEFAULT_USAGE["openai.responses"]
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "total_tokens", "cache_read_input_tokens",
                 "cache_creation_input_tokens", "reasoning_tokens")
CODEX_UA = "codex_cli_rs/0.58.0 (Linux; x86_64) xterm"
CODEX_HEADERS = {
    "User-Agent": CODEX_UA,
    "originator": "codex_cli_rs",
    "version": "0.58.0",
    "session_id": "0199a6c4-5f3e-7d21-9b55-1c2d3e4f5a6b",
    "conversation_id": "0199a6c4-5f3e-7d21-9b55-1c2d3e4f5a6b",
    "OpenAI-Beta": "responses=experimental",
}
SHELL_TOOL = {
    "type": "function",
    "name": "shell",
    "description": "Runs a shell command and returns its output.",
    "strict": False,
    "parameters": {
        "type": "object",
        "properties": {
            "command": {"type": "array", "items": {"type": "string"}},
            "workdir": {"type": "string"},
            "timeout_ms": {"type": "number"},
        },
        "required": ["command"],
        "additionalProperties": False,
    },
}
CODEX_INPUT: list[Any] = [
    {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "<environment_context>\n  <cwd>/work/repo</cwd>\n</environment_context>"}]},
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list the files ✓"}]},
]


def tokens(row: dict[str, Any]) -> dict[str, int]:
    return {k: row[k] for k in TOKEN_COLUMNS}


def codex_kwargs(**extra: Any) -> dict[str, Any]:
    """The body Codex CLI sends, as SDK keyword arguments."""
    return {
        "model": "gpt-5-codex",
        "instructions": "You are Codex, based on GPT-5. You are running as a coding agent in the Codex CLI.",
        "input": CODEX_INPUT,
        "tools": [SHELL_TOOL],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199a6c4-5f3e-7d21-9b55-1c2d3e4f5a6b",
        **extra,
    }


@pytest.fixture
async def gw_fake(gateway, fake_upstream):
    fake = await fake_upstream("openai", api_key="sk-upstream")
    gw = await gateway(f"""
    providers: {{up: {{kind: openai, base_url: "{fake.base_url}", api_key: sk-upstream}}}}
    models:
      gpt-5-codex: {{destinations: [{{provider: up}}]}}
      "gpt-5*": {{destinations: [{{provider: up}}]}}
    """)
    return gw, fake


def codex_client(gw: Any, sent: list[bytes], root: str = "codex") -> openai.AsyncOpenAI:
    async def capture(request: Any) -> None:
        sent.append(request.content)
    return openai.AsyncOpenAI(
        base_url=f"{gw.base}/{root}/v1", api_key=KEY, max_retries=0, default_headers=CODEX_HEADERS,
        http_client=openai.DefaultAsyncHttpxClient(event_hooks={"request": [capture]}))


async def test_codex_stream_like_the_cli(gw_fake):
    gw, fake = gw_fake
    sent: list[bytes] = []
    async with codex_client(gw, sent) as client:
        stream = await client.responses.create(stream=True, **codex_kwargs())
        events = [e async for e in stream]
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    done = events[-1].response
    assert done.status == "completed" and done.output_text == DEFAULT_TEXT
    assert done.usage is not None
    assert (done.usage.input_tokens, done.usage.output_tokens) \
        == (RESPONSES["input_tokens"], RESPONSES["output_tokens"])
    assert [e.sequence_number for e in events] == list(range(len(events)))

    got = fake.last
    assert (got.method, got.path) == ("POST", "/v1/responses")
    assert got.body == sent[0]  # same API, nothing to change: Codex's bytes reach the provider as sent
    assert got.json()["tools"] == [SHELL_TOOL] and got.json()["stream"] is True
    assert got.headers["Authorization"] == "Bearer sk-upstream"
    for name, value in CODEX_HEADERS.items():
        assert got.headers[name] == value, name

    row = await gw.row()
    assert row["client"] == "codex" and row["user_agent"] == CODEX_UA
    assert row["api_type"] == "codex/responses"
    assert row["streaming"] is True and row["status_code"] == 200 and row["error_code"] is None
    assert tokens(row) == RESPONSES and row["tokens_estimated"] is False
    assert (row["model_service"], row["destination_name"], row["destination_model"]) \
        == ("gpt-5-codex", "up", "gpt-5-codex")
    assert row["time_to_first_byte_ms"] is not None


async def test_codex_stream_bytes_relayed_unchanged(gw_fake):
    """Raw wire: every upstream event reaches the caller as sent, the last one response.completed."""
    gw, fake = gw_fake
    events = openai_wire.responses_sse({"model": "gpt-5-codex", "stream": True})
    fake.reply(sse=events)
    body = orjson.dumps({**codex_kwargs(), "stream": True})
    headers = {**CODEX_HEADERS, "Authorization": f"Bearer {KEY}", "Content-Type": "application/json",
               "Accept": "text/event-stream"}
    async with aiohttp.ClientSession() as http, http.post(
            f"{gw.base}/codex/v1/responses", data=body, headers=headers) as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        request_id = resp.headers["x-sidegate-request-id"]
        got = await resp.read()
    assert got == b"".join(events)
    assert events[-1].startswith(b"event: response.completed\n")
    assert fake.last.body == body
    row = await gw.row()
    assert row["request_id"] == request_id and tokens(row) == RESPONSES


def _tool_call_stream(model: str) -> list[bytes]:
    """A Codex turn that ends in a function call, as the Responses API streams it."""
    item = {"id": "fc_01", "type": "function_call", "status": "in_progress", "arguments": "",
            "call_id": "call_01", "name": "shell"}
    args_pieces = ['{"command":', '["ls","-la"]}']
    args = "".join(args_pieces)
    done_item = {**item, "status": "completed", "arguments": args}
    base = openai_wire.responses_json({"model": model})
    created = {**base, "status": "in_progress", "output": [], "usage": None}
    completed = {**base, "output": [done_item],
                 "usage": openai_wire.responses_usage_wire(RESPONSES)}
    raw: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": created}),
        ("response.output_item.added", {"output_index": 0, "item": item}),
        *[("response.function_call_arguments.delta", {"item_id": "fc_01", "output_index": 0, "delta": p})
          for p in args_pieces],
        ("response.function_call_arguments.done", {"item_id": "fc_01", "output_index": 0, "arguments": args}),
        ("response.output_item.done", {"output_index": 0, "item": done_item}),
        ("response.completed", {"response": completed}),
    ]
    return [sse_event(name, {"type": name, "sequence_number": i, **fields}) for i, (name, fields) in enumerate(raw)]


async def test_codex_tool_call_stream(gw_fake):
    gw, fake = gw_fake
    fake.reply(sse=_tool_call_stream("gpt-5-codex"))
    sent: list[bytes] = []
    async with codex_client(gw, sent) as client:
        stream = await client.responses.create(stream=True, **codex_kwargs())
        events = [e async for e in stream]
    done = events[-1]
    assert done.type == "response.completed"
    call = done.response.output[0]
    assert call.type == "function_call" and call.name == "shell"
    assert orjson.loads(call.arguments) == {"command": ["ls", "-la"]}
    row = await gw.row()
    assert tokens(row) == RESPONSES and row["tokens_estimated"] is False and row["client"] == "codex"


async def test_codex_stream_cut_before_completed(gw_fake):
    """The upstream drops the connection mid-stream: the caller gets the Responses `error` and
    `response.failed` events instead of a silent end, and the row says the tokens are estimated from what was seen."""
    gw, fake = gw_fake
    fake.reply(sse=openai_wire.responses_sse({"model": "gpt-5-codex"}), cut_after=6)
    sent: list[bytes] = []
    async with codex_client(gw, sent) as client:
        stream = await client.responses.create(stream=True, **codex_kwargs())
        seen = [event async for event in stream]
    assert [e.type for e in seen][-3:] == ["response.output_text.delta", "error", "response.failed"]
    assert seen[-2].code == "upstream_stream_interrupted" and "broke off" in seen[-2].message
    failed = seen[-1].response  # what Codex reads to report the failure
    assert failed.status == "failed" and failed.error is not None and failed.error.code == "upstream_stream_interrupted"
    row = await gw.row()
    assert row["error_code"] == "upstream_stream_interrupted"
    assert row["tokens_estimated"] is True
    assert row["output_tokens"] >= 1 and row["input_tokens"] > 0


@pytest.mark.parametrize("root", ["openai", "codex", "mlflow"])
async def test_responses_json(gw_fake, root):
    gw, fake = gw_fake
    sent: list[bytes] = []
    async with codex_client(gw, sent, root) as client:
        raw = await client.responses.with_raw_response.create(
            model="gpt-5-mini", input="Say hello", instructions="Be brief.", metadata={"ticket": "é-42"})
    reply = raw.parse()
    assert reply.output_text == DEFAULT_TEXT
    assert reply.usage is not None and reply.usage.input_tokens == RESPONSES["input_tokens"]
    assert reply.metadata == {"ticket": "é-42"}
    assert fake.last.path == "/v1/responses" and fake.last.body == sent[0]
    row = await gw.row()
    assert raw.headers["x-sidegate-request-id"] == row["request_id"]
    assert row["api_type"] == f"{root}/responses" and row["streaming"] is False
    assert row["model_service"] == "gpt-5*" and row["destination_model"] == "gpt-5-mini"
    assert tokens(row) == RESPONSES and row["tokens_estimated"] is False


async def test_responses_upstream_error(gw_fake):
    gw, fake = gw_fake
    fake.reply(400, json=openai_wire.error_body(
        400, "Unsupported parameter: 'temperature' is not supported with this model.",
        param="temperature", code="unsupported_parameter"))
    sent: list[bytes] = []
    async with codex_client(gw, sent) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(stream=True, temperature=0.2, **codex_kwargs())
    assert caught.value.code == "unsupported_parameter" and caught.value.param == "temperature"
    row = await gw.row()
    assert (row["status_code"], row["error_code"], row["client"]) == (400, "unsupported_parameter", "codex")
    assert row["tokens_estimated"] is False and row["output_tokens"] == 0
