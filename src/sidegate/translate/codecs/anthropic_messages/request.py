"""Anthropic Messages requests ↔ the neutral request.

Decoding (an Anthropic caller, e.g. Claude Code): `system` blocks become the system prompt,
`tool_result` blocks tool results, `thinking` / `redacted_thinking` blocks thinking that keeps its
signature (for when the destination is Anthropic again). `cache_control` marks are advisory.
Encoding (an Anthropic destination): consecutive turns of one role are merged, tool results lead
their user turn (the API requires it), system instructions given mid-conversation join the
top-level `system`, and `max_tokens` (required here) defaults to `DEFAULT_MAX_TOKENS` plus any
thinking budget. The Messages API as documented today has no sampling controls (current models
refuse temperature / top_p / top_k, and the official SDK no longer sends them), so those are
advisory towards Anthropic: accepted from the caller, not sent. Thinking blocks are sent back
only with a signature Anthropic minted; when the caller could not carry them and the last
assistant turn called tools, thinking is turned off for that request, because the API refuses a
tool loop whose assistant turn lost its thinking block.
"""

from __future__ import annotations

from typing import Any

import orjson

from sidegate import apis
from sidegate.translate import carry
from sidegate.translate.errors import invalid, unsupported
from sidegate.translate.fields import (
    bool_field,
    int_field,
    num_field,
    obj_field,
    objects,
    str_field,
    str_list,
    want_list,
    want_obj,
    want_str,
    wrong,
)
from sidegate.translate.media import guess_type
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
    budget_for,
)
from sidegate.translate.schema import custom_tool_schema, object_schema
from sidegate.translate.wire import args_object, safe_tool_id

API = apis.ANTHROPIC_MESSAGES
FAMILY = "anthropic"
DEFAULT_MAX_TOKENS = 4096  # when the caller set no limit: every Claude model accepts it
MIN_THINKING_BUDGET = 1024
_ROLES: dict[str, Role] = {"user": "user", "assistant": "assistant", "system": "system"}
PDF = "application/pdf"  # the one inline (base64) document type
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

# Accepted and ignored: caching marks, service tier and routing hints, beta context editing.
ADVISORY = frozenset({"cache_control", "service_tier", "speed", "inference_geo", "diagnostics", "container",
                      "context_management", "workspace_id", "user_profile_id"})


def _source(source: Any, field: str) -> Media:
    source = want_obj(source, field)
    type_name = str_field(source, "type", field)
    if type_name == "base64":
        return Media(str_field(source, "media_type", field) or None, data=str_field(source, "data", field) or "")
    if type_name == "url":
        url = want_str(source.get("url"), f"{field}.url")
        return Media(guess_type(url), url=url)
    raise unsupported(field, "the destination", f"source type {type_name!r}")


def _block_texts(content: Any, field: str) -> list[Text]:
    if isinstance(content, str):
        return [Text(content)]
    if content is None:
        return []
    out = []
    for j, block in enumerate(want_list(content, field)):
        where = f"{field}[{j}]"
        if str_field(want_obj(block, where), "type", where) != "text":
            raise invalid(where, "only text blocks are allowed here")
        out.append(Text(str_field(block, "text", where) or ""))
    return out


def _document(block: dict[str, Any], field: str) -> Part:
    source = obj_field(block, "source", field) or {}
    if source.get("type") == "text":
        return Text(str_field(source, "data", f"{field}.source") or "")
    found = _source(source, f"{field}.source")
    found.filename = str_field(block, "title", field)
    return found


def _result_content(content: Any, field: str) -> list[Text | Media]:
    if isinstance(content, str):
        return [Text(content)]
    out: list[Text | Media] = []
    for j, block in enumerate(want_list(content, field) if content is not None else ()):
        where = f"{field}[{j}]"
        type_name = str_field(want_obj(block, where), "type", where)
        if type_name == "text":
            out.append(Text(str_field(block, "text", where) or ""))
        elif type_name == "image":
            out.append(_source(block.get("source"), f"{where}.source"))
        elif type_name == "document":
            part = _document(block, where)
            assert isinstance(part, Text | Media)
            out.append(part)
        else:
            raise unsupported(where, "the destination", f"tool result block type {type_name!r}")
    return out


def _thinking(signature: str, text: str, redacted: bool) -> Thinking:
    carried = carry.uncarry(signature)
    if carried is not None:
        return Thinking(text, carried[1], carried[0], carried[2])
    return Thinking(text, signature or None, FAMILY, redacted)


