"""Logs: one access line per request, JSON unless the output is a terminal, and never a credential,
a key hash or payload text in any line.

The leak check sends requests carrying a distinctive sidegate key, a distinctive provider key in the
policy, a caller's own provider credential (passthrough) and distinctive prompt and completion text
through the real app — successes, streams, upstream errors, unreachable upstreams, bad keys,
guardrail blocks, rate-limit refusals, malformed bodies, unknown paths, a rejected policy reload —
then searches every line written: in process (structlog and the standard library's loggers through
sidegate's writer) and from a real `sidegate serve` process's stderr at debug level.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from tests.support.fakes import FakeUpstream

from sidegate.telemetry import logs
from sidegate.telemetry.access_log import access_line
from sidegate.telemetry.logs import LineWriter, configure_logging
from sidegate.telemetry.usage.row import UsageRow

CALLER_KEY = "sk-sidegate-ZEBRA-caller-7f3a91"
CALLER_HASH = hashlib.sha256(CALLER_KEY.encode()).hexdigest()
PROVIDER_KEY = "sk-provider-OKAPI-9c1e55"
PASSTHROUGH_CREDENTIAL = "sk-ant-oat01-IBEX-own-credential"
PROMPT = "the PANGOLIN prompt 4d2b"
ANSWER = "the NARWHAL answer 61c0"
SECRETS = (CALLER_KEY, "ZEBRA", CALLER_HASH, CALLER_HASH[:16], "sha256:", PROVIDER_KEY, "OKAPI",
           PASSTHROUGH_CREDENTIAL, "IBEX", "PANGOLIN", "NARWHAL")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def leak_policy(fake: FakeUpstream, usage_db: Path) -> str:
    return f"""
providers:
  up: {{kind: openai, base_url: "{fake.base_url}", api_key: "{PROVIDER_KEY}"}}
  own: {{kind: openai, base_url: "{fake.base_url}", credentials: passthrough}}
  gone: {{kind: openai, base_url: "http://127.0.0.1:{closed_port()}/v1", api_key: "{PROVIDER_KEY}"}}
models:
  gpt-5: {{destinations: [{{provider: up}}]}}
  own-model: {{destinations: [{{provider: own}}]}}
  unreachable: {{destinations: [{{provider: gone}}]}}
principals:
  zebra@example.com: {{type: user, keys: ["sha256:{CALLER_HASH}"]}}
guardrails:
  - {{name: words, phase: input, detect: {{keywords: [forbidden-word]}}, action: block}}
rate_limits:
  - {{key: request_tag, tag: project, value: limited, requests_per_minute: 1}}
