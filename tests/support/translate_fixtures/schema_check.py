"""Strict checks of translated request bodies against each provider's documented request schema.

OpenAI and Anthropic bodies are checked against the official SDKs' request TypedDicts: every
required key present, no key the schema does not name, Literal values within their set, and the
same recursively through unions, lists and nested objects. Gemini bodies are checked with the
google-genai pydantic types (which forbid unknown fields), field by field of the REST request.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from typing import Any, Literal, NotRequired, Required, Union, get_args, get_origin

from typing_extensions import is_typeddict

_LISTS = (list, tuple, collections.abc.Iterable, collections.abc.Sequence)


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) in (Required, NotRequired, typing.Annotated) or get_origin(tp) is getattr(
            typing, "Annotated", None):
        tp = get_args(tp)[0]
    return tp


def check(value: Any, tp: Any, path: str = "$") -> list[str]:
    """Problems of `value` against type `tp`; empty when it conforms."""
    tp = _unwrap(tp)
    if tp is Any or tp is object:
        return []
    if is_typeddict(tp):
        return _check_typeddict(value, tp, path)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return _check_union(value, get_args(tp), path)
    if origin is Literal:
        return [] if value in get_args(tp) else [f"{path}: {value!r} not in {get_args(tp)}"]
    if origin in (dict, collections.abc.Mapping) or tp is dict:
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        args = get_args(tp)
        if len(args) == 2:
            return [p for k, v in value.items() for p in check(v, args[1], f"{path}.{k}")]
        return []
    if origin in _LISTS or (isinstance(origin, type) and "SequenceNotStr" in getattr(origin, "__name__", "")) or (
            getattr(tp, "__name__", "") == "SequenceNotStr"):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        args = get_args(tp)
        return [p for i, v in enumerate(value) for p in check(v, args[0], f"{path}[{i}]")] if args else []
    if origin is not None and getattr(origin, "__name__", "") == "SequenceNotStr":
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [p for i, v in enumerate(value) for p in check(v, get_args(tp)[0], f"{path}[{i}]")]
    if tp is type(None):
        return [] if value is None else [f"{path}: expected null"]
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected a number"]
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected an integer"]
    if tp in (str, bool):
        return [] if isinstance(value, tp) else [f"{path}: expected {tp.__name__}"]
    if isinstance(tp, type):
        if tp.__name__ in ("Base64FileInput", "PathLike", "FileTypes") or issubclass(tp, bytes):
            return []
        return [] if isinstance(value, tp) else [f"{path}: expected {tp.__name__}"]
    return []  # TypeVars and the like: not constrained


def _required(hint: Any, total: bool) -> bool:
    """SDK modules use postponed annotations, so TypedDict's own required-key sets are empty: read
    Required / NotRequired from the resolved hints instead."""
    origin = get_origin(hint)
    if origin is typing.Annotated:
        return _required(get_args(hint)[0], total)
    if origin is Required:
        return True
    if origin is NotRequired:
        return False
    return total


def _totality(td: Any) -> dict[str, bool]:
    """Each key's totality: that of the TypedDict class that declared it (a total=True subclass of a
    total=False base keeps the base's keys optional)."""
    out: dict[str, bool] = {}
    for base in getattr(td, "__orig_bases__", ()):
        if is_typeddict(base):
            out.update(_totality(base))
    own = set(td.__annotations__) - set(out)
    out.update(dict.fromkeys(own, td.__total__))
    return out


def _check_union(value: Any, options: tuple[Any, ...], path: str) -> list[str]:
    best: list[str] | None = None
    for option in options:
        problems = check(value, option, path)
        if not problems:
            return []
        if best is None or len(problems) < len(best):
            best = problems
    return best or [f"{path}: matches no option"]


