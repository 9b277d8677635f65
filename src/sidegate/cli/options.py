"""What the `sidegate` commands share: where the policy directory is, and wording."""

from __future__ import annotations

import os
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
