"""Usage store URLs: parsing, where a store's spool file goes, and a form safe to show.

URLs follow SQLAlchemy's convention (DESIGN.md §3): `sqlite:///rel.db` is relative to the working
directory at parse time, `sqlite:////abs.db` absolute; `jsonl:` URLs likewise; `none` discards;
`postgresql://user:password@host:port/db?search_path=schema` names a database server (query
parameters other than libpq's are sent to the server as settings, e.g. `search_path`).
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SPOOL_DIR_ENV", "StoreURL", "default_spool_path", "parse_store_url", "redact_url"]

SPOOL_DIR_ENV = "SIDEGATE_SPOOL_DIR"
_FILE_SCHEMES = ("sqlite", "jsonl")


@dataclass(frozen=True, slots=True)
class StoreURL:
    raw: str
    scheme: str  # lower-case, e.g. "sqlite", "jsonl", "none", "postgresql+asyncpg"
    path: Path | None  # absolute file path for file-backed stores

    @property
    def base_scheme(self) -> str:
        return self.scheme.split("+", 1)[0]


def parse_store_url(url: str) -> StoreURL:
    text = (url or "").strip()
    if text.lower() in ("none", "none:", "none://"):
        return StoreURL(raw=text, scheme="none", path=None)
    scheme, sep, rest = text.partition("://")
    if not sep or not scheme:
        raise ValueError(
            f"invalid usage store URL {redact_url(text)!r}: expected sqlite:///path.db, jsonl:///path.jsonl, "
            "postgresql://... or none"
        )
    scheme = scheme.lower()
    if scheme.split("+", 1)[0] not in _FILE_SCHEMES:
        return StoreURL(raw=text, scheme=scheme, path=None)
    # SQLAlchemy convention: "sqlite:///rel" -> "rel", "sqlite:////abs" -> "/abs".
    if not rest.startswith("/") or len(rest) < 2:
        raise ValueError(
            f"invalid {scheme} URL {url!r}: use {scheme}:///relative/path or {scheme}:////absolute/path"
        )
    raw_path = rest[1:]
    if raw_path == ":memory:":
        raise ValueError(f"{scheme} URL {url!r}: in-memory stores are not supported for usage rows")
    path = Path(raw_path).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    return StoreURL(raw=text, scheme=scheme, path=path)


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`, for logs, errors and /readyz."""
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.split(":", 1)[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{name}:***@{host}"))


def default_spool_path(url: str) -> Path | None:
    """Where the usage writer keeps rows the store could not take; None for `none`.

    File-backed stores spool next to their file (`<store file>.spool.jsonl`). A database server
    spools to `sidegate-usage-<scheme>-<hash of the URL without its password>.spool.jsonl` in
    $SIDEGATE_SPOOL_DIR, or the working directory when that is unset; the same URL always maps to
    the same file, so a restarted sidegate replays what the previous one left.
    """
    parsed = parse_store_url(url)
    if parsed.base_scheme == "none":
        return None
    if parsed.path is not None:
        return parsed.path.with_name(parsed.path.name + ".spool.jsonl")
    digest = hashlib.sha256(redact_url(parsed.raw).encode()).hexdigest()[:16]
    directory = Path(os.environ.get(SPOOL_DIR_ENV) or Path.cwd()).expanduser()
    return directory.absolute() / f"sidegate-usage-{parsed.base_scheme}-{digest}.spool.jsonl"
