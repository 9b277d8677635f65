"""The inference log through the real app: callers use the official SDKs (or raw HTTP where the
point is the wire), fake providers answer, and the rows in SQLite or JSONL hold the
request as the caller sent it and the answer as the caller received it, streams aggregated in the caller's
format (translated ones included), masked text masked, no credential or blocked secret anywhere, a
sampled fraction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from google import genai
from google.genai import types as gt
from tests.support.fakes import anthropic_wire, openai_wire, sse_data
from tests.support.gateway import KEY

from sidegate.telemetry.inference.row import INFERENCE_LOG, MAX_REQUEST_SIZE_EXCEEDED, MAX_RESPONSE_SIZE_EXCEEDED
from sidegate.telemetry.stores.registry import read_rows

POLICY = """
providers:
  oa: {kind: openai, base_url: "%(oa)s", api_key: sk-upstream-oa}
  an: {kind: anthropic, base_url: "%(an)s", api_key: sk-ant-upstream}
models:
  gpt-5: {destinations: [{provider: oa}]}
  claude: {destinations: [{provider: an}]}
  gemini-via-openai: {destinations: [{provider: oa, model: gpt-5}]}
inference_log: {store: "%(store)s", sample_rate: %(rate)s, max_payload_bytes: %(max)s}
"""
EMAIL = "carol@example.com"
PII_MASK = """
guardrails:
  - {name: pii, phase: both, detect: {pii: [email]}, action: mask}
