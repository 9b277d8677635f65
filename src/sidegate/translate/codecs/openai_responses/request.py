"""OpenAI Responses requests → the neutral request (Responses is a caller format here: every
OpenAI-kind server that speaks Responses also speaks Chat Completions, which is the destination).

`instructions` and leading system/developer messages are the system prompt. Input items map one to
one: messages, `function_call` / `function_call_output`, `custom_tool_call` / `..._output` (free-form
tools such as Codex's apply_patch; elsewhere they become a function with one string field), and
`reasoning` items, whose summary text is the thinking and whose `encrypted_content` gives back a
signature sidegate carried for the destination (see `carry`; OpenAI's own encrypted reasoning means
nothing to another provider and is dropped). Server-side state (`previous_response_id`,
`conversation`, stored prompts, item references) cannot be reached from another provider: a 400
names them. Hosted tools (web search…) offered are left out (see `_tools`); tools grouped in a
`namespace` are offered flat as `namespace__name` and their calls come back namespaced. `store`,
`include`, `truncation`, `metadata`, `prompt_cache_key`, `service_tier`, `client_metadata`,
`text.verbosity` and `reasoning.summary` are advisory.
"""

from __future__ import annotations

from typing import Any

import orjson

from sidegate.translate import carry, media
from sidegate.translate.errors import invalid, unsupported
from sidegate.translate.fields import (
    bool_field,
    int_field,
    num_field,
    obj_field,
    objects,
    str_field,
    want_obj,
    want_str,
    wrong,
)
from sidegate.translate.neutral import (
    PLAIN_CHOICES,
    Media,
    Message,
    Part,
    Reasoning,
    Request,
    ResponseFormat,
    Role,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from sidegate.translate.schema import NAMESPACE_SEP, custom_tool_schema

ADVISORY = frozenset({"store", "include", "truncation", "metadata", "prompt_cache_key", "prompt_cache_retention",
                      "prompt_cache_options", "service_tier", "stream_options", "client_metadata", "moderation",
                      "access_programs", "context_management", "image", "background_options"})
_REFUSED = ("previous_response_id", "conversation", "prompt", "background", "max_tool_calls", "top_logprobs")
ECHOED = ("instructions", "max_output_tokens", "metadata", "parallel_tool_calls", "reasoning", "store",
          "temperature", "text", "tool_choice", "tools", "top_p", "truncation", "user", "prompt_cache_key",
          "safety_identifier", "service_tier")


def _content_parts(content: Any, field: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    if not isinstance(content, list):
        raise wrong(field, "a string or an array of content parts", content)
    parts: list[Part] = []
    for j, part in enumerate(content):
        where = f"{field}[{j}]"
        type_name = str_field(want_obj(part, where), "type", where)
        if type_name in ("input_text", "output_text", "text"):
            parts.append(Text(str_field(part, "text", where) or ""))
        elif type_name == "refusal":
            parts.append(Text(str_field(part, "refusal", where) or ""))
        elif type_name == "input_image":
            url = str_field(part, "image_url", where)
            if url is None:
                raise unsupported(f"{where}.file_id", "the destination", "uploaded OpenAI files live on OpenAI")
            parts.append(media.from_url(url, str_field(part, "detail", where)))
        elif type_name == "input_file":
            parts.append(_file(part, where))
        else:
            raise unsupported(where, "the destination", f"content part type {type_name!r}")
    return parts


def _file(part: dict[str, Any], field: str) -> Media:
    data, name = str_field(part, "file_data", field), str_field(part, "filename", field)
    if data is not None:
        if data.startswith("data:"):
            found = media.from_url(data)
            return Media(found.media_type, data=found.data, filename=name)
        guessed = media.guess_type(name, "application/pdf") if name else "application/pdf"
        return Media(guessed, data=data, filename=name)
    if (url := str_field(part, "file_url", field)) is not None:
        return Media(media.guess_type(url, "application/pdf"), url=url, filename=name)
    raise unsupported(f"{field}.file_id", "the destination", "uploaded OpenAI files live on OpenAI")


def _output_parts(output: Any, field: str) -> list[Text | Media]:
    if isinstance(output, str):
        return [Text(output)]
    parts = _content_parts(output, field)
    return [p for p in parts if isinstance(p, Text | Media)]


def _joined_texts(item: dict[str, Any], key: str, field: str, sep: str) -> str:
    return sep.join(str_field(s, "text", where) or "" for where, s in objects(item, key, field))


def _reasoning_item(item: dict[str, Any], field: str) -> Thinking | None:
    summary = _joined_texts(item, "summary", field, "\n\n")
    content = _joined_texts(item, "content", field, "")
    carried = carry.uncarry(str_field(item, "encrypted_content", field) or "")
    if carried is not None:
        origin, token, redacted = carried
        return Thinking(summary or content, token, origin, redacted)
    text = summary or content
    return Thinking(text) if text else None


class _Decoder:
    def __init__(self) -> None:
        self.system: list[Text] = []
        self.messages: list[Message] = []
        self.names: dict[str, str] = {}

    def add(self, role: Role, part: Part) -> None:
        last = self.messages[-1] if self.messages else None
        joinable = last is not None and last.role == role and (
            role == "assistant" or all(isinstance(p, ToolResult) for p in [*last.parts, part]))
        if last is not None and joinable:
            last.parts.append(part)
        else:
            self.messages.append(Message(role, [part]))

    def item(self, item: Any, field: str) -> None:
        type_name = str_field(want_obj(item, field), "type", field) or "message"
        if type_name == "message":
            self.message(item, field)
        elif type_name in ("function_call", "custom_tool_call"):
            call_id = str_field(item, "call_id", field) or str_field(item, "id", field) or ""
            name = str_field(item, "name", field) or ""
            if namespace := str_field(item, "namespace", field):
                name = namespaced(namespace, name)
            self.names[call_id] = name
            custom = type_name == "custom_tool_call"
            if custom:
                args = orjson.dumps({"input": str_field(item, "input", field) or ""}).decode()
            else:
                args = str_field(item, "arguments", field) or "{}"
            self.add("assistant", ToolCall(call_id, name, args, custom=custom))
        elif type_name in ("function_call_output", "custom_tool_call_output"):
            call_id = str_field(item, "call_id", field) or ""
            self.add("user", ToolResult(call_id, _output_parts(item.get("output"), f"{field}.output"),
                                        name=self.names.get(call_id), custom=type_name == "custom_tool_call_output"))
        elif type_name == "reasoning":
            thinking = _reasoning_item(item, field)
            if thinking is not None:
                self.add("assistant", thinking)
        else:
            raise unsupported(field, "the destination", f"input item type {type_name!r}")

    def message(self, item: dict[str, Any], field: str) -> None:
        role = str_field(item, "role", field)
        parts = _content_parts(item.get("content"), f"{field}.content")
        if role in ("system", "developer"):
            texts = [p for p in parts if isinstance(p, Text)]
            if self.messages:
                self.messages.append(Message("system", [*texts]))
            else:
                self.system.extend(texts)
        elif role == "assistant":
            for part in parts:
                self.add("assistant", part)
        elif role == "user":
            self.messages.append(Message("user", parts))
        else:
            raise invalid(f"{field}.role", f"unknown role {role!r}")


def namespaced(namespace: str, name: str) -> str:
    """The one flat name a namespaced tool gets where tools have no namespaces."""
    return f"{namespace}{NAMESPACE_SEP}{name}"


def _tool(tool: dict[str, Any], field: str, namespace: str | None) -> Tool:
    name = str_field(tool, "name", field)
    if not name:
        raise invalid(f"{field}.name", "must be a non-empty string")
    flat = namespaced(namespace, name) if namespace else name
    description = str_field(tool, "description", field)
    if tool.get("type") == "custom":
        return Tool(flat, description, custom_tool_schema(description), custom=True)
    return Tool(flat, description, obj_field(tool, "parameters", field) or {}, bool_field(tool, "strict", field))


def _tools(body: dict[str, Any], dropped: list[str]) -> list[Tool]:
    """Function and custom tools, namespaced ones flattened (`namespace__name`). Hosted tools
    (web search, file search, code interpreter…) run inside OpenAI: another provider cannot offer
    them, so they are left out and listed in `dropped` (forcing one with tool_choice is a 400)."""
    tools = []
    for where, tool in objects(body, "tools"):
        type_name = str_field(tool, "type", where)
        if type_name in ("function", "custom"):
            tools.append(_tool(tool, where, None))
        elif type_name == "namespace":
            namespace = str_field(tool, "name", where) or ""
            tools.extend(_tool(inner, field, namespace) for field, inner in objects(tool, "tools", where)
                         if inner.get("type") in ("function", "custom"))
        else:
            dropped.append(where)
    return tools


def _tool_choice(raw: Any) -> ToolChoice | None:
    if raw is None:
        return None
    if isinstance(raw, str) and raw in PLAIN_CHOICES:
        return ToolChoice(PLAIN_CHOICES[raw])
    if not isinstance(raw, str | dict):
        raise wrong("tool_choice", "a string or an object", raw)
    if isinstance(raw, dict) and raw.get("type") in ("function", "custom") and raw.get("name"):
        name = want_str(raw["name"], "tool_choice.name")
        namespace = str_field(raw, "namespace", "tool_choice")
        return ToolChoice("tool", namespaced(namespace, name) if namespace else name)
    raise unsupported("tool_choice", "the destination", "only auto, none, required or one function translate")


def _format(body: dict[str, Any]) -> ResponseFormat | None:
    text = obj_field(body, "text")
    fmt = obj_field(text, "format", "text") if text is not None else None
    type_name = str_field(fmt, "type", "text.format") if fmt is not None else None
    if fmt is None or type_name in (None, "text"):
        return None
    if type_name == "json_object":
        return ResponseFormat("json_object")
    if type_name == "json_schema":
        where = "text.format"
        return ResponseFormat("json_schema", obj_field(fmt, "schema", where) or {}, str_field(fmt, "name", where),
                              bool_field(fmt, "strict", where), str_field(fmt, "description", where))
    raise unsupported("text.format", "the destination", f"type {type_name!r}")


def decode_request(body: dict[str, Any], stream: bool) -> Request:
    for key in _REFUSED:
        if body.get(key):
            raise unsupported(key, "the destination", "it needs OpenAI's server-side state or features")
    decoder = _Decoder()
    if instructions := str_field(body, "instructions"):
        decoder.system.append(Text(instructions))
    raw = body.get("input")
    if isinstance(raw, str):
        decoder.messages.append(Message("user", [Text(raw)]))
    elif isinstance(raw, list) and raw:
        for i, item in enumerate(raw):
            decoder.item(item, f"input[{i}]")
    else:
        raise invalid("input", "must be a string or a non-empty list of items")
    config = obj_field(body, "reasoning")
    effort = str_field(config, "effort", "reasoning") if config is not None else None
    reasoning = Reasoning(enabled=effort != "none", effort=None if effort == "none" else effort) if isinstance(
        effort, str) else None
    dropped: list[str] = []
    return Request(
        messages=decoder.messages,
        system=decoder.system,
        tools=_tools(body, dropped),
        tool_choice=_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=bool_field(body, "parallel_tool_calls"),
        max_tokens=int_field(body, "max_output_tokens", low=1),
        temperature=num_field(body, "temperature"),
        top_p=num_field(body, "top_p"),
        response_format=_format(body),
        reasoning=reasoning,
        user=str_field(body, "safety_identifier") or str_field(body, "user") or None,
        stream=bool_field(body, "stream") is True,
        echo={key: body[key] for key in ECHOED if key in body},
        dropped=dropped,
    )
