"""Scan cost of the guardrail detectors: microseconds per KB of text with every detector on.

    python bench/guardrail_scan.py

Corpora: Python source (installed aiohttp), English prose (the design brief), a JSON tool result
(a request body as text), a log excerpt with timestamps, IPs and ids. Each is scanned whole, cold
(the clean-text cache is emptied before every run) and warm (the same texts again, as an agent's
resent conversation is). Then a streamed Chat Completions answer of the prose, one word per chunk,
through the stream guard with every detector masking: µs per chunk, and how many characters were
held back at most. Not a test: numbers, no assertions.
"""

from __future__ import annotations

import inspect
import statistics
import time
from pathlib import Path

import aiohttp.client
import aiohttp.web_protocol
import orjson

from sidegate import apis
from sidegate.auth.principal import PrincipalInfo
from sidegate.formats.sse import SSESplitter
from sidegate.governance.guardrails.checks import Guardrails
from sidegate.governance.guardrails.detectors import Scanner, detectors_of
from sidegate.policy.model import DetectorSet, PolicyModel
from sidegate.upstream.mock.render import Completion, chat_events

ALL = DetectorSet(secrets=True, pii=["email", "phone", "credit_card", "us_ssn", "iban", "ip_address"],
                  keywords=["project-x", "internal only"], regex=[r"(?i)confidential\s+draft"])
REPO = Path(__file__).resolve().parent.parent


def corpora() -> dict[str, str]:
    code = inspect.getsource(aiohttp.client) + inspect.getsource(aiohttp.web_protocol)
    design = (REPO.parent / "shared" / "DESIGN.md")
    prose = design.read_text() if design.exists() else (REPO / "README.md").read_text()
    body = orjson.dumps({"model": "gpt-5", "messages": [
        {"role": "system", "content": prose[:4000]},
        {"role": "user", "content": "Please review this module."},
        {"role": "tool", "tool_call_id": "call_abc123", "content": code[:20000]},
    ]}).decode()
    log = "".join(
        f"2025-06-{d:02d}T12:{m:02d}:07.123Z INFO request_id=9f{d}{m}c2e7-4b1a-4c5e-9d3f-0a1b2c3d4e5f "
        f"client=10.2.{d}.{m} status=200 latency_ms={m * 7} path=/v1/chat/completions sha=4f2a9c1e7b\n"
        for d in range(1, 29) for m in range(0, 60, 3)
    )
    return {"python source": code, "prose": prose, "json body": body, "log lines": log}


def per_kb(scanner: Scanner, text: str, cold: bool, rounds: int = 15) -> float:
    samples = []
    for _ in range(rounds):
        if cold:
            scanner._clean.clear()
        t = time.perf_counter()
        scanner.scan_many([text])
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e6 / (len(text.encode()) / 1024)


def main() -> None:
    t = time.perf_counter()
    scanner = Scanner([(0, detectors_of(ALL))])
    print(f"compile: {(time.perf_counter() - t) * 1000:.1f} ms, {len(scanner.passes)} passes")
    for name, text in corpora().items():
        findings = scanner.scan(text)
        print(f"{name:14s} {len(text) / 1024:7.1f} KB  cold {per_kb(scanner, text, True):6.1f} µs/KB  "
              f"warm {per_kb(scanner, text, False):5.2f} µs/KB  findings {len(findings)}")
    prose = corpora()["prose"]
    stream_cost(prose, ALL, "every detector")
    stream_cost(prose, ALL.model_copy(update={"regex": []}), "every detector but the unbounded regex")
    stream_cost(prose, DetectorSet(pii=["email", "phone", "credit_card"]), "email, phone, card")


def stream_cost(prose: str, detect: DetectorSet, label: str) -> None:
    policy = PolicyModel.model_validate({"guardrails": [
        {"name": "all", "phase": "output", "action": "mask", "detect": detect.model_dump()}]})
    guardrails = Guardrails.from_policy(policy)
    assert guardrails is not None
    words = [w + " " for w in prose.split(" ")]
    events = chat_events(Completion("m", "d", "".join(words), words, False, 1, {}))
    splitter = SSESplitter()
    parsed = [ev for raw in events for ev in splitter.feed(raw)]
    samples, held = [], 0
    for _ in range(5):
        active = guardrails.for_request(PrincipalInfo("p", "user", frozenset()), "m", {})
        assert active is not None
        guard = active.stream(apis.OPENAI_CHAT)
        assert guard is not None
        t = time.perf_counter()
        for ev in parsed:
            guard.feed(ev)
            held = max(held, *(len(c.pending) for c in guard._channels.values()), 0)
        guard.finish()
        samples.append(time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(5):
        SSESplitter().feed(b"".join(events))
    split = (time.perf_counter() - t) / 5
    per_chunk = statistics.median(samples) * 1e6 / len(parsed)
    print(f"stream, {label}: {len(parsed)} chunks, {per_chunk:.1f} µs per chunk with the guard "
          f"(SSE splitting alone {split * 1e6 / len(parsed):.2f} µs), at most {held} characters held back")


if __name__ == "__main__":
    main()