"""
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


async def start(gateway: Any, fake_upstream: Any, tmp_path: Path, *, scheme: str = "sqlite", rate: float = 1.0,
                max_bytes: int = 1 << 20, extra: str = "", store: str | None = None) -> tuple[Any, str]:
    oa, an = await fake_upstream("openai"), await fake_upstream("anthropic")
    store = store or f"{scheme}:///{tmp_path}/inference.{'db' if scheme == 'sqlite' else 'jsonl'}"
    gw = await gateway(POLICY % {"oa": oa.base_url, "an": an.base_url, "store": store, "rate": rate,
                                 "max": max_bytes} + extra)
    return gw, store


async def logged(gw: Any, store: str) -> list[dict[str, Any]]:
    await gw.state.inference_log.flush()
    return read_rows(store, INFERENCE_LOG)


def oai(gw: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.base + "/openai/v1", api_key=KEY, max_retries=0)


def claude(gw: Any) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.base + "/anthropic", api_key=KEY, max_retries=0)


@pytest.mark.parametrize("scheme", ["sqlite", "jsonl"])
async def test_openai_stream_and_whole_answer_logged_as_the_caller_got_them(gateway, fake_upstream, tmp_path, scheme):
    gw, store = await start(gateway, fake_upstream, tmp_path, scheme=scheme)
    async with oai(gw) as client:
        whole = await client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
        stream = await client.chat.completions.create(
            model="gpt-5", messages=[{"role": "user", "content": "hi"}], tools=TOOLS, stream=True,
            stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    first, second = await logged(gw, store)
    assert (first["streaming"], first["status_code"]) == (False, 200)
    assert orjson.loads(first["response_payload"]) == whole.model_dump(exclude_unset=True)
    assert orjson.loads(first["request_payload"])["messages"] == [{"role": "user", "content": "hi"}]
    folded = orjson.loads(second["response_payload"])
    assert second["streaming"] is True and folded["object"] == "chat.completion"
    [call] = folded["choices"][0]["message"]["tool_calls"]
    streamed_args = "".join(c.choices[0].delta.tool_calls[0].function.arguments or ""
                            for c in chunks if c.choices and c.choices[0].delta.tool_calls)
    assert call["function"] == {"name": "lookup", "arguments": streamed_args}
    assert folded["usage"]["total_tokens"] == chunks[-1].usage.total_tokens
    assert orjson.loads(second["request_payload"])["tools"] == TOOLS
    assert first["requester"] == "alice@example.com" and first["model_service"] == "gpt-5"
    usage_ids = [r["request_id"] for r in await gw.rows()]
    assert [first["request_id"], second["request_id"]] == usage_ids  # the two tables join on request_id


async def test_request_payload_is_the_callers_body_naming_the_model_service(gateway, fake_upstream, tmp_path):
    """What the caller sent, not what went upstream: the model service's name (the destination's
    model is in its own column), no `stream_options` of sidegate's, the caller's format when translated."""
    gw, store = await start(gateway, fake_upstream, tmp_path)
    hi = [{"role": "user", "content": "hi"}]
    async with oai(gw) as client:
        _ = [c async for c in await client.chat.completions.create(model="gemini-via-openai", messages=hi,
                                                                     stream=True)]  # type: ignore[arg-type]
    async with claude(gw) as client:
        await client.messages.create(model="gemini-via-openai", max_tokens=10, messages=hi)  # type: ignore[arg-type]
    native, translated = await logged(gw, store)
    assert orjson.loads(native["request_payload"]) == {"model": "gemini-via-openai", "messages": hi, "stream": True}
    assert orjson.loads(translated["request_payload"]) == {"model": "gemini-via-openai", "max_tokens": 10,
                                                           "messages": hi}
    assert [(r["destination_type"], r["destination_model"]) for r in (native, translated)] == [("openai", "gpt-5")] * 2


async def test_anthropic_stream_with_thinking_and_tools_logged_as_the_final_message(gateway, fake_upstream, tmp_path):
    gw, store = await start(gateway, fake_upstream, tmp_path, scheme="jsonl")
    client = claude(gw)
    async with client, client.messages.stream(
            model="claude", max_tokens=2048, messages=[{"role": "user", "content": "hi"}],
            thinking={"type": "enabled", "budget_tokens": 1024},
            tools=[{"name": "lookup", "input_schema": {"type": "object"}}]) as stream:
        final = await stream.get_final_message()
    [row] = await logged(gw, store)
    folded = anthropic.types.Message.model_validate(orjson.loads(row["response_payload"]))
    assert folded.model_dump() == final.model_dump()
    assert [b.type for b in folded.content] == ["thinking", "text", "tool_use"]
    assert folded.content[0].signature == anthropic_wire.THINKING_SIGNATURE  # type: ignore[union-attr]


async def test_translated_stream_logged_in_the_callers_format(gateway, fake_upstream, tmp_path):
    """A Gemini caller served by an OpenAI provider: the log holds a GenerateContentResponse."""
    gw, store = await start(gateway, fake_upstream, tmp_path)
    options = gt.HttpOptions(base_url=gw.base + "/gemini", retry_options=gt.HttpRetryOptions(attempts=1))
    client = genai.Client(api_key=KEY, http_options=options).aio
    try:
        text = "".join([c.text or "" async for c in await client.models.generate_content_stream(
            model="gemini-via-openai", contents="hi")])
    finally:
        await client.aclose()
    [row] = await logged(gw, store)
    folded = gt.GenerateContentResponse.model_validate(orjson.loads(row["response_payload"]))
    assert folded.text == text == "Hello from the fake"
    assert folded.usage_metadata is not None and folded.usage_metadata.prompt_token_count
    assert row["destination_type"] == "openai" and row["api_type"] == "gemini/streamGenerateContent"


async def test_masked_input_is_logged_masked(gateway, fake_upstream, tmp_path):
    gw, store = await start(gateway, fake_upstream, tmp_path, extra=PII_MASK)
    async with aiohttp.ClientSession() as http:
        body = {"model": "gpt-5", "messages": [{"role": "user", "content": f"mail {EMAIL} please"}]}
        async with http.post(gw.base + "/openai/v1/chat/completions", json=body,
                             headers={"Authorization": f"Bearer {KEY}"}) as reply:
            assert reply.status == 200
    [row] = await logged(gw, store)
    assert EMAIL not in row["request_payload"] and "<EMAIL_ADDRESS>" in row["request_payload"]


async def test_request_blocked_by_an_input_guardrail_keeps_its_secret_out(gateway, fake_upstream, tmp_path):
    token = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
    gw, store = await start(gateway, fake_upstream, tmp_path, scheme="jsonl", extra="""
