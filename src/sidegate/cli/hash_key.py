"""`sidegate hash-key`: the `sha256:` form of a key, for policy files that must not hold the key."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any


def add_command(commands: Any) -> None:
    """Add `hash-key` to the `sidegate` subcommands (an argparse subparsers object)."""
    hash_key = commands.add_parser("hash-key", help="print the sha256: form of a key read from stdin")
    hash_key.set_defaults(run=run_hash_key)


def run_hash_key(args: argparse.Namespace) -> int:
    from sidegate.auth.credentials import hash_key

    key = getpass.getpass("key: ") if sys.stdin.isatty() else sys.stdin.readline()
    key = key.strip()
    if not key:
        print("sidegate hash-key: no key on standard input", file=sys.stderr)
        return 1
    print(hash_key(key))
    return 0
