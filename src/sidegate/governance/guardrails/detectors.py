"""Detectors compiled into a scanner: the detectors of a set of guardrails grouped into as few
regular-expression passes as keep each pass fast.

One alternation of every detector would read a text once, but Python's regex engine then tries
every alternative at every position (about 300 µs per KB with all detectors). A pass whose pattern
starts with a literal, or with a single character class, instead jumps from one occurrence of it to
the next in C. So detectors are grouped by their `lead` (`AKIA…`, `AIza…` and `AccountKey=` share
the pass for "A"; card numbers, SSNs, phone numbers and IPv4 addresses share the pass for a digit),
each group one alternation; labels written in any case (`password = "…"`) are matched against the
lower-cased text; e-mail addresses, credentials in URLs and IPv6 addresses are found from their
pivot (`@`, `://`, `:hex:`) and matched from just before it. `scan_many` reads the texts of a
request as one string, and remembers long texts found clean (agents resend the whole conversation).

Each alternative of a pass ends with an empty group; the index of the last group that closed names
the detector that matched. A validator that rejects a match sends its pass on from the next
character, so a look-alike never hides a finding that starts after it.

Mask tokens: <SECRET> (every secret kind), <EMAIL_ADDRESS>, <PHONE_NUMBER>, <CREDIT_CARD>, <US_SSN>,
<IBAN>, <IP_ADDRESS>, <KEYWORD> (policy keywords), <REGEX_MATCH> (policy regexes). Categories (what
results record and block messages name) are the secret kinds of `patterns.SECRETS`
(aws_access_key_id, github_token, private_key, jwt, …), the pii kinds as the policy spells them
(email, phone, credit_card, us_ssn, iban, ip_address), `keyword` and `regex`.
"""

from __future__ import annotations

import bisect
import re
import re._parser as sre_parse
from collections.abc import Sequence
from dataclasses import dataclass

from sidegate.governance.guardrails import stream_starts
from sidegate.governance.guardrails.patterns import (
    KEYWORD_TOKEN,
    PII,
    PII_MORE,
    REGEX_TOKEN,
    SECRETS,
    Detector,
    Validator,
)
from sidegate.governance.guardrails.regex.prefix import any_of
from sidegate.governance.guardrails.stream_starts import lower
from sidegate.policy.model import DetectorSet, PiiKind

PII_KINDS: tuple[PiiKind, ...] = ("email", "phone", "credit_card", "us_ssn", "iban", "ip_address")

# Streams hold back at most this much for a policy regex whose matches have no upper length bound:
# a longer match of such a regex can go unnoticed in a stream (never in a whole body).
UNBOUNDED_REGEX_WINDOW = 256
MAX_WINDOW = 8192  # longest match a stream waits for (the longest built-in is a JWT)
LOOKAHEAD = 2  # characters after a match that its end checks read
_CLEAN_CACHE_MIN = 256  # texts at least this long are remembered when found clean
_CLEAN_CACHE_SIZE = 16384
_JOIN = "\n\x00\n"  # between texts scanned together: no pattern reads across it
_NAMED = re.compile(r"\(\?P([<=])([A-Za-z_][A-Za-z0-9_]*)")
_LEADING_FLAGS = re.compile(r"^\(\?([aiLmsux]+)\)")
_SEPARATE = re.compile(r"\\[1-9]|\(\?P[=<]|\(\?\(")  # back-references and named groups
_ANCHORED = re.compile(r"\^|\$|\\[AZbB]")


@dataclass(frozen=True, slots=True)
class Alternative:
    """One detector inside a scanner, and the owners (guardrail indices) that asked for it."""

    category: str
    token: str
    validate: Validator | None
    value_group: int  # group index of the finding part; 0: the whole match
    owners: tuple[int, ...]
    spaced: bool
    width: int  # longest match (capped), for stream holdback
    anchor: str | None
    follow: str | None  # streams: the pattern of what follows a match (a PEM body), tracked apart
    rank: int  # where two findings start together, the lower rank wins (secrets before personal data)


@dataclass(frozen=True, slots=True)
class Finding:
    start: int
    end: int
    alt: Alternative
    begin: int  # where the detector's match begins (before start when the finding is a part of it)


def max_width(pattern: str, cap: int) -> int:
    return min(int(sre_parse.parse(pattern).getwidth()[1]), cap)


def _scoped(pattern: str) -> str:
    """A policy regex as an alternative: leading global flags such as `(?i)` become a scoped group."""
    flags = ""
    while m := _LEADING_FLAGS.match(pattern):
        flags += m.group(1)
        pattern = pattern[m.end():]
    flags = "".join(sorted(set(flags) - {"L", "u"}))
    return f"(?{flags}:{pattern})" if flags else f"(?:{pattern})"


