"""The daemon's run lock: ``<db>.lock``, held (shared) by every running daemon on that database.

A restore needs the database to itself: it takes the lock exclusively and without waiting, and so
refuses while a daemon runs. An flock is released by the kernel when its process dies, so a daemon
killed with -9 leaves no stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge.errors import DaemonRunning, SetupError


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


class RunLock:
    """Held by the daemon from start to stop."""

    def __init__(self, db_path: Path):
        self.path = lock_path(Path(db_path))
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as exc:
            raise SetupError(
                f"{self.path}: cannot create the run lock beside the database: {exc.strerror}; "
                "fix: make the database's folder writable by the user running fieldpost"
            ) from None
        fcntl.flock(self._fd, fcntl.LOCK_SH)  # waits only while a restore is replacing the file
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


@contextmanager
def exclusive(db_path: Path) -> Iterator[None]:
    """The database to ourselves: DaemonRunning if a daemon holds it."""
    path = lock_path(Path(db_path))
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DaemonRunning(
                f"the edge daemon is running on {db_path} (it holds {path}); stop it first "
                "(sudo systemctl stop fieldpost)"
            ) from None
        yield
    finally:
        os.close(fd)
