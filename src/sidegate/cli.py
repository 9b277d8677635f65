"""The `sidegate` command: serve, validate, hash-key, schema, usage."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from typing import Any

POLICIES_ENV = "SIDEGATE_POLICIES"


def default_policies() -> str:
    """Where every command looks for the policy directory when not told: $SIDEGATE_POLICIES, else ./policies."""
    return os.environ.get(POLICIES_ENV) or "policies"


def add_policies_option(parser: Any, help_text: str = "the policy directory") -> None:
    """The one `--policies DIR` option of serve, validate and usage (a parser or an argument group)."""
    parser.add_argument("--policies", metavar="DIR", default=default_policies(),
                        help=f"{help_text} (default: ${POLICIES_ENV}, else ./policies; now: %(default)s)")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _serve(args: argparse.Namespace) -> int:
    from sidegate.app import serve
    from sidegate.policy.loader import PolicyError
    from sidegate.telemetry.logs import configure_logging, shutdown_logging

    configure_logging(args.log_level, access_log=args.access_log)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        pass
    try:
        try:
            asyncio.run(serve(args.policies, listen=args.listen, watch_interval_s=args.watch_interval))
        finally:
            shutdown_logging()  # the queued log lines before any message below
    except PolicyError as exc:
        print(f"sidegate: the policy in {args.policies} is invalid:\n{exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"sidegate: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def _validate(args: argparse.Namespace) -> int:
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


def _hash_key(args: argparse.Namespace) -> int:
    from sidegate.auth.credentials import hash_key

    key = getpass.getpass("key: ") if sys.stdin.isatty() else sys.stdin.readline()
    key = key.strip()
    if not key:
        print("sidegate hash-key: no key on standard input", file=sys.stderr)
        return 1
    print(hash_key(key))
    return 0


def _schema(args: argparse.Namespace) -> int:
    from sidegate.policy.schema import schema_text

    sys.stdout.write(schema_text())
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="sidegate", description="Governance sidecar for LLM traffic.")
    commands = top.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API surfaces with a policy directory")
    add_policies_option(serve)
    serve.add_argument("--listen", help="HOST:PORT, overriding server.listen")
    serve.add_argument("--watch-interval", type=float, default=1.0, metavar="SECONDS",
                       help="how often to look for policy file changes; 0 turns the watch off (SIGHUP "
                       "still reloads)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                       help="one log line per request (default: on; it follows --log-level info)")
    serve.set_defaults(run=_serve)
    validate = commands.add_parser(
        "validate", help="check a policy directory, as serve would",
        description="Check a policy directory as serve would load it. Exit status 0 when it is valid (warnings "
        "are printed on stderr), 1 with file:line problems on stderr when it is not.")
    where = validate.add_mutually_exclusive_group()
    where.add_argument("directory", nargs="?", metavar="DIR",
                       help="the policy directory (the same as --policies DIR)")
    add_policies_option(where)
    validate.set_defaults(run=_validate)
    hash_key = commands.add_parser("hash-key", help="print the sha256: form of a key read from stdin")
    hash_key.set_defaults(run=_hash_key)
    schema = commands.add_parser("schema", help="print the JSON Schema of policy files")
    schema.set_defaults(run=_schema)
    from sidegate.telemetry.usage_cli import add_usage_command

    add_usage_command(commands, add_policies_option)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
