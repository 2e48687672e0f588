"""Structured logs to stdout: one line per event, ``key=value`` pairs, journald-friendly.

Messages are written as ``"event key=%s key=%s"`` with arguments; the formatter
prefixes level and logger name. No timestamps by default: journald adds its own.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO


class KeyValueFormatter(logging.Formatter):
    def __init__(self, *, timestamps: bool = False):
        super().__init__()
        self._timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        head = f"level={record.levelname.lower()} logger={record.name}"
        if self._timestamps:
            head = f"ts={record.created:.3f} " + head
        line = f"{head} msg={quote(record.getMessage())}"
        if record.exc_info:
            line += " exc=" + quote(self.formatException(record.exc_info))
        return line


def quote(value: Any) -> str:
    """A value as it appears after ``key=``: bare when safe, else double-quoted."""
    text = str(value)
    if text and not any(c in text for c in ' "=\n\t'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def kv(**fields: Any) -> str:
    """``key=value`` text for a log message (values quoted when needed)."""
    return " ".join(f"{k}={quote(v)}" for k, v in fields.items())


def setup(level: str = "INFO", *, stream: TextIO | None = None, timestamps: bool = False) -> None:
    """Send every ``fieldpost.*`` logger to stdout in key=value form."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(KeyValueFormatter(timestamps=timestamps))
    root = logging.getLogger("fieldpost")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