def _check_typeddict(value: Any, td: Any, path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: expected an object ({td.__name__})"]
    hints = typing.get_type_hints(td, include_extras=True)
    totality = _totality(td)
    problems = [f"{path}: missing required {key!r} ({td.__name__})" for key, hint in hints.items()
                if _required(hint, totality.get(key, td.__total__)) and key not in value]
    for key, item in value.items():
        if key not in hints:
            problems.append(f"{path}: unknown field {key!r} ({td.__name__})")
        else:
            problems.extend(check(item, hints[key], f"{path}.{key}"))
    return problems


# ---------------------------------------------------------------- the destinations' request schemas


def openai_chat_problems(body: dict[str, Any]) -> list[str]:
    from openai.types.chat import completion_create_params as p

    td = p.CompletionCreateParamsStreaming if body.get("stream") else p.CompletionCreateParamsNonStreaming
    return check(body, td)


def anthropic_messages_problems(body: dict[str, Any]) -> list[str]:
    from anthropic.types import message_create_params as p

    td = p.MessageCreateParamsStreaming if body.get("stream") else p.MessageCreateParamsNonStreaming
    return check(body, td)


def anthropic_count_problems(body: dict[str, Any]) -> list[str]:
    from anthropic.types.message_count_tokens_params import MessageCountTokensParams

    return check(body, MessageCountTokensParams)


_GEMINI_FIELDS = {
    "contents": ("Content", True),
    "systemInstruction": ("Content", False),
    "tools": ("Tool", True),
    "toolConfig": ("ToolConfig", False),
    "generationConfig": ("GenerationConfig", False),
    "safetySettings": ("SafetySetting", True),
    "cachedContent": (None, False),
}


def gemini_generate_problems(body: dict[str, Any]) -> list[str]:
    """A GenerateContentRequest: each top-level field validated with its google-genai type (camelCase
    aliases, unknown fields forbidden). `contents` is required."""
    import pydantic
    from google.genai import types as gt

    problems = [] if "contents" in body else ["$: missing required 'contents'"]
    for key, value in body.items():
        if key not in _GEMINI_FIELDS:
            problems.append(f"$: unknown field {key!r}")
            continue
        type_name, is_list = _GEMINI_FIELDS[key]
        if type_name is None:
            continue
        model = getattr(gt, type_name)
        for i, item in enumerate(value if is_list else [value]):
            try:
                model.model_validate(item)
            except pydantic.ValidationError as exc:
                problems.append(f"$.{key}[{i}]: {exc}")
            problems.extend(_camel_only(item, f"$.{key}[{i}]"))
    return problems


def _camel_only(value: Any, path: str) -> list[str]:
    """The REST API takes camelCase (or the proto's snake_case, but sidegate sends camelCase): the
    SDK types accept both, so flag snake_case keys outside free-form objects (schemas, args)."""
    free = ("args", "response", "parametersJsonSchema", "responseJsonSchema", "parameters", "responseSchema")
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _camel_only(v, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return []
    out = []
    for key, item in value.items():
        if "_" in key.strip("_"):
            out.append(f"{path}: snake_case key {key!r}")
        if key not in free:
            out.extend(_camel_only(item, f"{path}.{key}"))
    return out


def gemini_count_problems(body: dict[str, Any]) -> list[str]:
    inner = body.get("generateContentRequest")
    if set(body) != {"generateContentRequest"} or not isinstance(inner, dict):
        return [f"$: expected only generateContentRequest, got {sorted(body)}"]
    rest = {k: v for k, v in inner.items() if k != "model"}
    problems = [] if str(inner.get("model", "")).startswith("models/") else ["$: model must be models/…"]
    return problems + gemini_generate_problems(rest)


def gemini_batch_embed_problems(body: dict[str, Any]) -> list[str]:
    import pydantic
    from google.genai import types as gt

    problems = []
    if set(body) != {"requests"}:
        problems.append(f"$: unexpected fields {sorted(body)}")
    allowed = {"model", "content", "taskType", "title", "outputDimensionality"}
    for i, item in enumerate(body.get("requests") or []):
        extra = set(item) - allowed
        if extra or "content" not in item or not str(item.get("model", "")).startswith("models/"):
            problems.append(f"$.requests[{i}]: fields {sorted(item)}")
        try:
            gt.Content.model_validate(item.get("content"))
        except pydantic.ValidationError as exc:
            problems.append(f"$.requests[{i}].content: {exc}")
    return problems


def responses_problems(body: dict[str, Any]) -> list[str]:
    from openai.types.responses import response_create_params as p

    td = p.ResponseCreateParamsStreaming if body.get("stream") else p.ResponseCreateParamsNonStreaming
    return check(body, td)


def openai_embeddings_problems(body: dict[str, Any]) -> list[str]:
    from openai.types.embedding_create_params import EmbeddingCreateParams

    return check(body, EmbeddingCreateParams)
