"""The JSON Schema of a policy file, generated from the pydantic models, for editors.

Every file of a policy directory validates against it on its own (all sections are optional; the
merge and the cross-file checks are the loader's). A copy ships in the package as
`sidegate/schema/policy.schema.json`; a test keeps it equal to what the models generate. Regenerate
it with `sidegate schema > src/sidegate/schema/policy.schema.json` (or `python -m
sidegate.policy.schema > …`).
"""

from __future__ import annotations

import json
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from sidegate.policy.model import PolicyModel

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://sidegate.dev/schema/policy.schema.json"
SHIPPED_SCHEMA = "schema/policy.schema.json"  # inside the sidegate package
REGENERATE_COMMAND = "sidegate schema > src/sidegate/schema/policy.schema.json"


def policy_json_schema() -> dict[str, Any]:
    generated = PolicyModel.model_json_schema()
    generated.pop("title", None)
    generated["description"] = (
        "One file of a sidegate policy directory. sidegate loads every *.yaml and *.yml file of the directory "
        "and merges them: map sections entry by entry (an entry may be defined in one file only), "
        "list sections concatenated in file-name order. ${VAR} and ${VAR:-default} expand from the "
        "environment."
    )
    return {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID, "title": "sidegate policy", **generated}


def schema_text() -> str:
    """The schema as the shipped file holds it (what `sidegate schema` prints)."""
    return json.dumps(policy_json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_schema(path: str | os.PathLike[str]) -> None:
    Path(path).write_text(schema_text(), encoding="utf-8")


def shipped_schema_text() -> str:
    """The schema file shipped in the package (it may be stale in a checkout: see the tests)."""
    return resources.files("sidegate").joinpath(SHIPPED_SCHEMA).read_text(encoding="utf-8")


if __name__ == "__main__":
    sys.stdout.write(schema_text())