def _keywords(words: Sequence[str]) -> Detector:
    """Keywords match in any case, as whole words where they begin or end with a word character."""
    parts = []
    for word in sorted({w.strip().lower() for w in words if w.strip()}, key=len, reverse=True):
        before = f"(?<![\\w][\\s\\S]{{{len(word)}}})" if re.match(r"\w", word) else ""
        after = r"(?!\w)" if re.search(r"\w$", word) else ""
        parts.append(re.escape(word) + before + after)
    spaced = any(c.isspace() for w in words for c in w.strip())
    firsts = "|".join(re.escape(w.split()[0]) for w in words if w.strip())
    return Detector("keyword", KEYWORD_TOKEN, "", "(?:" + "|".join(parts) + ")", spaced=spaced,
                    anchor=f"(?i:{firsts})" if spaced else None, lowered=True)


def detectors_of(spec: DetectorSet | Sequence[str]) -> list[Detector]:
    """The detectors a guardrail's `detect:` names; the list form turns on every kind it names."""
    if not isinstance(spec, DetectorSet):
        spec = DetectorSet(secrets="secrets" in spec, pii=list(PII_KINDS) if "pii" in spec else [])
    found: list[Detector] = list(SECRETS) if spec.secrets else []
    for kind in dict.fromkeys(spec.pii):
        found += [PII[kind], *PII_MORE.get(kind, ())]
    if spec.keywords:
        found.append(_keywords(spec.keywords))
    for p in spec.regex:
        # a stream holds text from where a match may be in progress, the first characters of those
        # places its anchor; a regex that cannot be followed so holds its longest match
        d = Detector("regex", REGEX_TOKEN, "", _scoped(p), spaced=True)
        heads = stream_starts.heads_of(d)
        first = stream_starts.first_chars(heads) if heads else None
        found.append(Detector("regex", REGEX_TOKEN, "", d.rest, spaced=True, anchor=first) if first else d)
    return found


@dataclass(slots=True)
class _Pass:
    pattern: re.Pattern[str]
    alternatives: dict[int, Alternative]  # by the index of the empty group closing each
    lowered: bool = False
    pivot: re.Pattern[str] | None = None  # pivot passes: the pattern found first
    back: frozenset[str] = frozenset()
    back_max: int = 0
    first: re.Pattern[str] | None = None  # pivot passes: what a match may start with


