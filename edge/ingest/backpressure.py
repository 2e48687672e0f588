"""Backpressure: refuse new uplinks (NACK BUSY) while too much is waiting for the cloud.

The figure watched is the sync backlog: readings past the cloud's cursor plus unsynced
outbox messages (edge.store.backlog). Counting it walks the unsynced readings, so the
figure is kept in memory: ingest adds what it commits, sync takes off what the cloud
acknowledged, and a periodic recount on a reader connection (never the writer's) picks up
what other processes did. Hysteresis: once busy, stay busy until the backlog falls below
``resume_below``, so the link does not flap.
"""

from __future__ import annotations

import sqlite3
import threading

from edge.store import backlog


class Backpressure:
    def __init__(self, *, high_water: int, resume_below: int):
        self.high_water = high_water
        # busy until the backlog is below this; at least 1, or an empty backlog would never resume
        self.resume_below = max(1, min(resume_below, high_water))
        self._lock = threading.Lock()
        self.unsynced = 0
        self._busy = False
        self.busy_refusals = 0

    def refresh(self, conn: sqlite3.Connection) -> None:
        """Recount from the database (counting stops a little past the high-water mark)."""
        count = backlog.unsynced(conn, limit=self.high_water + 1)
        with self._lock:
            self.unsynced = count
            self._update()

    def committed(self, rows: int) -> None:
        with self._lock:
            self.unsynced += rows
            self._update()

    def synced(self, rows: int) -> None:
        with self._lock:
            self.unsynced = max(0, self.unsynced - rows)
            self._update()

    def _update(self) -> None:
        if self._busy:
            self._busy = self.unsynced >= self.resume_below
        else:
            self._busy = self.unsynced >= self.high_water

    @property
    def is_busy(self) -> bool:
        return self._busy

    def busy(self) -> str | None:
        """The Session's busy callback: a reason while over the mark, else None."""
        if self._busy:
            self.busy_refusals += 1
            return f"backlog {self.unsynced} >= {self.high_water}"
        return None
