"""The default policy shipped in policies/ works offline with the mock provider, through the SDKs."""

from __future__ import annotations

import shutil
from pathlib import Path

import anthropic
import openai
import pytest
from aiohttp.test_utils import TestServer

from sidegate.app import build_app, close_state, start_state
from sidegate.telemetry.stores.registry import read_rows
from sidegate.telemetry.usage.row import USAGE

REPO = Path(__file__).resolve().parents[2]


async def test_default_policy_serves_openai_sdk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    state = await start_state(tmp_path / "policies")
    server = TestServer(build_app(state), host="127.0.0.1")
    await server.start_server()
    try:
        base = f"http://127.0.0.1:{server.port}/ai-gateway"
        client = openai.AsyncOpenAI(base_url=base + "/mlflow/v1", api_key="sk-sidegate-demo")
        reply = await client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hello sidegate"}])
        assert reply.choices[0].message.content == "hello sidegate"
        masked = await client.chat.completions.with_raw_response.create(
            model="echo", messages=[{"role": "user", "content": "write to ana@example.org"}])
        assert masked.parse().choices[0].message.content == "write to <EMAIL_ADDRESS>"
        assert masked.headers["x-ratelimit-limit-requests"] == "600"
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(model="echo", messages=[
                {"role": "user", "content": "deploy with AKIAQ7ZJ4XK2L5M3N6PR please"}])
        assert refused.value.code == "input_guardrail_triggered"
        claude = anthropic.AsyncAnthropic(base_url=base + "/anthropic", api_key="sk-sidegate-demo")
        async with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=50,
                                          messages=[{"role": "user", "content": "streamed words"}]) as s:
            text = "".join([t async for t in s.text_stream])
        assert text == "streamed words"
        await state.usage.flush()
        rows = read_rows(state.usage_url, USAGE)
        assert [r["status_code"] for r in rows] == [200, 200, 400, 200]
        assert rows[0]["requester"] == "demo@example.com"
        assert rows[1]["guardrail_results"] == [
            {"guardrail": "pii", "phase": "input", "action": "mask", "category": "email", "count": 1}]
        assert rows[3]["tokens_estimated"] is False and rows[3]["output_tokens"] == 2
    finally:
        await server.close()
        await close_state(state)
