"""What every stream fold shares: indexes read leniently, text appended in linear time, deltas merged."""

from __future__ import annotations

from typing import Any


def as_index(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def append_text(obj: dict[Any, Any], key: Any, piece: str) -> None:
    """obj[key] += piece in amortised linear time: with the dict's reference dropped first, CPython
    grows the string in place instead of copying it (a long stream would otherwise be quadratic)."""
    text = obj.get(key) or ""
    obj[key] = None
    text += piece
    obj[key] = text


# Keys whose value is replaced, not concatenated, when a later delta repeats them.
_SET_KEYS = frozenset({"index", "type", "role", "id", "name", "finish_reason"})


def merge_delta(acc: dict[str, Any], delta: dict[str, Any]) -> None:
    """Fold one delta into the accumulated object: strings concatenate, objects merge, lists of
    indexed objects merge by `index`, other lists extend; a null never erases a value."""
    for key, value in delta.items():
        have = acc.get(key)
        if have is None or (key in _SET_KEYS and value is not None):
            acc[key] = value
        elif isinstance(have, str) and isinstance(value, str):
            del have
            append_text(acc, key, value)
        elif isinstance(have, dict) and isinstance(value, dict):
            merge_delta(have, value)
        elif isinstance(have, list) and isinstance(value, list):
            _merge_list(have, value)
        elif value is not None:
            acc[key] = value


def _merge_list(have: list[Any], items: list[Any]) -> None:
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("index"), int):
            for old in have:
                if isinstance(old, dict) and old.get("index") == item["index"]:
                    merge_delta(old, item)
                    break
            else:
                have.append(item)
        else:
            have.append(item)
