"""Where a match of a regular expression may still be in progress at the end of a text.

`in_progress(pattern)` gives patterns that match at a position when all the text from there to the
end could be the start of a match, that is when more text could still make, extend or undo a match
starting there: the text ran out inside the pattern, or inside what a check at the end of a match (a
lookahead) looks for. Streams hold text back from such a position only (`stream_text`): after
"call 415 555" they wait for the rest of a phone number, while "step 1 of 3" is released at once
(no phone number, card number or SSN goes on "1 o").

They are read off the parsed pattern. For a sequence X1 X2 … the text reaches its end within X1,
or X1 matches whole and the text reaches its end within X2 …, or every item matched and the text
ends there. Within a repeat it ends after some whole occurrences, within a group or an alternation
within its content, within a lookahead inside what it looks for (before the whole of it is there:
`(?!\\w)` after "acme" is undone by "acmes"). A lookbehind reads text that is there: it is checked.
Each result starts with one character of the pattern, so that `prefix.any_of` joins them into
one fast search: a lookbehind before that character is made right after it (one character further
back), as is one on the character before the match written after a lead of k characters as
`(?<![…][\\s\\S]{k})` (so "…UMPS" holds no "PS" for an IBAN); other leading checks are dropped,
which only widens the result. Back-references stand for any text of the referenced group's length
(a phone number's second separator may be any). Patterns matched against lower-cased text (labels,
keywords) are made to match the original text in any case, without their negative checks (but for
those on \\w, \\d and \\s): again wider, never narrower. A pattern that is one group in any case
(`(?i:…)`, a policy regex's `(?i)`) is followed the same way.
"""

from __future__ import annotations

import re._constants as sre
import re._parser as sre_parse
from functools import lru_cache
from typing import Any

from sidegate.governance.guardrails.regex.prefix import both_cases
from sidegate.governance.guardrails.regex.source import (
    CHECKS,
    GLOBAL_FLAGS,
    REPEATS,
    Unsupported,
    check,
    codes,
    flags,
    one,
    repeat,
    source,
)

_MAX_HEADS = 64  # alternatives spelled out at the start of a pattern before giving up


