"""`sidegate serve` as a process, at its edge: the start-up lines name the base URL of each SDK on the
address it listens on; with `admin_listen` the operations endpoints move to the admin port; what
aiohttp refuses before routing (an oversized header, a garbled request) answers JSON there too."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from tests.support.gateway import KEY, PRINCIPALS
from tests.support.served import free_port, wait_until_up

AUTH = {"Authorization": f"Bearer {KEY}"}


class Served:
    def __init__(self, directory: Path, text: str, admin_port: int) -> None:
        directory.mkdir()
        (directory / "policy.yaml").write_text(text)
        self.port, self.admin_port = free_port(), admin_port
        self.base = f"http://127.0.0.1:{self.port}"
        self.admin = f"http://127.0.0.1:{admin_port}"
        self.log = directory / "out.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sidegate", "serve", "--policies", str(directory),
                 "--listen", f"127.0.0.1:{self.port}", "--watch-interval", "0"],
                stdout=out, stderr=subprocess.STDOUT, cwd=directory)

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[], Served]]:
    proc: list[Served] = []

    def start() -> Served:
        admin = free_port()
        text = (f'server: {{admin_listen: "127.0.0.1:{admin}", max_header_bytes: 4096}}\n'
                "providers: {echo: {kind: mock}}\nmodels: {echo: {destinations: [{provider: echo}]}}\n"
                f'usage: {{store: "sqlite:///{tmp_path}/usage.db"}}\n' + PRINCIPALS)
        p = Served(tmp_path / "policies", text, admin)
        proc.append(p)
        return p

    yield start
    for p in proc:
        p.stop()


async def test_serve_start_up_lines_admin_port_and_json_edge(served) -> None:
    proc = served()
    async with aiohttp.ClientSession() as http:
        await wait_until_up(proc.proc, proc.admin + "/readyz", http, proc.log.read_text)
        listening = next(e for e in proc.lines() if e["event"] == "listening")
        root = f"http://127.0.0.1:{proc.port}/ai-gateway"
        assert listening["address"] == f"http://127.0.0.1:{proc.port}"
        assert {k: listening[k] for k in ("mlflow", "openai", "anthropic", "gemini", "codex")} == {
            "mlflow": root + "/mlflow/v1", "openai": root + "/openai/v1", "anthropic": root + "/anthropic",
            "gemini": root + "/gemini", "codex": root + "/codex/v1"}
        admin_line = next(e for e in proc.lines() if e["event"] == "listening for operations")
        assert admin_line["address"] == proc.admin

        async with http.post(listening["mlflow"] + "/chat/completions", headers=AUTH,
                             json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]}) as r:
            assert r.status == 200
        for path in ("/metrics", "/readyz", "/healthz"):
            async with http.get(proc.base + path) as r:
                assert (r.status, r.content_type) == (404, "application/json"), path
        async with http.get(proc.admin + "/metrics") as r:
            assert r.status == 200 and "sidegate_requests_total" in await r.text()
        async with http.delete(proc.admin + "/metrics") as r:
            assert r.status == 405 and (await r.json())["error"]["code"] == "method_not_allowed"

        token = "sk-ant-oat01-" + "z" * 5000
        async with http.post(listening["anthropic"] + "/v1/messages", json={},
                             headers={"Authorization": f"Bearer {token}"}) as r:
            body = await r.text()
            assert (r.status, r.content_type) == (431, "application/json")
            assert json.loads(body)["error"]["code"] == "request_header_too_large" and "zzzz" not in body

    reader, writer = await asyncio.open_connection("127.0.0.1", proc.admin_port)
    writer.write(b"\x16\x03\x01 not http at all\r\n\r\n")  # a TLS hello to a plain-HTTP port
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
    assert b"application/json" in answer and b'"bad_request"' in answer
    assert "zzzz" not in proc.log.read_text()  # the refused header is not logged either
