"""Cloud sync status: backlog and its age, last success and error, bytes used today, per sink."""

from __future__ import annotations

import json

from flask import Blueprint, render_template

from edge.store import cursor
from webui import backlog_history
from webui.db import get_db, now
from webui.edge_adapters import sync_status
from webui.views.overview import page_cursor

bp = Blueprint("sync", __name__)


@bp.route("/sync")
def index():
    conn = get_db()
    t = now()
    by_kind = [
        dict(row)
        for row in conn.execute(
            "SELECT kind, count(*) AS n, min(created_at) AS oldest FROM outbox WHERE synced_at IS NULL"
            " GROUP BY kind ORDER BY kind"
        ).fetchall()
    ]
    waiting = cursor.backlog(conn)  # readings wait past the sync cursor, not in the outbox
    if waiting.readings:
        oldest = None if waiting.oldest_ms is None else waiting.oldest_ms / 1000
        by_kind.append({"kind": "reading", "n": waiting.readings, "oldest": oldest})
        by_kind.sort(key=lambda row: row["kind"])
    history = backlog_history.history(conn, since=t - 7 * 86400)
    return render_template(
        "sync.html",
        history=json.dumps(history),
        history_points=len(history["times"]),
        sync=sync_status(conn, t, readings_backlog=waiting),  # counted once: it reads every unsynced range
        by_kind=by_kind,
        now=t,
        cursor=page_cursor(conn),
    )
