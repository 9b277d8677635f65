"""CPU per streamed event of the output guardrails, in each API format, as the relay runs them.

    python bench/stream_guard_cost.py [--events 2000] [--long 20000]

A realistic answer (prose from the design brief and a Python listing from the standard library,
cut into token-sized chunks of about four characters; one e-mail address and one phone number in
it) is rendered as a Chat Completions, Responses, Anthropic Messages and Gemini stream, split into
events, and passed event by event through what `upstream.relay` does for it: the usage observer,
then the stream guard of the benchmark policy (the `secrets` guardrail blocking, the `pii` one
masking). Printed per format: µs per event for the observer alone, and for observer and guard
together; how many characters the guard holds back after each chunk (what a caller waits for);
then, along a long stream, µs per event over its first and its last 2,000 events (the cost per
chunk must not grow with the stream). The digest of the bytes sent (timestamps fixed)
tells two versions of sidegate apart when their output differs. Not a test: numbers, no assertions.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json.decoder
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from sidegate import apis
from sidegate.auth.principal import PrincipalInfo
from sidegate.formats.sse import Event, SSESplitter
from sidegate.governance.guardrails.checks import Guardrails
from sidegate.ingress.registry import FORMATS
from sidegate.policy.model import PolicyModel
from sidegate.upstream.mock import render as mock_render
from sidegate.upstream.mock.render import Completion

REPO = Path(__file__).resolve().parent.parent
GUARDRAILS = [  # as in bench/policies/bench.yaml
    {"name": "secrets", "phase": "both", "detect": ["secrets"], "action": "block"},
    {"name": "pii", "phase": "both", "detect": {"pii": ["email", "phone", "credit_card", "us_ssn", "ip_address"]},
     "action": "mask"},
]
RENDER: dict[str, Callable[[Completion], list[bytes]]] = {
    apis.OPENAI_CHAT: mock_render.chat_events,
    apis.OPENAI_RESPONSES: mock_render.responses_events,
    apis.ANTHROPIC_MESSAGES: mock_render.anthropic_events,
    apis.GEMINI_GENERATE: mock_render.gemini_events,
}
# roughly how a BPE tokenizer cuts text: a word with its leading space, up to 3 digits, one symbol
_TOKEN = re.compile(r" ?[A-Za-z]+| ?[0-9]{1,3}| ?[^\sA-Za-z0-9]|\s+")


def answer_chunks(n: int) -> list[str]:
    design = REPO.parent / "shared" / "DESIGN.md"
    prose = design.read_text() if design.exists() else (REPO / "README.md").read_text()
    code = inspect.getsource(json.decoder)
    text = (prose[:6000] + "\n\nWrite to alice@example.com or call +1 415 555 0100 today.\n\n```python\n"
            + code[:6000] + "\n```\n")
    tokens = _TOKEN.findall(text)
    return [tokens[i % len(tokens)] for i in range(n)]


def events_of(api: str, chunks: list[str]) -> list[Event]:
    body = {"stream_options": {"include_usage": True}}
    c = Completion("bench-stream", "d0", "".join(chunks), chunks, False, 40, body)
    splitter = SSESplitter()
    return [ev for raw in RENDER[api](c) for ev in splitter.feed(raw)]


def relay_events(api: str, events: list[Event], guarded: bool, guardrails: Guardrails) -> tuple[float, list[float],
                                                                                                list[bytes]]:
    """Seconds for the whole stream, seconds per event, and the bytes sent."""
    observer = FORMATS[api].observer(False)
    guard = None
    if guarded:
        active = guardrails.for_request(PrincipalInfo("bench@example.com", "user", frozenset()), "m", {})
        assert active is not None
        guard = active.stream(api, "req-bench")
        assert guard is not None
    out: list[bytes] = []
    each: list[float] = []
    clock = time.perf_counter
    began = clock()
    for ev in events:
        t = clock()
        if not observer.on_event(ev.event, ev.data):
            out += guard.feed_json(ev, observer.parsed) if guard is not None else [ev.raw]
        each.append(clock() - t)
    if guard is not None:
        out += guard.finish()
    return clock() - began, each, out


def held_back(api: str, events: list[Event], guardrails: Guardrails) -> list[int]:
    """Characters the guard holds back after each event (text it cannot release yet)."""
    active = guardrails.for_request(PrincipalInfo("bench@example.com", "user", frozenset()), "m", {})
    assert active is not None
    guard = active.stream(api, "req-bench")
    assert guard is not None
    held = []
    for ev in events:
        guard.feed(ev)
        held.append(sum(len(c.pending) for c in guard._channels.values()))
    return held


def best(api: str, events: list[Event], guarded: bool, guardrails: Guardrails, rounds: int) -> tuple[float, bytes]:
    runs = [relay_events(api, events, guarded, guardrails) for _ in range(rounds)]
    return min(r[0] for r in runs) / len(events) * 1e6, b"".join(runs[0][2])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--long", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    mock_render.time.time = lambda: 1_764_000_000  # type: ignore[attr-defined,method-assign]
    guardrails = Guardrails.from_policy(PolicyModel.model_validate({"guardrails": GUARDRAILS}))
    assert guardrails is not None
    chunks = answer_chunks(args.events)
    print(f"{args.events} text chunks, {sum(map(len, chunks)) / len(chunks):.1f} characters each on average")
    print(f"{'format':28s} {'events':>6s} {'observer':>9s} {'+ guard':>9s} {'guard':>8s}  digest")
    for api in RENDER:
        events = events_of(api, chunks)
        plain, _ = best(api, events, False, guardrails, args.rounds)
        both, sent = best(api, events, True, guardrails, args.rounds)
        digest = hashlib.sha256(sent).hexdigest()[:12]
        print(f"{api:28s} {len(events):6d} {plain:7.2f}µs {both:7.2f}µs {both - plain:6.2f}µs  {digest}")
    held = sorted(held_back(apis.OPENAI_CHAT, events_of(apis.OPENAI_CHAT, chunks), guardrails))
    print(f"\nheld back after each chunk (characters): mean {statistics.fmean(held):.1f}, "
          f"p50 {held[len(held) // 2]}, p99 {held[len(held) * 99 // 100]}, max {held[-1]}")
    print(f"\nalong a stream of {args.long} chunks, observer + guard, µs per event (median of 2,000-event slices):")
    long_chunks = answer_chunks(args.long)
    for api in RENDER:
        events = events_of(api, long_chunks)
        runs = [relay_events(api, events, True, guardrails)[1] for _ in range(3)]
        per = [min(r[i] for r in runs) for i in range(len(events))]
        first, last = per[5:2005], per[-2005:-5]
        print(f"{api:28s} first {statistics.median(first) * 1e6:6.2f}  last {statistics.median(last) * 1e6:6.2f}"
              f"  (means {statistics.fmean(first) * 1e6:6.2f} / {statistics.fmean(last) * 1e6:6.2f})")


if __name__ == "__main__":
    main()
