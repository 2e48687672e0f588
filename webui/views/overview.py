"""The overview page, its live fragment, and the Server-Sent Events stream every page listens to."""

from __future__ import annotations

import json
import logging
import sqlite3
import time

from flask import (
    Blueprint,
    Response,
    current_app,
    render_template,
    request,
    stream_with_context,
)

from edge.store import transaction
from webui import bridges, queries, sparklines
from webui.db import get_db, get_reader, now, open_db
from webui.edge_adapters import sync_status

bp = Blueprint("overview", __name__)
log = logging.getLogger("fieldpost.webui.overview")


def overview_context() -> dict:
    conn = get_db()
    t = now()
    cfg = current_app.config
    devices = queries.devices_overview(get_reader(), t, cfg["ONLINE_INTERVALS"])
    _add_sparklines(conn, devices, t)
    _bridge_states(conn, devices, t)
    return {
        "now": t,
        "devices": devices,
        "online": sum(1 for d in devices if d["online"]),
        "alarms": queries.alarms(conn, state="open", limit=20),
        "open_alarms": queries.open_alarm_count(conn),
        "quarantined": queries.quarantine_count(conn),
        "sync": sync_status(conn, t),
        "disk": queries.buffer_disk(cfg["DATABASE"]),
    }


def _bridge_states(conn, devices: list[dict], t: float) -> None:
    """A bridge sends no readings of its own: it is online while its link is up (or, in a panel
    without the daemon's links, while a node heard through it is), and "last heard" is when it
    last relayed a reading."""
    if not any(d["role"] == "bridge" for d in devices):
        return
    states = {
        b["id"]: b
        for b in bridges.overview(
            conn,
            current_app.extensions.get("fieldpost_links"),
            now=t,
            online_intervals=current_app.config["ONLINE_INTERVALS"],
        )
    }
    for d in devices:
        b = states.get(d["id"]) if d["role"] == "bridge" else None
        if b is not None:
            d["online"] = b["state"] in ("online", "relaying")
            d["bridge_state"] = b["state"]
            if b["last_relayed"] and (d["last_seen"] is None or b["last_relayed"] > d["last_seen"]):
                d["last_seen"] = b["last_relayed"]


def _add_sparklines(conn, devices: list[dict], t: float) -> None:
    """The last 24 h of each device's first measure, brought up to date incrementally."""
    ext = current_app.extensions
    rows = {row["id"]: row for row in conn.execute("SELECT id, codec FROM devices")}
    try:
        with transaction(conn):
            for d in devices:
                if d["id"] in rows:
                    sparklines.fold(
                        conn, ext["fieldpost_codecs"], ext["fieldpost_numbers"], rows[d["id"]], now=t
                    )
    except sqlite3.OperationalError as exc:  # busy or full: show what is there
        log.warning("event=sparkline_fold_failed error=%s", exc)
    for d in devices:
        line = sparklines.hourly(conn, d["id"], now=t)
        d["spark"] = sparklines.svg_points(line) if line else None


@bp.route("/")
def index():
    return render_template(
        "overview.html",
        cursor=page_cursor(get_db()),
        **overview_context(),
    )


@bp.route("/fragments/overview")
def fragment():
    return render_template("_overview_body.html", **overview_context())


def _cursor_text(cursor: dict[str, float]) -> str:
    return ",".join(f"{k}:{v!r}" for k, v in sorted(cursor.items()))


def page_cursor(conn) -> str:
    """The change cursor a full page is rendered at; its event stream sends what changed after it."""
    return _cursor_text(queries.change_cursor(conn))


def _parse_cursor(text: str | None) -> dict[str, float] | None:
    """A cursor from Last-Event-ID or ?cursor=; None when absent or malformed (then: start from now)."""
    if not text or len(text) > 300:
        return None
    out = {}
    try:
        for part in text.split(","):
            key, value = part.split(":", 1)
            out[key] = float(value)
    except ValueError:
        return None
    return out


@bp.route("/events")
def events():
    """Tell the page what changed: new readings (by device), downlinks, alarms, quarantine, sync.

    The stream polls the database for rows newer than its cursor, so it sees writes of the edge
    daemon in another process. It ends after SSE_MAX_S and the browser reconnects with the last
    event id, so no change is missed and no server thread is held forever.
    """
    cfg = current_app.config
    poll_s, max_s = cfg["SSE_POLL_S"], cfg["SSE_MAX_S"]
    start_cursor = _parse_cursor(request.headers.get("Last-Event-ID")) or _parse_cursor(
        request.args.get("cursor")
    )

    stopping = current_app.extensions["fieldpost_stopping"]

    def stream():
        conn = open_db()
        try:
            cursor = queries.change_cursor(conn)
            previous = dict(start_cursor) if start_cursor else dict(cursor)
            deadline = time.monotonic() + max_s
            yield "retry: 1000\n\n"
            while True:
                changed = {}
                if cursor["r"] != previous.get("r"):
                    changed["readings"] = queries.new_reading_devices(conn, float(previous.get("r", 0)))
                for key, topic in (
                    ("d", "downlinks"),
                    ("a", "alarms"),
                    ("q", "quarantine"),
                    ("s", "sync"),
                ):
                    if cursor[key] != previous.get(key):
                        changed[topic] = True
                if changed:
                    yield f"id: {_cursor_text(cursor)}\nevent: change\ndata: {json.dumps(changed)}\n\n"
                    previous = cursor
                else:
                    yield ": keep-alive\n\n"
                if time.monotonic() >= deadline:
                    return
                if stopping.wait(poll_s):  # the server is shutting down
                    return
                cursor = queries.change_cursor(conn)
        finally:
            conn.close()

    return Response(
        stream_with_context(stream()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
