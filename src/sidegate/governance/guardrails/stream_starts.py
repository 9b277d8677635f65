"""What a stream scanner knows of where its detectors' matches start, so that `stream_text` can
release most text without running the detectors' passes.

- `anchors`: where a match of a detector whose matches may hold spaces may still be in progress at
  the end of the text (`regex.partial`); text is held back from the first of them.
- `words`: the same for the detectors of one word, whose matches can only be in progress in the
  last word of the text.
- `Starts.could_start`: whether any pass could find something starting in a stretch of text, from
  the prefixes every match of each pass begins with (`regex.prefix`), and the pivots of the pivot
  passes (a match starts at most `back` characters before its pivot).
- `Starts.first`: where the first of any of these is, in one search of the text: most text to
  release has none, and needs no other look.
- `memo_search`: the search for a match in progress in a short last word, remembered with the few
  characters before it that the patterns read (`reach`): the same words come back all along a stream.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from sidegate.governance.guardrails.patterns import Detector
from sidegate.governance.guardrails.regex.partial import in_progress, reach_back
from sidegate.governance.guardrails.regex.prefix import any_of, caseless, head_char, prefix

_MEMO_MAX = 40  # where a match may be in progress is remembered for rests of text up to this long
_MEMO_SIZE = 4096


def lower(text: str) -> str:
    """Lower case without changing any character's position (as the lowered passes read text)."""
    if text.isascii():
        return text.lower()
    low = text.lower()
    return low if len(low) == len(text) else text.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(65, 91)}


def anchors(detectors: Sequence[Detector]) -> list[str]:
    """Where a stream holds text back for the detectors whose matches may hold spaces: where one of
    their matches may still be in progress, else (a pattern `regex.partial` cannot follow) where
    their declared anchor occurs."""
    found: list[str] = []
    for d in dict.fromkeys(detectors):
        if d.spaced and d.anchor is not None:
            found += heads_of(d) or (d.anchor,)
    return list(dict.fromkeys(found))


def heads_of(d: Detector) -> tuple[str, ...] | None:
    """The detector's in-progress patterns (`regex.partial`), None when it cannot be followed."""
    return in_progress(d.lead + (d.stream_rest if d.stream_rest is not None else d.rest), d.lowered)


def first_chars(heads: Sequence[str]) -> str | None:
    """A pattern of the first characters of these in-progress patterns (None: one starts otherwise)."""
    firsts = [head_char(h) for h in heads]
    return None if not all(firsts) else "|".join(dict.fromkeys(f for f in firsts if f))


def reach(heads: Sequence[str]) -> int | None:
    """How far before a match in progress its patterns read (None: unknown)."""
    found = [reach_back(h) for h in heads]
    return None if any(r is None for r in found) else max((r for r in found if r is not None), default=0)


def words(detectors: Sequence[Detector]) -> list[str] | None:
    """Where a match of a detector of one word (no spaces in its matches) may still be in progress at
    the end of the text; None when one of them cannot be followed so (its last word is then held)."""
    found: list[str] = []
    for d in dict.fromkeys(detectors):
        if not d.spaced:
            heads = heads_of(d)
            if heads is None:
                return None
            found += heads
    return list(dict.fromkeys(found))


class Starts(NamedTuple):
    plain: re.Pattern[str] | None  # the plain passes' prefixes, searched in the text
    lowered: re.Pattern[str] | None  # the lowered passes' prefixes, searched in the text lower-cased
    pivots: re.Pattern[str] | None  # the pivots of the pivot passes
    back: int  # how far before its pivot a pivot pass's match may start
    quick: re.Pattern[str] | None  # all of these and the anchors, in one search of the text

    @classmethod
    def build(cls, plain: Sequence[str], lowered: Sequence[str], pivots: Sequence[str], back: int,
              detectors: Sequence[Detector]) -> Starts | None:
        """From the patterns of the plain and the lowered passes, the pivots and the detectors; None
        when how a pass's matches start is unknown (a policy regex that may start anywhere)."""
        plain_starts = [prefix(p) for p in plain]
        lowered_starts = [prefix(p) for p in lowered]
        if not all(plain_starts) or not all(lowered_starts):
            return None
        # Before the last word (where the characters of a declared anchor are all there), the declared
        # anchors find every place `anchors` holds text from, in a smaller pattern: they stand in for
        # them in this search (`stream_text` looks for matches in progress in the last word apart).
        declared = list(dict.fromkeys(d.anchor for d in detectors if d.spaced and d.anchor is not None))
        quick = [*plain_starts, *map(caseless, lowered_starts), *pivots, *declared]
        return cls(any_of(plain_starts) if plain_starts else None, any_of(lowered_starts) if lowered_starts else None,
                   any_of(list(pivots)) if pivots else None, back, any_of(quick) if quick else None)

    def could_start(self, text: str, pos: int, end: int) -> bool:
        """False when no pass can find anything starting in text[pos:end]."""
        if self.plain is not None and (m := self.plain.search(text, pos)) is not None and m.start() < end:
            return True
        if self.lowered is not None and (m := self.lowered.search(lower(text), pos)) is not None \
                and m.start() < end:
            return True
        return self.pivots is not None and (m := self.pivots.search(text, pos)) is not None \
            and m.start() - self.back < end

    def first(self, text: str, pos: int) -> int | None:
        """Where the first anchor, pass prefix or pivot in text[pos:] is (None: there is none). No
        anchor, and no match of a pass, starts before it (a pivot pass's: before it minus `back`)."""
        if self.quick is None:
            return pos
        m = self.quick.search(text, pos)
        return None if m is None else m.start()


def memo_search(pattern: re.Pattern[str], back: int | None, seen: dict[tuple[str, str], int], text: str,
                 at: int) -> int | None:
    """Where pattern first matches in text[at:] (None: nowhere). Remembered for short rests of text
    with the `back` characters before them that the pattern may read (the same last words come back
    all along a stream)."""
    n = len(text)
    if back is None or n - at > _MEMO_MAX:
        m = pattern.search(text, at)
        return None if m is None else m.start()
    key = (text[max(0, at - back):at], text[at:])
    found = seen.get(key)
    if found is None:
        m = pattern.search(text, at)
        found = -1 if m is None else m.start() - at
        if len(seen) >= _MEMO_SIZE:
            seen.clear()
        seen[key] = found
    return None if found < 0 else at + found
