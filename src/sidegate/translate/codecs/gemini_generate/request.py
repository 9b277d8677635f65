"""Gemini generateContent requests ↔ the neutral request.

Decoding (a Gemini caller, e.g. Gemini CLI): `systemInstruction` is the system prompt, `model`
turns are assistant turns, `thought` parts thinking, `functionCall` / `functionResponse` parts tool
calls and results. Gemini may leave call ids out; calls then get ids here, and each response is
paired with the oldest unanswered call of the same name. A `functionResponse.response` of the
conventional `{"output": …}` / `{"error": …}` shape becomes that text (an error result for
`error`); any other object becomes its JSON text. Function parameters in OpenAPI form (`parameters`)
become JSON Schema. `safetySettings` are advisory.

Encoding (a Gemini destination): the reverse; tool parameters go as `parametersJsonSchema`, a JSON
output schema as `responseJsonSchema`, thinking as `thinkingConfig` (budget capped at
`MAX_THINKING_BUDGET`, what every 2.5 / 3 model accepts). Gemini 3 refuses a function call in the
history without the thought signature it minted; calls that come from another provider carry
Google's documented placeholder instead.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

from sidegate import apis
from sidegate.translate import carry
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
    want_obj,
    want_str,
)
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
from sidegate.translate.schema import custom_tool_schema, openapi_to_json_schema, without_meta
from sidegate.translate.wire import args_object, args_text, text_of

API = apis.GEMINI_GENERATE
FAMILY = "gemini"
MAX_THINKING_BUDGET = 24576
SKIP_SIGNATURE = "skip_thought_signature_validator"  # Google's placeholder for calls from elsewhere
ADVISORY = frozenset({"safetySettings", "labels"})
_CONFIG = "generationConfig"


def _signature(part: dict[str, Any], parent: str) -> tuple[str | None, str | None]:
    """(origin, token) of a part's thoughtSignature: Gemini's own, or one carried for another provider."""
    value = str_field(part, "thoughtSignature", parent)
    if not value:
        return None, None
    carried = carry.uncarry_b64(value)
    return (carried[0], carried[1]) if carried else (FAMILY, value)


def _result(response: Any) -> tuple[list[Text | Media], bool]:
    if isinstance(response, dict) and len(response) == 1:
        key, value = next(iter(response.items()))
        if key in ("output", "error"):
            return [Text(text_of(value))], key == "error"
    return [Text(text_of(response if response is not None else {}))], False


class _Decoder:
    """Per-request state: ids given to calls that came without one, and the calls still unanswered."""

    def __init__(self) -> None:
        self.count = 0
        self.pending: dict[str, deque[str]] = defaultdict(deque)

    def part(self, part: dict[str, Any], field: str) -> Part | None:
        if "text" in part:
            text = want_str(part["text"], f"{field}.text")
            if bool_field(part, "thought", field):
                origin, token = _signature(part, field)
                return Thinking(text, token, origin)
            return Text(text)
        if (blob := obj_field(part, "inlineData", field)) is not None:
            where = f"{field}.inlineData"
            return Media(str_field(blob, "mimeType", where) or None, data=str_field(blob, "data", where) or "")
        if (ref := obj_field(part, "fileData", field)) is not None:
            where = f"{field}.fileData"
            uri = str_field(ref, "fileUri", where) or ""
            if not uri.startswith(("https://", "http://")) or "generativelanguage.googleapis.com" in uri:
                raise unsupported(f"{where}.fileUri", "the destination", "files stored with Google")
            return Media(str_field(ref, "mimeType", where) or None, url=uri)
        if (fc := obj_field(part, "functionCall", field)) is not None:
            return self.call(fc, f"{field}.functionCall", _signature(part, field))
        if (fr := obj_field(part, "functionResponse", field)) is not None:
            where = f"{field}.functionResponse"
            name = str_field(fr, "name", where) or ""
            call_id = str_field(fr, "id", where) or ""
            queue = self.pending[name]
            if call_id:
                if call_id in queue:
                    queue.remove(call_id)
            else:
                call_id = queue.popleft() if queue else self._new_id()
            content, is_error = _result(obj_field(fr, "response", where))
            return ToolResult(call_id, content, is_error, name)
        if "thoughtSignature" in part:
            str_field(part, "thoughtSignature", field)
            return None  # a lone signature part: nothing another provider can use
        raise unsupported(field, "the destination", f"part with {sorted(part)}")

    def _new_id(self) -> str:
        self.count += 1
        return f"call_{self.count}"

    def call(self, fc: dict[str, Any], field: str, signature: tuple[str | None, str | None]) -> ToolCall:
        name = str_field(fc, "name", field) or ""
        call_id = str_field(fc, "id", field) or self._new_id()
        self.pending[name].append(call_id)
        origin, token = signature
        return ToolCall(call_id, name, args_text(obj_field(fc, "args", field)), signature=token, origin=origin)


def _texts(body: dict[str, Any], key: str) -> list[Text]:
    content = obj_field(body, key)
    if content is None:
        return []
    return [Text(want_str(p["text"], f"{where}.text")) for where, p in objects(content, "parts", key) if "text" in p]


def _tools(body: dict[str, Any], dropped: list[str]) -> list[Tool]:
    """Function declarations. Tools Google runs (search, code execution, URL context…) cannot be
    offered by another provider: left out, listed in `dropped`."""
    tools = []
    for where, tool in objects(body, "tools"):
        dropped.extend(f"{where}.{key}" for key in tool if key != "functionDeclarations")
        for field, decl in objects(tool, "functionDeclarations", where):
            name = str_field(decl, "name", field)
            if not name:
                raise invalid(f"{field}.name", "must be a non-empty string")
            params = obj_field(decl, "parametersJsonSchema", field)
            if params is None:
                params = openapi_to_json_schema(obj_field(decl, "parameters", field) or {})
            tools.append(Tool(name, str_field(decl, "description", field), params or {}))
    return tools


def _tool_choice(body: dict[str, Any], tools: list[Tool]) -> ToolChoice | None:
    raw = obj_field(body, "toolConfig")
    config = obj_field(raw, "functionCallingConfig", "toolConfig") if raw is not None else None
    if config is None:
        return None
    where = "toolConfig.functionCallingConfig"
    mode = (str_field(config, "mode", where) or "AUTO").upper()
    names = str_list(config, "allowedFunctionNames", where)
    if mode == "NONE":
        return ToolChoice("none")
    if mode in ("ANY", "VALIDATED") and len(names) == 1:
        return ToolChoice("tool", names[0])
    if names and set(names) != {t.name for t in tools}:
        raise unsupported(f"{where}.allowedFunctionNames", "the destination", "a subset of several tools")
    return ToolChoice("required" if mode == "ANY" else "auto")


def _format(config: dict[str, Any]) -> ResponseFormat | None:
    mime = str_field(config, "responseMimeType", _CONFIG)
    if mime in (None, "text/plain"):
        return None
    if mime != "application/json":
        raise unsupported(f"{_CONFIG}.responseMimeType", "the destination", f"{mime!r}")
    schema = obj_field(config, "responseJsonSchema", _CONFIG)
    if schema is None and (openapi := obj_field(config, "responseSchema", _CONFIG)) is not None:
        schema = openapi_to_json_schema(openapi)
    return ResponseFormat("json_schema", schema) if isinstance(schema, dict) else ResponseFormat("json_object")


def _reasoning(generation: dict[str, Any]) -> Reasoning | None:
    config = obj_field(generation, "thinkingConfig", _CONFIG)
    if config is None:
        return None
    where = f"{_CONFIG}.thinkingConfig"
    budget = int_field(config, "thinkingBudget", where, low=-1)  # -1: the model decides
    level = str_field(config, "thinkingLevel", where)
    if budget == 0:
        return Reasoning(enabled=False)
    return Reasoning(effort=level.lower() if level else None, budget=budget if budget and budget > 0 else None,
                     summaries=bool_field(config, "includeThoughts", where) is True)


def _check_generation(config: dict[str, Any]) -> None:
    if (int_field(config, "candidateCount", _CONFIG) or 1) != 1:
        raise unsupported(f"{_CONFIG}.candidateCount", "the destination", "only one candidate translates")
    for key in ("responseLogprobs", "speechConfig", "routingConfig"):
        if config.get(key):
            raise unsupported(f"{_CONFIG}.{key}", "the destination")
    if any(m.upper() != "TEXT" for m in str_list(config, "responseModalities", _CONFIG)):
        raise unsupported(f"{_CONFIG}.responseModalities", "the destination", "only TEXT translates")


def _conversation(body: dict[str, Any]) -> list[Message]:
    raw = body.get("contents")
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise invalid("contents", "must be a non-empty list")
    decoder = _Decoder()
    messages = []
    for i, content in enumerate(raw):
        where = f"contents[{i}]"
        content = want_obj(content, where)
        role: Role = "assistant" if str_field(content, "role", where) == "model" else "user"
        parts = [p for field, part in objects(content, "parts", where) if (p := decoder.part(part, field)) is not None]
        messages.append(Message(role, parts))
    return messages


def decode_request(body: dict[str, Any], stream: bool) -> Request:
    if body.get("cachedContent"):
        raise unsupported("cachedContent", "the destination", "a cache stored with Google")
    messages = _conversation(body)
    config = obj_field(body, _CONFIG) or {}
    _check_generation(config)
    dropped: list[str] = []
    tools = _tools(body, dropped)
    return Request(
        messages=messages,
        system=_texts(body, "systemInstruction"),
        tools=tools,
        tool_choice=_tool_choice(body, tools),
        max_tokens=int_field(config, "maxOutputTokens", _CONFIG, low=1),
        temperature=num_field(config, "temperature", _CONFIG),
        top_p=num_field(config, "topP", _CONFIG),
        top_k=int_field(config, "topK", _CONFIG),
        stop=str_list(config, "stopSequences", _CONFIG),
        response_format=_format(config),
        reasoning=_reasoning(config),
        seed=int_field(config, "seed", _CONFIG, low=-MAX_INT - 1),
        presence_penalty=num_field(config, "presencePenalty", _CONFIG),
        frequency_penalty=num_field(config, "frequencyPenalty", _CONFIG),
        stream=stream,
        dropped=dropped,
    )


# ---------------------------------------------------------------- encoding (Gemini destination)


def media_part(part: Media) -> dict[str, Any]:
    if part.data is not None:
        return {"inlineData": {"mimeType": part.media_type or "image/jpeg", "data": part.data}}
    return {"fileData": {"mimeType": part.media_type or "image/jpeg", "fileUri": part.url}}


def _result_parts(part: ToolResult, name: str) -> list[dict[str, Any]]:
    text = "".join(p.text for p in part.content if isinstance(p, Text))
    response = {"error" if part.is_error else "output": text}
    out: list[dict[str, Any]] = [{"functionResponse": {"id": part.call_id, "name": name, "response": response}}]
    out.extend(media_part(p) for p in part.content if isinstance(p, Media))
    return out


def _encode_parts(msg: Message, field: str, names: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    signed = False  # Gemini wants a signature on the first function call of a model turn
    for j, part in enumerate(msg.parts):
        if isinstance(part, Text):
            if part.text:
                out.append({"text": part.text})
        elif isinstance(part, Media):
            out.append(media_part(part))
        elif isinstance(part, ToolCall):
            names[part.id] = part.name
            call: dict[str, Any] = {"functionCall": {"id": part.id, "name": part.name,
                                                     "args": args_object(part.arguments, f"{field}[{j}]")}}
            token = carry.own_token(part.origin, part.signature, FAMILY)
            if token or not signed:
                call["thoughtSignature"] = token or SKIP_SIGNATURE
                signed = True
            out.append(call)
        elif isinstance(part, ToolResult):
            out.extend(_result_parts(part, part.name or names.get(part.call_id) or ""))
        else:
            token = carry.own_token(part.origin, part.signature, FAMILY)
            if token is not None and not part.redacted:
                out.append({"text": part.text, "thought": True, "thoughtSignature": token})
    return out


def _contents(req: Request) -> tuple[list[dict[str, Any]], list[str]]:
    contents: list[dict[str, Any]] = []
    late_system: list[str] = []
    names: dict[str, str] = {}
    for i, msg in enumerate(req.messages):
        if msg.role == "system":
            late_system.extend(p.text for p in msg.parts if isinstance(p, Text))
            continue
        parts = _encode_parts(msg, f"messages[{i}].parts", names)
        if not parts:
            continue
        role = "model" if msg.role == "assistant" else "user"
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return contents, late_system


def _declaration(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description:
        out["description"] = tool.description
    out["parametersJsonSchema"] = custom_tool_schema(tool.description) if tool.custom else without_meta(
        tool.parameters or {"type": "object", "properties": {}})
    return out


def _tool_config(choice: ToolChoice) -> dict[str, Any]:
    modes = {"auto": "AUTO", "required": "ANY", "none": "NONE", "tool": "ANY"}
    config: dict[str, Any] = {"mode": modes[choice.mode]}
    if choice.mode == "tool":
        config["allowedFunctionNames"] = [choice.name]
    return {"functionCallingConfig": config}


def _generation_config(req: Request) -> dict[str, Any]:
    config: dict[str, Any] = {}
    optional = {"maxOutputTokens": req.max_tokens, "temperature": req.temperature, "topP": req.top_p,
                "topK": req.top_k, "seed": req.seed, "presencePenalty": req.presence_penalty,
                "frequencyPenalty": req.frequency_penalty}
    config.update((k, v) for k, v in optional.items() if v is not None)
    if req.stop:
        config["stopSequences"] = req.stop
    fmt = req.response_format
    if fmt is not None:
        config["responseMimeType"] = "application/json"
        if fmt.format_type == "json_schema":
            config["responseJsonSchema"] = without_meta(fmt.schema or {})
    reasoning = req.reasoning
    if reasoning is not None and reasoning.enabled:
        config["thinkingConfig"] = {"includeThoughts": reasoning.summaries,
                                    "thinkingBudget": min(budget_for(reasoning), MAX_THINKING_BUDGET)}
    return config


def encode_request(req: Request, model: str, stream: bool) -> dict[str, Any]:
    """The body only: a Gemini destination takes the model and the streaming choice in its URL."""
    contents, late_system = _contents(req)
    body: dict[str, Any] = {"contents": contents}
    system = [t.text for t in req.system] + late_system
    if system:
        body["systemInstruction"] = {"parts": [{"text": s} for s in system]}
    if req.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t) for t in req.tools]}]
        if req.tool_choice is not None:
            body["toolConfig"] = _tool_config(req.tool_choice)
    config = _generation_config(req)
    if config:
        body["generationConfig"] = config
    return body
