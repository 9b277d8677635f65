"""`sidegate schema`: the JSON Schema of policy files, for editors."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_command(commands: Any) -> None:
    """Add `schema` to the `sidegate` subcommands (an argparse subparsers object)."""
    schema = commands.add_parser("schema", help="print the JSON Schema of policy files")
    schema.set_defaults(run=run_schema)


def run_schema(args: argparse.Namespace) -> int:
    from sidegate.policy.schema import schema_text

    sys.stdout.write(schema_text())
    return 0