usage: {{store: "sqlite:///{usage_db}"}}
"""


def chat(model: str = "gpt-5", text: str = PROMPT, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def answer_json() -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-5",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}}


async def send_everything(base: str, fake: FakeUpstream) -> list[int]:
    """Every kind of request the leak check covers; returns the statuses, in order."""
    auth = {"Authorization": f"Bearer {CALLER_KEY}"}
    chat_url = base + "/ai-gateway/openai/v1/chat/completions"
    statuses: list[int] = []
    async with aiohttp.ClientSession() as http:
        async def post(url: str, **kwargs: Any) -> None:
            async with http.post(url, **kwargs) as r:
                await r.read()
                statuses.append(r.status)

        fake.reply(json=answer_json())
        await post(chat_url, json=chat(), headers=auth)                                        # 200
        await post(chat_url, json=chat(stream=True), headers=auth)                             # 200 stream
        fake.reply(500, json={"error": {"message": f"upstream echoes {PROMPT}", "type": "server_error"}})
        await post(chat_url, json=chat(), headers=auth)                                        # 500 upstream
        await post(chat_url, json=chat("unreachable"), headers=auth)                           # 502
        await post(chat_url, json=chat(), headers={"Authorization": f"Bearer {CALLER_KEY}x"})  # 401
        await post(chat_url + f"?key={CALLER_KEY}x", json=chat())                              # 401
        await post(chat_url, json=chat(), headers={"x-api-key": CALLER_KEY + "x"})             # 401
        await post(chat_url, json=chat(text=f"{PROMPT} forbidden-word"), headers=auth)         # 400 guardrail
        tags = {**auth, "X-Sidegate-Request-Tags": '{"project": "limited"}'}
        await post(chat_url, json=chat(), headers=tags)                                        # 200
        await post(chat_url, json=chat(), headers=tags)                                        # 429
        await post(chat_url, data=f'{{"model": "gpt-5", "messages": "{PROMPT}',                # 400 bad JSON
                   headers={**auth, "Content-Type": "application/json"})
        await post(base + "/ai-gateway/nowhere", json=chat(), headers=auth)                    # 404
        await post(chat_url, json=chat("own-model"),                                           # 200 passthrough
                   headers={"X-Sidegate-Token": CALLER_KEY, "Authorization": f"Bearer {PASSTHROUGH_CREDENTIAL}"})
    return statuses


EXPECTED = [200, 200, 500, 502, 401, 401, 401, 400, 200, 429, 400, 404, 200]


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} appears in the logs:\n" + "\n".join(
            line for line in text.splitlines() if secret in line)


def access_lines(text: str) -> list[dict[str, Any]]:
    return [obj for line in text.splitlines() if line.startswith("{")
            if (obj := json.loads(line)).get("event") == "access"]


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log line of this process, as `sidegate serve` would write them, into a buffer."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("debug", stream=stream, cache=False)
    yield stream
    if logs.SETUP.writer is not None:
        logs.SETUP.writer.close()
    logs.SETUP.writer = None
    logs.SETUP.json, logs.SETUP.access = True, True
    root.handlers, root.level = handlers, level
    logging.getLogger("aiohttp.access").setLevel(logging.NOTSET)
    structlog.reset_defaults()


async def test_no_credential_or_payload_in_any_line(captured, tmp_path, fake_upstream, monkeypatch):
    from aiohttp.test_utils import TestServer

    from sidegate.app import build_app, close_state, start_state

    monkeypatch.chdir(tmp_path)
    fake = await fake_upstream("openai")
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "policy.yaml").write_text(leak_policy(fake, tmp_path / "usage.db"))
    state = await start_state(directory)
    server = TestServer(build_app(state), host="127.0.0.1")
    await server.start_server()
    try:
        statuses = await send_everything(f"http://127.0.0.1:{server.port}", fake)
        # a rejected reload whose file holds the credentials in the wrong places
        (directory / "policy.yaml").write_text(leak_policy(fake, tmp_path / "usage.db").replace(
            "models:", f"colour: {PROVIDER_KEY}\nmodels:"))
        assert not await state.holder.reload("test")
        structlog.get_logger("test").info("store moved", store="postgresql://app:s3cr3t-PANGOLIN@db:5432/usage")
    finally:
        await server.close()
        await close_state(state)
    assert statuses == EXPECTED
    assert fake.received[0].headers["authorization"] == f"Bearer {PROVIDER_KEY}"  # the keys were used
    assert fake.received[-1].headers["authorization"] == f"Bearer {PASSTHROUGH_CREDENTIAL}"
    logs.SETUP.writer.flush()
    text = captured.getvalue()
    assert_no_secrets(text)
    lines = access_lines(text)
    assert [line["status"] for line in lines] == EXPECTED
    first = lines[0]
    assert first["principal"] == "zebra@example.com" and first["model_service"] == "gpt-5"
    assert first["destination"] == "up" and (first["input_tokens"], first["output_tokens"]) == (5, 4)
    assert first["latency_ms"] > 0 and first["ttfb_ms"] is not None and first["client"]
    assert all(line["error_code"] for line in lines if line["status"] >= 400)
    assert lines[8]["tags"] == {"project": "limited"}
    assert "policy reload rejected" in text and "postgresql://app:***@db:5432/usage" in text


def serve(directory: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sidegate", "serve", "--policies", str(directory), "--listen", f"127.0.0.1:{port}",
         "--watch-interval", "0", "--log-level", "debug"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=directory.parent)


async def test_a_served_process_logs_json_without_secrets(tmp_path, fake_upstream):
    fake = await fake_upstream("openai")
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "policy.yaml").write_text(leak_policy(fake, tmp_path / "usage.db"))
    port = closed_port()
    proc = serve(directory, port)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                assert proc.poll() is None, proc.communicate()[1].decode()
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        statuses = await send_everything(f"http://127.0.0.1:{port}", fake)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert statuses == EXPECTED
    text = err.decode()
    assert_no_secrets(text + out.decode())
    assert all(json.loads(line) for line in text.splitlines()), text  # every line is JSON
    assert [line["status"] for line in access_lines(text)] == EXPECTED


def test_console_output_on_a_terminal(captured):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    configure_logging("info", stream=terminal, cache=False)
    access_line(UsageRow(request_id="r-42", event_time="t", status_code=200, model_service="gpt-5"))
    logs.SETUP.writer.flush()
    text = terminal.getvalue()
    assert "access" in text and "r-42" in text and not text.startswith("{")


def test_readable_access_line_leads_with_status_principal_service_and_latency(captured):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    configure_logging("info", stream=terminal, cache=False, access_log=True)
    access_line(UsageRow(request_id="r-7", event_time="t", status_code=429, requester="alice@example.com",
                         model_service="gpt-5", latency_ms=12.5, api_type="mlflow/chat/completions",
                         client="codex", error_code="rate_limit_exceeded"))
    logs.SETUP.writer.flush()
    line = next(line for line in terminal.getvalue().splitlines() if "access" in line)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
    fields = [part.split("=", 1)[0] for part in plain.split() if "=" in part]
    assert fields[:5] == ["status", "principal", "model_service", "latency_ms", "error_code"], plain
    assert plain.index("access") < plain.index("status=429") and plain.endswith("request_id=r-7")
    assert re.match(r"\d{4}-\d\d-\d\dT", plain)  # the time first


def test_access_line_follows_the_switch_and_the_level(captured):
    row = UsageRow(request_id="r-1", event_time="t", status_code=200)
    configure_logging("info", stream=captured, cache=False, access_log=False)
    access_line(row)
    configure_logging("warning", stream=captured, cache=False)
    access_line(row)
    logs.SETUP.writer.flush()
    assert "r-1" not in captured.getvalue()


def test_a_stalled_reader_drops_lines_instead_of_blocking():
    class Stalled(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.entered = threading.Event()
            self.release = threading.Event()

        def write(self, text: str) -> int:
            self.entered.set()
            self.release.wait(30)
            return super().write(text)

    stream = Stalled()
    writer = LineWriter(stream, limit=3)
    writer.write("line 1")
    assert stream.entered.wait(10)  # the writer thread holds line 1, stuck in write
    for i in range(2, 11):
        writer.write(f"line {i}")  # returns at once: three wait, the rest are dropped
    assert writer.dropped == 6
    stream.release.set()
    writer.close()
    lines = stream.getvalue().splitlines()
    assert lines[:4] == ["line 1", "line 2", "line 3", "line 4"]
    assert json.loads(lines[4])["dropped"] == 6


def test_credential_shapes_are_redacted_from_other_lines():
    text = ("connect postgresql://app:pw-1@db:5432/x failed; GET /v1beta/models/m:generateContent?alt=sse&key=AIza-1 "
            f"for sha256:{CALLER_HASH}")
    assert logs.redact(text) == ("connect postgresql://app:***@db:5432/x failed; "
                                 "GET /v1beta/models/m:generateContent?alt=sse&key=*** for sha256:***")
