"""Sync state in the ``sync_state`` table, and the summary everyone shows.

``sync_status(conn, now)`` is what ``fieldpost status``, ``/metrics`` and the panel
read: it needs only the database, so any process can call it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from edge.store import cursor
from edge.sync.budget import utc_day


def _ensure_row(conn: sqlite3.Connection, sink: str) -> None:
    conn.execute(
        "INSERT INTO sync_state (sink, bytes_today) VALUES (?, 0) ON CONFLICT (sink) DO NOTHING",
        (sink,),
    )


def add_bytes(conn: sqlite3.Connection, sink: str, nbytes: int, now: float) -> None:
    """Count bytes sent today (UTC); the count restarts at 0 on a new day. Call inside a transaction."""
    _ensure_row(conn, sink)
    day = utc_day(now)
    conn.execute(
        "UPDATE sync_state SET bytes_today = CASE WHEN day = ? THEN bytes_today + ? ELSE ? END, day = ?"
        " WHERE sink = ?",
        (day, nbytes, nbytes, day, sink),
    )


def record_success(conn: sqlite3.Connection, sink: str, now: float) -> None:
    _ensure_row(conn, sink)
    conn.execute("UPDATE sync_state SET last_success = ? WHERE sink = ?", (now, sink))


def record_error(conn: sqlite3.Connection, sink: str, error: str, now: float) -> None:
    _ensure_row(conn, sink)
    conn.execute(
        "UPDATE sync_state SET last_error = ?, last_error_at = ? WHERE sink = ?",
        (error[:1000], now, sink),
    )


def bytes_today(conn: sqlite3.Connection, sink: str, now: float) -> int:
    row = conn.execute("SELECT day, bytes_today FROM sync_state WHERE sink = ?", (sink,)).fetchone()
    if row is None or row[0] != utc_day(now):
        return 0
    return int(row[1])


def sync_status(
    conn: sqlite3.Connection, now: float, *, readings_backlog: cursor.Backlog | None = None
) -> dict[str, Any]:
    """Backlog (count, by priority, oldest age), and per sink: last success, last error, bytes today.

    Top-level ``last_success``/``last_error``/``bytes_today`` summarise all sinks (the
    newest success, the newest error, the sum of today's bytes). ``readings_backlog``: the readings' backlog
    when the caller has counted it already (it reads every unsynced reading's range: not twice).
    """
    # Outbox messages by priority; readings wait past the sync cursor (edge.store.cursor).
    pending = conn.execute(
        "SELECT priority, count(*), min(created_at) FROM outbox WHERE synced_at IS NULL GROUP BY priority"
    ).fetchall()
    by_priority = {"alarms": 0, "readings": 0, "bulk": 0}
    names = {0: "alarms", 1: "readings", 2: "bulk"}
    oldest = None
    for priority, count, first in pending:
        by_priority[names.get(priority, "bulk")] += count
        oldest = first if oldest is None else min(oldest, first)
    waiting = cursor.backlog(conn) if readings_backlog is None else readings_backlog
    by_priority["readings"] += waiting.readings
    if waiting.oldest_ms is not None:
        first = waiting.oldest_ms / 1000
        oldest = first if oldest is None else min(oldest, first)
    synced = conn.execute("SELECT count(*) FROM outbox WHERE synced_at IS NOT NULL").fetchone()[0]
    sinks = {}
    day = utc_day(now)
    for row in conn.execute(
        "SELECT sink, last_success, last_error, last_error_at, day, bytes_today FROM sync_state ORDER BY sink"
    ):
        sinks[row[0]] = {
            "last_success": row[1],
            "last_error": row[2],
            "last_error_at": row[3],
            "bytes_today": int(row[5]) if row[4] == day else 0,
        }
    last_success = max((s["last_success"] for s in sinks.values() if s["last_success"]), default=None)
    errors = [s for s in sinks.values() if s["last_error_at"]]
    newest_error = max(errors, key=lambda s: s["last_error_at"]) if errors else None
    backlog = sum(by_priority.values())
    return {
        "backlog": backlog,
        "backlog_by_priority": by_priority,
        "oldest_unsynced_at": oldest,
        "backlog_age_s": None if oldest is None else max(0.0, now - oldest),
        "synced_kept": int(synced),  # outbox messages kept after their sync (until retention)
        "last_success": last_success,
        "last_error": newest_error["last_error"] if newest_error else None,
        "last_error_at": newest_error["last_error_at"] if newest_error else None,
        # An error newer than the last success means the link is failing right now.
        "healthy": newest_error is None or (last_success or 0) >= newest_error["last_error_at"],
        "bytes_today": sum(s["bytes_today"] for s in sinks.values()),
        "sinks": sinks,
    }
