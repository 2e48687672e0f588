"""Surviving a full disk: a reserve file, BUSY instead of a session storm, recovery on its own.

SQLite needs free space to do anything, even to delete (in WAL mode a DELETE writes pages
to the WAL first). So the edge keeps a *reserve*: a preallocated file next to the database.
When a commit fails for lack of space (SQLITE_FULL, or an I/O error with ENOSPC behind it):

1. the reserve is deleted, so the edge has room to record an alarm, to checkpoint and for
   retention to evict (which is asked to run at once);
2. :meth:`SpaceGuard.busy` answers every new uplink "disk full": the link NACKs it BUSY
   before it is delivered, and the module keeps it and backs off (1 s doubling to 30 s);
3. :meth:`SpaceGuard.check` (the daemon's timer) watches the free space; once it is back
   above the reserve plus headroom, the reserve is made again and uplinks are taken again.

Other commit failures (a locked database, an I/O error) also answer BUSY for a short,
growing pause, so a failing disk never turns into a storm of session restarts either.
The decisions are pure functions of what the injected ``free_bytes`` and ``clock`` say.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edge.logs import kv

log = logging.getLogger("fieldpost.store")

SQLITE_FULL = 13
SQLITE_IOERR = 10
PAUSE_INITIAL_S = 0.5
PAUSE_MAX_S = 10.0
MIN_RESERVE = 256 * 1024


def is_disk_full(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == SQLITE_FULL:
        return True
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    # Older drivers give only the text
    return isinstance(exc, sqlite3.Error) and "database or disk is full" in str(exc)


class SpaceGuard:
    def __init__(
        self,
        db_path: str | Path,
        *,
        reserve_bytes: int = 8 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
        free_bytes: Callable[[Path], int] | None = None,
    ):
        self.db_path = Path(db_path)
        self.reserve_path = self.db_path.with_name(self.db_path.name + ".reserve")
        self.reserve_bytes = reserve_bytes
        self._clock = clock
        self._free = free_bytes or (lambda p: shutil.disk_usage(p).free)
        self._lock = threading.Lock()
        self.full = False
        self.full_since: float | None = None
        self.last_error: str | None = None
        self._pause_until = 0.0
        self._pause = 0.0
        self.on_full: list[Callable[[], None]] = []  # e.g. retention's "run a pass now"
        self.times_full = 0
        self.reserved = 0  # bytes of the reserve made by this guard (0: none)

    # ------------------------------------------------------------------ reserve

    def prepare(self) -> bool:
        """Make the reserve if it is missing; True if there is one.

        On a disk with little room the reserve is smaller (a quarter of what is free, down to
        MIN_RESERVE): a small one still lets the edge write its alarm and checkpoint.
        """
        if self.reserve_bytes <= 0:
            return True
        try:
            if self.reserve_path.exists() and self.reserve_path.stat().st_size > 0:
                return True
            size = min(self.reserve_bytes, self._free(self.db_path.parent) // 4)
            if size < MIN_RESERVE:
                log.warning(
                    "store reserve not made %s", kv(path=self.reserve_path, why="not enough free space")
                )
                return False
            fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                # posix_fallocate really allocates the blocks (a sparse file would free nothing)
                os.posix_fallocate(fd, 0, size)
                os.fsync(fd)
            finally:
                os.close(fd)
            self.reserved = size
            return True
        except OSError as exc:
            log.warning("store reserve not made %s", kv(path=self.reserve_path, error=exc))
            try:
                self.reserve_path.unlink()
            except OSError:
                pass
            return False

    def _release(self) -> int:
        try:
            size = self.reserve_path.stat().st_size
            self.reserve_path.unlink()
            return size
        except FileNotFoundError:
            return 0

    # ------------------------------------------------------------------ events

    def commit_failed(self, exc: BaseException) -> str:
        """The writer's commit failed: decide what the modules are told; returns the reason."""
        with self._lock:
            if is_disk_full(exc):
                self.last_error = str(exc)
                if not self.full:
                    self.full = True
                    self.full_since = self._clock()
                    self.times_full += 1
                    released = self._release()
                    log.error("disk full %s", kv(db=self.db_path, reserve_released=released))
                    listeners = list(self.on_full)
                else:
                    listeners = []
                reason = "disk full"
            else:
                self.last_error = str(exc)
                self._pause = min(PAUSE_MAX_S, max(PAUSE_INITIAL_S, self._pause * 2))
                self._pause_until = self._clock() + self._pause
                listeners = []
                reason = f"storage error: {exc}"
        for listener in listeners:
            try:
                listener()
            except Exception:  # a listener's bug must not hide the full disk
                log.exception("disk-full listener failed")
        return reason

    def committed(self) -> None:
        """A commit succeeded: a storage error's pause is over."""
        self._pause = 0.0

    @property
    def refusing(self) -> bool:
        """Cheap: whether :meth:`busy` may answer a reason (full, or a pause after a storage error)."""
        return self.full or self._pause_until > 0.0

    def busy(self) -> str | None:
        """Why new uplinks are refused (NACK BUSY) right now, or None."""
        if self.full:
            return "disk full: the edge cannot store readings"
        if self._clock() < self._pause_until:
            return "storage error: retrying shortly"
        self._pause_until = 0.0
        return None

    def degraded(self) -> str | None:
        """What /health reports while the store cannot take readings."""
        if self.full:
            return f"disk full since {self._clock() - (self.full_since or 0):.0f}s: {self.last_error}"
        return None

    def check(self) -> bool:
        """Timer: leave the full state once the disk has room again; True when it just did."""
        with self._lock:
            if not self.full:
                return False
            # Room for the reserve again and as much to write into: taking uplinks on a disk that
            # refills at once would only trade one full disk for another.
            free = self._free(self.db_path.parent)
            if free < 2 * max(self.reserved, MIN_RESERVE) + 1024 * 1024:
                return False
            self.full = False
            self.full_since = None
        made = self.prepare()
        log.warning("disk space recovered %s", kv(db=self.db_path, free=free, reserve=made))
        return True
