"""`sidegate usage`: which store to read, which report to make, how to print it.

    sidegate usage [--policies DIR | --store URL] [--since 24h|7d|ISO|all] [--by principal|model|tag:KEY|client|day]
                   [--format table|json|csv]

Without `--store` the store is the policy's `usage.store` (the policy directory as for `serve`).
Exit status 0 with the report on stdout; 2 with one line on stderr when the arguments are wrong or
the store cannot be read (unknown scheme, no such file or table, database unreachable).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sidegate.cli.options import add_policies_option
from sidegate.telemetry.stores.url import StoreURL, parse_store_url, redact_url
from sidegate.telemetry.usage.report import (
    GROUPINGS,
    Grouping,
    Report,
    ReportError,
    jsonl_report,
    parse_by,
    parse_since,
)

__all__ = ["REPORTERS", "add_command", "build_report", "run_usage"]

Reporter = Callable[[StoreURL, Grouping, "datetime | None"], Report]


def _sqlite(url: StoreURL, by: Grouping, since: datetime | None) -> Report:
    from sidegate.telemetry.usage.report_sql import sqlite_report

    return sqlite_report(url, by, since)


def _postgres(url: StoreURL, by: Grouping, since: datetime | None) -> Report:
    from sidegate.telemetry.usage.report_sql import postgres_report

    return postgres_report(url, by, since)


REPORTERS: dict[str, Reporter] = {"jsonl": jsonl_report, "sqlite": _sqlite, "postgresql": _postgres,
                                  "postgres": _postgres}


def build_report(url: str, by: Grouping, since: datetime | None) -> Report:
    """The report of the store at `url`; ReportError when that store cannot be read."""
    try:
        parsed = parse_store_url(url)
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    if parsed.base_scheme == "none":
        raise ReportError("the usage store is `none`: no usage is recorded, so there is nothing to report")
    reporter = REPORTERS.get(parsed.base_scheme)
    if reporter is None:
        raise ReportError(f"cannot report on usage store {redact_url(url)!r}: known schemes are "
                          f"{', '.join(sorted(REPORTERS))}")
    return reporter(parsed, by, since)


def _argument(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: a ValueError's message becomes the usage error argparse prints."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def _store_url(args: argparse.Namespace) -> str:
    if args.store:
        return str(args.store)
    from sidegate.policy.loader import PolicyError, load_policy_dir

    try:
        return load_policy_dir(args.policies).model.usage.store
    except PolicyError as exc:
        raise ReportError(f"cannot read the usage store from the policy in {args.policies} "
                          f"(or pass --store URL):\n{exc}") from None


def run_usage(args: argparse.Namespace) -> int:
    from sidegate.telemetry.usage.report_format import render

    try:
        report = build_report(_store_url(args), args.by, args.since)
    except ReportError as exc:
        print(f"sidegate usage: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render(report, args.format))
    return 0


def add_command(commands: Any) -> None:
    """Add `usage` to the `sidegate` subcommands (an argparse subparsers object)."""
    usage = commands.add_parser("usage", help="totals of the usage table per principal, model, tag, client or day")
    where = usage.add_mutually_exclusive_group()
    add_policies_option(where, "read the store named by this policy directory's usage.store")
    where.add_argument("--store", metavar="URL", help="read this usage store instead (sqlite://, jsonl://, "
                       "postgresql://)")
    usage.add_argument("--since", type=_argument(parse_since), default="24h", metavar="WHEN",
                       help="rows from this moment on: 24h, 30m, 7d, 2w, an ISO date or time (UTC unless it "
                       "says otherwise) or all (default: %(default)s)")
    usage.add_argument("--by", type=_argument(parse_by), default="model", metavar="GROUPING",
                       help=f"group by {', '.join(GROUPINGS)} (default: %(default)s)")
    usage.add_argument("--format", choices=["table", "json", "csv"], default="table")
    usage.set_defaults(run=run_usage)
