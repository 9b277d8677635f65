"""Logging set-up: JSON lines for machines, readable lines on a terminal.

Readable lines keep each event's fields in the order the code gives them (the access line puts
status, principal, model service and latency first).

Every line — sidegate's own events (structlog), the access line of each request (`access_log`),
and the standard library's loggers (aiohttp, asyncio, the OpenTelemetry exporter) — goes through
one `LineWriter`: the event loop only renders a line and appends it to a queue; a thread writes
the queue to the stream in batches. A slow or stalled log reader therefore never stalls a request;
past `QUEUE_LIMIT` lines waiting, new lines are dropped and counted, and a line saying how many is
written once the reader catches up.

Values that look like credentials are redacted from every line except the access line (whose
fields never carry any): passwords in URLs (`postgresql://user:…@host`), key hashes (`sha256:…`)
and key-like query parameters (`?key=…`). aiohttp's own access logger is silenced: sidegate writes
its access line itself.
"""

from __future__ import annotations

import atexit
import logging
import re
import sys
import threading
from collections import deque
from collections.abc import MutableMapping
from typing import Any, TextIO

import orjson
import structlog

QUEUE_LIMIT = 100_000  # lines waiting to be written before new ones are dropped
_URL_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^@\s/]+@")
_KEY_HASH = re.compile(r"sha256:[0-9a-fA-F]{8,}")
_QUERY_KEY = re.compile(r"([?&](?:key|api_key|api-key|token|access_token)=)[^&\s\"']+", re.IGNORECASE)


class LineWriter:
    """Writes lines to a stream from a background thread, in the order they were given."""

    def __init__(self, stream: TextIO, limit: int = QUEUE_LIMIT) -> None:
        self.stream = stream
        self.limit = limit
        self.dropped = 0  # lines dropped since the last report
        self.dropped_total = 0
        self._lines: deque[str] = deque()
        self._wake = threading.Event()
        self._write_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="sidegate-log-writer", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        if len(self._lines) >= self.limit:
            self.dropped += 1
            self.dropped_total += 1
            return
        self._lines.append(line)
        if not self._wake.is_set():
            self._wake.set()

    def flush(self) -> None:
        """Write everything queued now, from the calling thread."""
        with self._write_lock:
            lines = self._lines
            batch: list[str] = []
            while lines:
                batch.append(lines.popleft())
            if self.dropped:
                batch.append(orjson.dumps({"event": "log lines dropped: the log reader was too slow",
                                           "level": "warning", "dropped": self.dropped}).decode())
                self.dropped = 0
            if batch:
                try:
                    self.stream.write("\n".join(batch) + "\n")
                    self.stream.flush()
                except (OSError, ValueError):  # a closed or broken stream: logging must not raise
                    pass

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5.0)
        self.flush()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            self.flush()


class _WriterLogger:
    """The structlog logger: hands each rendered line to the writer, whatever its level."""

    def __init__(self, writer: LineWriter) -> None:
        self._write = writer.write

    def msg(self, message: str) -> None:
        self._write(message)

    debug = info = warning = warn = error = err = critical = exception = fatal = failure = log = msg


class _WriterHandler(logging.Handler):
    """Standard-library log records, rendered as sidegate's lines, through the same writer."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.write(self.format(record))
        except Exception:
            self.handleError(record)


def redact(text: str) -> str:
    if "://" in text:
        text = _URL_PASSWORD.sub(r"\1***@", text)
    if "sha256:" in text:
        text = _KEY_HASH.sub("sha256:***", text)
    if "=" in text:
        text = _QUERY_KEY.sub(r"\1***", text)
    return text


def _redact_values(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, str) and ("://" in value or "sha256:" in value or "=" in value):
            event[key] = redact(value)
    return event


def json_line(event: dict[str, Any], **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


class LogSetup:
    """What `configure_logging` chose, for the access line."""

    def __init__(self) -> None:
        self.writer: LineWriter | None = None
        self.json = True
        self.access = True  # the per-request access line is on


SETUP = LogSetup()


def configure_logging(level: str = "info", *, stream: TextIO | None = None, access_log: bool = True,
                      cache: bool = True) -> LineWriter:
    """Send every log line to `stream` (stderr by default): readable when it is a terminal, JSON
    lines otherwise. `access_log` turns the per-request line on or off. `cache=False` lets a later
    call reconfigure loggers already used (tests)."""
    stream = stream if stream is not None else sys.stderr
    old = SETUP.writer
    writer = LineWriter(stream)
    SETUP.writer, SETUP.json = writer, not stream.isatty()
    threshold = logging.getLevelName(level.upper())
    SETUP.access = access_log and threshold <= logging.INFO
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(serializer=json_line) if SETUP.json
        else structlog.dev.ConsoleRenderer(sort_keys=False))
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.format_exc_info,
            _redact_values,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=lambda *_args: _WriterLogger(writer),
        cache_logger_on_first_use=cache,
    )
    handler = _WriterHandler(writer)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, structlog.processors.add_log_level, timestamper,
                           structlog.processors.format_exc_info, _redact_values],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    ))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(threshold)
    # sidegate writes its own access line; aiohttp's would repeat it with the raw query (?key=…)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if old is not None:
        old.close()
    else:
        atexit.register(shutdown_logging)
    return writer


def shutdown_logging() -> None:
    """Write what is queued (at exit, after the server stopped)."""
    if SETUP.writer is not None:
        SETUP.writer.close()
