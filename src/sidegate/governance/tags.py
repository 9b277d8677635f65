"""Request tags (DESIGN §4): parsed from a header, validated, merged with the stamped tags."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from multidict import MultiMapping

from sidegate.errors import GatewayError

TAG_HEADERS = ("databricks-ai-gateway-request-tags", "x-sidegate-request-tags")
UPSTREAM_TAG_HEADER = "Databricks-Ai-Gateway-Request-Tags"
MAX_TAGS = 20
MAX_KEY = 64
MAX_VALUE = 256


def _bad(message: str) -> GatewayError:
    return GatewayError(400, "invalid_request_tags", message, param="request_tags")


def _parse(name: str, raw: str) -> dict[str, str]:
    try:
        tags = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"request tags header {name} is not valid JSON: {exc}") from None
    if not isinstance(tags, dict):
        raise _bad(f"request tags header {name} must be a JSON object of string to string")
    if len(tags) > MAX_TAGS:
        raise _bad(f"too many request tags: {len(tags)} (at most {MAX_TAGS})")
    for key, value in tags.items():
        if not isinstance(value, str):
            raise _bad(f"request tag {key!r} must have a string value, not {type(value).__name__}")
        if not key:
            raise _bad("request tag keys must not be empty")
        if len(key) > MAX_KEY:
            raise _bad(f"request tag key {key[:16]!r}… is longer than {MAX_KEY} characters")
        if len(value) > MAX_VALUE:
            raise _bad(f"request tag {key!r} has a value longer than {MAX_VALUE} characters")
    return tags


def parse_tags(headers: MultiMapping[str]) -> tuple[dict[str, str], str | None]:
    """The caller's tags and the header that carried them (None when there were none).

    One header sent twice is refused, and so are both headers with different tags: sidegate would
    have to guess which tags the caller meant, and the usage table would record a guess."""
    first: tuple[str, str] | None = None
    for name in TAG_HEADERS:
        values = headers.getall(name, None)
        if values is None:
            continue
        if len(values) > 1:
            raise _bad(f"request tags header {name} is sent {len(values)} times; send it once")
        if first is None:
            first = (name, values[0])
        elif values[0] != first[1] and _parse(name, values[0]) != _parse(*first):
            raise _bad(f"request tags headers {first[0]} and {name} carry different tags; send one of them")
    if first is None:
        return {}, None
    return _parse(*first), first[0]


def merge_tags(caller: dict[str, str], stamp: Mapping[str, str], require: tuple[str, ...]) -> dict[str, str]:
    """Stamped tags win over the caller's; required keys must be present after the merge."""
    merged = {**caller, **stamp} if stamp else caller
    missing = [key for key in require if key not in merged]
    if missing:
        raise GatewayError(
            400,
            "missing_request_tags",
            "this gateway requires the request tags " + ", ".join(repr(k) for k in missing)
            + " (header Databricks-Ai-Gateway-Request-Tags, a JSON object)",
            param="request_tags",
        )
    return merged
