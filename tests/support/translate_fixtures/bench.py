"""Translation cost, measured: `python -m tests.support.translate_fixtures.bench`.

Per request: orjson parse of the caller's bytes, `Translation.request`, orjson dump of the
destination body. Per stream event: `StreamTranslator.feed` on already split events (what the
relay adds on top of splitting, which passthrough pays too)."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
from tests.e2e.test_claude_code_wire import BODY as CLAUDE_CODE_BODY
from tests.support.translate_fixtures import answers, requests

from sidegate import apis
from sidegate.formats.sse import SSESplitter
from sidegate.translate import Translation


def per_call(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """Microseconds per call, best of 5 rounds."""
    best = float("inf")
    for _ in range(5):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 5:
            fn()
            n += 1
        best = min(best, elapsed / n * 1e6)
    return best


def request_case(caller: str, dest: str, raw: bytes) -> float:
    def run() -> None:
        t = Translation(caller, dest, "m", "d", True)
        orjson.dumps(t.request(orjson.loads(raw)))
    return per_call(run)


def stream_case(caller: str, dest: str, sse: list[bytes], body: dict[str, object]) -> tuple[float, int]:
    events = SSESplitter().feed(b"".join(sse))

    def run() -> None:
        t = Translation(caller, dest, "m", "d", True)
        t.request(body)
        stream = t.stream()
        for ev in events:
            stream.feed(ev.event, ev.data)
        stream.finish()
    return per_call(run) / len(events), len(events)


def main() -> None:
    cases = [
        ("Claude Code body 80 kB, anthropic → chat", apis.ANTHROPIC_MESSAGES, apis.OPENAI_CHAT, CLAUDE_CODE_BODY),
        ("Claude Code body 80 kB, anthropic → gemini", apis.ANTHROPIC_MESSAGES, apis.GEMINI_GENERATE,
         CLAUDE_CODE_BODY),
        ("chat tool loop, chat → anthropic", apis.OPENAI_CHAT, apis.ANTHROPIC_MESSAGES,
         orjson.dumps(requests.CHAT["tool_loop"])),
        ("Codex body, responses → chat", apis.OPENAI_RESPONSES, apis.OPENAI_CHAT,
         orjson.dumps(requests.RESPONSES["codex_like"])),
    ]
    for name, caller, dest, raw in cases:
        print(f"request  {name}: {request_case(caller, dest, raw):8.1f} µs")
    base = {apis.OPENAI_CHAT: {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                               "stream_options": {"include_usage": True}},
            apis.ANTHROPIC_MESSAGES: {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]},
            apis.OPENAI_RESPONSES: {"model": "m", "input": "hi"},
            apis.GEMINI_GENERATE: {"contents": [{"parts": [{"text": "hi"}]}]}}
    streams = [
        ("anthropic → chat", apis.OPENAI_CHAT, answers.anthropic_parallel_sse()),
        ("anthropic → responses", apis.OPENAI_RESPONSES, answers.anthropic_parallel_sse()),
        ("chat → anthropic", apis.ANTHROPIC_MESSAGES, answers.chat_parallel_sse()),
        ("chat → gemini", apis.GEMINI_GENERATE, answers.chat_parallel_sse()),
        ("gemini → anthropic", apis.ANTHROPIC_MESSAGES, answers.gemini_parallel_sse()),
    ]
    dest_of = {"anthropic": apis.ANTHROPIC_MESSAGES, "chat": apis.OPENAI_CHAT, "gemini": apis.GEMINI_GENERATE}
    for name, caller, sse in streams:
        dest = dest_of[name.split(" ")[0]]
        micros, count = stream_case(caller, dest, sse, base[caller])
        print(f"stream   {name} ({count} events): {micros:6.1f} µs per destination event")


if __name__ == "__main__":
    main()