class Scanner:
    """The detectors of (owner, detectors) pairs, compiled for whole texts or (`stream`) for streams."""

    __slots__ = ("_anchor_reach", "_anchors_seen", "_clean", "_lowered", "_pivoted", "_plain", "_word_reach",
                 "_words_seen", "alternatives", "anchor", "joinable", "passes", "spaced_window", "starts",
                 "token_window", "unanchored_window", "word", "word_whole")

    def __init__(self, owned: Sequence[tuple[int, Sequence[Detector]]], *, stream: bool = False) -> None:
        owners: dict[Detector, list[int]] = {}
        for owner, detectors in owned:
            for d in detectors:
                if owner not in owners.setdefault(d, []):
                    owners[d].append(owner)
        ranks = {d: i for i, d in enumerate(owners)}
        groups: dict[tuple[bool, str], list[Detector]] = {}
        self.passes: list[_Pass] = []
        for d in owners:
            if d.pivot is not None:
                self.passes.append(_pivot_pass(d, tuple(owners[d]), stream, ranks[d]))
            elif d.category == "regex" and _SEPARATE.search(d.rest):
                self.passes.append(_lead_pass(d.lead, [d], owners, stream, d.lowered, ranks))
            else:
                groups.setdefault((d.lowered, d.lead), []).append(d)
        self.passes += [_lead_pass(lead, ds, owners, stream, lowered, ranks)
                        for (lowered, lead), ds in groups.items()]
        self._plain = [p for p in self.passes if p.pivot is None and not p.lowered]
        self._lowered = [p for p in self.passes if p.pivot is None and p.lowered]
        self._pivoted = [p for p in self.passes if p.pivot is not None]
        self.alternatives = [a for p in self.passes for a in p.alternatives.values()]
        alts = self.alternatives
        self.token_window = max((a.width for a in alts if not a.spaced), default=0) + LOOKAHEAD
        self.spaced_window = max((a.width for a in alts if a.spaced), default=0) + LOOKAHEAD
        self.unanchored_window = max((a.width for a in alts if a.spaced and a.anchor is None), default=0)
        held = stream_starts.anchors(list(owners)) if stream else []  # (only streams hold text back)
        self.anchor = any_of(held) if held else None
        self._anchor_reach = stream_starts.reach(held) if held else None
        self._anchors_seen: dict[tuple[str, str], int] = {}
        # streams: where a match of one word may be in progress in the last word (its whole last word
        # is held when one of these detectors cannot be followed)
        words = stream_starts.words(list(owners)) if stream else []
        self.word = any_of(words) if words else None
        self.word_whole = words is None
        self._word_reach = stream_starts.reach(words) if words else None
        self._words_seen: dict[tuple[str, str], int] = {}
        self.joinable = not any(_ANCHORED.search(d.rest) for d in owners if d.category == "regex")
        self._clean: dict[int, None] = {}
        self.starts = stream_starts.Starts.build(
            [p.pattern.pattern for p in self._plain], [p.pattern.pattern for p in self._lowered],
            [p.pivot.pattern for p in self._pivoted if p.pivot is not None],
            max((p.back_max for p in self._pivoted), default=0), list(owners)) if stream else None

    def could_start(self, text: str, pos: int, end: int) -> bool:
        """False when no pass can find anything starting in text[pos:end] (streams: the text about to be
        released needs no scan); True when one might, or for scanners not made for streams."""
        return self.starts is None or self.starts.could_start(text, pos, end)

    def word_hold(self, text: str, at: int) -> int:
        """Streams: where a match of one word may be in progress in text[at:] (len(text): nowhere)."""
        assert self.word is not None
        found = stream_starts.memo_search(self.word, self._word_reach, self._words_seen, text, at)
        return len(text) if found is None else found

    def anchor_from(self, text: str, at: int) -> int | None:
        """Streams: where a match of a spaced detector may be in progress in text[at:] (None: nowhere)."""
        assert self.anchor is not None
        return stream_starts.memo_search(self.anchor, self._anchor_reach, self._anchors_seen, text, at)

    def quiet_until(self, text: str, pos: int) -> int | None:
        """Up to where text[pos:] holds no anchor and no start of a match (None: anywhere; `pos` for
        scanners not made for streams)."""
        if self.starts is None:
            return pos
        first = self.starts.first(text, pos)
        return None if first is None else max(pos, first - self.starts.back)

    def scan(self, text: str, pos: int = 0) -> list[Finding]:
        """Findings in text[pos:], in order and not overlapping (text before pos is context only)."""
        if len(text) <= pos:
            return []
        found: list[Finding] = []
        # Each pass is tried with one search first: most find nothing, and cost no more than that.
        for p in self._plain:
            m = p.pattern.search(text, pos)
            if m is not None and (more := _search(p, m, text, text, pos)):
                found = _merge(found, more) if found else more
        if self._lowered:
            low = lower(text)
            for p in self._lowered:
                m = p.pattern.search(low, pos)
                if m is not None and (more := _search(p, m, low, text, pos)):
                    found = _merge(found, more) if found else more
        for p in self._pivoted:
            assert p.pivot is not None
            hit = p.pivot.search(text, pos)
            if hit is not None and (more := _pivot_search(p, hit, text, pos)):
                found = _merge(found, more) if found else more
        return found

    def scan_many(self, texts: Sequence[str]) -> list[list[Finding]]:
        """Findings of each text (positions within it), reading the texts as one string."""
        results: list[list[Finding]] = [[] for _ in texts]
        clean = self._clean
        todo = [i for i, t in enumerate(texts) if t and (len(t) < _CLEAN_CACHE_MIN or hash(t) not in clean)]
        if not todo:
            return results
        if not self.joinable:
            for i in todo:
                results[i] = self.scan(texts[i])
        else:
            starts, at = [], 0
            for i in todo:
                starts.append(at)
                at += len(texts[i]) + len(_JOIN)
            for f in self.scan(_JOIN.join(texts[i] for i in todo)):
                k = bisect.bisect_right(starts, f.start) - 1
                base, text = starts[k], texts[todo[k]]
                results[todo[k]].append(Finding(f.start - base, min(f.end - base, len(text)), f.alt,
                                                max(0, f.begin - base)))
        if len(clean) > _CLEAN_CACHE_SIZE:
            clean.clear()
        for i in todo:
            if not results[i] and len(texts[i]) >= _CLEAN_CACHE_MIN:
                clean[hash(texts[i])] = None
        return results


