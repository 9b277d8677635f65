"""Typed readers of a caller's request fields, for the decoders of every format.

A decoder reads each caller field through one of these: a value of the wrong JSON type is a 400
(`invalid_request_field`) naming the field by its JSON path (`contents[2].parts[0].text`,
`generationConfig.maxOutputTokens`), in the caller's error shape, never an exception of another
kind and never a value forwarded as it came. A field that is absent or `null` reads as not given.

JSON types as a caller means them: `true` is not a number (Python's bool is an int), an integer
field takes an integral number within its bounds (`10.0` is 10, `10.5`, `1e20` and `-1` are not
token limits), a number must be finite and fit the 64-bit range every provider's parser has.

Field readers take the object, the key and the path of the object (empty at the top level), and
build the field's name only when they refuse it; `want_*` check a value already in hand.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from sidegate.formats.base import TokenUsage
from sidegate.formats.sse import NOT_JSON, json_event
from sidegate.translate.errors import INVALID_FIELD as CODE
from sidegate.translate.errors import TranslationError

MAX_INT = 2**63 - 1
_MAX_FLOAT = 2.0**63  # a float at or above this does not fit a signed 64-bit integer


def field_name(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def wrong(name: str, expected: str, value: Any = None) -> TranslationError:
    """400 naming `name`: it must be `expected` (the value's JSON type is said, never its content)."""
    return TranslationError(name, f"must be {expected}, not {json_type(value)}", code=CODE)


def out_of_range(name: str, expected: str) -> TranslationError:
    return TranslationError(name, f"must be {expected}", code=CODE)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


# ---------------------------------------------------------------- values in hand


def want_str(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    raise wrong(name, "a string", value)


def want_obj(value: Any, name: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise wrong(name, "an object", value)


def want_list(value: Any, name: str) -> list[Any]:
    if isinstance(value, list):
        return value
    raise wrong(name, "an array", value)


def want_int(value: Any, name: str, low: int = 0, high: int = MAX_INT) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer() and abs(value) < _MAX_FLOAT:
        number = int(value)
    elif isinstance(value, float) and math.isfinite(value) and not value.is_integer():
        raise out_of_range(name, f"an integer, not {value!r}")
    elif isinstance(value, float):
        raise out_of_range(name, f"an integer between {low} and {high}")
    else:
        raise wrong(name, "an integer", value)
    if low <= number <= high:
        return number
    raise out_of_range(name, f"an integer between {low} and {high}")


def want_num(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise wrong(name, "a number", value)
    if isinstance(value, int):
        if -MAX_INT - 1 <= value <= MAX_INT:
            return value
    elif math.isfinite(value):
        return value
    raise out_of_range(name, "a finite number within the 64-bit range")


# ---------------------------------------------------------------- fields of an object (None: not given)


def str_field(obj: dict[str, Any], key: str, parent: str = "") -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise wrong(field_name(parent, key), "a string", value)


def int_field(obj: dict[str, Any], key: str, parent: str = "", low: int = 0, high: int = MAX_INT) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is int and low <= value <= high:
        return value
    return want_int(value, field_name(parent, key), low, high)


def num_field(obj: dict[str, Any], key: str, parent: str = "") -> float | None:
    value = obj.get(key)
    if value is None or (type(value) is float and math.isfinite(value)):
        return value
    return want_num(value, field_name(parent, key))


def bool_field(obj: dict[str, Any], key: str, parent: str = "") -> bool | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise wrong(field_name(parent, key), "true or false", value)


def obj_field(obj: dict[str, Any], key: str, parent: str = "") -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise wrong(field_name(parent, key), "an object", value)


def list_field(obj: dict[str, Any], key: str, parent: str = "") -> list[Any]:
    """The array at `key`, empty when not given."""
    value = obj.get(key)
    if value is None:
        return []
    if isinstance(value, list):
        return value
    raise wrong(field_name(parent, key), "an array", value)


def objects(obj: dict[str, Any], key: str, parent: str = "") -> list[tuple[str, dict[str, Any]]]:
    """The array of objects at `key` as (path of the item, item), empty when not given."""
    items = list_field(obj, key, parent)
    if not items:
        return []
    name = field_name(parent, key)
    out = []
    for i, item in enumerate(items):
        if type(item) is not dict:
            raise wrong(f"{name}[{i}]", "an object", item)
        out.append((f"{name}[{i}]", item))
    return out


def str_list(obj: dict[str, Any], key: str, parent: str = "", *, single: bool = False) -> list[str]:
    """An array of strings at `key` (with `single`, one string stands for a list of one)."""
    value = obj.get(key)
    if value is None:
        return []
    if single and isinstance(value, str):
        return [value]
    name = field_name(parent, key)
    if not isinstance(value, list):
        raise wrong(name, "a string or an array of strings" if single else "an array of strings", value)
    return [want_str(item, f"{name}[{i}]") for i, item in enumerate(value)]


MAX_COUNT = 2**53 - 1  # far beyond any real token count, and what every client's JSON parser holds


def checked_usage(usage: TokenUsage | None, name: str) -> TokenUsage | None:
    """Usage read from an answer, refused when a count is negative or absurdly large."""
    if usage is None:
        return None
    for count in (usage.input, usage.output, usage.cache_read, usage.cache_creation, usage.reasoning):
        if not 0 <= count <= MAX_COUNT:
            raise out_of_range(name, f"token counts between 0 and {MAX_COUNT}")
    return usage


def event_object(data: bytes) -> dict[str, Any]:
    """A stream event's JSON object (the translation entry point reports a refusal here as the
    upstream's unreadable answer)."""
    obj, problem = json_event(data)
    if obj is not None:
        return obj
    if problem == NOT_JSON:
        raise TranslationError("data", "the event's data is not valid JSON", code=CODE)
    return want_obj(orjson.loads(data), "data")  # valid JSON but no object: the reader's error names its type
