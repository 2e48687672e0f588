"""Backpressure: refuse new uplinks (NACK BUSY) while too much is waiting for the cloud.

The figure watched is the number of unsynced outbox rows. Counting them is a scan,
so the count is kept in memory: ingest adds what it commits, and a periodic
refresh from the database picks up what sync has drained. Hysteresis: once busy,
stay busy until the backlog falls below ``resume_below``, so the link does not flap.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

from edge import outbox


class Backpressure:
    def __init__(
        self, *, high_water: int, resume_below: int, clock: Callable[[], float], refresh_every_s: float = 1.0
    ):
        self.high_water = high_water
        # busy until the backlog is below this; at least 1, or an empty backlog would never resume
        self.resume_below = max(1, min(resume_below, high_water))
        self._clock = clock
        self._refresh_every = refresh_every_s
        self._lock = threading.Lock()
        self.unsynced = 0
        self._busy = False
        self._refreshed_at = float("-inf")
        self.busy_refusals = 0

    def refresh(self, conn: sqlite3.Connection, *, force: bool = False) -> None:
        now = self._clock()
        if force or now - self._refreshed_at >= self._refresh_every:
            count = outbox.unsynced_count(conn)
            with self._lock:
                self.unsynced = count
                self._refreshed_at = now
                self._update()

    def committed(self, rows: int) -> None:
        with self._lock:
            self.unsynced += rows
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
