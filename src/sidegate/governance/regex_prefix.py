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
from typing import Any

_CATEGORIES = {
    sre.CATEGORY_DIGIT: r"\d", sre.CATEGORY_NOT_DIGIT: r"\D", sre.CATEGORY_SPACE: r"\s",
    sre.CATEGORY_NOT_SPACE: r"\S", sre.CATEGORY_WORD: r"\w", sre.CATEGORY_NOT_WORD: r"\W",
}
_AT = {
    sre.AT_BEGINNING: "^", sre.AT_BEGINNING_STRING: r"\A", sre.AT_BOUNDARY: r"\b",
    sre.AT_NON_BOUNDARY: r"\B", sre.AT_END: "$", sre.AT_END_STRING: r"\Z",
}
_FLAGS = ((sre.SRE_FLAG_IGNORECASE, "i"), (sre.SRE_FLAG_MULTILINE, "m"), (sre.SRE_FLAG_DOTALL, "s"),
          (sre.SRE_FLAG_ASCII, "a"))
# global flags a prefix cannot carry over (verbose only changes how the pattern was written)
_GLOBAL = sre.SRE_FLAG_IGNORECASE | sre.SRE_FLAG_MULTILINE | sre.SRE_FLAG_DOTALL | sre.SRE_FLAG_ASCII \
    | sre.SRE_FLAG_LOCALE
_SHORT_REPEAT = 8  # a repeat of one character up to this many times is kept whole
_FEW_CHARS = 16  # a first character class of at most this many characters is spelled out
_REPEATS = {sre.MAX_REPEAT: "", sre.MIN_REPEAT: "?", sre.POSSESSIVE_REPEAT: "+"}


class _Unsupported(Exception):
    pass


def _char(c: int) -> str:
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" if c < 0x10000 else f"\\U{c:08x}"


def _set(items: list[tuple[Any, Any]]) -> str:
    out = []
    for op, av in items:
        if op is sre.NEGATE:
            out.append("^")
        elif op is sre.LITERAL:
            out.append(_char(av))
        elif op is sre.RANGE:
            out.append(f"{_char(av[0])}-{_char(av[1])}")
        elif op is sre.CATEGORY and av in _CATEGORIES:
            out.append(_CATEGORIES[av])
        else:
            raise _Unsupported
    return "[" + "".join(out) + "]"


def _flags(add: int, remove: int) -> str:
    on = "".join(f for bit, f in _FLAGS if add & bit)
    off = "".join(f for bit, f in _FLAGS if remove & bit)
    return f"?{on}-{off}:" if off else f"?{on}:"


def _one(op: Any, av: Any) -> str | None:
    """A single-character item, or None when the item is not one."""
    if op is sre.LITERAL:
        return _char(av)
    if op is sre.NOT_LITERAL:
        return f"[^{_char(av)}]"
    if op is sre.ANY:
        return "."
    if op is sre.IN:
        return _set(av)
    return None


def _whole(items: Any, checks: bool = True) -> str:
    """The exact source of a sequence of items (lookaround bodies, short repeats); without its
    zero-width checks (lookarounds, ^, \\b, …) when `checks` is False."""
    out = []
    for op, av in items:
        one = _one(op, av)
        if one is not None:
            out.append(one)
        elif op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
            if checks:
                out.append(_lookaround(op, av))
        elif op is sre.SUBPATTERN:
            out.append(f"({_flags(av[1], av[2])}{_whole(av[3].data, checks)})")
        elif op is sre.BRANCH:
            out.append("(?:" + "|".join(_whole(b.data, checks) for b in av[1]) + ")")
        elif op in _REPEATS:
            lo, hi, item = av
            out.append(f"(?:{_whole(item.data, checks)}){{{lo},{'' if hi is sre.MAXREPEAT else hi}}}{_REPEATS[op]}")
        else:
            raise _Unsupported
    return "".join(out)


def _lookaround(op: Any, av: Any) -> str:
    if op is sre.AT:
        if av not in _AT:
            raise _Unsupported
        return _AT[av]
    direction, body = av
    kind = ("=" if op is sre.ASSERT else "!") if direction == 1 else ("<=" if op is sre.ASSERT else "<!")
    return f"(?{kind}{_whole(body.data)})"


