"""The writer's spool: an append-only JSONL file of rows a store could not take yet, read back
from an offset and removed once fully replayed. File operations are serialised per path within
the process (one lock per path, shared by every writer using it)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Generic

import orjson

from sidegate.telemetry.stores.schema import R, RowSchema

__all__ = ["Spool"]

_SPOOL_LOCKS: dict[str, threading.Lock] = {}  # one lock per spool path, shared by writers
_SPOOL_LOCKS_GUARD = threading.Lock()


def _spool_lock(path: Path) -> threading.Lock:
    key = os.path.abspath(path)
    with _SPOOL_LOCKS_GUARD:
        return _SPOOL_LOCKS.setdefault(key, threading.Lock())


class Spool(Generic[R]):
    """Append-only JSONL file of rows; read back from an offset; removed once fully replayed."""

    def __init__(self, path: Path, schema: RowSchema[R]) -> None:
        self.path = path
        self.schema = schema
        self._lock = _spool_lock(path)

    def append(self, rows: list[R]) -> None:
        encode = self.schema.encode_json
        data = b"".join(encode(r) for r in rows)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+b") as fh:
                fh.seek(0, 2)
                if fh.tell() > 0:
                    fh.seek(-1, 2)
                    if fh.read(1) != b"\n":  # partial line from a crash: keep ours separate
                        data = b"\n" + data
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())

    def count(self) -> int:
        with self._lock:
            try:
                with open(self.path, "rb") as fh:
                    return sum(1 for line in fh if line.strip())
            except FileNotFoundError:
                return 0

    def read(self, offset: int, limit: int) -> tuple[list[R], int, int]:
        """Up to `limit` rows from `offset`: (rows, new offset, lines skipped as unreadable)."""
        rows: list[R] = []
        bad = 0
        with self._lock:
            try:
                fh = open(self.path, "rb")  # noqa: SIM115
            except FileNotFoundError:
                return rows, offset, 0
            with fh:
                fh.seek(offset)
                while len(rows) < limit:
                    line = fh.readline()
                    if not line:
                        break
                    offset += len(line)
                    if not line.strip():
                        continue
                    try:
                        rows.append(self.schema.decode_json(line))
                    except (orjson.JSONDecodeError, TypeError, ValueError):
                        bad += 1
        return rows, offset, bad

    def finish(self, offset: int) -> bool:
        """Remove the file if everything up to its end was replayed; False if it has grown since."""
        with self._lock:
            try:
                if self.path.stat().st_size > offset:
                    return False
                self.path.unlink()
            except FileNotFoundError:
                pass
            return True

    def compact(self, offset: int) -> None:
        """Drop the first `offset` bytes (already replayed) so they are not replayed again."""
        if offset <= 0:
            return
        with self._lock:
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(self.path, "rb") as src, open(tmp, "wb") as dst:
                src.seek(offset)
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, self.path)
