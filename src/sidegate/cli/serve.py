"""`sidegate serve`: serve the API surfaces with a policy directory until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from sidegate.cli.options import add_policies_option


def add_command(commands: Any) -> None:
    """Add `serve` to the `sidegate` subcommands (an argparse subparsers object)."""
    serve = commands.add_parser("serve", help="serve the API surfaces with a policy directory")
    add_policies_option(serve)
    serve.add_argument("--listen", help="HOST:PORT, overriding server.listen")
    serve.add_argument("--watch-interval", type=float, default=1.0, metavar="SECONDS",
                       help="how often to look for policy file changes; 0 turns the watch off (SIGHUP "
                       "still reloads)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                       help="one log line per request (default: on; it follows --log-level info)")
    serve.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
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
