"""The edge functions the panel calls, in one place.

Downlinks, alarms, the registry and the outbox come from the edge's own modules so the panel writes
exactly what the daemon and the CLI write. Sync status comes from edge.sync.state when the sync area
provides it; until then a plain SQL reading of the fixed schema (outbox, sync_state) stands in.
"""

from __future__ import annotations

import importlib
import importlib.util
import sqlite3
from typing import Any

from edge import alarms, downlinks, registry

__all__ = ["alarms", "downlinks", "registry", "sync_status"]


def _sync_state_module():
    try:
        if importlib.util.find_spec("edge.sync.state") is None:
            return None
    except ModuleNotFoundError:
        return None
    module = importlib.import_module("edge.sync.state")
    return module if hasattr(module, "sync_status") else None


def sync_status(conn: sqlite3.Connection, now: float) -> dict[str, Any]:
    """Backlog count and age, last success and error, bytes today; always with these keys."""
    module = _sync_state_module()
    status = dict(module.sync_status(conn, now)) if module is not None else _sync_status_sql(conn, now)
    # edge.sync.state keys sinks by name and calls the age backlog_age_s; the panel shows a list.
    if isinstance(status.get("sinks"), dict):
        status["sinks"] = [{"sink": name, **values} for name, values in sorted(status["sinks"].items())]
    if "oldest_age_s" not in status and "backlog_age_s" in status:
        status["oldest_age_s"] = status["backlog_age_s"]
    fallback = None
    for key in (
        "backlog",
        "oldest_age_s",
        "last_success",
        "last_error",
        "last_error_at",
        "bytes_today",
        "sinks",
    ):
        if key not in status:
            fallback = fallback or _sync_status_sql(conn, now)
            status[key] = fallback[key]
    return status


def _sync_status_sql(conn: sqlite3.Connection, now: float) -> dict[str, Any]:
    backlog, oldest = conn.execute(
        "SELECT count(*), min(created_at) FROM outbox WHERE synced_at IS NULL"
    ).fetchone()
    sinks = [dict(row) for row in conn.execute("SELECT * FROM sync_state ORDER BY sink")]
    successes = [s["last_success"] for s in sinks if s["last_success"] is not None]
    errors = sorted(
        (s for s in sinks if s["last_error_at"] is not None),
        key=lambda s: s["last_error_at"],
    )
    return {
        "backlog": backlog,
        "oldest_age_s": None if oldest is None else max(0.0, now - oldest),
        "last_success": max(successes) if successes else None,
        "last_error": errors[-1]["last_error"] if errors else None,
        "last_error_at": errors[-1]["last_error_at"] if errors else None,
        "bytes_today": sum(s["bytes_today"] or 0 for s in sinks),
        "sinks": sinks,
    }
