"""The published JSON Schema of policy files: generated from the models, shipped up to date."""

from __future__ import annotations

import json
from pathlib import Path

from sidegate.policy.model import PolicyModel
from sidegate.policy.schema import (
    REGENERATE_COMMAND,
    SCHEMA_ID,
    policy_json_schema,
    schema_text,
    shipped_schema_text,
    write_schema,
)


def test_shipped_schema_is_up_to_date() -> None:
    shipped = json.loads(shipped_schema_text())
    assert shipped == policy_json_schema(), (
        "src/sidegate/schema/policy.schema.json is stale: the policy models changed. "
        f"Regenerate it with `{REGENERATE_COMMAND}`."
    )


def test_schema_header() -> None:
    schema = policy_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID == "https://sidegate.dev/schema/policy.schema.json"
    assert schema["title"] == "sidegate policy"
    assert list(schema)[:3] == ["$schema", "$id", "title"]


def test_schema_covers_every_section_and_rejects_unknown_keys() -> None:
    schema = policy_json_schema()
    assert set(schema["properties"]) == set(PolicyModel.model_fields)
    assert schema.get("required", []) == []  # a file may hold any subset of the sections
    assert schema["additionalProperties"] is False
    objects = [d for d in schema["$defs"].values() if d.get("type") == "object"]
    assert objects and all(d["additionalProperties"] is False for d in objects)


def test_write_schema(tmp_path: Path) -> None:
    target = tmp_path / "policy.schema.json"
    write_schema(target)
    assert target.read_text(encoding="utf-8") == schema_text()
    assert json.loads(schema_text()) == policy_json_schema()
