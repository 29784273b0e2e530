"""stdlib logging for ghost-node: stderr always (journald), an optional rotating file, json or
text lines, and secrets redacted before any handler writes a byte.

Redaction happens in a handler filter (`RedactingFilter`), not a logger filter: logger filters
only see records logged on that very logger, not those propagated from child loggers. The filter
renders the message (`msg % args`), the exception text and the stack, and the string-valued
extras, replaces every secret with "***", and stores the result back in the record, so that any
formatter, including the JSON one, only ever sees redacted text. The formatters redact their
final output once more, for values that only become text while formatting (non-string extras).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO, cast

from adapters.config import LogConfig

__all__ = [
    "REDACTED",
    "JsonFormatter",
    "RedactingFilter",
    "Redactor",
    "TextFormatter",
    "configure_logging",
    "route_twisted_logs",
]

REDACTED = "***"

# Attributes every LogRecord has; anything else in record.__dict__ came from `extra=`.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)
# Marks the handlers configure_logging installed, so that calling it again replaces them.
_OURS = "_ghost_handler"


class Redactor:
    """Replaces known secrets in text. Thread-safe; secrets can be added later (a token
    generated after logging was configured)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._regex: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        with self._lock:
            # Empty strings would "match" everywhere; None is a secret that is not set.
            new = self._secrets | {s for s in secrets if s}
            if new == self._secrets:
                return
            # Longest first, so that a secret containing another is replaced whole.
            ordered = sorted(new, key=len, reverse=True)
            self._regex = re.compile("|".join(re.escape(s) for s in ordered))
            self._secrets = new

    def __call__(self, text: str) -> str:
        regex = self._regex  # one read: a concurrent add() swaps the whole pattern
        if regex is None:
            return text
        return regex.sub(REDACTED, text)

    def __bool__(self) -> bool:
        return self._regex is not None


class RedactingFilter(logging.Filter):
    """A handler filter that rewrites records so that no secret survives into the output."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor
        if getattr(record, "_ghost_redacted", False) or not redact:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A bad format string must not hide the record (logging would print a traceback).
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, redact(value))
        # Several handlers share one record: do the work once.
        record._ghost_redacted = True
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v
        for k, v in record.__dict__.items()
        if k not in _STANDARD_ATTRS and not k.startswith("_")
    }


class TextFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.redactor = redactor

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _iso(record.created)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if extras:
            text += " " + " ".join(f"{k}={v!r}" for k, v in sorted(extras.items()))
        return self.redactor(text) if self.redactor else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, [exc], [stack], thread, extras."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        for key, value in _extras(record).items():
            entry.setdefault(key, value)
        text = json.dumps(entry, ensure_ascii=False, default=str)
        # ensure_ascii=False keeps secrets unescaped in the output, so this pass can find them
        # in values that only became text in json.dumps (default=str).
        return self.redactor(text) if self.redactor else text


def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


def configure_logging(
    config: LogConfig,
    *,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    logger: logging.Logger | None = None,
) -> Redactor:
    """Install ghost-node's handlers on `logger` (default: the root logger).

    Replaces the handlers a previous call installed (and only those). Returns the Redactor, to
    add secrets that appear later (`redactor.add(token)`)."""
    target = logger if logger is not None else logging.getLogger()
    redactor = Redactor(secrets)
    for old in [h for h in target.handlers if getattr(h, _OURS, False)]:
        target.removeHandler(old)
        old.close()
    formatter: logging.Formatter = (
        JsonFormatter(redactor) if config.format == "json" else TextFormatter(redactor)
    )
    handlers: list[logging.Handler] = [
        logging.StreamHandler(stream if stream is not None else sys.stderr)
    ]
    if config.file is not None:
        handlers.append(_file_handler(config))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RedactingFilter(redactor))
        setattr(handler, _OURS, True)
        target.addHandler(handler)
    target.setLevel(config.level.upper())
    return redactor


def _file_handler(config: LogConfig) -> logging.Handler:
    path = config.file
    assert path is not None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Create the file 0600 ourselves: logs hold paths and patch descriptions, not for others.
    # (Rotated files are created by the handler with the umask; the daemon's unit sets 0077.)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)
    return logging.handlers.RotatingFileHandler(
        path,
        maxBytes=config.max_bytes,
        backupCount=config.backups,
        encoding="utf-8",
    )


def route_twisted_logs() -> None:
    """Send Twisted's own log events (twisted.logger) to stdlib logging, once per process."""
    from twisted.logger import ILogObserver, STDLibLogObserver, globalLogBeginner

    observer = cast(ILogObserver, STDLibLogObserver())  # zope-declared, not a typed subclass
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
