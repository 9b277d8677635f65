"""OpenAI Chat Completions requests ↔ the neutral request.

Decoding (a chat caller): system/developer messages at the start become the system prompt, later
ones stay in place; consecutive `tool` messages become one user turn of tool results; an
assistant's `reasoning_content` / `reasoning` (what vLLM, Ollama and DeepSeek-style servers send)
becomes thinking. Encoding (a chat destination): the reverse; tool results go first as `tool`
messages, images a tool returned follow in a user message (tool messages carry only text), and
thinking is not sent (chat has no input field for it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sidegate import apis
from sidegate.translate import media
from sidegate.translate.errors import invalid, unsupported
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
    effort_for,
    joined,
)
from sidegate.translate.schema import custom_tool_schema
from sidegate.translate.wire import int_or_none, number_or_none, str_or

API = apis.OPENAI_CHAT

# Accepted and ignored: hints about storage, caching, billing or moderation that change nothing in
# the answer's content. Everything else either maps or is refused with a 400 naming it.
ADVISORY = frozenset({"store", "metadata", "service_tier", "prompt_cache_key", "prompt_cache_retention",
                      "prompt_cache_options", "verbosity", "prediction", "stream_options", "moderation"})
_REFUSED = ("audio", "functions", "function_call", "web_search_options", "top_logprobs")


def _texts(content: Any, field: str) -> list[Text]:
    if isinstance(content, str):
        return [Text(content)]
    if content is None:
        return []
    if not isinstance(content, list):
        raise invalid(field, "must be a string or a list of content parts")
    out = []
    for j, part in enumerate(content):
        if isinstance(part, dict) and part.get("type") in ("text", "refusal"):
            out.append(Text(str(part.get("text") if part.get("type") == "text" else part.get("refusal") or "")))
        else:
            raise unsupported(f"{field}[{j}]", API, "only text parts are allowed here")
    return out


def _file(part: dict[str, Any], field: str) -> Media:
    file = part.get("file") or {}
    data = file.get("file_data")
    if not isinstance(data, str):
        raise unsupported(f"{field}.file.file_id", "another provider", "uploaded OpenAI files live on OpenAI")
    name = file.get("filename")
    if data.startswith("data:"):
        found = media.from_url(data)
        return Media(found.media_type, data=found.data, filename=name)
    guessed = media.guess_type(name, "application/pdf") if isinstance(name, str) else "application/pdf"
    return Media(guessed, data=data, filename=name)


def _user_parts(content: Any, field: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    if not isinstance(content, list):
        raise invalid(field, "must be a string or a list of content parts")
    parts: list[Part] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append(Text(str(part.get("text") or "")))
        elif kind == "image_url":
            image = part.get("image_url") or {}
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise invalid(f"{field}[{j}].image_url.url", "must be a string")
            parts.append(media.from_url(url, image.get("detail") if isinstance(image, dict) else None))
        elif kind == "file":
            parts.append(_file(part, f"{field}[{j}]"))
        else:
            raise unsupported(f"{field}[{j}]", "the destination", f"content part type {kind!r}")
    return parts


def _assistant_parts(msg: dict[str, Any], field: str) -> list[Part]:
    parts: list[Part] = []
    for key in ("reasoning_content", "reasoning"):
        if isinstance(msg.get(key), str) and msg[key]:
            parts.append(Thinking(msg[key]))
            break
    parts.extend(t for t in _texts(msg.get("content"), f"{field}.content") if t.text)
    if msg.get("refusal"):
        parts.append(Text(str(msg["refusal"])))
    for key in ("function_call", "audio"):
        if msg.get(key):
            raise unsupported(f"{field}.{key}", "the destination")
    for k, call in enumerate(msg.get("tool_calls") or ()):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or call.get("type", "function") != "function":
            raise unsupported(f"{field}.tool_calls[{k}]", "the destination", "only function tool calls translate")
        args = fn.get("arguments")
        parts.append(ToolCall(str(call.get("id") or f"call_{k}"), str(fn.get("name") or ""),
                              args if isinstance(args, str) else "{}"))
    return parts


def _messages(raw: Any) -> tuple[list[Text], list[Message]]:
    if not isinstance(raw, list) or not raw:
        raise invalid("messages", "must be a non-empty list")
    system: list[Text] = []
    out: list[Message] = []
    for i, msg in enumerate(raw):
        field = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise invalid(field, "must be an object")
        role = msg.get("role")
        if role in ("system", "developer"):
            texts = _texts(msg.get("content"), f"{field}.content")
            if out:
                out.append(Message("system", [*texts]))
            else:
                system.extend(texts)
        elif role == "user":
            out.append(Message("user", _user_parts(msg.get("content"), f"{field}.content")))
        elif role == "assistant":
            out.append(Message("assistant", _assistant_parts(msg, field)))
        elif role == "tool":
            result = ToolResult(str(msg.get("tool_call_id") or ""), [*_texts(msg.get("content"), f"{field}.content")])
            last = out[-1] if out else None
            if last and last.role == "user" and all(isinstance(p, ToolResult) for p in last.parts):
                last.parts.append(result)
            else:
                out.append(Message("user", [result]))
        else:
            raise unsupported(f"{field}.role", "the destination", f"role {role!r}")
    return system, out


def _tools(raw: Any) -> list[Tool]:
    tools = []
    for i, tool in enumerate(raw or ()):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(fn, dict) or not fn.get("name"):
            raise unsupported(f"tools[{i}]", "the destination", "only function tools translate")
        tools.append(Tool(str(fn["name"]), fn.get("description"), fn.get("parameters") or {}, fn.get("strict")))
    return tools


def _tool_choice(raw: Any) -> ToolChoice | None:
    if raw is None:
        return None
    if raw in ("auto", "none", "required"):
        return ToolChoice(raw)
    if isinstance(raw, dict) and raw.get("type") == "function" and isinstance(raw.get("function"), dict):
        return ToolChoice("tool", str(raw["function"].get("name") or ""))
    raise unsupported("tool_choice", "the destination", "only auto, none, required or one function translate")


def _response_format(raw: Any) -> ResponseFormat | None:
    if not isinstance(raw, dict) or raw.get("type") in (None, "text"):
        return None
    if raw["type"] == "json_object":
        return ResponseFormat("json_object")
    if raw["type"] == "json_schema" and isinstance(raw.get("json_schema"), dict):
        spec = raw["json_schema"]
        return ResponseFormat("json_schema", spec.get("schema") or {}, spec.get("name"), spec.get("strict"),
                              spec.get("description"))
    raise unsupported("response_format", "the destination", f"type {raw.get('type')!r}")


def decode_request(body: dict[str, Any]) -> Request:
    for key in _REFUSED:
        if body.get(key):
            raise unsupported(key, "the destination")
    if body.get("logprobs"):
        raise unsupported("logprobs", "the destination")
    if body.get("logit_bias"):
        raise unsupported("logit_bias", "the destination")
    if (int_or_none(body.get("n")) or 1) != 1:
        raise unsupported("n", "the destination", "only one choice per request translates")
    modalities = body.get("modalities")
    if isinstance(modalities, list) and any(m != "text" for m in modalities):
        raise unsupported("modalities", "the destination", "only text output translates")
    system, messages = _messages(body.get("messages"))
    stop = body.get("stop")
    effort = body.get("reasoning_effort")
    reasoning = None
    if isinstance(effort, str):
        reasoning = Reasoning(enabled=effort != "none", effort=None if effort == "none" else effort)
    options = body.get("stream_options")
    return Request(
        messages=messages,
        system=system,
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=body.get("parallel_tool_calls") if isinstance(body.get("parallel_tool_calls"), bool)
        else None,
        max_tokens=int_or_none(body.get("max_completion_tokens")) or int_or_none(body.get("max_tokens")),
        temperature=number_or_none(body.get("temperature")),
        top_p=number_or_none(body.get("top_p")),
        stop=[stop] if isinstance(stop, str) else [s for s in stop or () if isinstance(s, str)],
        response_format=_response_format(body.get("response_format")),
        reasoning=reasoning,
        seed=int_or_none(body.get("seed")),
        presence_penalty=number_or_none(body.get("presence_penalty")),
        frequency_penalty=number_or_none(body.get("frequency_penalty")),
        user=str_or(body.get("safety_identifier"), "") or str_or(body.get("user"), "") or None,
        stream=body.get("stream") is True,
        stream_usage=isinstance(options, dict) and options.get("include_usage") is True,
    )


# ---------------------------------------------------------------- encoding (chat destination)


def _media_part(part: Media) -> dict[str, Any]:
    if part.is_image:
        image: dict[str, Any] = {"url": part.url or media.data_url(part)}
        if part.detail:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    if part.data is None:
        raise unsupported("document url", API, "chat takes documents only inline")
    file: dict[str, Any] = {"file_data": media.data_url(part)}
    file["filename"] = part.filename or "document.pdf"
    return {"type": "file", "file": file}


def _content(parts: Sequence[Part]) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and isinstance(parts[0], Text):
        return parts[0].text
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, Text):
            out.append({"type": "text", "text": part.text})
        elif isinstance(part, Media):
            out.append(_media_part(part))
    return out


def _user_messages(msg: Message) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    rest: list[Part] = []
    for part in msg.parts:
        if isinstance(part, ToolResult):
            texts = [p for p in part.content if isinstance(p, Text)]
            rest.extend(p for p in part.content if isinstance(p, Media))
            content = _content(texts) if texts else ""
            out.append({"role": "tool", "tool_call_id": part.call_id, "content": content})
        elif isinstance(part, Text | Media):
            rest.append(part)
    if rest:
        out.append({"role": "user", "content": _content(rest)})
    return out


def _assistant_message(msg: Message) -> dict[str, Any]:
    text = "".join(p.text for p in msg.parts if isinstance(p, Text))
    calls = [p for p in msg.parts if isinstance(p, ToolCall)]
    out: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        out["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                             for c in calls]
    return out


def _encode_tool(tool: Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": tool.name}
    if tool.description:
        fn["description"] = tool.description
    fn["parameters"] = custom_tool_schema(tool.description) if tool.custom else tool.parameters
    if tool.strict is not None:
        fn["strict"] = tool.strict
    return {"type": "function", "function": fn}


def _encode_choice(choice: ToolChoice) -> Any:
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def _encode_format(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.kind == "json_object":
        return {"type": "json_object"}
    spec: dict[str, Any] = {"name": fmt.name or "response", "schema": fmt.schema or {}}
    if fmt.description:
        spec["description"] = fmt.description
    if fmt.strict is not None:
        spec["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": spec}


def encode_request(req: Request, model: str, stream: bool, stream_usage: bool = True) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if req.system:
        messages.append({"role": "system", "content": joined(req.system)})
    for msg in req.messages:
        if msg.role == "system":
            messages.append({"role": "system", "content": "\n\n".join(
                p.text for p in msg.parts if isinstance(p, Text))})
        elif msg.role == "user":
            messages.extend(_user_messages(msg))
        else:
            messages.append(_assistant_message(msg))
    body: dict[str, Any] = {"model": model, "messages": messages}
    if req.tools:
        body["tools"] = [_encode_tool(t) for t in req.tools]
        if req.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = req.parallel_tool_calls
        if req.tool_choice is not None:
            body["tool_choice"] = _encode_choice(req.tool_choice)
    if req.response_format is not None:
        body["response_format"] = _encode_format(req.response_format)
    if req.reasoning is not None and req.reasoning.enabled:
        body["reasoning_effort"] = effort_for(req.reasoning)
    optional = {"max_completion_tokens": req.max_tokens, "temperature": req.temperature, "top_p": req.top_p,
                "seed": req.seed, "presence_penalty": req.presence_penalty,
                "frequency_penalty": req.frequency_penalty, "user": req.user}
    body.update((k, v) for k, v in optional.items() if v is not None)
    if req.stop:
        body["stop"] = req.stop
    if stream:
        body["stream"] = True
        if stream_usage:
            body["stream_options"] = {"include_usage": True}
    return body