def _prefix(items: Any, width: int) -> tuple[str, int, bool]:
    """Source of a prefix of items requiring up to `width` characters; the characters it requires;
    whether it is all of items."""
    out: list[str] = []
    need = 0
    for op, av in items:
        if need >= width and op is not sre.LITERAL:  # a literal costs nothing more: the prefix goes on
            return "".join(out), need, False
        one = _one(op, av)
        try:
            if one is not None:
                out.append(one)
                need += 1
            elif op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
                out.append(_lookaround(op, av))
            elif op is sre.SUBPATTERN:
                src, used, complete = _prefix(av[3].data, width - need)
                out.append(f"({_flags(av[1], av[2])}{src})")
                need += used
                if not complete:
                    return "".join(out), need, False
            elif op is sre.BRANCH:
                parts = [_prefix(b.data, width - need) for b in av[1]]
                out.append("(?:" + "|".join(src for src, _, _ in parts) + ")")
                need += min(used for _, used, _ in parts)
                if not all(complete for _, _, complete in parts):
                    return "".join(out), need, False
            elif op in _REPEATS:
                lo, hi, item = av
                single = len(item.data) == 1 and _one(*item.data[0]) is not None
                if single and hi is not sre.MAXREPEAT and hi <= _SHORT_REPEAT:
                    out.append(_whole([(op, av)]))
                    need += lo
                elif lo >= 1:  # the first occurrence is required; what follows it is not known
                    src, used, _ = _prefix(item.data, width - need)
                    out.append(f"(?:{src})")
                    return "".join(out), need + used, False
                else:
                    return "".join(out), need, False
            else:
                return "".join(out), need, False
        except _Unsupported:
            return "".join(out), need, False
    return "".join(out), need, True


def prefix(pattern: str, width: int = 4) -> str:
    """A regex every match of `pattern` starts with (at the same position), requiring up to `width`
    characters; "" when nothing is known of how its matches start."""
    parsed = sre_parse.parse(pattern)
    if parsed.state.flags & _GLOBAL:
        return ""
    src, _, _ = _prefix(parsed.data, width)
    return src


def _head(src: str) -> tuple[str, str] | None:
    """A prefix split into its first character (a class, a literal, `.`) and the rest, or None when
    it does not start with a single character."""
    data = sre_parse.parse(src).data
    if not data or _one(*data[0]) is None:
        return None
    try:
        return _one(*data[0]) or "", _whole(data[1:])
    except _Unsupported:
        return None


def _codes(op: Any, av: Any) -> list[int] | None:
    """The characters (code points) a single-character item stands for, when they are few."""
    if op is sre.LITERAL:
        return [av]
    if op is not sre.IN:
        return None
    codes: list[int] = []
    for kind, value in av:
        if kind is sre.LITERAL:
            codes.append(value)
        elif kind is sre.RANGE and value[1] - value[0] < _FEW_CHARS:
            codes += range(value[0], value[1] + 1)
        else:
            return None
    return codes if len(codes) <= _FEW_CHARS else None


def _chars(first: str) -> list[str] | None:
    codes = _codes(*sre_parse.parse(first).data[0])
    return None if codes is None else [_char(c) for c in codes]


def caseless(src: str) -> str:
    """For a prefix matched against lower-cased text (`detectors.lower`): a regex that matches the
    original text wherever the prefix matches it lower-cased ("" when unknown). Its zero-width checks
    are dropped and it ignores case, so it can only find more; its first character is spelled in
    both cases (and the Kelvin sign, the one other character that lower-cases to an ASCII letter),
    so that `any_of` can still group it by that character."""
    data = [item for item in sre_parse.parse(src).data if item[0] not in (sre.AT, sre.ASSERT, sre.ASSERT_NOT)]
    if not data:
        return ""
    try:
        codes = _codes(*data[0])
        rest = _whole(data[1:], checks=False)
        if codes is None or any(c > 0x7F for c in codes):
            return f"(?i:{_whole(data, checks=False)})"
    except _Unsupported:
        return ""
    cases = {x for c in codes for x in (chr(c), chr(c).upper(), chr(c).lower())}
    if "k" in cases:
        cases.add("\u212a")
    first = "[" + "".join(_char(ord(x)) for x in sorted(cases)) + "]"
    return first + f"(?i:{rest})" if rest else first


def _alternatives(patterns: list[str]) -> list[str]:
    """The patterns, those that are an alternation at the top split into their branches."""
    out: list[str] = []
    for p in patterns:
        data = sre_parse.parse(p).data
        try:
            out += [_whole(b.data) for b in data[0][1][1]] if len(data) == 1 and data[0][0] is sre.BRANCH else [p]
        except _Unsupported:
            out.append(p)
    return out


def any_of(prefixes: list[str]) -> re.Pattern[str] | None:
    """One pattern matching where any of the prefixes does (None when one of them is empty: it
    matches everywhere). Prefixes are grouped by their first character, each group one branch that
    starts with it, so the search jumps from one such character to the next in C and tries at each
    only the branch of that character."""
    if not prefixes or any(not p for p in prefixes):
        return None
    by_first: dict[str, list[str]] = {}
    others: list[str] = []
    for p in dict.fromkeys(_alternatives(prefixes)):
        split = _head(p)
        chars = _chars(split[0]) if split is not None else None
        if split is None or chars is None:
            others.append(f"(?:{p})")
            continue
        for c in chars:
            by_first.setdefault(c, []).append(split[1])
    branches = [c + (f"(?:{'|'.join(rests)})" if any(rests) else "") for c, rests in by_first.items()]
    return re.compile("|".join(branches + others))
