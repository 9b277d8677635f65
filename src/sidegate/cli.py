"""The `sidegate` command: serve, validate, hash-key, schema, usage."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

DEFAULT_POLICIES = os.environ.get("SIDEGATE_POLICIES", "policies")


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

    try:
        loaded = load_policy_dir(args.directory)
        CompiledPolicy(loaded.model, loaded.digest)
    except PolicyError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    model = loaded.model
    print(f"{args.directory}: OK ({len(loaded.files)} files, {len(model.providers)} providers, "
          f"{len(model.models)} model services, {len(model.principals)} principals)")
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
    serve.add_argument("--policies", default=DEFAULT_POLICIES, help="policy directory (default: %(default)s)")
    serve.add_argument("--listen", help="HOST:PORT, overriding server.listen")
    serve.add_argument("--watch-interval", type=float, default=1.0, metavar="SECONDS",
                       help="how often to look for policy file changes; 0 turns the watch off (SIGHUP "
                       "still reloads)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                       help="one log line per request (default: on; it follows --log-level info)")
    serve.set_defaults(run=_serve)
    validate = commands.add_parser("validate", help="check a policy directory, as serve would")
    validate.add_argument("directory")
    validate.set_defaults(run=_validate)
    hash_key = commands.add_parser("hash-key", help="print the sha256: form of a key read from stdin")
    hash_key.set_defaults(run=_hash_key)
    schema = commands.add_parser("schema", help="print the JSON Schema of policy files")
    schema.set_defaults(run=_schema)
    from sidegate.telemetry.usage_cli import add_usage_command

    add_usage_command(commands, DEFAULT_POLICIES)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
