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
from sidegate.translate.fields import (
    MAX_INT,
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
from sidegate.translate.neutral import (
    PLAIN_CHOICES,
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
    out = []
    for j, part in enumerate(want_list(content, field)):
        where = f"{field}[{j}]"
        type_name = str_field(want_obj(part, where), "type", where)
        if type_name == "text":
            out.append(Text(str_field(part, "text", where) or ""))
        elif type_name == "refusal":
            out.append(Text(str_field(part, "refusal", where) or ""))
        else:
            raise unsupported(where, API, "only text parts are allowed here")
    return out


def _file(part: dict[str, Any], field: str) -> Media:
    where = f"{field}.file"
    file = obj_field(part, "file", field) or {}
    data = str_field(file, "file_data", where)
    if data is None:
        str_field(file, "file_id", where)
        raise unsupported(f"{where}.file_id", "another provider", "uploaded OpenAI files live on OpenAI")
    name = str_field(file, "filename", where)
    if data.startswith("data:"):
        found = media.from_url(data)
        return Media(found.media_type, data=found.data, filename=name)
    guessed = media.guess_type(name, "application/pdf") if name else "application/pdf"
    return Media(guessed, data=data, filename=name)


def _image(part: dict[str, Any], field: str) -> Media:
    image = part.get("image_url")
    if isinstance(image, str):
        return media.from_url(image)
    where = f"{field}.image_url"
    image = want_obj(image, where)
    return media.from_url(want_str(image.get("url"), f"{where}.url"), str_field(image, "detail", where))


def _user_parts(content: Any, field: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    if not isinstance(content, list):
        raise wrong(field, "a string or an array of content parts", content)
    parts: list[Part] = []
    for j, part in enumerate(content):
        where = f"{field}[{j}]"
        type_name = str_field(want_obj(part, where), "type", where)
        if type_name == "text":
            parts.append(Text(str_field(part, "text", where) or ""))
        elif type_name == "image_url":
            parts.append(_image(part, where))
        elif type_name == "file":
            parts.append(_file(part, where))
        else:
            raise unsupported(where, "the destination", f"content part type {type_name!r}")
    return parts


def _assistant_parts(msg: dict[str, Any], field: str) -> list[Part]:
    parts: list[Part] = []
    for key in ("reasoning_content", "reasoning"):
        if thinking := str_field(msg, key, field):
            parts.append(Thinking(thinking))
            break
    parts.extend(t for t in _texts(msg.get("content"), f"{field}.content") if t.text)
    if refusal := str_field(msg, "refusal", field):
        parts.append(Text(refusal))
    for key in ("function_call", "audio"):
        if msg.get(key):
            raise unsupported(f"{field}.{key}", "the destination")
    for k, (where, call) in enumerate(objects(msg, "tool_calls", field)):
        fn = obj_field(call, "function", where)
        if fn is None or (str_field(call, "type", where) or "function") != "function":
            raise unsupported(where, "the destination", "only function tool calls translate")
        args = str_field(fn, "arguments", f"{where}.function")
        parts.append(ToolCall(str_field(call, "id", where) or f"call_{k}", str_field(fn, "name", f"{where}.function")
                              or "", args if args is not None else "{}"))
    return parts


def _messages(raw: Any) -> tuple[list[Text], list[Message]]:
    if not isinstance(raw, list) or not raw:
        raise invalid("messages", "must be a non-empty list")
    system: list[Text] = []
    out: list[Message] = []
    for i, msg in enumerate(raw):
        field = f"messages[{i}]"
        role = str_field(want_obj(msg, field), "role", field)
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
            result = ToolResult(str_field(msg, "tool_call_id", field) or "",
                                [*_texts(msg.get("content"), f"{field}.content")])
            last = out[-1] if out else None
            if last and last.role == "user" and all(isinstance(p, ToolResult) for p in last.parts):
                last.parts.append(result)
            else:
                out.append(Message("user", [result]))
        else:
            raise unsupported(f"{field}.role", "the destination", f"role {role!r}")
    return system, out


def _tools(body: dict[str, Any]) -> list[Tool]:
    tools = []
    for where, tool in objects(body, "tools"):
        fn = obj_field(tool, "function", where)
        if str_field(tool, "type", where) != "function" or fn is None:
            raise unsupported(where, "the destination", "only function tools translate")
        field = f"{where}.function"
        name = str_field(fn, "name", field)
        if not name:
            raise invalid(f"{field}.name", "must be a non-empty string")
        tools.append(Tool(name, str_field(fn, "description", field), obj_field(fn, "parameters", field) or {},
                          bool_field(fn, "strict", field)))
    return tools


def _tool_choice(raw: Any) -> ToolChoice | None:
    if raw is None:
        return None
    if isinstance(raw, str) and raw in PLAIN_CHOICES:
        return ToolChoice(PLAIN_CHOICES[raw])
    if not isinstance(raw, str | dict):
        raise wrong("tool_choice", "a string or an object", raw)
    if isinstance(raw, dict) and raw.get("type") == "function":
        fn = obj_field(raw, "function", "tool_choice")
        if fn is not None:
            return ToolChoice("tool", str_field(fn, "name", "tool_choice.function") or "")
    raise unsupported("tool_choice", "the destination", "only auto, none, required or one function translate")


def _response_format(body: dict[str, Any]) -> ResponseFormat | None:
    raw = obj_field(body, "response_format")
    type_name = str_field(raw, "type", "response_format") if raw is not None else None
    if raw is None or type_name in (None, "text"):
        return None
    if type_name == "json_object":
        return ResponseFormat("json_object")
    where = "response_format.json_schema"
    spec = obj_field(raw, "json_schema", "response_format")
    if type_name == "json_schema" and spec is not None:
        return ResponseFormat("json_schema", obj_field(spec, "schema", where) or {}, str_field(spec, "name", where),
                              bool_field(spec, "strict", where), str_field(spec, "description", where))
    raise unsupported("response_format", "the destination", f"type {type_name!r}")


def decode_request(body: dict[str, Any]) -> Request:
    for key in _REFUSED:
        if body.get(key):
            raise unsupported(key, "the destination")
    if body.get("logprobs"):
        raise unsupported("logprobs", "the destination")
    if body.get("logit_bias"):
        raise unsupported("logit_bias", "the destination")
    if (int_field(body, "n", low=1) or 1) != 1:
        raise unsupported("n", "the destination", "only one choice per request translates")
    if any(m != "text" for m in str_list(body, "modalities")):
        raise unsupported("modalities", "the destination", "only text output translates")
    system, messages = _messages(body.get("messages"))
    effort = str_field(body, "reasoning_effort")
    reasoning = None
    if effort is not None:
        reasoning = Reasoning(enabled=effort != "none", effort=None if effort == "none" else effort)
    options = obj_field(body, "stream_options")
    limit = int_field(body, "max_completion_tokens", low=1)
    legacy_limit = int_field(body, "max_tokens", low=1)
    return Request(
        messages=messages,
        system=system,
        tools=_tools(body),
        tool_choice=_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=bool_field(body, "parallel_tool_calls"),
        max_tokens=limit or legacy_limit,
        temperature=num_field(body, "temperature"),
        top_p=num_field(body, "top_p"),
        stop=str_list(body, "stop", single=True),
        response_format=_response_format(body),
        reasoning=reasoning,
        seed=int_field(body, "seed", low=-MAX_INT - 1),
        presence_penalty=num_field(body, "presence_penalty"),
        frequency_penalty=num_field(body, "frequency_penalty"),
        user=str_field(body, "safety_identifier") or str_field(body, "user") or None,
        stream=bool_field(body, "stream") is True,
        stream_usage=options is not None and bool_field(options, "include_usage", "stream_options") is True,
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
    if fmt.format_type == "json_object":
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