class _Reader:
    """Writes the in-progress patterns of one parsed pattern."""

    def __init__(self, widths: list[Any], loose: bool) -> None:
        self.widths = widths  # of each group, for back-references
        self.loose = loose  # matched against lower-cased text: negative checks dropped

    def full(self, items: Any) -> str:
        """A sequence matched whole."""
        out = []
        for op, av in items:
            single = one(op, av)
            if single is not None:
                out.append(single)
            elif op in CHECKS:
                if self._keeps(op, av) and (not self.loose or op is not sre.ASSERT):
                    out.append(check(op, av))
                elif op is sre.ASSERT:  # kept without the negative checks inside it
                    out.append(f"(?{'=' if av[0] == 1 else '<='}{source(av[1].data, checks=False)})")
                elif op is sre.AT:
                    out.append(check(op, av))
            elif op is sre.SUBPATTERN:
                out.append(f"({flags(av[1], av[2])}{self.full(av[3].data)})")
            elif op is sre.BRANCH:
                out.append("(?:" + "|".join(self.full(b.data) for b in av[1]) + ")")
            elif op in REPEATS:
                out.append(repeat(op, av[0], av[1], self.full(av[2].data)))
            elif op is sre.GROUPREF:
                out.append(self._any_text(av, ""))
            else:
                raise Unsupported
        return "".join(out)

    def _any_text(self, group: int, end: str) -> str:
        width = self.widths[group] if group < len(self.widths) else None
        if width is None:
            raise Unsupported
        lo, hi = width
        hi = "" if hi >= sre.MAXREPEAT else hi
        return f"[\\s\\S]{{{lo},{hi}}}" if not end else f"[\\s\\S]{{0,{hi}}}{end}"

    def _keeps(self, op: Any, av: Any) -> bool:
        """Whether a check is kept: always, but negative ones against lower-cased text, unless they
        only test classes of characters that lower-casing keeps (\\w, \\d, \\s)."""
        return not self.loose or op is not sre.ASSERT_NOT or _case_free(av[1].data)

    def reach(self, items: Any) -> str:
        """The text from here to its end is the start of a match of the sequence."""
        if not items:
            return r"\Z"
        (op, av), rest = items[0], items[1:]
        return f"(?:{self._within(op, av)}|{self.full([(op, av)])}{self.reach(rest)})"

    def _within(self, op: Any, av: Any) -> str:
        """The text ends inside this item (after none, some or all of what it matches)."""
        if one(op, av) is not None or op is sre.AT:
            return r"\Z"
        if op in (sre.ASSERT, sre.ASSERT_NOT):
            if av[0] != 1:  # a lookbehind reads text that is there: decided now, as what follows it
                return "(?!)"
            # a lookahead is not decided yet where the text ends inside what it looks for, before
            # the whole of it is there
            body = list(av[1].data)
            if self.loose and not _case_free(body):
                return f"(?={self.reach(body)})"
            return f"(?={self.reach(body)})(?!{self.full(body)})"
        if op is sre.SUBPATTERN:
            return f"({flags(av[1], av[2])}{self.reach(av[3].data)})"
        if op is sre.BRANCH:
            return "(?:" + "|".join(self.reach(b.data) for b in av[1]) + ")"
        if op in REPEATS:
            _, hi, body = av
            if hi == 0:
                return r"\Z"
            before = "*" if hi >= sre.MAXREPEAT else f"{{0,{hi - 1}}}"
            return f"(?:{self.full(body.data)}){before}{self.reach(body.data)}"
        if op is sre.GROUPREF:
            return self._any_text(av, r"\Z")
        raise Unsupported

    def heads(self, items: list[Any]) -> list[tuple[Any, str]]:
        """The in-progress pattern of the sequence at positions before the end, as alternatives that
        each start with one character: (that character's item, the source of the rest)."""
        if not items:
            raise Unsupported  # a pattern that matches nothing at all is in progress everywhere
        (op, av), rest = items[0], items[1:]
        if one(op, av) is not None:
            hoisted, after = _hoist(rest)
            if hoisted is not None and self._keeps(*hoisted):
                return [((op, av), check(*hoisted) + self.reach(after))]
            return [((op, av), self.reach(rest))]
        if op in CHECKS:
            found = self.heads(rest)
            if op is sre.AT or av[0] != -1 or not self._keeps(op, av) or (self.loose and op is sre.ASSERT):
                return found
            try:  # a lookbehind before the first character: made after it, one character further back
                moved = f"(?<{'!' if op is sre.ASSERT_NOT else '='}{source(av[1].data)}[\\s\\S])"
            except Unsupported:
                return found
            return [(item, moved + src) for item, src in found]
        if op is sre.SUBPATTERN and not av[1] and not av[2]:
            return self.heads([*av[3].data, *rest])
        if op is sre.BRANCH:
            return [h for b in av[1] for h in self.heads([*b.data, *rest])]
        if op in REPEATS and av[1] != 0:
            lo, hi, body = av
            more = [] if hi == 1 else [(op, (max(0, lo - 1), hi if hi >= sre.MAXREPEAT else hi - 1, body))]
            found = self.heads([*body.data, *more, *rest])
            return found if lo >= 1 else found + self.heads(rest)
        raise Unsupported


def _any_char(item: Any) -> bool:
    op, av = item
    return op is sre.IN and {a for _, a in av} == {sre.CATEGORY_SPACE, sre.CATEGORY_NOT_SPACE}


