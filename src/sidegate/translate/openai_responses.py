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
from sidegate.translate.neutral import (
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
from sidegate.translate.wire import int_or_none, number_or_none, str_or

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
        raise invalid(field, "must be a string or a list of content parts")
    parts: list[Part] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        where = f"{field}[{j}]"
        if kind in ("input_text", "output_text", "text"):
            parts.append(Text(str(part.get("text") or "")))
        elif kind == "refusal":
            parts.append(Text(str(part.get("refusal") or "")))
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise unsupported(f"{where}.file_id", "the destination", "uploaded OpenAI files live on OpenAI")
            parts.append(media.from_url(url, part.get("detail")))
        elif kind == "input_file":
            parts.append(_file(part, where))
        else:
            raise unsupported(where, "the destination", f"content part type {kind!r}")
    return parts


def _file(part: dict[str, Any], field: str) -> Media:
    data, name = part.get("file_data"), part.get("filename")
    if isinstance(data, str):
        if data.startswith("data:"):
            found = media.from_url(data)
            return Media(found.media_type, data=found.data, filename=name)
        guessed = media.guess_type(name, "application/pdf") if isinstance(name, str) else "application/pdf"
        return Media(guessed, data=data, filename=name)
    if isinstance(part.get("file_url"), str):
        url = part["file_url"]
        return Media(media.guess_type(url, "application/pdf"), url=url, filename=name)
    raise unsupported(f"{field}.file_id", "the destination", "uploaded OpenAI files live on OpenAI")


def _output_parts(output: Any, field: str) -> list[Text | Media]:
    if isinstance(output, str):
        return [Text(output)]
    parts = _content_parts(output, field)
    return [p for p in parts if isinstance(p, Text | Media)]


def _reasoning_item(item: dict[str, Any]) -> Thinking | None:
    summary = "\n\n".join(str(s.get("text") or "") for s in item.get("summary") or () if isinstance(s, dict))
    content = "".join(str(c.get("text") or "") for c in item.get("content") or () if isinstance(c, dict))
    carried = carry.uncarry(str(item.get("encrypted_content") or ""))
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
        if not isinstance(item, dict):
            raise invalid(field, "must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            self.message(item, field)
        elif kind in ("function_call", "custom_tool_call"):
            call_id = str_or(item.get("call_id"), str_or(item.get("id"), ""))
            name = str(item.get("name") or "")
            if isinstance(item.get("namespace"), str) and item["namespace"]:
                name = namespaced(item["namespace"], name)
            self.names[call_id] = name
            custom = kind == "custom_tool_call"
            args = orjson.dumps({"input": str(item.get("input") or "")}).decode() if custom else str(
                item.get("arguments") or "{}")
            self.add("assistant", ToolCall(call_id, name, args, custom=custom))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            call_id = str(item.get("call_id") or "")
            self.add("user", ToolResult(call_id, _output_parts(item.get("output"), f"{field}.output"),
                                        name=self.names.get(call_id), custom=kind == "custom_tool_call_output"))
        elif kind == "reasoning":
            thinking = _reasoning_item(item)
            if thinking is not None:
                self.add("assistant", thinking)
        else:
            raise unsupported(field, "the destination", f"input item type {kind!r}")

    def message(self, item: dict[str, Any], field: str) -> None:
        role = item.get("role")
        parts = _content_parts(item.get("content"), f"{field}.content")
        if role in ("system", "developer"):
            texts = [p for p in parts if isinstance(p, Text)]
            if self.messages:
                self.messages.append(Message("system", [*texts]))
            else:
                self.system.extend(texts)
        elif role == "assistant":
            for part in parts:
                self.add(role, part)
        elif role == "user":
            self.messages.append(Message("user", parts))
        else:
            raise invalid(f"{field}.role", f"unknown role {role!r}")


def namespaced(namespace: str, name: str) -> str:
    """The one flat name a namespaced tool gets where tools have no namespaces."""
    return f"{namespace}{NAMESPACE_SEP}{name}"


def _tool(tool: dict[str, Any], namespace: str | None) -> Tool:
    name = str(tool.get("name"))
    flat = namespaced(namespace, name) if namespace else name
    if tool.get("type") == "custom":
        description = tool.get("description")
        return Tool(flat, description, custom_tool_schema(description), custom=True)
    return Tool(flat, tool.get("description"), tool.get("parameters") or {},
                tool.get("strict") if isinstance(tool.get("strict"), bool) else None)


def _tools(raw: Any, dropped: list[str]) -> list[Tool]:
    """Function and custom tools, namespaced ones flattened (`namespace__name`). Hosted tools
    (web search, file search, code interpreter…) run inside OpenAI: another provider cannot offer
    them, so they are left out and listed in `dropped` (forcing one with tool_choice is a 400)."""
    tools = []
    for i, tool in enumerate(raw or ()):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind in ("function", "custom"):
            tools.append(_tool(tool, None))
        elif kind == "namespace":
            namespace = str(tool.get("name"))
            tools.extend(_tool(inner, namespace) for inner in tool.get("tools") or () if isinstance(inner, dict)
                         and inner.get("type") in ("function", "custom"))
        else:
            dropped.append(f"tools[{i}]")
    return tools


def _tool_choice(raw: Any) -> ToolChoice | None:
    if raw is None:
        return None
    if raw in ("auto", "none", "required"):
        return ToolChoice(raw)
    if isinstance(raw, dict) and raw.get("type") in ("function", "custom") and raw.get("name"):
        namespace = raw.get("namespace")
        name = str(raw["name"])
        return ToolChoice("tool", namespaced(namespace, name) if isinstance(namespace, str) and namespace else name)
    raise unsupported("tool_choice", "the destination", "only auto, none, required or one function translate")


def _format(text: Any) -> ResponseFormat | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_object":
        return ResponseFormat("json_object")
    if fmt["type"] == "json_schema":
        return ResponseFormat("json_schema", fmt.get("schema") or {}, fmt.get("name"), fmt.get("strict"),
                              fmt.get("description"))
    raise unsupported("text.format", "the destination", f"type {fmt.get('type')!r}")


def decode_request(body: dict[str, Any], stream: bool) -> Request:
    for key in _REFUSED:
        if body.get(key):
            raise unsupported(key, "the destination", "it needs OpenAI's server-side state or features")
    decoder = _Decoder()
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        decoder.system.append(Text(body["instructions"]))
    raw = body.get("input")
    if isinstance(raw, str):
        decoder.messages.append(Message("user", [Text(raw)]))
    elif isinstance(raw, list) and raw:
        for i, item in enumerate(raw):
            decoder.item(item, f"input[{i}]")
    else:
        raise invalid("input", "must be a string or a non-empty list of items")
    effort = (body.get("reasoning") or {}).get("effort") if isinstance(body.get("reasoning"), dict) else None
    reasoning = Reasoning(enabled=effort != "none", effort=None if effort == "none" else effort) if isinstance(
        effort, str) else None
    dropped: list[str] = []
    return Request(
        messages=decoder.messages,
        system=decoder.system,
        tools=_tools(body.get("tools"), dropped),
        tool_choice=_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=body.get("parallel_tool_calls") if isinstance(body.get("parallel_tool_calls"), bool)
        else None,
        max_tokens=int_or_none(body.get("max_output_tokens")),
        temperature=number_or_none(body.get("temperature")),
        top_p=number_or_none(body.get("top_p")),
        response_format=_format(body.get("text")),
        reasoning=reasoning,
        user=str_or(body.get("safety_identifier"), "") or str_or(body.get("user"), "") or None,
        stream=body.get("stream") is True,
        echo={key: body[key] for key in ECHOED if key in body},
        dropped=dropped,
    )
