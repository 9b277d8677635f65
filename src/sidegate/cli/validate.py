"""`sidegate validate`: check a policy directory as serve would load it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sidegate.cli.options import add_policies_option, plural


def add_command(commands: Any) -> None:
    """Add `validate` to the `sidegate` subcommands (an argparse subparsers object)."""
    validate = commands.add_parser(
        "validate", help="check a policy directory, as serve would",
        description="Check a policy directory as serve would load it. Exit status 0 when it is valid (warnings "
        "are printed on stderr), 1 with file:line problems on stderr when it is not.")
    where = validate.add_mutually_exclusive_group()
    where.add_argument("directory", nargs="?", metavar="DIR",
                       help="the policy directory (the same as --policies DIR)")
    add_policies_option(where)
    validate.set_defaults(run=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    from sidegate.policy.compiled import CompiledPolicy
    from sidegate.policy.loader import PolicyError, load_policy_dir

    directory = args.directory or args.policies
    try:
        loaded = load_policy_dir(directory)
        CompiledPolicy(loaded.model, loaded.digest)
    except PolicyError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    for warning in loaded.warnings:
        print(warning, file=sys.stderr)
    model = loaded.model
    counts = ", ".join((plural(len(loaded.files), "file"), plural(len(model.providers), "provider"),
                        plural(len(model.models), "model service"), plural(len(model.principals), "principal")))
    verdict = f"OK with {plural(len(loaded.warnings), 'warning')}" if loaded.warnings else "OK"
    print(f"{directory}: {verdict} ({counts})")
    return 0
