"""`sidegate serve` as a process of its own under a volley of concurrent upstream faults (resets,
hangs, non-HTTP answers, cut and stalled streams, slow first bytes, 5xx) from every caller format:
afterwards the process answers /healthz, /readyz (nothing in flight) and /metrics, serves a normal
request, holds no half-closed socket, exits cleanly on SIGTERM, and the usage store holds
exactly one row per request id."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from tests.support.fakes.fault_env import AUTH, CALLERS, Caller
from tests.support.fakes.faulty import CLOSE, HANG, RESET, FaultyUpstream, Part, Request, error, ok, sse, whole
from tests.support.gateway import PRINCIPALS
from tests.support.served import free_port, wait_until_up

from sidegate.telemetry.stores.registry import read_rows
from sidegate.telemetry.usage.row import USAGE

pytestmark = pytest.mark.timeout(60)
Script = Callable[[Request], list[Part]]
VOLLEY: list[tuple[str, bool, Script]] = [  # (name, streamed, reply)
    ("reset", False, lambda r: [RESET]),
    ("hang", False, lambda r: [HANG]),
    ("not-http", False, lambda r: [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", CLOSE]),
    ("slow", False, lambda r: [1.0, *ok(r)]),
    ("503", False, lambda r: error(r, 503)),
    ("body-cut", False, lambda r: [*whole(200, b'{"id": "chatcmpl-', length=400), RESET]),
    ("stream-cut", True, lambda r: [*sse(r.events()[:2]), CLOSE]),
    ("stream-reset", True, lambda r: [*sse(r.events()[:2]), RESET]),
    ("stream-hang", True, lambda r: [*sse(r.events()[:2]), HANG]),
    ("stream-hang-at-head", True, lambda r: [*sse([]), HANG]),
]


def policy(up: FaultyUpstream, db: Path) -> str:
    return f"""
providers:
  bad: {{kind: {up.kind}, base_url: '{up.base_url}', api_key: up}}
models:
  m: {{destinations: [{{provider: bad}}], timeout_s: 0.5, idle_timeout_s: 0.5, circuit_breaker: {{failures: 1000}}}}
usage: {{store: "sqlite:///{db}"}}
{PRINCIPALS}"""


CLOSE_WAIT = "08"  # /proc/net/tcp state: the peer closed, this end has not


def socket_states(pid: int) -> list[str]:
    """The TCP state of every socket the process holds (from /proc: its fds' inodes in net/tcp)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    states = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[9] in inodes:
                    states.append(fields[3])
    return states


async def call(http: aiohttp.ClientSession, base: str, caller: Caller, stream: bool,
               fault: str = "") -> tuple[int, str]:
    async with http.post(base + "/ai-gateway" + caller.path("m", stream), json=caller.body("m", stream),
                         headers={**AUTH, "x-fault": fault}) as resp:
        await resp.read()
        return resp.status, resp.headers["x-sidegate-request-id"]


@pytest.mark.parametrize("caller", [CALLERS[0], CALLERS[2]], ids=["chat", "anthropic"])
async def test_the_process_stays_healthy_under_a_volley_of_faults(tmp_path: Path, caller: Caller) -> None:
    up = await FaultyUpstream(caller.native).start()
    directory, db = tmp_path / "policies", tmp_path / "usage.db"
    directory.mkdir()
    (directory / "main.yaml").write_text(policy(up, db))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sidegate", "serve", "--policies", str(directory),
                             "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def output() -> str:
        if proc.poll() is None:
            proc.kill()
        return (proc.stdout.read() if proc.stdout else b"").decode(errors="replace")

    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            await wait_until_up(proc, base + "/healthz", http, output)
            ids = [(await call(http, base, caller, False))[1]]
            up.named = {name: script for name, _, script in VOLLEY}
            answers = await asyncio.gather(*(call(http, base, caller, streamed, name)
                                             for name, streamed, _ in VOLLEY * 3))
            assert len(up.received) == len(VOLLEY) * 3 + 1
            statuses: dict[str, set[int]] = {}
            for (name, _, _), (status, _) in zip(VOLLEY * 3, answers, strict=True):
                statuses.setdefault(name, set()).add(status)
            # a stream silent after its head has sent the caller nothing yet: a timeout like "hang"
            expected = {"reset": 502, "hang": 504, "not-http": 502, "slow": 504, "503": 503, "body-cut": 502,
                        "stream-hang-at-head": 504}
            assert statuses == {n: {expected.get(n, 200)} for n, _, _ in VOLLEY}, statuses
            ids += [rid for _, rid in answers]
            for path in ("/healthz", "/metrics"):
                async with http.get(base + path) as resp:
                    assert resp.status == 200, path
            async with http.get(base + "/readyz") as resp:
                assert (await resp.json())["in_flight"] == 0
            status, rid = await call(http, base, caller, False)
            assert status == 200
            ids.append(rid)
            for _ in range(50):  # connections the faults broke are closed, not left half open
                if CLOSE_WAIT not in socket_states(proc.pid):
                    break
                await asyncio.sleep(0.05)
            states = socket_states(proc.pid)
            assert CLOSE_WAIT not in states and len(states) <= 2 + len(VOLLEY) * 3, states
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, output()
        rows = read_rows(f"sqlite:///{db}", USAGE)
        assert sorted(r["request_id"] for r in rows) == sorted(ids), "exactly one usage row per request id"
        seen = {rid: status for status, rid in answers}
        for row in rows:  # each row says what its caller got; every fault of the volley is recorded as one
            if row["request_id"] in seen:
                assert row["status_code"] == seen[row["request_id"]] and row["error_code"], row
            else:
                assert (row["status_code"], row["error_code"]) == (200, None), row
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        await up.close()
