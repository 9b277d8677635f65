"""What a stream holds back: exactly what can still become a match of the active detectors.

The reference for "can still become a match" is an independent engine: the `regex` module's partial
matching says whether the text from a position to the end is the start of some match of a detector's
pattern (with the text before it as context). The guard must hold from the first such position (or
from the start of a finding that reaches past it), never less and never more, after every chunk;
and whatever the chunking, what it sends is what masking the whole text gives.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import regex
from tests.unit.governance.test_stream_guard import GHP, active

from sidegate import apis
from sidegate.governance.guardrails.detectors import detectors_of, mask_text
from sidegate.governance.guardrails.patterns import Detector
from sidegate.governance.guardrails.stream_guard import StreamGuard
from sidegate.governance.guardrails.stream_starts import lower
from sidegate.policy.model import DetectorSet

GUARDRAILS: dict[str, dict[str, Any]] = {
    "email": {"pii": ["email"]},
    "phone": {"pii": ["phone"]},
    "credit_card": {"pii": ["credit_card"]},
    "us_ssn": {"pii": ["us_ssn"]},
    "iban": {"pii": ["iban"]},
    "ip_address": {"pii": ["ip_address"]},
    "secrets": {"secrets": True},
    "keywords": {"keywords": ["internal only", "project-x", "acme"]},
    "regex": {"regex": [r"(?i)ticket[ -]\d{4}", r"order #\d{3,6}\b"]},
    "all": {"secrets": True, "pii": ["email", "phone", "credit_card", "us_ssn", "iban", "ip_address"],
            "keywords": ["internal only", "project-x", "acme"], "regex": [r"(?i)ticket[ -]\d{4}"]},
}
# matches and near-matches of each, and words no detector continues
PIECES: dict[str, list[str]] = {
    "email": ["alice@example.com", "bob.smith@mail.example.co.uk", "x@y", "a@b.c", "me@host.org.", "@team"],
    "phone": ["+44 20 7946 0958", "(415) 555-0100", "415-555-0100", "1 415 555 0100", "415 555", "+1", "(4"],
    "credit_card": ["4111 1111 1111 1111", "4111-1111-1111-1111", "5500005555555559", "4111 1111", "1234"],
    "us_ssn": ["123-45-6789", "123 45 6789", "666-12-3456", "12-34", "123-45"],
    "iban": ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "DE89 3704", "GB", "XY12"],
    "ip_address": ["10.0.0.1", "192.168.1.20", "2001:db8::8a2e:370:7334", "3.11.4", "1.2.3", "fe80::1"],
    "secrets": [GHP, "AKIAIOSFODNN7EXAMPLF", 'password = "hunter2hunter2X9"', "sk-ant-api03-" + "a1B2" * 10,
                "postgres://app:s3cr3tPw@db.internal", "ghp_short", "AKIA", "https://x.io", "api_key="],
    "keywords": ["internal only", "Internal  Only", "project-x", "projects", "ACME", "acmes", "internal use"],
    "regex": ["Ticket-1234", "TICKET 9876", "ticket-12", "order #12345", "order #1234567", "order #"],
}
PIECES["all"] = [piece for kind in sorted(PIECES) for piece in PIECES[kind][:3]]
WORDS = ["the", "quick", "brown", "fox,", "jumps", "over", "lazy", "dog.", "12", "a-b", "x.y", "\n", "Step",
         "CODE", "A1", "(see", "v2", "ok:", "through", "42%"]


def text_for(kind: str, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(PIECES[kind]) if rng.random() < 0.25 else rng.choice(WORDS) for _ in range(60))


def chunkings(text: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    chunks, at = [], 0
    while at < len(text):
        step = rng.choice([1, 1, 2, 3, 4, 5, 8, 13])
        chunks.append(text[at:at + step])
        at += step
    return chunks


# a check on the character before a match, written after its first k characters (`before_lead`)
_BEFORE = regex.compile(r"\(\?<!\[([^\]]+)\]\[\\s\\S\]\{(\d+)\}\)")


# a separator or quote that repeats an earlier one (phone numbers, quoted passwords): streams take it
# as any one character (a number "555 415-5" is held though its separators differ)
_SAME_AS = regex.compile(r"\(\?P=\w+\)")


class Reference:
    """Where a match of the detectors may still be in progress, by the `regex` module's partial
    matching of each detector's stream pattern. A partial match stops where the text does, before a
    check on the character before the match that the pattern makes after its first characters: that
    check is made here too (`(?<![A-Za-z0-9][\\s\\S]{4})` after an IBAN's first four)."""

    def __init__(self, detectors: list[Detector]) -> None:
        groups: dict[tuple[bool, tuple[str, ...]], list[str]] = {}
        for d in detectors:
            source = d.lead + (d.stream_rest if d.stream_rest is not None else d.rest)
            before = tuple(sorted({m.group(1) for m in _BEFORE.finditer(source)}))
            source = _SAME_AS.sub(r"[\\s\\S]", source)
            groups.setdefault((d.lowered, before), []).append(source)
        self.groups = [(lowered, [regex.compile(f"[{b}]") for b in before],
                        regex.compile("|".join(f"(?:{s})" for s in sources)))
                       for (lowered, before), sources in groups.items()]

    def in_progress(self, text: str, low: str, p: int) -> bool:
        for lowered, before, pattern in self.groups:
            if p and any(b.fullmatch(text[p - 1]) for b in before):
                continue
            if pattern.fullmatch(low if lowered else text, pos=p, partial=True) is not None:
                return True
        return False


def guard_for(kind: str) -> tuple[StreamGuard, Reference]:
    spec = {"name": kind, "phase": "output", "detect": GUARDRAILS[kind], "action": "mask"}
    guard = active(spec).stream(apis.ANTHROPIC_MESSAGES)
    assert guard is not None
    return guard, Reference(detectors_of(DetectorSet.model_validate(GUARDRAILS[kind])))


def check_stream(kind: str, text: str, chunks: list[str], holds: bool = True) -> None:
    """The text sent equals the whole text masked; with `holds`, after every chunk the hold is the
    reference's."""
    guard, ref = guard_for(kind)
    scanner = guard.phase.stream_scanner
    out: list[str] = []
    seen = ""
    checked = 0  # positions before this one were found not in progress after an earlier chunk
    for chunk in chunks:
        out.append(guard.push(("block", 0), chunk, None, {}))
        seen += chunk
        channel = guard._channels[("block", 0)]
        if not holds or channel.follow is not None:
            continue  # the body of a masked private key: dropped, not held
        start = len(seen) - len(channel.pending)
        low = lower(seen)
        for p in range(checked, start):
            assert not ref.in_progress(seen, low, p), (kind, seen, p, channel.pending)
        checked = start
        if channel.pending and not ref.in_progress(seen, low, start):
            # held from the start of a finding that reaches past a match in progress
            spans = [(f.begin, f.end) for f in scanner.scan(seen)]
            assert any(b == start and any(ref.in_progress(seen, low, q) for q in range(b, e)) for b, e in spans), \
                (kind, seen, channel.pending)
    out.append(guard.flush(("block", 0)))
    whole = active({"name": kind, "phase": "output", "detect": GUARDRAILS[kind], "action": "mask"})
    assert whole.plan.output is not None
    assert "".join(out) == mask_text(text, whole.plan.output.scanner.scan(text)), (kind, chunks)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(GUARDRAILS))