def _alternative(d: Detector, owners: tuple[int, ...], stream: bool, value_group: int, rank: int) -> Alternative:
    rest = d.stream_rest if stream and d.stream_rest is not None else d.rest
    cap = UNBOUNDED_REGEX_WINDOW if d.category == "regex" else MAX_WINDOW
    return Alternative(d.category, d.token, d.validate, value_group, owners, d.spaced,
                       max_width(d.lead + rest, cap), d.anchor,
                       d.rest[len(rest):] if stream and d.stream_rest is not None else None, rank)


def _lead_pass(lead: str, detectors: list[Detector], owners: dict[Detector, list[int]], stream: bool,
               lowered: bool, ranks: dict[Detector, int]) -> _Pass:
    sources = []
    for i, d in enumerate(detectors):
        rest = d.stream_rest if stream and d.stream_rest is not None else d.rest
        if d.category != "regex":
            rest = _NAMED.sub(f"(?P\\1\\2_{i}", rest)
        sources.append(f"(?:{rest})()")
    body = sources[0] if len(sources) == 1 else "(?:" + "|".join(sources) + ")"
    pattern = re.compile(lead + body)
    alternatives: dict[int, Alternative] = {}
    group = 0
    for i, d in enumerate(detectors):
        group += re.compile(sources[i]).groups
        alternatives[group] = _alternative(d, tuple(owners[d]), stream, pattern.groupindex.get(f"v_{i}", 0),
                                           ranks[d])
    return _Pass(pattern, alternatives, lowered)


def _pivot_pass(d: Detector, owners: tuple[int, ...], stream: bool, rank: int) -> _Pass:
    assert d.pivot is not None
    pattern = re.compile(f"{d.pattern}()")
    alt = _alternative(d, owners, stream, pattern.groupindex.get("v", 0), rank)
    back = frozenset(c for c in map(chr, range(128)) if re.fullmatch(f"[{d.back}]", c))
    return _Pass(pattern, {pattern.groups: alt}, False, re.compile(d.pivot), back, d.back_max,
                 re.compile(d.lead) if d.lead else None)


def _accept(alt: Alternative, m: re.Match[str], text: str) -> tuple[int, int] | None:
    start, end = m.span(alt.value_group)
    if end == start:
        return None
    if alt.validate is not None:
        n = alt.validate(text[start:end])
        if not n:
            return None
        end = start + n
    return start, end


def _search(p: _Pass, first: re.Match[str], haystack: str, text: str, pos: int) -> list[Finding]:
    found: list[Finding] = []
    search = p.pattern.search
    m: re.Match[str] | None = first
    while m is not None:
        alt = p.alternatives[m.lastindex or 0]
        span = _accept(alt, m, text)
        if span is None:
            m = search(haystack, m.start() + 1)
            continue
        found.append(Finding(span[0], span[1], alt, m.start()))
        m = search(haystack, span[1] if alt.value_group == 0 else m.end())
    return found


def _pivot_search(p: _Pass, first_hit: re.Match[str], text: str, pos: int) -> list[Finding]:
    assert p.pivot is not None
    found: list[Finding] = []
    alt = next(iter(p.alternatives.values()))
    back, first, match = p.back, p.first, p.pattern.match
    hit: re.Match[str] | None = first_hit
    done = pos  # where the last finding ended: the next match starts after it
    while hit is not None:
        at = hit.start()
        start, floor = at, max(done, at - p.back_max)
        while start > floor and text[start - 1] in back:
            start -= 1
        if first is not None:
            while start < at and not first.match(text, start):
                start += 1
        m = match(text, start)
        span = _accept(alt, m, text) if m is not None and m.end() > at else None
        if span is None or m is None:
            hit = p.pivot.search(text, at + 1)
            continue
        found.append(Finding(span[0], span[1], alt, m.start()))
        done = span[1]
        hit = p.pivot.search(text, max(span[1], at + 1))
    return found


def _merge(a: list[Finding], b: list[Finding]) -> list[Finding]:
    """Findings of two passes in order; where two overlap, the one that starts first (then the one
    of lower rank) is kept."""
    out: list[Finding] = []
    for f in sorted(a + b, key=lambda f: (f.start, f.alt.rank)):
        if out and f.start < out[-1].end:
            continue
        out.append(f)
    return out


def mask_text(text: str, masked: Sequence[Finding]) -> str:
    """text with each of these findings (in order, not overlapping) replaced by its token."""
    if not masked:
        return text
    parts: list[str] = []
    at = 0
    for f in masked:
        parts.append(text[at:f.start])
        parts.append(f.alt.token)
        at = f.end
    parts.append(text[at:])
    return "".join(parts)