def _blocks(content: Any, field: str, names: dict[str, str]) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    if not isinstance(content, list):
        raise wrong(field, "a string or an array of content blocks", content)
    parts: list[Part] = []
    for j, block in enumerate(content):
        where = f"{field}[{j}]"
        type_name = str_field(want_obj(block, where), "type", where)
        if type_name == "text":
            parts.append(Text(str_field(block, "text", where) or ""))
        elif type_name == "image":
            parts.append(_source(block.get("source"), f"{where}.source"))
        elif type_name == "document":
            parts.append(_document(block, where))
        elif type_name == "tool_use":
            call_id = str_field(block, "id", where) or ""
            names[call_id] = str_field(block, "name", where) or ""
            arguments = orjson.dumps(obj_field(block, "input", where) or {}).decode()
            parts.append(ToolCall(call_id, names[call_id], arguments))
        elif type_name == "tool_result":
            call_id = str_field(block, "tool_use_id", where) or ""
            parts.append(ToolResult(call_id, _result_content(block.get("content"), f"{where}.content"),
                                    bool_field(block, "is_error", where) is True, names.get(call_id)))
        elif type_name == "thinking":
            parts.append(_thinking(str_field(block, "signature", where) or "",
                                   str_field(block, "thinking", where) or "", False))
        elif type_name == "redacted_thinking":
            parts.append(_thinking(str_field(block, "data", where) or "", "", True))
        else:
            raise unsupported(where, "the destination", f"content block type {type_name!r}")
    return parts


def _tools(body: dict[str, Any], dropped: list[str]) -> list[Tool]:
    """Custom (client) tools. Anthropic's own tools (web search, code execution, bash, text editor,
    computer use…) have schemas and runtimes only Anthropic knows: left out, listed in `dropped`."""
    tools = []
    for where, tool in objects(body, "tools"):
        if str_field(tool, "type", where) not in (None, "custom") or "input_schema" not in tool:
            dropped.append(where)
            continue
        name = str_field(tool, "name", where)
        if not name:
            raise invalid(f"{where}.name", "must be a non-empty string")
        tools.append(Tool(name, str_field(tool, "description", where), obj_field(tool, "input_schema", where) or {},
                          bool_field(tool, "strict", where)))
    return tools


def _tool_choice(body: dict[str, Any]) -> tuple[ToolChoice | None, bool | None]:
    raw = obj_field(body, "tool_choice")
    if raw is None:
        return None, None
    modes = {"auto": "auto", "any": "required", "none": "none", "tool": "tool"}
    type_name = str_field(raw, "type", "tool_choice")
    mode = modes.get(type_name or "")
    if mode is None:
        raise unsupported("tool_choice", "the destination", f"type {type_name!r}")
    parallel = False if bool_field(raw, "disable_parallel_tool_use", "tool_choice") else None
    name = str_field(raw, "name", "tool_choice") if mode == "tool" else None
    return ToolChoice(mode, name), parallel  # type: ignore[arg-type]


def _reasoning(body: dict[str, Any], config: dict[str, Any]) -> Reasoning | None:
    thinking = obj_field(body, "thinking")
    effort = str_field(config, "effort", "output_config")
    if thinking is None:
        return Reasoning(effort=effort) if effort is not None else None
    if str_field(thinking, "type", "thinking") == "disabled":
        return Reasoning(enabled=False)
    return Reasoning(effort=effort, budget=int_field(thinking, "budget_tokens", "thinking"),
                     summaries=str_field(thinking, "display", "thinking") != "omitted")


def _format(config: dict[str, Any]) -> ResponseFormat | None:
    fmt = obj_field(config, "format", "output_config")
    if fmt is None:
        return None
    type_name = str_field(fmt, "type", "output_config.format")
    if type_name != "json_schema":
        raise unsupported("output_config.format", "the destination", f"type {type_name!r}")
    return ResponseFormat("json_schema", obj_field(fmt, "schema", "output_config.format") or {})


def decode_request(body: dict[str, Any]) -> Request:
    if body.get("mcp_servers"):
        raise unsupported("mcp_servers", "the destination", "remote MCP servers are run by Anthropic's API")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise invalid("messages", "must be a non-empty list")
    names: dict[str, str] = {}
    messages = []
    for i, msg in enumerate(raw):
        where = f"messages[{i}]"
        role = _ROLES.get(str_field(want_obj(msg, where), "role", where) or "")
        if role is None:
            raise invalid(f"{where}.role", "must be user, assistant or system")
        messages.append(Message(role, _blocks(msg.get("content"), f"{where}.content", names)))
    choice, parallel = _tool_choice(body)
    dropped: list[str] = []
    metadata = obj_field(body, "metadata")
    config = obj_field(body, "output_config") or {}
    return Request(
        messages=messages,
        system=_block_texts(body.get("system"), "system"),
        tools=_tools(body, dropped),
        tool_choice=choice,
        parallel_tool_calls=parallel,
        max_tokens=int_field(body, "max_tokens", low=1),
        temperature=num_field(body, "temperature"),
        top_p=num_field(body, "top_p"),
        top_k=int_field(body, "top_k"),
        stop=str_list(body, "stop_sequences"),
        response_format=_format(config),
        reasoning=_reasoning(body, config),
        user=(str_field(metadata, "user_id", "metadata") or None) if metadata is not None else None,
        stream=bool_field(body, "stream") is True,
        dropped=dropped,
    )


# ---------------------------------------------------------------- encoding (Anthropic destination)


