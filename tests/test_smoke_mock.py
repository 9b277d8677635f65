"""The default policy shipped in policies/ works offline with the mock provider, through the SDKs."""

from __future__ import annotations

import shutil
from pathlib import Path

import anthropic
import openai
from aiohttp.test_utils import TestServer

from sidegate.app import build_app, close_state, start_state
from sidegate.telemetry.stores import read_rows

REPO = Path(__file__).resolve().parent.parent


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
        claude = anthropic.AsyncAnthropic(base_url=base + "/anthropic", api_key="sk-sidegate-demo")
        async with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=50,
                                          messages=[{"role": "user", "content": "streamed words"}]) as s:
            text = "".join([t async for t in s.text_stream])
        assert text == "streamed words"
        await state.usage.flush()
        rows = read_rows(state.usage_url)
        assert [r["status_code"] for r in rows] == [200, 200]
        assert rows[0]["requester"] == "demo@example.com"
        assert rows[1]["tokens_estimated"] is False and rows[1]["output_tokens"] == 2
    finally:
        await server.close()
        await close_state(state)
