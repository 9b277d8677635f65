"""The start of a regular expression that every one of its matches begins with, as a regex of its own.

Streams use it to skip scanning: where the prefix of no detector occurs in the text about to be
released, no detector can match there, and its passes need not run. The prefix of the GitHub token
pattern `gh(?<!…)[pousr]_[A-Za-z0-9]{36}…` is `gh(?<!…)[pousr]_`, which words such as "through" do
not contain, while the pass's own lead `gh` is in every fifth sentence.

The prefix is read off the parsed pattern: the first items of the sequence, taken whole (characters,
classes, lookarounds, short repeats of one character), descending into groups and into every branch
of an alternation, until `width` characters are required (and the literal characters after them).
A repeat that must occur contributes its first occurrence; an optional part, a back-reference or
anything else stops the prefix there. So a match of the pattern always matches its prefix at the
same position, with the same text around it: the prefix can only find more, never less.
"""

from __future__ import annotations

import re
import re._constants as sre
import re._parser as sre_parse
from functools import lru_cache
from typing import Any

from sidegate.governance.guardrails.regex.source import (
    CHECKS,
    GLOBAL_FLAGS,
    REPEATS,
    Unsupported,
    char,
    check,
    codes,
    flags,
    one,
    source,
)

_SHORT_REPEAT = 8  # a repeat of one character up to this many times is kept whole
_LONG_REST = 400  # characters of pattern after a first character class spelled out character by character


def _prefix(items: Any, width: int) -> tuple[str, int, bool]:
    """Source of a prefix of items requiring up to `width` characters; the characters it requires;
    whether it is all of items."""
    out: list[str] = []
    need = 0
    for op, av in items:
        if need >= width and op is not sre.LITERAL:  # a literal costs nothing more: the prefix goes on
            return "".join(out), need, False
        single = one(op, av)
        try:
            if single is not None:
                out.append(single)
                need += 1
            elif op in CHECKS:
                out.append(check(op, av))
            elif op is sre.SUBPATTERN:
                src, used, complete = _prefix(av[3].data, width - need)
                out.append(f"({flags(av[1], av[2])}{src})")
                need += used
                if not complete:
                    return "".join(out), need, False
            elif op is sre.BRANCH:
                parts = [_prefix(b.data, width - need) for b in av[1]]
                out.append("(?:" + "|".join(src for src, _, _ in parts) + ")")
                need += min(used for _, used, _ in parts)
                if not all(complete for _, _, complete in parts):
                    return "".join(out), need, False
            elif op in REPEATS:
                lo, hi, item = av
                short = len(item.data) == 1 and one(*item.data[0]) is not None
                if short and hi is not sre.MAXREPEAT and hi <= _SHORT_REPEAT:
                    out.append(source([(op, av)]))
                    need += lo
                elif lo >= 1:  # the first occurrence is required; what follows it is not known
                    src, used, _ = _prefix(item.data, width - need)
                    out.append(f"(?:{src})")
                    return "".join(out), need + used, False
                else:
                    return "".join(out), need, False
            else:
                return "".join(out), need, False
        except Unsupported:
            return "".join(out), need, False
    return "".join(out), need, True


@lru_cache(maxsize=4096)
def prefix(pattern: str, width: int = 4) -> str:
    """A regex every match of `pattern` starts with (at the same position), requiring up to `width`
    characters; "" when nothing is known of how its matches start."""
    parsed = sre_parse.parse(pattern)
    if parsed.state.flags & GLOBAL_FLAGS:
        return ""
    src, _, _ = _prefix(parsed.data, width)
    return src


@lru_cache(maxsize=4096)
def _head(src: str) -> tuple[str, str] | None:
    """A prefix split into its first character (a class, a literal, `.`) and the rest, or None when
    it does not start with a single character."""
    data = sre_parse.parse(src).data
    if not data or one(*data[0]) is None:
        return None
    try:
        return one(*data[0]) or "", source(data[1:])
    except Unsupported:
        return None


def head_char(src: str) -> str | None:
    """The first character (a class, a literal, `.`) of a pattern that starts with one, else None."""
    split = _head(src)
    return None if split is None else split[0]


def _chars(first: str) -> list[str] | None:
    found = codes(*sre_parse.parse(first).data[0])
    return None if found is None else [char(c) for c in found]


def both_cases(found: list[int]) -> str:
    """A class of these ASCII characters in either case (with the Kelvin sign for k, the one other
    character that lower-cases to an ASCII letter)."""
    cases = {x for c in found for x in (chr(c), chr(c).upper(), chr(c).lower())}
    if "k" in cases:
        cases.add("\u212a")
    return "[" + "".join(char(ord(x)) for x in sorted(cases)) + "]"


@lru_cache(maxsize=4096)
def caseless(src: str) -> str:
    """For a prefix matched against lower-cased text (`stream_starts.lower`): a regex that matches the
    original text wherever the prefix matches it lower-cased ("" when unknown). Its zero-width checks
    are dropped and it ignores case, so it can only find more; its first character is spelled in
    both cases (and the Kelvin sign, the one other character that lower-cases to an ASCII letter),
    so that `any_of` can still group it by that character."""
    data = [item for item in sre_parse.parse(src).data if item[0] not in CHECKS]
    if not data:
        return ""
    try:
        found = codes(*data[0])
        rest = source(data[1:], checks=False)
        if found is None or any(c > 0x7F for c in found):
            return f"(?i:{source(data, checks=False)})"
    except Unsupported:
        return ""
    first = both_cases(found)
    return first + f"(?i:{rest})" if rest else first


@lru_cache(maxsize=4096)
def _branches(pattern: str) -> tuple[str, ...]:
    """The pattern, split into its branches when it is an alternation at the top."""
    data = sre_parse.parse(pattern).data
    try:
        return tuple(source(b.data) for b in data[0][1][1]) if len(data) == 1 and data[0][0] is sre.BRANCH \
            else (pattern,)
    except Unsupported:
        return (pattern,)


def any_of(prefixes: list[str]) -> re.Pattern[str] | None:
    """One pattern matching where any of the prefixes does (None when one of them is empty: it
    matches everywhere). Prefixes are grouped by their first character, each group one branch that
    starts with it, so the search jumps from one such character to the next in C and tries at each
    only the branch of that character."""
    return _joined(tuple(prefixes))


@lru_cache(maxsize=256)
def _joined(prefixes: tuple[str, ...]) -> re.Pattern[str] | None:
    if not prefixes or any(not p for p in prefixes):
        return None
    by_first: dict[str, list[str]] = {}
    others: list[str] = []
    for p in dict.fromkeys(b for whole in prefixes for b in _branches(whole)):
        split = _head(p)
        chars = _chars(split[0]) if split is not None else None
        if split is None or chars is None or (len(chars) > 2 and len(split[1]) > _LONG_REST):
            others.append(f"(?:{p})")  # (a long rest is not copied for each character of a class)
            continue
        for c in chars:
            by_first.setdefault(c, []).append(split[1])
    branches = [c + (f"(?:{'|'.join(rests)})" if any(rests) else "") for c, rests in by_first.items()]
    return re.compile("|".join(branches + others))