def media_block(part: Media, field: str) -> dict[str, Any]:
    type_name = "image" if part.is_image else "document"
    if part.url is not None:
        return {"type": type_name, "source": {"type": "url", "url": part.url}}
    media_type = part.media_type or "image/jpeg"
    if type_name == "image" and media_type not in IMAGE_TYPES:
        raise unsupported(field, API, f"image type {media_type!r} (allowed: {', '.join(sorted(IMAGE_TYPES))})")
    if type_name == "document" and media_type != PDF:
        raise unsupported(field, API, f"inline document type {media_type!r} (allowed: {PDF})")
    return {"type": type_name, "source": {"type": "base64", "media_type": media_type, "data": part.data}}


def _result_block(part: ToolResult, field: str) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": safe_tool_id(part.call_id)}
    if len(part.content) == 1 and isinstance(part.content[0], Text):
        block["content"] = part.content[0].text
    elif part.content:
        block["content"] = [{"type": "text", "text": p.text} if isinstance(p, Text) else media_block(p, field)
                            for p in part.content]
    if part.is_error:
        block["is_error"] = True
    return block


def _part_block(part: Part, field: str) -> dict[str, Any] | None:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text} if part.text else None
    if isinstance(part, Media):
        return media_block(part, field)
    if isinstance(part, ToolCall):
        return {"type": "tool_use", "id": safe_tool_id(part.id), "name": part.name,
                "input": args_object(part.arguments, field)}
    if isinstance(part, ToolResult):
        return _result_block(part, field)
    token = carry.own_token(part.origin, part.signature, FAMILY)
    if token is None:
        return None  # thinking another provider produced: Anthropic cannot verify it
    if part.redacted:
        return {"type": "redacted_thinking", "data": token}
    return {"type": "thinking", "thinking": part.text, "signature": token}


def _turns(req: Request) -> tuple[list[dict[str, Any]], list[str]]:
    turns: list[dict[str, Any]] = []
    late_system: list[str] = []
    for i, msg in enumerate(req.messages):
        if msg.role == "system":
            late_system.extend(p.text for p in msg.parts if isinstance(p, Text))
            continue
        blocks = [b for j, p in enumerate(msg.parts) if (b := _part_block(p, f"messages[{i}].parts[{j}]"))]
        if not blocks:
            continue
        if turns and turns[-1]["role"] == msg.role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": msg.role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":  # tool results first, in their order
            turn["content"].sort(key=lambda b: b["type"] != "tool_result")
    return turns, late_system


def _thinking_survives(turns: list[dict[str, Any]]) -> bool:
    """With thinking on, an assistant turn that called tools must start with its thinking block."""
    for turn in reversed(turns):
        if turn["role"] == "assistant":
            blocks = turn["content"]
            calls = any(b["type"] == "tool_use" for b in blocks)
            return not calls or blocks[0]["type"] in ("thinking", "redacted_thinking")
    return True


def _tool(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description:
        out["description"] = tool.description
    out["input_schema"] = custom_tool_schema(tool.description) if tool.custom else object_schema(tool.parameters)
    if tool.strict:
        out["strict"] = True
    return out


def _tool_choice_out(req: Request) -> dict[str, Any] | None:
    choice = req.tool_choice
    out: dict[str, Any] | None = None
    if choice is not None:
        kinds = {"auto": "auto", "required": "any", "none": "none", "tool": "tool"}
        out = {"type": kinds[choice.mode]}
        if choice.mode == "tool":
            out["name"] = choice.name
    if req.parallel_tool_calls is False and (out is None or out["type"] != "none"):
        out = out or {"type": "auto"}
        out["disable_parallel_tool_use"] = True
    return out


def _apply_reasoning(body: dict[str, Any], req: Request, turns: list[dict[str, Any]], limit: int | None) -> None:
    reasoning = req.reasoning
    if reasoning is None or not reasoning.enabled or not _thinking_survives(turns):
        if reasoning is not None and not reasoning.enabled:
            body["thinking"] = {"type": "disabled"}
        return
    budget = max(budget_for(reasoning), MIN_THINKING_BUDGET)
    if limit is not None and limit <= budget:
        budget = limit - 1
    if budget < MIN_THINKING_BUDGET:
        return  # the caller's token limit leaves no room for thinking
    body["max_tokens"] = limit if limit is not None else DEFAULT_MAX_TOKENS + budget
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}


def encode_request(req: Request, model: str, stream: bool) -> dict[str, Any]:
    turns, late_system = _turns(req)
    system = [t.text for t in req.system] + late_system
    body: dict[str, Any] = {"model": model, "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS, "messages": turns}
    if system:
        body["system"] = system[0] if len(system) == 1 else [{"type": "text", "text": s} for s in system]
    if req.tools:
        body["tools"] = [_tool(t) for t in req.tools]
        choice = _tool_choice_out(req)
        if choice is not None:
            body["tool_choice"] = choice
    if req.stop:
        body["stop_sequences"] = req.stop
    fmt = req.response_format
    if fmt is not None:
        if fmt.format_type != "json_schema":
            raise unsupported("response_format", API, "JSON mode without a schema; give a json_schema")
        body["output_config"] = {"format": {"type": "json_schema", "schema": fmt.schema or {}}}
    _apply_reasoning(body, req, turns, req.max_tokens)
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if stream:
        body["stream"] = True
    return body