def test_random_chunkings_send_the_whole_text_masked_and_hold_exactly_what_may_still_match(kind: str) -> None:
    # 10 detector sets x 25 texts x 30 chunkings: 7,500 random chunkings, the holds of 1,000 of them
    # checked against the reference after every chunk
    for seed in range(25):
        text = text_for(kind, seed)
        for cut in range(30):
            check_stream(kind, text, chunkings(text, seed * 100 + cut), holds=cut < 4)


@pytest.mark.parametrize(("kind", "chunks", "held"), [
    ("email", ["Write to ", "alice"], "alice"),  # may go on as alice@…
    ("email", ["Write to ", "alice,"], ""),
    ("email", ["Mail alice@exa"], "alice@exa"),
    ("email", ["Mail alice@example.com"], "alice@example.com"),  # .com may go on (.com.au)
    ("email", ["Hello ", "world"], "world"),
    ("phone", ["The quick", " brown fox"], ""),  # no digits, nothing held
    ("phone", ["call 415", " 555"], "415 555"),
    ("phone", ["Step 1", " of 3"], "3"),
    ("phone", ["call (", "41"], "(41"),
    ("phone", ["dial +4"], "+4"),
    ("credit_card", ["card 4111 1111"], "4111 1111"),
    ("credit_card", ["the end."], ""),
    ("us_ssn", ["ssn 123-4"], "123-4"),
    ("us_ssn", ["take 9"], ""),  # no SSN starts with 9
    ("iban", ["the CODE"], ""),
    ("iban", ["iban DE8"], "DE8"),
    ("iban", ["JUMPS"], ""),
    ("ip_address", ["host 10.0."], "10.0."),
    ("ip_address", ["The quick fox"], ""),
    ("secrets", ["token gh"], "gh"),
    ("secrets", ["it goes through"], "through"),  # may go on as through://user:pass@host
    ("secrets", ["done,"], ""),
    ("secrets", ["done."], "done."),  # may go on as done.x://user:pass@host
    ("keywords", ["Mark it int"], "int"),
    ("keywords", ["Mark xint"], ""),
    ("keywords", ["Mark it internal on"], "internal on"),
    ("keywords", ["a fox"], ""),
    ("regex", ["see tick"], "tick"),
    ("regex", ["see TICKET 12"], "TICKET 12"),
    ("regex", ["a lazy dog"], ""),
])
def test_what_a_chunk_leaves_held_per_detector(kind: str, chunks: list[str], held: str) -> None:
    guard, _ = guard_for(kind)
    for chunk in chunks:
        guard.push(("block", 0), chunk, None, {})
    assert guard._channels[("block", 0)].pending == held
