"""The prefixes streams use to skip scanning text no detector can match in: a pattern's prefix
matches wherever the pattern does, and a stream scanner never skips text it would find something in."""

from __future__ import annotations

import random
import re

import pytest

from sidegate.governance.guardrails.detectors import Scanner, detectors_of, lower
from sidegate.governance.guardrails.regex.prefix import any_of, caseless, prefix
from sidegate.policy.model import DetectorSet

ALL = DetectorSet(secrets=True, pii=["email", "phone", "credit_card", "us_ssn", "iban", "ip_address"],
                  keywords=["project-x", "internal only", "Kelvin"])
GHP = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
FINDS = ["alice@example.com", "+44 20 7946 0958", "(415) 555-0100", "4111 1111 1111 1111", GHP, "123-45-6789",
         "GB82 WEST 1234 5698 7654 32", "10.0.0.1", "2001:db8::1", "AKIAIOSFODNN7EXAMPLE",
         'password = "hunter2hunter2X9"', "api_key: 'Zx9Qw8Er7Ty6Ui5'", "postgres://user:s3cr3tPazz@db.example.com/x",
         "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.abc123def456", "xoxb-123456789012-abcdefghij", "project-x",
         "Internal  Only", "-----BEGIN RSA PRIVATE KEY-----", "sig=abcdefghijklmnopqrstuvwxyz0123456789ABCD%3D",
         "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "\u212aelvin"]
WORDS = ["the", "through", "global", "api", "access", "pass", "auth", "A", "So", "(x)", "+1", "1.5", "::", "a@b",
         "x://y", "\n", "Ünïcödé", "key=value", "-----", "sk-", "gh", "415", "(4", "İ", "\u017f"]


def texts(n: int) -> list[str]:
    rng = random.Random(3)
    return [" ".join(rng.choice(FINDS) if rng.random() < 0.3 else rng.choice(WORDS) for _ in range(30))
            for _ in range(n)]


def match_starts(pattern: re.Pattern[str], text: str) -> list[int]:
    starts, at = [], 0
    while (m := pattern.search(text, at)) is not None:
        starts.append(m.start())
        at = m.start() + 1
    return starts


@pytest.mark.parametrize("source", [
    r"gh(?<![A-Za-z0-9_][\s\S]{2})[pousr]_[A-Za-z0-9]{36}(?![A-Za-z0-9])",
    r"[0-9](?<![\w.][\s\S])(?:[0-9]{2}|[ .-][2-9][0-9]{2})(?P<s>[ .-])[2-9][0-9]{2}(?P=s)[0-9]{4}",
    r"(?i:conf(?:idential|\.)\s+draft)",
    r"a?b+c",
    r"(?:x|yz){2,}w",
    r"\bfoo$",
])
def test_prefix_matches_where_the_pattern_does(source: str) -> None:
    pattern = re.compile(source)
    start = re.compile(prefix(source) or "")
    rng = random.Random(5)
    alphabet = "ghpo_Aa1 2-.5x yzwbcFOfCONFidential\tdraft"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        for at in match_starts(pattern, text):
            assert start.match(text, at) is not None, (source, text, at)


def test_prefixes_are_sharper_than_the_leads() -> None:
    assert prefix(r"gh(?<![A-Za-z0-9_][\s\S]{2})[pousr]_[A-Za-z0-9]{36}") != "gh"
    assert re.compile(prefix(r"gh(?<![A-Za-z0-9_][\s\S]{2})[pousr]_[A-Za-z0-9]{36}")).search("go through it") is None
    assert prefix(r"(?:ab)*c") == ""  # how a match starts is not known: streams scan every time
    assert prefix("(?i)secret") == ""


def test_any_of_finds_the_first_start_of_any() -> None:
    sources = ["sk-[a-z]", "ghp_", "[0-9]{3}", r"\(\d", "x(?=y)", "[^a-z]q", r"(?i:Kelvin)", "a|bc"]
    joined = any_of(sources)
    assert joined is not None
    singles = [re.compile(s) for s in sources]
    for text in [*texts(200), "sk-a ghp_ 123 (4 xy #q KELVIN \u212aelvin bc"]:
        for pos in range(0, len(text), 7):
            firsts = [m.start() for s in singles if (m := s.search(text, pos)) is not None]
            m = joined.search(text, pos)
            assert (m.start() if m else None) == (min(firsts) if firsts else None), (text, pos)
    assert any_of(["abc", ""]) is None


@pytest.mark.slow
@pytest.mark.parametrize("detect", [ALL, DetectorSet(secrets=True), DetectorSet(pii=["email", "phone"]),
                                    DetectorSet(keywords=["internal only", "ünïcödé"])])
def test_stream_scanner_never_skips_a_finding(detect: DetectorSet) -> None:
    scanner = Scanner([(0, detectors_of(detect))], stream=True)
    skipped = quiet = 0
    for text in texts(100):
        last_word = max(text.rfind(c) for c in " \n\t\r") + 1
        for pos in range(0, len(text), 5):
            found = scanner.scan(text, pos)
            anchor = scanner.anchor.search(text, pos) if scanner.anchor is not None else None
            for end in range(pos + 1, min(len(text), pos + 60) + 1, 3):
                if not scanner.could_start(text, pos, end):
                    skipped += 1
                    assert not [f for f in found if f.start < end], (text, pos, end)
                until = scanner.quiet_until(text, pos)
                if until is None or until >= end:  # no anchor before end either (but in the last word)
                    quiet += 1
                    assert anchor is None or anchor.start() >= min(end, last_word), (text, pos, end)
                    assert not [f for f in found if f.start < end], (text, pos, end)
    assert skipped > 1000 and quiet > 100  # and the checks do skip


@pytest.mark.parametrize("source", ["aws_?secret", "pass(?:word|wd)", r"key(?<![\w][\s\S]{3})(?!\w)", "\u00e9t\u00e9",
                                    r"k[a-z]{2}\b"])
def test_caseless_matches_where_the_prefix_matches_the_lowered_text(source: str) -> None:
    pattern, anycase = re.compile(source), re.compile(caseless(source))
    rng = random.Random(9)
    alphabet = "awsAWS_secretSECRETpassPASSwordWORDkeyKEY\u212a\u00e9\u00c9t\u0130 \u017f"
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        low = lower(text)
        for at in match_starts(pattern, low):
            assert anycase.match(text, at) is not None, (source, text, at)


def test_policy_regexes_that_may_start_anywhere_are_always_scanned() -> None:
    scanner = Scanner([(0, detectors_of(DetectorSet(pii=["email"], regex=[r"(?:ab)*c"])))], stream=True)
    assert scanner.could_start("nothing here", 0, 12)
    whole = Scanner([(0, detectors_of(DetectorSet(pii=["email"])))])
    assert whole.could_start("nothing here", 0, 12)  # only stream scanners skip
