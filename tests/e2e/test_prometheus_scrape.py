"""A real Prometheus server scrapes a sidegate started here: requests sent with the openai SDK show
up in Prometheus' query API. Needs the `prometheus` binary (Debian package `prometheus`): a
failure under CI=true when it is missing, a skip elsewhere."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from tests.support.gateway import KEY
from tests.support.prom import binary

DEADLINE_S = 90.0  # generous: the test ends as soon as the answer is there


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prometheus:
    """A Prometheus server scraping one target every second, with its own config and data dir."""

    def __init__(self, tmp_path: Path, target: str) -> None:
        self.dir = tmp_path
        self.origin = f"http://127.0.0.1:{free_port()}"
        config = tmp_path / "prometheus.yml"
        config.write_text(textwrap.dedent(f"""
            global: {{scrape_interval: 1s, evaluation_interval: 1s}}
            scrape_configs:
              - job_name: sidegate
                scrape_interval: 1s
                scrape_timeout: 1s
                static_configs: [{{targets: ["{target}"]}}]
            """))
        self.log = tmp_path / "prometheus.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                 f"--web.listen-address={self.origin.removeprefix('http://')}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)

    def alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail("prometheus exited:\n" + self.log.read_text(errors="replace"))

    async def ready(self) -> bool:
        self.alive()
        try:
            async with aiohttp.ClientSession() as session, session.get(self.origin + "/-/ready") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    async def query(self, promql: str) -> float | None:
        """The value of a PromQL query with one result, or None while it has none."""
        self.alive()
        async with aiohttp.ClientSession() as session, \
                session.get(self.origin + "/api/v1/query", params={"query": promql}) as r:
            answer: dict[str, Any] = await r.json()
        assert answer["status"] == "success", answer
        result = answer["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
async def prometheus(tmp_path: Path) -> AsyncIterator[Callable[[str], Awaitable[Prometheus]]]:
    """`prom = await prometheus("127.0.0.1:PORT")`: a ready Prometheus scraping that target."""
    started: list[Prometheus] = []

    async def start(target: str) -> Prometheus:
        binary("prometheus")
        prom = Prometheus(tmp_path, target)
        started.append(prom)
        deadline = asyncio.get_running_loop().time() + DEADLINE_S
        while not await prom.ready():
            assert asyncio.get_running_loop().time() < deadline, "prometheus did not become ready"
            await asyncio.sleep(0.2)
        return prom

    yield start
    for prom in started:
        prom.stop()


async def test_prometheus_scrapes_sidegate(gateway, prometheus):
    gw = await gateway("""
    providers: {echo: {kind: mock}}
    models: {echo: {destinations: [{provider: echo}]}}
    telemetry: {metrics: {labels: [principal]}}
    """)
    prom = await prometheus(f"127.0.0.1:{gw.server.port}")
    api = openai.AsyncOpenAI(base_url=gw.base + "/mlflow/v1", api_key=KEY, max_retries=0)
    messages = [{"role": "user", "content": "count me"}]
    for _ in range(4):
        await api.chat.completions.create(model="echo", messages=messages)
    stream = await api.chat.completions.create(model="echo", messages=messages, stream=True)
    [chunk async for chunk in stream]

    wanted = {
        'sum(sidegate_requests_total{principal="alice@example.com"})': 5.0,
        'sum(gen_ai_client_token_usage_count{gen_ai_token_type="input"})': 5.0,
        "sum(gen_ai_server_time_to_first_token_seconds_count)": 1.0,
        'up{job="sidegate"}': 1.0,
    }
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while True:  # until Prometheus has scraped the counts (or the deadline passes)
        got = {promql: await prom.query(promql) for promql in wanted}
        if got == wanted or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.25)
    assert got == wanted
