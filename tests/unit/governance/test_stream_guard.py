"""Output guardrails on streams: matches split across chunks are caught, masks keep each format's
event shapes (the official SDKs read them in tests/e2e/test_stream_guard_sdks.py), holdback stays
bounded, blocks end the stream with the format's error event."""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from sidegate import apis
from sidegate.auth.principal import PrincipalInfo
from sidegate.formats.sse import SSESplitter
from sidegate.governance.guardrails.checks import ActiveGuardrails, Guardrails
from sidegate.governance.guardrails.detectors import mask_text
from sidegate.governance.guardrails.stream_guard import StreamGuard
from sidegate.policy.model import PolicyModel
from sidegate.upstream.mock.render import (
    Completion,
    anthropic_events,
    chat_events,
    gemini_events,
    responses_events,
)

ALICE = PrincipalInfo("alice@example.com", "user", frozenset())
PII_MASK = {"name": "pii", "phase": "output", "detect": {"pii": ["email", "phone", "credit_card"]}, "action": "mask"}
SECRETS_BLOCK = {"name": "no-secrets", "phase": "output", "detect": ["secrets"], "action": "block"}
SECRETS_MASK = {**SECRETS_BLOCK, "name": "secrets", "action": "mask"}
SPLIT = ["Write to ", "ali", "ce@exa", "mple.com", " or call +1 415", " 555 0100", " today."]
MASKED = "Write to <EMAIL_ADDRESS> or call <PHONE_NUMBER> today."
GHP = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"

RENDER: dict[str, Callable[[Completion], list[bytes]]] = {
    apis.OPENAI_CHAT: chat_events,
    apis.OPENAI_RESPONSES: responses_events,
    apis.ANTHROPIC_MESSAGES: anthropic_events,
    apis.GEMINI_GENERATE: gemini_events,
}


def active(*specs: dict[str, Any]) -> ActiveGuardrails:
    g = Guardrails.from_policy(PolicyModel.model_validate({"guardrails": list(specs)}))
    assert g is not None
    a = g.for_request(ALICE, "m", {})
    assert a is not None
    return a


def completion(chunks: list[str], **body: Any) -> Completion:
    return Completion("m", "d", "".join(chunks), chunks, False, 3, body)


def run(guard: StreamGuard, events: list[bytes]) -> list[bytes]:
    """Feed the raw event blocks through a splitter and the guard, as the relay does."""
    splitter = SSESplitter()
    out: list[bytes] = []
    for raw in events:
        for ev in splitter.feed(raw):
            out += guard.feed(ev)
    return out + guard.finish()


