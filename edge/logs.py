"""Structured logs to stdout: one line per event, ``key=value`` pairs, journald-friendly.

Messages are written as ``"event key=%s key=%s"`` with arguments; the formatter
prefixes level and logger name. No timestamps by default: journald adds its own.

When stdout is a journald stream (systemd names it in ``$JOURNAL_STREAM``), each line
also starts with its syslog priority, ``<3>`` error .. ``<7>`` debug, which journald
strips and stores as the entry's priority: ``journalctl -p warning -u fieldpost`` then
shows warnings and errors only. Anywhere else (a terminal, a pipe, a file) lines have
no prefix.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

# syslog priorities (sd-daemon(3)) of the logging levels
PRIORITIES = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class KeyValueFormatter(logging.Formatter):
    def __init__(self, *, timestamps: bool = False, priorities: bool = False):
        super().__init__()
        self._timestamps = timestamps
        self._priorities = priorities

    def format(self, record: logging.LogRecord) -> str:
        head = f"level={record.levelname.lower()} logger={record.name}"
        if self._timestamps:
            head = f"ts={record.created:.3f} " + head
        line = f"{head} msg={quote(record.getMessage())}"
        if record.exc_info:
            line += " exc=" + quote(self.formatException(record.exc_info))
        if self._priorities:
            line = f"<{priority(record.levelno)}>{line}"
        return line


def priority(levelno: int) -> int:
    """The syslog priority of a logging level (levels between two take the more severe one)."""
    for level, prio in sorted(PRIORITIES.items(), reverse=True):
        if levelno >= level:
            return prio
    return 7


def is_journal_stream(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """Is ``stream`` the journald socket systemd connected (``$JOURNAL_STREAM`` = "device:inode")?

    Comparing device and inode, not just the variable's presence, matters: a child whose
    output was redirected to a file or pipe inherits the variable but not the stream.
    """
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (OSError, ValueError, AttributeError):  # no fd (a StringIO), or a malformed variable
        return False


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
    """Send every ``fieldpost.*`` logger to stdout in key=value form (priority-prefixed for journald)."""
    stream = stream or sys.stdout
    handler = logging.StreamHandler(stream)
    handler.setFormatter(KeyValueFormatter(timestamps=timestamps, priorities=is_journal_stream(stream)))
    root = logging.getLogger("fieldpost")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
