"""Parsed regular expressions (the standard library's own parse tree) written back as pattern
source, for the patterns `prefix` and `partial` derive from the detectors'.

Every character is written as an escape (`\\x41`), so the source is valid wherever it lands (in or
out of a class); groups come back non-capturing. Items this does not know raise `Unsupported`:
callers then fall back to something coarser, never to something wrong.
"""

from __future__ import annotations

import re._constants as sre
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
# global flags a derived pattern cannot carry over (verbose only changes how the pattern was written)
GLOBAL_FLAGS = sre.SRE_FLAG_IGNORECASE | sre.SRE_FLAG_MULTILINE | sre.SRE_FLAG_DOTALL | sre.SRE_FLAG_ASCII \
    | sre.SRE_FLAG_LOCALE
REPEATS = {sre.MAX_REPEAT: "", sre.MIN_REPEAT: "?", sre.POSSESSIVE_REPEAT: "+"}
CHECKS = (sre.AT, sre.ASSERT, sre.ASSERT_NOT)  # zero-width items
FEW_CHARS = 16  # a character class of at most this many characters may be spelled out


class Unsupported(Exception):
    """An item that cannot be written back (or followed) here."""


def char(c: int) -> str:
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" if c < 0x10000 else f"\\U{c:08x}"


def _set(items: list[tuple[Any, Any]]) -> str:
    out = []
    for op, av in items:
        if op is sre.NEGATE:
            out.append("^")
        elif op is sre.LITERAL:
            out.append(char(av))
        elif op is sre.RANGE:
            out.append(f"{char(av[0])}-{char(av[1])}")
        elif op is sre.CATEGORY and av in _CATEGORIES:
            out.append(_CATEGORIES[av])
        else:
            raise Unsupported
    return "[" + "".join(out) + "]"


def flags(add: int, remove: int) -> str:
    """The start of a group with scoped flags: `?i:`, `?-i:`, or `?:`."""
    on = "".join(f for bit, f in _FLAGS if add & bit)
    off = "".join(f for bit, f in _FLAGS if remove & bit)
    return f"?{on}-{off}:" if off else f"?{on}:"


def one(op: Any, av: Any) -> str | None:
    """A single-character item, or None when the item is not one."""
    if op is sre.LITERAL:
        return char(av)
    if op is sre.NOT_LITERAL:
        return f"[^{char(av)}]"
    if op is sre.ANY:
        return "."
    if op is sre.IN:
        return _set(av)
    return None


def codes(op: Any, av: Any) -> list[int] | None:
    """The characters (code points) a single-character item stands for, when they are few."""
    if op is sre.LITERAL:
        return [av]
    if op is not sre.IN:
        return None
    found: list[int] = []
    for kind, value in av:
        if kind is sre.LITERAL:
            found.append(value)
        elif kind is sre.RANGE and value[1] - value[0] < FEW_CHARS:
            found += range(value[0], value[1] + 1)
        else:
            return None
    return found if len(found) <= FEW_CHARS else None


def check(op: Any, av: Any) -> str:
    """A zero-width item: a lookaround, or ^, $, \\b and the like."""
    if op is sre.AT:
        if av not in _AT:
            raise Unsupported
        return _AT[av]
    direction, body = av
    kind = ("=" if op is sre.ASSERT else "!") if direction == 1 else ("<=" if op is sre.ASSERT else "<!")
    return f"(?{kind}{source(body.data)})"


def repeat(op: Any, lo: int, hi: Any, body: str) -> str:
    return f"(?:{body}){{{lo},{'' if hi is sre.MAXREPEAT else hi}}}{REPEATS[op]}"


def source(items: Any, checks: bool = True) -> str:
    """The exact source of a sequence of items; without its zero-width checks when `checks` is False."""
    out = []
    for op, av in items:
        single = one(op, av)
        if single is not None:
            out.append(single)
        elif op in CHECKS:
            if checks:
                out.append(check(op, av))
        elif op is sre.SUBPATTERN:
            out.append(f"({flags(av[1], av[2])}{source(av[3].data, checks)})")
        elif op is sre.BRANCH:
            out.append("(?:" + "|".join(source(b.data, checks) for b in av[1]) + ")")
        elif op in REPEATS:
            out.append(repeat(op, av[0], av[1], source(av[2].data, checks)))
        else:
            raise Unsupported
    return "".join(out)