def _hoist(rest: list[Any]) -> tuple[tuple[Any, Any] | None, list[Any]]:
    """After the first character: a lookbehind `(?<!X[\\s\\S]{k})` that follows k - 1 more single
    characters tests the character before the first one; it is returned as `(?<!X[\\s\\S])` (placed
    after the first character), with the rest without it."""
    for k, (op, av) in enumerate(rest):
        if one(op, av) is not None:
            continue
        if op is not sre.ASSERT_NOT or av[0] != -1:
            break
        body = list(av[1].data)
        if len(body) == 2 and one(*body[0]) is not None and body[1][0] is sre.MAX_REPEAT:
            lo, hi, item = body[1][1]
            spread = lo if lo == hi and len(item.data) == 1 and _any_char(item.data[0]) else -1
        else:
            spread = 1 if len(body) == 2 and one(*body[0]) is not None and _any_char(body[1]) else -1
        if spread != k + 1:
            break
        any_char = (sre.IN, [(sre.CATEGORY, sre.CATEGORY_SPACE), (sre.CATEGORY, sre.CATEGORY_NOT_SPACE)])
        parsed = sre_parse.SubPattern(av[1].state, [body[0], any_char])
        return (op, (-1, parsed)), [*rest[:k], *rest[k + 1:]]
    return None, rest


def _case_free(items: Any) -> bool:
    """Only classes of characters by category (\\w, \\d, \\s): lower-casing does not change them."""
    for op, av in items:
        if op is sre.IN and all(kind is sre.CATEGORY or (kind is sre.NEGATE) for kind, _ in av):
            continue
        if op is sre.MAX_REPEAT and len(av[2].data) == 1 and _case_free(av[2].data):
            continue
        return False
    return True


@lru_cache(maxsize=1024)
def in_progress(pattern: str, lowered: bool = False) -> tuple[str, ...] | None:
    """Patterns matching where a match of `pattern` may be in progress up to the end of the text
    (see the module's description); None when the pattern has parts they cannot follow. With
    `lowered`, `pattern` is one matched against the lower-cased text; the result matches the text
    itself."""
    parsed = sre_parse.parse(pattern)
    if parsed.state.flags & GLOBAL_FLAGS:
        return None
    data = parsed.data
    if (len(data) == 1 and data[0][0] is sre.SUBPATTERN and data[0][1][0] is None
            and data[0][1][1] == sre.SRE_FLAG_IGNORECASE and not data[0][1][2]):
        try:  # a pattern in any case (a policy regex's `(?i)`): followed as one matched in lower case
            return in_progress(source(data[0][1][3].data), True)
        except Unsupported:
            return None
    reader = _Reader(parsed.state.groupwidths, lowered)
    try:
        heads = reader.heads(list(parsed.data))
        if len(heads) > _MAX_HEADS:
            return None
        out = []
        for (op, av), rest in heads:
            found = codes(op, av) if lowered else None
            if not lowered:
                out.append((one(op, av) or "") + rest)
            elif found is not None and all(c < 0x80 for c in found):
                out.append(both_cases(found) + f"(?i:{rest})")
            else:
                out.append(f"(?i:{one(op, av)}{rest})")
        return tuple(out)
    except (Unsupported, RecursionError):
        return None


@lru_cache(maxsize=1024)
def reach_back(pattern: str) -> int | None:
    """How many characters before the start of a match the pattern's lookbehinds may read (None when
    unknown): the text a match at a position depends on is that many characters before it and the
    text from it on."""
    try:
        return max(0, _reach(sre_parse.parse(pattern).data, 0))
    except (Unsupported, RecursionError):
        return None


def _reach(items: Any, consumed: int) -> int:
    """The farthest back before the match start that a lookbehind in items reads, `consumed`
    characters at least having been matched before them."""
    far = 0
    for op, av in items:
        if op in (sre.ASSERT, sre.ASSERT_NOT):
            if av[0] == -1:
                far = max(far, av[1].getwidth()[1] - consumed)
            far = max(far, _reach(av[1].data, consumed))
        elif op is sre.SUBPATTERN:
            far = max(far, _reach(av[3].data, consumed))
        elif op is sre.BRANCH:
            far = max([far, *(_reach(b.data, consumed) for b in av[1])])
        elif op in REPEATS:
            far = max(far, _reach(av[2].data, consumed))
        elif one(op, av) is None and op not in (sre.AT, sre.GROUPREF):
            raise Unsupported
        low = sre_parse.SubPattern(sre_parse.State(), [(op, av)]).getwidth()[0]
        consumed += low
    return far
