"""Values an admin sets in the panel, kept in the ``settings`` table as JSON.

Keys the panel writes, named like the [sync]/[retention] TOML keys they stand for. The sync service
and the retention worker lay them over their TOML configuration at start and when they change
(edge/sync/panel_settings.py); a key not stored leaves the config file's value in force:
  sync.endpoint            str, '' = the config file's endpoint (mqtts://, https:// or loopback mqtt://)
  retention.max_age_days   int
  retention.max_db_bytes   int or null (no size limit)
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

PANEL_KEYS = {
    "sync.endpoint": "",
    "retention.max_age_days": 90,
    "retention.max_db_bytes": None,
}
MIB = 1024 * 1024


def get(conn: sqlite3.Connection, key: str, default: Any = None) -> Any:
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    if row is None:
        return PANEL_KEYS.get(key, default) if default is None else default
    try:
        return json.loads(row[0])
    except ValueError:
        return default


def put(conn: sqlite3.Connection, key: str, value: Any, *, by: str, now: float) -> Any:
    """Store ``value``; return the previous one (for the audit entry)."""
    previous = get(conn, key)
    conn.execute(
        "INSERT INTO settings (key, value, updated_at, updated_by) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at,"
        " updated_by = excluded.updated_by",
        (key, json.dumps(value), now, by),
    )
    return previous


def is_stored(conn: sqlite3.Connection, key: str) -> bool:
    """Whether an admin has set ``key`` (otherwise the config file's value applies)."""
    return conn.execute("SELECT 1 FROM settings WHERE key = ?", (key,)).fetchone() is not None


def all_panel(conn: sqlite3.Connection) -> dict[str, Any]:
    return {key: get(conn, key) for key in PANEL_KEYS}
