"""The edge functions the panel calls, in one place.

Downlinks, alarms, the registry, the outbox and the sync status come from the edge's own modules so
the panel reads and writes exactly what the daemon and the CLI do.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from edge import alarms, downlinks, registry
from edge.sync import state

__all__ = ["alarms", "downlinks", "registry", "sync_status"]


def sync_status(conn: sqlite3.Connection, now: float, *, readings_backlog: Any = None) -> dict[str, Any]:
    """edge.sync.state.sync_status, shaped for the panel: sinks as a sorted list, age as oldest_age_s."""
    status = dict(state.sync_status(conn, now, readings_backlog=readings_backlog))
    status["sinks"] = [{"sink": name, **values} for name, values in sorted(status["sinks"].items())]
    status["oldest_age_s"] = status["backlog_age_s"]
    return status
