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
from sidegate.translate.media import guess_type
from sidegate.translate.neutral import (
    Media,
    Message,
    Part,
    Reasoning,
    Request,
    ResponseFormat,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    budget_for,
)
from sidegate.translate.schema import custom_tool_schema, object_schema
from sidegate.translate.wire import args_object, int_or_none, number_or_none, safe_tool_id, str_or

API = apis.ANTHROPIC_MESSAGES
FAMILY = "anthropic"
DEFAULT_MAX_TOKENS = 4096  # when the caller set no limit: every Claude model accepts it
MIN_THINKING_BUDGET = 1024
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

# Accepted and ignored: caching marks, service tier and routing hints, beta context editing.
ADVISORY = frozenset({"cache_control", "service_tier", "speed", "inference_geo", "diagnostics", "container",
                      "context_management", "workspace_id", "user_profile_id"})


def _source(source: Any, field: str) -> Media:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        return Media(source.get("media_type"), data=str(source.get("data") or ""))
    if kind == "url":
        return Media(guess_type(str(source.get("url"))), url=str(source.get("url")))
    raise unsupported(f"{field}.source", "the destination", f"source type {kind!r}")


def _block_texts(content: Any, field: str) -> list[Text]:
    if isinstance(content, str):
        return [Text(content)]
    out = []
    for j, block in enumerate(content or ()):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise invalid(f"{field}[{j}]", "only text blocks are allowed here")
        out.append(Text(str(block.get("text") or "")))
    return out


def _document(block: dict[str, Any], field: str) -> Part:
    source = block.get("source") or {}
    if source.get("type") == "text":
        return Text(str(source.get("data") or ""))
    found = _source(source, field)
    found.filename = block.get("title")
    return found


def _result_content(content: Any, field: str) -> list[Text | Media]:
    if isinstance(content, str):
        return [Text(content)]
    out: list[Text | Media] = []
    for j, block in enumerate(content or ()):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            out.append(Text(str(block.get("text") or "")))
        elif kind == "image":
            out.append(_source(block.get("source"), f"{field}[{j}]"))
        elif kind == "document":
            part = _document(block, f"{field}[{j}]")
            assert isinstance(part, Text | Media)
            out.append(part)
        else:
            raise unsupported(f"{field}[{j}]", "the destination", f"tool result block type {kind!r}")
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
        raise invalid(field, "must be a string or a list of content blocks")
    parts: list[Part] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        where = f"{field}[{j}]"
        if kind == "text":
            parts.append(Text(str(block.get("text") or "")))
        elif kind == "image":
            parts.append(_source(block.get("source"), where))
        elif kind == "document":
            parts.append(_document(block, where))
        elif kind == "tool_use":
            call_id = str(block.get("id") or "")
            names[call_id] = str(block.get("name") or "")
            parts.append(ToolCall(call_id, names[call_id], orjson.dumps(block.get("input") or {}).decode()))
        elif kind == "tool_result":
            call_id = str(block.get("tool_use_id") or "")
            parts.append(ToolResult(call_id, _result_content(block.get("content"), f"{where}.content"),
                                    block.get("is_error") is True, names.get(call_id)))
        elif kind == "thinking":
            parts.append(_thinking(str(block.get("signature") or ""), str(block.get("thinking") or ""), False))
        elif kind == "redacted_thinking":
            parts.append(_thinking(str(block.get("data") or ""), "", True))
        else:
            raise unsupported(where, "the destination", f"content block type {kind!r}")
    return parts


def _tools(raw: Any, dropped: list[str]) -> list[Tool]:
    """Custom (client) tools. Anthropic's own tools (web search, code execution, bash, text editor,
    computer use…) have schemas and runtimes only Anthropic knows: left out, listed in `dropped`."""
    tools = []
    for i, tool in enumerate(raw or ()):
        if not isinstance(tool, dict) or tool.get("type") not in (None, "custom") or "input_schema" not in tool:
            dropped.append(f"tools[{i}]")
            continue
        tools.append(Tool(str(tool.get("name")), tool.get("description"), tool.get("input_schema") or {},
                          tool.get("strict") if isinstance(tool.get("strict"), bool) else None))
    return tools


