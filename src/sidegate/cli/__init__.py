"""The `sidegate` command: serve, validate, hash-key, schema, usage (one module each); `main` is the
console entry point."""

from sidegate.cli.commands import main, parser

__all__ = ["main", "parser"]