def payloads(out: list[bytes]) -> list[dict[str, Any]]:
    found = []
    for block in b"".join(out).split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: {"):
                found.append(orjson.loads(line[6:]))
    return found


def streamed_text(api: str, out: list[bytes]) -> str:
    text = []
    for obj in payloads(out):
        if api == apis.OPENAI_CHAT:
            text += [c["delta"].get("content") or "" for c in obj.get("choices") or ()]
        elif api == apis.OPENAI_RESPONSES and obj["type"] == "response.output_text.delta":
            text.append(obj["delta"])
        elif api == apis.ANTHROPIC_MESSAGES and obj["type"] == "content_block_delta":
            text.append(obj["delta"]["text"])
        elif api == apis.GEMINI_GENERATE:
            text += [p.get("text", "") for c in obj.get("candidates") or () for p in c["content"]["parts"]]
    return "".join(text)


@pytest.mark.parametrize("api", sorted(RENDER))
def test_matches_split_across_chunks_are_masked(api: str) -> None:
    a = active(PII_MASK)
    guard = a.stream(api)
    assert guard is not None
    out = run(guard, RENDER[api](completion(SPLIT, stream_options={"include_usage": True})))
    assert streamed_text(api, out) == MASKED
    assert sorted((r["category"], r["count"]) for r in a.results) == [("email", 1), ("phone", 1)]
    assert b"alice" not in b"".join(out) and b"555" not in b"".join(out)


def test_responses_aggregates_are_masked_and_sequence_numbers_stay_contiguous() -> None:
    guard = active(PII_MASK).stream(apis.OPENAI_RESPONSES)
    assert guard is not None
    events = payloads(run(guard, responses_events(completion(SPLIT))))
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    done = {e["type"]: e for e in events}
    assert done["response.output_text.done"]["text"] == MASKED
    assert done["response.content_part.done"]["part"]["text"] == MASKED
    assert done["response.output_item.done"]["item"]["content"][0]["text"] == MASKED
    assert done["response.completed"]["response"]["output"][0]["content"][0]["text"] == MASKED
    types = [e["type"] for e in events]
    assert types.index("response.output_text.done") == types.index("response.content_part.done") - 1
    assert types[-1] == "response.completed"


@pytest.mark.parametrize("api", sorted(RENDER))
def test_terminal_events_stay_last_and_in_order(api: str) -> None:
    guard = active(PII_MASK).stream(api)
    assert guard is not None
    upstream = RENDER[api](completion(SPLIT))
    out = run(guard, upstream)
    tail = {apis.OPENAI_CHAT: 1, apis.ANTHROPIC_MESSAGES: 3, apis.OPENAI_RESPONSES: 0, apis.GEMINI_GENERATE: 0}[api]
    if tail:
        assert out[-tail:] == upstream[-tail:]  # e.g. [DONE]; content_block_stop, message_delta, message_stop


def test_events_without_text_pass_as_their_original_bytes() -> None:
    guard = active(PII_MASK).stream(apis.ANTHROPIC_MESSAGES)
    assert guard is not None
    upstream = anthropic_events(completion(["Hello ", "world ", "again."]))
    out = run(guard, upstream)
    assert out[:3] == upstream[:3]  # message_start, content_block_start, ping
    assert out[3] == upstream[3]  # "Hello " is released whole: nothing held, nothing changed
    assert streamed_text(apis.ANTHROPIC_MESSAGES, out) == "Hello world again."


@pytest.mark.parametrize("api", sorted(RENDER))
def test_block_sends_the_format_error_and_swallows_the_rest(api: str) -> None:
    a = active(SECRETS_BLOCK)
    guard = a.stream(api, request_id="req-9")
    assert guard is not None
    token = [GHP[:10], GHP[10:], " and more text", " after it."]
    out = run(guard, RENDER[api](completion(["Your token: ", *token])))
    assert guard.blocked and guard.error is not None
    joined = b"".join(out)
    assert GHP[:10].encode() not in joined and b"after it" not in joined
    assert b"output_guardrail_triggered" in out[-1] and b"no-secrets" in out[-1]
    if api == apis.ANTHROPIC_MESSAGES:
        assert out[-1].startswith(b"event: error\n")
    assert a.results == [{"guardrail": "no-secrets", "phase": "output", "action": "block",
                          "category": "github_token", "count": 1}]
    assert guard.feed(SSESplitter().feed(b"data: {}\n\n")[0]) == [] and guard.finish() == []


def test_private_key_header_masked_and_body_dropped() -> None:
    body = "\n".join("".join(random.Random(i).choices(string.ascii_letters + "+/", k=64)) for i in range(6))
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
    text = f"Here it is:\n{pem}\nKeep it safe."
    chunks = [text[i:i + 7] for i in range(0, len(text), 7)]
    guard = active(SECRETS_MASK).stream(apis.ANTHROPIC_MESSAGES)
    assert guard is not None
    out = run(guard, anthropic_events(completion(chunks)))
    assert streamed_text(apis.ANTHROPIC_MESSAGES, out) == "Here it is:\n<SECRET>\nKeep it safe."


def test_stream_cut_short_releases_what_was_held() -> None:
    guard = active(PII_MASK).stream(apis.OPENAI_CHAT)
    assert guard is not None
    events = chat_events(completion(["Mail ", "bob@exam", "ple.org"]))[:4]  # no finish chunk, no [DONE]
    out = run(guard, events)
    assert streamed_text(apis.OPENAI_CHAT, out) == "Mail <EMAIL_ADDRESS>"


# ---------------------------------------------------------------- streamed = whole


def corpus() -> str:
    rng = random.Random(7)
    pieces = ["alice@example.com", "+44 20 7946 0958", "(415) 555-0100", "4111 1111 1111 1111", GHP,
              "bob.smith@mail.example.co.uk", "version 3.11.4", "call 415-555-0100 now", "id 123456789012"]
    words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "12", "a-b", "x.y", "\n"]
    return " ".join(rng.choice(pieces) if rng.random() < 0.15 else rng.choice(words) for _ in range(600))


@pytest.mark.parametrize("seed", range(6))
def test_any_chunking_streams_the_same_text_a_whole_scan_gives(seed: int) -> None:
    text = corpus()
    specs = (PII_MASK, SECRETS_MASK)
    whole = active(*specs)
    assert whole.plan.output is not None
    expected = mask_text(text, whole.plan.output.scanner.scan(text))
    rng = random.Random(seed)
    chunks, at = [], 0
    while at < len(text):
        step = rng.choice([1, 2, 3, 5, 8, 13, 40])
        chunks.append(text[at:at + step])
        at += step
    a = active(*specs)
    guard = a.stream(apis.OPENAI_CHAT)
    assert guard is not None
    assert streamed_text(apis.OPENAI_CHAT, run(guard, chat_events(completion(chunks)))) == expected
    assert sum(r["count"] for r in a.results) == len(whole.plan.output.scanner.scan(text))


