"""`sidegate serve` as a real process: start, hot reload (file watch and SIGHUP), a bad edit that
keeps the old policy, and SIGTERM that lets a stream in flight finish and flushes usage rows."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest
from tests.support.fakes import sse_data
from tests.support.gateway import KEY, PRINCIPALS
from tests.support.served import free_port, wait_until_up

AUTH = {"Authorization": f"Bearer {KEY}"}


class Process:
    def __init__(self, directory: Path, db: Path, watch: float) -> None:
        self.port = free_port()
        self.db = db
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sidegate", "serve", "--policies", str(directory),
             "--listen", f"127.0.0.1:{self.port}", "--watch-interval", str(watch)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=directory.parent,
        )
        self.base = f"http://127.0.0.1:{self.port}"

    async def ready(self, session: aiohttp.ClientSession) -> None:
        await wait_until_up(self.proc, self.base + "/healthz", session, self.output)

    def output(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        out = self.proc.stdout.read() if self.proc.stdout else b""
        return out.decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def policy(models: str, db: Path, upstream: str = "") -> str:
    lines = ["providers:", "  echo: {kind: mock}"]
    if upstream:
        lines.append("  " + upstream)
    lines.append("models:")
    lines += ["  " + line for line in textwrap.dedent(models).strip().splitlines()]
    lines.append(f'usage: {{store: "sqlite:///{db}"}}')
    return "\n".join(lines) + "\n" + PRINCIPALS


async def chat(session: aiohttp.ClientSession, base: str, model: str) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    async with session.post(base + "/ai-gateway/mlflow/v1/chat/completions", json=body, headers=AUTH) as r:
        await r.read()
        return r.status


@pytest.fixture
def served(tmp_path: Path):
    made: list[Process] = []

    def start(text: str, watch: float = 0.2) -> Process:
        directory = tmp_path / "policies"
        directory.mkdir(exist_ok=True)
        (directory / "main.yaml").write_text(text)
        proc = Process(directory, tmp_path / "usage.db", watch)
        made.append(proc)
        return proc

    yield start
    for proc in made:
        proc.stop()


async def wait_for(predicate, what: str) -> None:
    for _ in range(200):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_file_change_reloads_and_bad_edit_keeps_old_policy(served, tmp_path):
    db = tmp_path / "usage.db"
    proc = served(policy("a: {destinations: [{provider: echo}]}", db))
    main = tmp_path / "policies" / "main.yaml"
    async with aiohttp.ClientSession() as session:
        await proc.ready(session)
        assert await chat(session, proc.base, "a") == 200
        assert await chat(session, proc.base, "b") == 404

        main.write_text(policy("a: {destinations: [{provider: echo}]}\nb: {destinations: [{provider: echo}]}", db))

        async def b_served() -> bool:
            return await chat(session, proc.base, "b") == 200
        await wait_for(b_served, "the reload that adds model b")

        # A broken edit: unknown key. The old policy keeps serving; /readyz names the problem.
        main.write_text(policy("b: {destinations: [{provider: echo}], colour: blue}", db))

        async def failure_shown() -> bool:
            async with session.get(proc.base + "/readyz") as r:
                body = await r.json()
            return body["policy"]["last_reload"] == "failed"
        await wait_for(failure_shown, "/readyz to show the rejected reload")
        async with session.get(proc.base + "/readyz") as r:
            assert r.status == 200
            status = (await r.json())["policy"]
        assert "main.yaml:" in status["last_error"] and "colour" in status["last_error"]
        assert await chat(session, proc.base, "a") == 200  # the old policy is still in force
        assert await chat(session, proc.base, "b") == 200


async def test_sighup_reloads(served, tmp_path):
    db = tmp_path / "usage.db"
    proc = served(policy("a: {destinations: [{provider: echo}]}", db), watch=0)
    async with aiohttp.ClientSession() as session:
        await proc.ready(session)
        (tmp_path / "policies" / "main.yaml").write_text(
            policy("c: {destinations: [{provider: echo}]}", db))
        await asyncio.sleep(0.3)
        assert await chat(session, proc.base, "c") == 404  # no watch: nothing changed yet
        os.kill(proc.proc.pid, signal.SIGHUP)

        async def c_served() -> bool:
            return await chat(session, proc.base, "c") == 200
        await wait_for(c_served, "SIGHUP reload")
        assert await chat(session, proc.base, "a") == 404


async def test_sigterm_finishes_streams_in_flight_and_flushes_usage(served, tmp_path, fake_upstream):
    fake = await fake_upstream("openai")
    events = [sse_data({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                        "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]})
              for i in range(6)] + [b"data: [DONE]\n\n"]
    fake.reply(sse=events, chunk_delay_s=0.25)
    db = tmp_path / "usage.db"
    upstream = f"up: {{kind: openai, base_url: '{fake.base_url}', api_key: k}}"
    proc = served(policy("slow: {destinations: [{provider: up}]}", db, upstream))
    async with aiohttp.ClientSession() as session:
        await proc.ready(session)
        body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        async with session.post(proc.base + "/ai-gateway/mlflow/v1/chat/completions", json=body,
                                headers=AUTH) as r:
            assert r.status == 200
            first = await r.content.readline()
            assert first.startswith(b"data: ")
            proc.proc.send_signal(signal.SIGTERM)
            rest = await r.read()
        assert rest.rstrip().endswith(b"data: [DONE]")
        assert b"w5 " in rest
    assert proc.proc.wait(15) == 0, proc.output()
    rows = sqlite3.connect(db).execute("select status_code, streaming, model_service from usage").fetchall()
    assert rows == [(200, 1, "slow")]


async def test_serve_refuses_an_invalid_policy_with_file_and_line(tmp_path):
    directory = tmp_path / "bad"
    directory.mkdir()
    (directory / "x.yaml").write_text("providers:\n  p: {kind: nope}\n")
    result = subprocess.run([sys.executable, "-m", "sidegate", "serve", "--policies", str(directory)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "x.yaml:2" in result.stderr
    result = subprocess.run([sys.executable, "-m", "sidegate", "validate", str(directory)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "x.yaml:2" in result.stderr
