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
from sidegate.translate.wire import args_object, args_text, int_or_none, number_or_none, str_or, text_of

API = apis.GEMINI_GENERATE
FAMILY = "gemini"
MAX_THINKING_BUDGET = 24576
SKIP_SIGNATURE = "skip_thought_signature_validator"  # Google's placeholder for calls from elsewhere
ADVISORY = frozenset({"safetySettings", "labels"})


def _signature(value: Any) -> tuple[str | None, str | None]:
    """(origin, token) of a thoughtSignature: Gemini's own, or one carried for another provider."""
    if not isinstance(value, str) or not value:
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
            if part.get("thought") is True:
                origin, token = _signature(part.get("thoughtSignature"))
                return Thinking(str(part["text"]), token, origin)
            return Text(str(part["text"]))
        if isinstance(part.get("inlineData"), dict):
            blob = part["inlineData"]
            return Media(blob.get("mimeType"), data=str(blob.get("data") or ""))
        if isinstance(part.get("fileData"), dict):
            uri = str(part["fileData"].get("fileUri") or "")
            if not uri.startswith(("https://", "http://")) or "generativelanguage.googleapis.com" in uri:
                raise unsupported(f"{field}.fileData.fileUri", "the destination", "files stored with Google")
            return Media(part["fileData"].get("mimeType"), url=uri)
        if isinstance(part.get("functionCall"), dict):
            return self.call(part["functionCall"], part.get("thoughtSignature"))
        if isinstance(part.get("functionResponse"), dict):
            fr = part["functionResponse"]
            name = str(fr.get("name") or "")
            call_id = str_or(fr.get("id"), "")
            queue = self.pending[name]
            if call_id:
                if call_id in queue:
                    queue.remove(call_id)
            else:
                call_id = queue.popleft() if queue else self._new_id()
            content, is_error = _result(fr.get("response"))
            return ToolResult(call_id, content, is_error, name)
        if "thoughtSignature" in part:
            return None  # a lone signature part: nothing another provider can use
        raise unsupported(field, "the destination", f"part with {sorted(part)}")

    def _new_id(self) -> str:
        self.count += 1
        return f"call_{self.count}"

    def call(self, fc: dict[str, Any], signature: Any) -> ToolCall:
        name = str(fc.get("name") or "")
        call_id = str_or(fc.get("id"), "") or self._new_id()
        self.pending[name].append(call_id)
        origin, token = _signature(signature)
        return ToolCall(call_id, name, args_text(fc.get("args")), signature=token, origin=origin)


def _texts(content: Any) -> list[Text]:
    if not isinstance(content, dict):
        return []
    return [Text(str(p.get("text") or "")) for p in content.get("parts") or () if isinstance(p, dict) and "text" in p]


def _tools(raw: Any, dropped: list[str]) -> list[Tool]:
    """Function declarations. Tools Google runs (search, code execution, URL context…) cannot be
    offered by another provider: left out, listed in `dropped`."""
    tools = []
    for i, tool in enumerate(raw or ()):
        if not isinstance(tool, dict):
            raise invalid(f"tools[{i}]", "must be an object")
        dropped.extend(f"tools[{i}].{key}" for key in tool if key != "functionDeclarations")
        for j, decl in enumerate(tool.get("functionDeclarations") or ()):
            if not isinstance(decl, dict) or not decl.get("name"):
                raise invalid(f"tools[{i}].functionDeclarations[{j}]", "needs a name")
            params = decl.get("parametersJsonSchema")
            if params is None:
                params = openapi_to_json_schema(decl.get("parameters") or {})
            tools.append(Tool(str(decl["name"]), decl.get("description"), params or {}))
    return tools


