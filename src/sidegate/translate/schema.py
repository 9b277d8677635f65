"""JSON Schema shapes between formats: Gemini's OpenAPI-style `Schema` (upper-case types,
`nullable`) to JSON Schema, and the schema a free-form (custom) tool becomes elsewhere."""

from __future__ import annotations

from typing import Any

# A Responses `custom` tool takes free text. Where only JSON-argument tools exist it becomes a
# function with this one string field, and its calls are turned back into custom calls.
CUSTOM_INPUT = "input"
# A Responses `namespace` groups tools; elsewhere each becomes one flat tool named namespace__name.
NAMESPACE_SEP = "__"


def custom_tool_schema(description: str | None) -> dict[str, Any]:
    field: dict[str, Any] = {"type": "string"}
    if description:
        field["description"] = description
    return {"type": "object", "properties": {CUSTOM_INPUT: field}, "required": [CUSTOM_INPUT]}


_NESTED_MAPS = ("properties", "$defs", "definitions")
_NESTED_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_GEMINI_ONLY = frozenset({"propertyOrdering"})


def openapi_to_json_schema(schema: Any) -> Any:
    """Gemini `Schema` (OpenAPI 3.0 subset) → JSON Schema: lower-case types, `nullable` → a null type."""
    if isinstance(schema, list):
        return [openapi_to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _GEMINI_ONLY or key == "nullable":
            continue
        if key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key in _NESTED_MAPS and isinstance(value, dict):
            out[key] = {name: openapi_to_json_schema(sub) for name, sub in value.items()}
        elif key in _NESTED_LISTS or key in ("items", "additionalProperties"):
            out[key] = openapi_to_json_schema(value)
        else:
            out[key] = value
    if schema.get("nullable") is True:
        type_name = out.get("type")
        if isinstance(type_name, str):
            out["type"] = [type_name, "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def without_meta(schema: dict[str, Any]) -> dict[str, Any]:
    """A top-level JSON Schema without `$schema` (metadata some destinations refuse)."""
    return {k: v for k, v in schema.items() if k != "$schema"} if "$schema" in schema else schema


def object_schema(parameters: Any) -> dict[str, Any]:
    """Tool parameters as an object schema (OpenAI allows omitting them; Anthropic requires one)."""
    if isinstance(parameters, dict) and parameters:
        return parameters if "type" in parameters else {"type": "object", **parameters}
    return {"type": "object", "properties": {}}
