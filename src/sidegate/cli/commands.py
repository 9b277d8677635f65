"""The `sidegate` command line: one subcommand per module of this package."""

from __future__ import annotations

import argparse

from sidegate.cli import hash_key, schema, serve, usage, validate

COMMANDS = (serve, validate, hash_key, schema, usage)
"""In the order `sidegate --help` lists them."""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="sidegate", description="Governance sidecar for LLM traffic.")
    commands = top.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_command(commands)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))