@pytest.mark.parametrize("text", [
    'Mail a@bpassword = "hunter2hunter2X9" now.',  # a label inside an e-mail address
    "Set api_key: 'Zx9Qw8Er7Ty6Ui5'key=value now.",  # the secret after the cut, a word glued to it
    "Call +1 415 555 0100 or 4111 1111 1111 1111, ok.",
])
def test_overlapping_matches_are_found_however_the_text_is_cut(text: str) -> None:
    whole = active(PII_MASK, SECRETS_MASK)
    assert whole.plan.output is not None
    expected = mask_text(text, whole.plan.output.scanner.scan(text))
    assert expected != text
    cuts = [[text[:i], text[i:]] for i in range(1, len(text))]
    for seed in range(40):
        rng = random.Random(seed)
        chunks, at = [], 0
        while at < len(text):
            step = rng.choice([1, 2, 3, 4, 5, 8])
            chunks.append(text[at:at + step])
            at += step
        cuts.append(chunks)
    for chunks in cuts:
        guard = active(PII_MASK, SECRETS_MASK).stream(apis.OPENAI_CHAT)
        assert guard is not None
        assert streamed_text(apis.OPENAI_CHAT, run(guard, chat_events(completion(chunks)))) == expected, chunks


def test_a_secret_before_a_number_still_being_written_is_masked() -> None:
    # one long chunk: the key, then a phone number cut short (the stream used to release the key
    # unmasked while it held the number back)
    chunks = ['Set "private_key_id": "0123456789abcdef0123456789abcdef01234567" and more words to pass the '
              'window by far, call 41', "5-555-01"]
    a = active(PII_MASK, SECRETS_MASK)
    guard = a.stream(apis.OPENAI_CHAT)
    assert guard is not None
    assert streamed_text(apis.OPENAI_CHAT, run(guard, chat_events(completion(chunks)))) == \
        'Set "private_key_id": "<SECRET>" and more words to pass the window by far, call 415-555-01'


def test_a_keyword_cut_inside_its_first_word_is_masked() -> None:
    # only keywords: no detector of whole words holds the last word back, the keyword's own start does
    keywords = {"name": "kw", "phase": "output", "action": "mask",
                "detect": {"keywords": ["internal only", "project-x"]}}
    for chunks in (["Mark it \tint", "ernal only", " please."], ["Mark it int", "ernal", " only."],
                   ["About proj", "ect-x."]):
        guard = active(keywords).stream(apis.ANTHROPIC_MESSAGES)
        assert guard is not None
        assert "<KEYWORD>" in streamed_text(apis.ANTHROPIC_MESSAGES, run(guard, anthropic_events(completion(chunks))))


def test_numbers_that_nothing_can_continue_are_not_held() -> None:
    guard = active(PII_MASK, SECRETS_MASK).stream(apis.ANTHROPIC_MESSAGES)
    assert guard is not None
    splitter = SSESplitter()
    for raw in anthropic_events(completion(["Step", " 1", " of", " 3", " is", " done"]))[:8]:
        for ev in splitter.feed(raw):
            guard.feed(ev)
    assert [c.pending for c in guard._channels.values()] == ["is"]  # "Step 1 of 3 " went out


def test_holdback_stays_bounded_over_a_long_stream() -> None:
    guard = active(PII_MASK, SECRETS_MASK).stream(apis.OPENAI_CHAT)
    assert guard is not None
    scanner = guard.phase.stream_scanner
    bound = scanner.token_window + scanner.spaced_window + 16
    splitter = SSESplitter()
    longest = 0
    words = ["lorem ", "ipsum ", "dolor ", "sit ", "amet, ", "2024 ", "x" * 50, "\n"]
    stream = chat_events(completion([words[i % len(words)] for i in range(20000)]))
    for raw in stream[:-2]:
        for ev in splitter.feed(raw):
            guard.feed(ev)
        longest = max([longest, *(len(c.pending) + len(c.context) for c in guard._channels.values())])
    assert 0 < longest <= bound
    channel = next(iter(guard._channels.values()))
    assert channel.offset > 100000  # released as it went


def test_plain_prose_is_held_back_by_one_word_only() -> None:
    guard = active(PII_MASK).stream(apis.ANTHROPIC_MESSAGES)
    assert guard is not None
    splitter = SSESplitter()
    for raw in anthropic_events(completion(["The ", "quick ", "brown ", "fox ", "jumps"]))[:8]:
        for ev in splitter.feed(raw):
            guard.feed(ev)
    assert [c.pending for c in guard._channels.values()] == ["jumps"]


def test_text_in_the_chunk_that_finishes_keeps_its_order() -> None:
    guard = active(PII_MASK).stream(apis.OPENAI_CHAT)
    assert guard is not None
    events = chat_events(completion(["Mail ", "bob@example.org"]))
    last = orjson.loads(events[2][6:])
    last["choices"][0]["finish_reason"] = "stop"  # some servers send the last text with the finish reason
    events = [events[0], events[1], b"data: " + orjson.dumps(last) + b"\n\n", b"data: [DONE]\n\n"]
    assert streamed_text(apis.OPENAI_CHAT, run(guard, events)) == "Mail <EMAIL_ADDRESS>"
