"""Scanning one channel of streamed text (one choice, content block or output part) as deltas
arrive, holding back only what a match still in progress could need.

A delta is appended to the text not yet released; that text is scanned (with a few released
characters before it as context for boundary checks) and cut where no later delta can change a
finding before the cut:

- a one-word detector (keys, tokens, e-mail and IP addresses) can only be in progress in the last
  whitespace-free run: that run is held from where one of its matches may still be in progress
  (`regex.partial`: "jumps" may begin an e-mail address, "jumps," may not; under `phone` alone no
  word without digits is held), within its longest match of the end;
- a detector whose matches may hold spaces (card and phone numbers, IBANs, `password = "…"`, PEM
  headers) is held from where one of its matches may still be in progress (`regex.partial`: after
  "call 415 555", not after "step 1 of"), within its longest match of the end; policy regexes,
  which cannot be followed so, always hold their longest match;
- a match found across the cut is held whole, for a match in progress may begin inside it.

Findings before the cut are final: they are recorded, masked or blocked. So the text released is the
text a whole-body scan would give, while each delta costs a scan of a bounded window: the work per
delta does not grow with the length of the stream. Most deltas cost much less (`stream_starts`):
only the delta is searched for the start of the last word; nothing is looked at while nothing can
be released (a word still being written, a match still in progress); and text to release in which
one search finds no anchor and no start of any detector's match is released without running the
detectors' passes.

A masked PEM private key header switches the channel to following its body: base64 lines are
dropped (the header's <SECRET> stands for the whole block) up to the END line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from sidegate.governance.guardrails.detectors import LOOKAHEAD, Finding, Scanner

_CONTEXT = 32  # released characters kept for the lookbehinds of the next scan
_LAST_SPACE = re.compile(r".*[ \n\t\r]", re.S)  # up to the last whitespace: where the last word starts
_END_LINE_PREFIX = "-----END"
_END_LINE_MAX = 64

# Decides the findings that became final, in order: returns whether to mask each, or raises.
Decide = Callable[[Finding], bool]


@lru_cache(maxsize=16)
def _follow_pattern(source: str) -> re.Pattern[str]:
    return re.compile(source)


class TextChannel:
    __slots__ = ("anchored", "context", "follow", "offset", "pending", "replacements", "run")

    def __init__(self) -> None:
        self.pending = ""  # received, not yet released (original text)
        self.run = 0  # where the last word of pending starts (no whitespace from there on)
        self.anchored = False  # pending starts where a match of a spaced detector may be in progress
        self.context = ""  # the end of the released original text
        self.offset = 0  # position of pending[0] in the channel's whole original text
        self.replacements: list[tuple[int, int, str]] = []  # masked spans of the original text
        self.follow: re.Pattern[str] | None = None

    def push(self, scanner: Scanner, decide: Decide, delta: str, final: bool = False) -> str:
        """Take a delta; return the text to send now (masked). `final` releases everything."""
        buf = self.pending + delta
        if self.follow is not None:
            buf = self._follow(buf, final)
            if self.follow is not None:
                return ""
            delta, self.run, self.anchored = buf, 0, False  # all of it is new to the word search
        if not buf:
            return ""
        # Only the delta is searched for whitespace: the last word of what was held is known.
        space = _LAST_SPACE.match(delta)
        run = len(buf) - len(delta) + space.end() if space is not None else self.run
        ctx = self.context
        text = ctx + buf
        base = len(ctx)
        n = len(text)
        # one word that may still become a match: nothing to release or scan yet
        word_cut = -1  # where a match of one word may be in progress (-1: not looked for yet)
        if not final and not run:
            if scanner.word is not None:
                word_cut = scanner.word_hold(text, max(base, n - scanner.token_window))
                if word_cut == base:
                    self.pending = buf
                    return ""
            elif scanner.word_whole and len(buf) <= scanner.token_window:
                self.pending = buf
                return ""
        if (not final and self.anchored and len(buf) <= scanner.spaced_window and scanner.anchor is not None
                and scanner.anchor.match(text, base)):
            self.pending = buf  # held from where a match may still be in progress: it still may
            self.run = run
            return ""
        self.anchored = False
        cut = n if final else hold_from(scanner, text, base + run, word_cut)
        if cut > base + run and not final and scanner.anchor is not None:
            # part of the last word goes (no detector of whole words, or a word longer than any):
            # a match may be in progress in it, which the search below does not look for
            anchor = scanner.anchor_from(text, max(base + run, n - scanner.spaced_window))
            if anchor is not None and anchor < cut:
                cut = anchor
                self.anchored = True
        if cut <= base:  # nothing can be released: nothing needs scanning yet
            self.pending = buf
            self.run = run
            return ""
        quiet = scanner.quiet_until(text, base)  # one search: most text to release holds nothing
        if quiet is None or quiet >= cut:
            return self._take(text, base, cut, run)
        if not final and scanner.anchor is not None:
            anchor = scanner.anchor_from(text, max(quiet, n - scanner.spaced_window))
            if anchor is not None and anchor < cut:
                cut = anchor
                self.anchored = True
                if cut <= base:
                    self.pending = buf
                    self.run = run
                    return ""
        if not scanner.could_start(text, quiet, cut):  # no detector can match in what is released
            return self._take(text, base, cut, run)
        found = scanner.scan(text, base)
        # A match across the cut is held whole: a match still in progress after the cut may begin
        # inside it (a label inside an e-mail address), and must then be found with it.
        held = cut
        while (back := min((f.begin for f in found if f.begin < held < f.end), default=held)) < held:
            held = back
        if held < cut:
            cut = held
            self.anchored = False
            if cut <= base:
                self.pending = buf
                self.run = run
                return ""
        out: list[str] = []
        at = base
        for f in found:
            if f.end > cut:
                break
            if not decide(f):
                continue
            out.append(text[at:f.start])
            out.append(f.alt.token)
            self.replacements.append((self.offset + f.start - base, self.offset + f.end - base, f.alt.token))
            at = f.end
            if f.alt.follow is not None:
                self.follow = _follow_pattern(f.alt.follow)
                self.pending = text[f.end:]
                self.anchored = False
                self._release(text, base, f.end)
                return "".join(out) + self.push(scanner, decide, "", final)
        out.append(text[at:cut])
        self.pending = text[cut:]
        self.run = max(0, base + run - cut)
        self._release(text, base, cut)
        return "".join(out)

    def _take(self, text: str, base: int, cut: int, run: int) -> str:
        """Release text[base:cut] as it is (base + run: where its last word starts)."""
        self.pending = text[cut:]
        self.run = max(0, base + run - cut)
        self._release(text, base, cut)
        return text[base:cut]

    def _release(self, text: str, base: int, cut: int) -> None:
        self.offset += cut - base
        self.context = text[max(0, cut - _CONTEXT):cut]

    def _follow(self, buf: str, final: bool) -> str:
        """Drop the body of a masked PEM block; what comes after it is returned for scanning."""
        assert self.follow is not None
        m = self.follow.match(buf)
        end = m.end() if m is not None else 0
        rest = buf[end:]
        # A complete END line is part of the match: one that starts the rest is still being written.
        waiting = not final and (not rest or (len(rest) < _END_LINE_MAX and (
            rest.startswith(_END_LINE_PREFIX) or _END_LINE_PREFIX.startswith(rest))))
        if waiting:  # the body, or an END line still being written, may go on
            self.pending = rest
            self._drop(buf[:end])
            return ""
        self.follow = None
        self.pending = ""
        self._drop(buf[:end])
        return rest

    def _drop(self, dropped: str) -> None:
        if not dropped:
            return
        start, end, token = self.replacements[-1]
        self.replacements[-1] = (start, end + len(dropped), token)
        self.offset += len(dropped)
        self.context = (self.context + dropped)[-_CONTEXT:]

    def patch(self, whole: str) -> str | None:
        """The channel's whole original text (as an aggregating event repeats it) with the same masks;
        None when it is shorter than what the channel saw (not the same text)."""
        if not self.replacements:
            return whole
        if len(whole) < self.replacements[-1][1]:
            return None
        parts: list[str] = []
        at = 0
        for start, end, token in self.replacements:
            parts.append(whole[at:start])
            parts.append(token)
            at = end
        parts.append(whole[at:])
        return "".join(parts)


def hold_from(scanner: Scanner, text: str, run_start: int, word_cut: int = -1) -> int:
    """Where to cut a text whose last word starts at run_start, before anchors: everything before the
    cut can be decided now, whatever follows (but for an anchor before it). `word_cut`: where a match
    of one word may be in progress, when already known."""
    n = len(text)
    cut = max(run_start, n - scanner.token_window)
    if scanner.word is not None:  # from where a match of one word may still be in progress
        cut = word_cut if word_cut >= 0 else scanner.word_hold(text, cut)
    elif not scanner.word_whole:
        cut = n  # no detector of one word
    if scanner.unanchored_window:
        cut = min(cut, n - scanner.unanchored_window - LOOKAHEAD)
    return cut