def _tool_choice(raw: Any) -> tuple[ToolChoice | None, bool | None]:
    if not isinstance(raw, dict):
        return None, None
    modes = {"auto": "auto", "any": "required", "none": "none", "tool": "tool"}
    mode = modes.get(str(raw.get("type")))
    if mode is None:
        raise unsupported("tool_choice", "the destination", f"type {raw.get('type')!r}")
    parallel = False if raw.get("disable_parallel_tool_use") is True else None
    return ToolChoice(mode, raw.get("name") if mode == "tool" else None), parallel  # type: ignore[arg-type]


def _reasoning(body: dict[str, Any]) -> Reasoning | None:
    thinking = body.get("thinking")
    config = body.get("output_config") if isinstance(body.get("output_config"), dict) else {}
    effort = config.get("effort") if isinstance(config, dict) else None
    if not isinstance(thinking, dict):
        return Reasoning(effort=effort) if isinstance(effort, str) else None
    kind = thinking.get("type")
    if kind == "disabled":
        return Reasoning(enabled=False)
    return Reasoning(effort=effort if isinstance(effort, str) else None,
                     budget=int_or_none(thinking.get("budget_tokens")), summaries=thinking.get("display") != "omitted")


def _format(body: dict[str, Any]) -> ResponseFormat | None:
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") != "json_schema":
        raise unsupported("output_config.format", "the destination", f"type {fmt.get('type')!r}")
    return ResponseFormat("json_schema", fmt.get("schema") or {})


def decode_request(body: dict[str, Any]) -> Request:
    if body.get("mcp_servers"):
        raise unsupported("mcp_servers", "the destination", "remote MCP servers are run by Anthropic's API")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise invalid("messages", "must be a non-empty list")
    names: dict[str, str] = {}
    messages = []
    for i, msg in enumerate(raw):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ("user", "assistant", "system"):
            raise invalid(f"messages[{i}].role", "must be user, assistant or system")
        messages.append(Message(role, _blocks(msg.get("content"), f"messages[{i}].content", names)))
    choice, parallel = _tool_choice(body.get("tool_choice"))
    dropped: list[str] = []
    metadata = body.get("metadata")
    stop = body.get("stop_sequences")
    return Request(
        messages=messages,
        system=_block_texts(body.get("system"), "system"),
        tools=_tools(body.get("tools"), dropped),
        tool_choice=choice,
        parallel_tool_calls=parallel,
        max_tokens=int_or_none(body.get("max_tokens")),
        temperature=number_or_none(body.get("temperature")),
        top_p=number_or_none(body.get("top_p")),
        top_k=int_or_none(body.get("top_k")),
        stop=[s for s in stop or () if isinstance(s, str)] if isinstance(stop, list) else [],
        response_format=_format(body),
        reasoning=_reasoning(body),
        user=str_or(metadata.get("user_id"), "") or None if isinstance(metadata, dict) else None,
        stream=body.get("stream") is True,
        dropped=dropped,
    )


# ---------------------------------------------------------------- encoding (Anthropic destination)


def media_block(part: Media, field: str) -> dict[str, Any]:
    kind = "image" if part.is_image else "document"
    if part.url is not None:
        return {"type": kind, "source": {"type": "url", "url": part.url}}
    media_type = part.media_type or "image/jpeg"
    if kind == "image" and media_type not in IMAGE_TYPES:
        raise unsupported(field, API, f"image type {media_type!r} (allowed: {', '.join(sorted(IMAGE_TYPES))})")
    return {"type": kind, "source": {"type": "base64", "media_type": media_type, "data": part.data}}


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
        if fmt.kind != "json_schema":
            raise unsupported("response_format", API, "JSON mode without a schema; give a json_schema")
        body["output_config"] = {"format": {"type": "json_schema", "schema": fmt.schema or {}}}
    _apply_reasoning(body, req, turns, req.max_tokens)
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if stream:
        body["stream"] = True
    return body
