"""Matches in progress: wherever more text could still make, extend or undo a match, the in-progress
pattern says so (streams hold text from there), and text no match can continue is not held."""

from __future__ import annotations

import random
import re

import pytest

from sidegate.governance.guardrails.detectors import detectors_of, lower
from sidegate.governance.guardrails.patterns import Detector
from sidegate.governance.guardrails.regex.partial import in_progress, reach_back
from sidegate.governance.guardrails.regex.prefix import any_of
from sidegate.policy.model import DetectorSet

SPACED = [d for d in detectors_of(DetectorSet(
    secrets=True, pii=["phone", "credit_card", "us_ssn", "iban"], keywords=["internal only", "project x"]))
    if d.spaced and d.anchor is not None]
EXAMPLES = {
    "phone": ["+44 20 7946 0958", "(415) 555-0100", "415-555-0100", "1 415 555 0100"],
    "credit_card": ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111"],
    "us_ssn": ["123-45-6789", "123 45 6789"],
    "iban": ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000"],
    "private_key": ["-----BEGIN RSA PRIVATE KEY-----"],
    "keyword": ["internal only", "INTERNAL  ONLY", "Project X"],
    "aws_secret_access_key": ["AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
    "password_assignment": ['password = "hunter2hunter2X9"', "api_key: 'Zx9Qw8Er7Ty6Ui5'", "AUTH_TOKEN='abcdefgh1234'"],
    "gcp_service_account_key": ['"private_key_id": "0123456789abcdef0123456789abcdef01234567"'],
}
ALPHABET = "0123456789 -.()+\n\tAaEeKkPpSsWwXx_=:'\"/"


def pattern_of(d: Detector) -> str:
    return d.lead + (d.stream_rest if d.stream_rest is not None else d.rest)


@pytest.mark.parametrize("detector", SPACED, ids=lambda d: f"{d.category}:{d.lead}")
def test_wherever_more_text_could_change_a_match_it_is_in_progress(detector: Detector) -> None:
    sources = in_progress(pattern_of(detector), detector.lowered)
    assert sources is not None
    held = any_of(sources)
    assert held is not None
    pattern = re.compile(pattern_of(detector))
    read = lower if detector.lowered else str
    rng = random.Random(11)
    examples = EXAMPLES.get(detector.category, ["x"])
    for _ in range(600):
        example = rng.choice(examples)
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 3))) + example[:rng.randint(0, len(example))]
        for at in range(len(text)):
            if held.match(text, at) is not None:
                continue
            now = pattern.match(read(text), at)
            for more in (example[len(text) % len(example):], "".join(rng.choice(ALPHABET) for _ in range(9))):
                later = pattern.match(read(text + more), at)
                assert (now and now.span()) == (later and later.span()), (detector.category, text, at, more)


def test_text_no_match_can_continue_is_not_in_progress() -> None:
    held = any_of([s for d in SPACED for s in in_progress(pattern_of(d), d.lowered) or []])
    assert held is not None
    for text in ["step 1 of 3", "see 5.2 and", "the auth token is", "(see above)", "v2 + more"]:
        m = held.search(text)  # nothing before the last word (a word still being written may go on)
        assert m is None or m.start() > text.rindex(" "), text
    for text in ["call 415 555", "card 4111 1111 ", "password = \"hunt", "internal ", "-----BEGIN RSA"]:
        assert held.search(text) is not None, text


def test_patterns_it_cannot_follow_give_none() -> None:
    assert in_progress(r"(?i)abc") is None  # global flags
    assert in_progress(r"(?:a?)*b") is None or in_progress(r"(?:a?)*b") is not None  # never raises
    assert in_progress(r"(a)?(?(1)b|c)") is None


@pytest.mark.parametrize(("pattern", "text", "held"), [
    (r"ab(?![a-z])", "x ab", "ab"),  # the lookahead reads past the end: not decided
    (r"ab(?![a-z])", "x abc", None),  # decided: "c" undoes it for good
    (r"a\.(?![0-9]|\.[0-9])", "x a..", "a.."),  # a digit after the second dot would undo it
    (r"a\.(?![0-9]|\.[0-9])", "x a.b", None),
    (r"[A-Z][A-Z][0-9](?<![A-Za-z0-9][\s\S]{3})", "XCO", None),  # the check before the lead, moved up front
    (r"[A-Z][A-Z][0-9](?<![A-Za-z0-9][\s\S]{3})", "x CO", "CO"),
    (r"(?<![\w])[0-9]{2}", "a1", None),  # a leading lookbehind, checked after the first character
    (r"(?<![\w])[0-9]{2}", " 1", "1"),
    (r"(?i:ticket-[0-9]{2})", "see TICK", "TICK"),  # a pattern in any case
])
def test_checks_at_the_end_are_decided_where_the_text_allows(pattern: str, text: str, held: str | None) -> None:
    sources = in_progress(pattern)
    assert sources is not None
    m = re.compile("|".join(sources)).search(text)
    assert (None if m is None else text[m.start():]) == held


def test_how_far_back_lookbehinds_read() -> None:
    assert reach_back(r"ab(?<=xxab)") == 2
    assert reach_back(r"a(?<![a-z][\s\S])") == 1
    assert reach_back(r"(?<=xyz)a") == 3
    assert reach_back(r"abc") == 0