guardrails:
  - {name: no-secrets, phase: input, detect: [secrets], action: block}
""")
    async with oai(gw) as client:
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": token}])
        await client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    rows = await logged(gw, store)
    assert [r["status_code"] for r in rows] == [200]  # the refused request was never sampled
    assert token not in (tmp_path / "inference.jsonl").read_text()
    assert [r["error_code"] for r in await gw.rows()] == ["input_guardrail_triggered", None]


async def test_output_masking_reaches_the_logged_stream(gateway, fake_upstream, tmp_path):
    oa = await fake_upstream("openai")
    store = f"sqlite:///{tmp_path}/inference.db"
    gw = await gateway(f"""
providers: {{oa: {{kind: openai, base_url: "{oa.base_url}", api_key: sk-up}}}}
models: {{gpt-5: {{destinations: [{{provider: oa}}]}}}}
inference_log: {{store: "{store}"}}
""" + PII_MASK)
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-5"}
    pieces = ("Write to car", "ol@exam", "ple.com today")
    oa.reply(sse=[sse_data({**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]})
                  for p in pieces] + [sse_data("[DONE]")])
    async with oai(gw) as client:
        stream = await client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}],
                                                      stream=True)
        seen = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    [row] = await logged(gw, store)
    logged_text = orjson.loads(row["response_payload"])["choices"][0]["message"]["content"]
    assert logged_text == seen and EMAIL not in logged_text and "<EMAIL_ADDRESS>" in logged_text


async def test_no_credential_of_any_kind_is_logged(gateway, fake_upstream, tmp_path):
    gw, store = await start(gateway, fake_upstream, tmp_path, scheme="jsonl")
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "key": "body-field-secret"}
    async with aiohttp.ClientSession() as http:
        async with http.post(gw.base + f"/gemini/v1beta/models/gemini-via-openai:generateContent?key={KEY}",
                             json=body) as reply:
            assert reply.status == 200
        async with http.post(gw.base + "/anthropic/v1/messages", headers={"x-api-key": KEY},
                             json={"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
                             ) as reply:
            assert reply.status == 200
    rows = await logged(gw, store)
    assert len(rows) == 2
    text = (tmp_path / "inference.jsonl").read_text()
    for secret in (KEY, "body-field-secret", "sk-upstream-oa", "sk-ant-upstream"):
        assert secret not in text
    assert orjson.loads(rows[0]["request_payload"])["key"] == "<REDACTED>"


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0), (1.0, 6)])
async def test_sample_rate_zero_and_one(gateway, fake_upstream, tmp_path, rate, expected):
    gw, store = await start(gateway, fake_upstream, tmp_path, rate=rate)
    async with oai(gw) as client:
        for _ in range(6):
            await client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    rows = await logged(gw, store) if gw.state.inference_log else []
    assert len(rows) == expected and all(r["sampling_fraction"] == rate for r in rows)
    assert len(await gw.rows()) == 6  # usage rows for every request either way


async def test_oversize_payloads_are_coded_not_stored(gateway, fake_upstream, tmp_path):
    answer = orjson.dumps(openai_wire.chat_json({"model": "gpt-5"}))
    gw, store = await start(gateway, fake_upstream, tmp_path, max_bytes=len(answer) - 10)
    async with oai(gw) as client:
        await client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "x" * 1000}])
    [row] = await logged(gw, store)
    assert row["request_payload"] is None and row["response_payload"] is None
    assert row["logging_error_codes"] == [MAX_REQUEST_SIZE_EXCEEDED, MAX_RESPONSE_SIZE_EXCEEDED]
    assert row["status_code"] == 200

