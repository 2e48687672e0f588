"""What the cloud has not had yet: readings past the cloud cursor, plus unsynced outbox messages.

The one definition of "the sync backlog" that backpressure, ``fieldpost status``, the panel,
metrics and retention share.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edge.store import cursor


@dataclass(frozen=True)
class Summary:
    readings: int
    messages: int  # outbox: alarms, downlink status, events
    oldest_at: float | None  # Unix seconds of the oldest thing waiting

    @property
    def total(self) -> int:
        return self.readings + self.messages


def unsynced(conn: sqlite3.Connection, *, limit: int | None = None) -> int:
    """How many items wait for the cloud; with ``limit``, counting stops at about that many."""
    messages = int(conn.execute("SELECT count(*) FROM outbox WHERE synced_at IS NULL").fetchone()[0])
    left = None if limit is None else max(0, limit - messages)
    return messages + cursor.backlog(conn, limit=left).readings


def summary(conn: sqlite3.Connection) -> Summary:
    messages, oldest_message = conn.execute(
        "SELECT count(*), min(created_at) FROM outbox WHERE synced_at IS NULL"
    ).fetchone()
    readings = cursor.backlog(conn)
    candidates = [
        t
        for t in (oldest_message, None if readings.oldest_ms is None else readings.oldest_ms / 1000)
        if t is not None
    ]
    return Summary(readings.readings, int(messages), min(candidates) if candidates else None)


def oldest_unsynced_at(conn: sqlite3.Connection) -> float | None:
    """Receive/creation time of the oldest thing waiting for the cloud: one seek per device."""
    oldest = conn.execute("SELECT min(created_at) FROM outbox WHERE synced_at IS NULL").fetchone()[0]
    first_ms = cursor.oldest_unsynced_ms(conn)
    candidates = [t for t in (oldest, None if first_ms is None else first_ms / 1000) if t is not None]
    return min(candidates) if candidates else None
