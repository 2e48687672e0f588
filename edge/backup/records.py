"""The ``backups`` table (migration 0012_backups): what was backed up, when, and whether it was good."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from edge.backup.copy import BackupResult
from edge.backup.schedule import KindHistory
from edge.store import transaction


@dataclass(frozen=True)
class BackupRecord:
    id: int
    kind: str
    started_at: float
    finished_at: float
    path: str
    status: str
    bytes: int | None
    row_counts: dict[str, int] | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def record_ok(conn: sqlite3.Connection, kind: str, result: BackupResult) -> int:
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO backups (kind, started_at, finished_at, path, status, bytes, row_counts)"
            " VALUES (?, ?, ?, ?, 'ok', ?, ?)",
            (
                kind,
                result.started_at,
                result.finished_at,
                str(result.path),
                result.bytes,
                json.dumps(result.row_counts),
            ),
        )
    return int(cur.lastrowid)


def record_failed(
    conn: sqlite3.Connection, kind: str, path: str, error: str, started: float, now: float
) -> int:
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO backups (kind, started_at, finished_at, path, status, error) VALUES (?, ?, ?, ?, 'failed', ?)",
            (kind, started, now, path, error[:1000]),
        )
    return int(cur.lastrowid)


def history(conn: sqlite3.Connection, kind: str) -> KindHistory:
    last_ok, last_attempt = conn.execute(
        "SELECT MAX(CASE WHEN status IN ('ok', 'pruned') THEN started_at END), MAX(started_at)"
        " FROM backups WHERE kind = ?",
        (kind,),
    ).fetchone()
    return KindHistory(last_ok, last_attempt)


def good(conn: sqlite3.Connection, kind: str) -> list[BackupRecord]:
    return _select(conn, "WHERE kind = ? AND status = 'ok' ORDER BY started_at DESC", (kind,))


def listing(conn: sqlite3.Connection, limit: int = 100) -> list[BackupRecord]:
    return _select(conn, "ORDER BY id DESC LIMIT ?", (limit,))


def mark_pruned(conn: sqlite3.Connection, backup_id: int) -> None:
    with transaction(conn):
        conn.execute("UPDATE backups SET status = 'pruned' WHERE id = ?", (backup_id,))


def _select(conn: sqlite3.Connection, tail: str, args: tuple) -> list[BackupRecord]:
    rows = conn.execute(
        "SELECT id, kind, started_at, finished_at, path, status, bytes, row_counts, error FROM backups "
        + tail,
        args,
    ).fetchall()
    return [
        BackupRecord(*tuple(row)[:7], json.loads(row[7]) if row[7] else None, row[8])  # type: ignore[arg-type]
        for row in rows
    ]