def _tool_choice(raw: Any, tools: list[Tool]) -> ToolChoice | None:
    config = raw.get("functionCallingConfig") if isinstance(raw, dict) else None
    if not isinstance(config, dict):
        return None
    mode = str(config.get("mode") or "AUTO").upper()
    names = config.get("allowedFunctionNames") or []
    if mode == "NONE":
        return ToolChoice("none")
    if mode in ("ANY", "VALIDATED") and len(names) == 1:
        return ToolChoice("tool", str(names[0]))
    if names and set(names) != {t.name for t in tools}:
        raise unsupported("toolConfig.functionCallingConfig.allowedFunctionNames", "the destination",
                          "a subset of several tools")
    return ToolChoice("required" if mode == "ANY" else "auto")


def _format(config: dict[str, Any]) -> ResponseFormat | None:
    mime = config.get("responseMimeType")
    if mime in (None, "text/plain"):
        return None
    if mime != "application/json":
        raise unsupported("generationConfig.responseMimeType", "the destination", f"{mime!r}")
    schema = config.get("responseJsonSchema")
    if schema is None and config.get("responseSchema") is not None:
        schema = openapi_to_json_schema(config["responseSchema"])
    return ResponseFormat("json_schema", schema) if isinstance(schema, dict) else ResponseFormat("json_object")


def _reasoning(config: Any) -> Reasoning | None:
    if not isinstance(config, dict):
        return None
    budget = int_or_none(config.get("thinkingBudget"))
    level = config.get("thinkingLevel")
    if budget == 0:
        return Reasoning(enabled=False)
    effort = str(level).lower() if isinstance(level, str) else None
    return Reasoning(effort=effort, budget=budget if budget and budget > 0 else None,
                     summaries=config.get("includeThoughts") is True)


def _check_generation(config: dict[str, Any]) -> None:
    if (int_or_none(config.get("candidateCount")) or 1) != 1:
        raise unsupported("generationConfig.candidateCount", "the destination", "only one candidate translates")
    for key in ("responseLogprobs", "speechConfig", "routingConfig"):
        if config.get(key):
            raise unsupported(f"generationConfig.{key}", "the destination")
    modalities = config.get("responseModalities")
    if isinstance(modalities, list) and any(str(m).upper() != "TEXT" for m in modalities):
        raise unsupported("generationConfig.responseModalities", "the destination", "only TEXT translates")


def decode_request(body: dict[str, Any], stream: bool) -> Request:
    if body.get("cachedContent"):
        raise unsupported("cachedContent", "the destination", "a cache stored with Google")
    raw = body.get("contents")
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise invalid("contents", "must be a non-empty list")
    decoder = _Decoder()
    messages = []
    for i, content in enumerate(raw):
        role: Role = "assistant" if isinstance(content, dict) and content.get("role") == "model" else "user"
        parts = [p for j, part in enumerate(content.get("parts") or ()) if isinstance(part, dict)
                 and (p := decoder.part(part, f"contents[{i}].parts[{j}]")) is not None]
        messages.append(Message(role, parts))
    config = body.get("generationConfig") if isinstance(body.get("generationConfig"), dict) else {}
    assert isinstance(config, dict)
    _check_generation(config)
    dropped: list[str] = []
    tools = _tools(body.get("tools"), dropped)
    stop = config.get("stopSequences")
    return Request(
        messages=messages,
        system=_texts(body.get("systemInstruction")),
        tools=tools,
        tool_choice=_tool_choice(body.get("toolConfig"), tools),
        max_tokens=int_or_none(config.get("maxOutputTokens")),
        temperature=number_or_none(config.get("temperature")),
        top_p=number_or_none(config.get("topP")),
        top_k=int_or_none(config.get("topK")),
        stop=[s for s in stop if isinstance(s, str)] if isinstance(stop, list) else [],
        response_format=_format(config),
        reasoning=_reasoning(config.get("thinkingConfig")),
        seed=int_or_none(config.get("seed")),
        presence_penalty=number_or_none(config.get("presencePenalty")),
        frequency_penalty=number_or_none(config.get("frequencyPenalty")),
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
        if fmt.kind == "json_schema":
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
