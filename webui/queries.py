"""What the pages and the API read. Every filter is a bound parameter; every list is bounded."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from typing import Any

from edge.radio import is_device_id

WINDOWS = {"24h": 86400, "7d": 7 * 86400}
CHART_POINTS = 288  # buckets per chart: 5 min over 24 h, 35 min over 7 days
ALARM_STATES = ("raised", "acknowledged", "cleared")


def decoded_values(text: str | None) -> list[dict[str, Any]]:
    if not text:
        return []
    try:
        values = json.loads(text)
    except ValueError:
        return []
    return [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []


def reading_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "device_id": row["device_id"],
        "fcnt": row["fcnt"],
        "port": row["port"],
        "received_at": row["received_at"],
        "rssi": row["rssi"],
        "snr": row["snr"],
        "bridge_id": row["bridge_id"],
        "raw": bytes(row["raw"]).hex(),
        "values": decoded_values(row["decoded"]),
        "decode_error": row["decode_error"],
    }


def latest_reading(conn: sqlite3.Connection, device_id: str) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT * FROM readings WHERE device_id = ? ORDER BY received_at DESC, id DESC LIMIT 1",
        (device_id,),
    ).fetchone()


READINGS_PORT = 1  # docs/radio.md: port 1 carries sensor readings; 2 downlink results, 3 module status


def latest_decoded_reading(conn: sqlite3.Connection, device_id: str, *, scan: int = 50) -> sqlite3.Row | None:
    """The newest sensor reading with values.

    Downlink results (port 2) and module status (port 3) decode to values too, but an
    operator asking "what does it measure" wants the sensors; those ports are shown only
    for a module that has never sent a sensor reading.
    """
    row = conn.execute(
        "SELECT * FROM readings WHERE device_id = ? AND port = ? AND decoded IS NOT NULL"
        " ORDER BY received_at DESC, id DESC LIMIT 1",
        (device_id, READINGS_PORT),
    ).fetchone()
    if row is not None:
        return row
    for row in conn.execute(
        "SELECT * FROM readings WHERE device_id = ? ORDER BY received_at DESC, id DESC LIMIT ?",
        (device_id, scan),
    ):
        if row["decoded"]:
            return row
    return None


def is_online(device: sqlite3.Row | dict, now: float, intervals: int) -> bool:
    last_seen = device["last_seen"]
    return last_seen is not None and now - last_seen <= intervals * max(device["interval_s"], 10)


def devices_overview(conn: sqlite3.Connection, now: float, online_intervals: int) -> list[dict[str, Any]]:
    out = []
    for device in conn.execute("SELECT * FROM devices ORDER BY name, id").fetchall():
        latest = latest_decoded_reading(conn, device["id"])
        d = device_dict(device)
        d["online"] = is_online(device, now, online_intervals)
        d["latest"] = reading_dict(latest) if latest is not None else None
        out.append(d)
    return out


def device_dict(device: sqlite3.Row) -> dict[str, Any]:
    """A device as the panel and the API show it: never its key."""
    d = dict(device)
    d.pop("key", None)
    status = d.get("status")
    try:
        d["status"] = json.loads(status) if status else None
    except ValueError:
        d["status"] = {"raw": status}
    return d


def get_device(conn: sqlite3.Connection, device_id: str) -> sqlite3.Row | None:
    if not is_device_id(device_id):
        return None
    return conn.execute("SELECT * FROM devices WHERE id = ?", (device_id,)).fetchone()


def raw_frames(conn: sqlite3.Connection, device_id: str, limit: int = 30) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM readings WHERE device_id = ? ORDER BY received_at DESC, id DESC LIMIT ?",
        (device_id, limit),
    ).fetchall()


def payload_lengths_since(conn: sqlite3.Connection, device_id: str, since: float) -> list[int]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT length(raw) FROM readings WHERE device_id = ? AND received_at >= ?",
            (device_id, since),
        )
    ]


def readings(
    conn: sqlite3.Connection,
    device_id: str,
    *,
    start: float,
    end: float,
    limit: int,
    after_id: int = 0,
) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM readings WHERE device_id = ? AND received_at >= ? AND received_at < ? AND id > ?"
        " ORDER BY received_at, id LIMIT ?",
        (device_id, start, end, after_id, limit),
    ).fetchall()


def iter_readings(
    conn: sqlite3.Connection,
    device_id: str,
    *,
    start: float,
    end: float,
    chunk: int = 2000,
) -> Iterator[sqlite3.Row]:
    """Every reading of a device in [start, end), in time order, fetched in chunks (for streaming)."""
    last_time, last_id = start, -1
    while True:
        rows = conn.execute(
            "SELECT * FROM readings WHERE device_id = ? AND received_at < ?"
            " AND (received_at > ? OR (received_at = ? AND id > ?)) ORDER BY received_at, id LIMIT ?",
            (device_id, end, last_time, last_time, last_id, chunk),
        ).fetchall()
        yield from rows
        if len(rows) < chunk:
            return
        last_time, last_id = rows[-1]["received_at"], rows[-1]["id"]


def series(conn: sqlite3.Connection, device_id: str, *, window_s: int, now: float) -> dict[str, Any]:
    """Numeric values averaged into CHART_POINTS time buckets, one series per (channel, name)."""
    bucket = max(1, window_s // CHART_POINTS)
    start = now - window_s
    rows = conn.execute(
        "SELECT CAST(r.received_at / :bucket AS INTEGER) * :bucket AS t,"
        " json_extract(j.value, '$.channel') AS channel, json_extract(j.value, '$.name') AS name,"
        " max(json_extract(j.value, '$.unit')) AS unit, avg(json_extract(j.value, '$.value')) AS value"
        " FROM readings AS r, json_each(r.decoded) AS j"
        " WHERE r.device_id = :dev AND r.received_at >= :start AND r.received_at <= :now"
        " AND r.decoded IS NOT NULL AND json_valid(r.decoded)"
        " AND json_type(j.value, '$.value') IN ('integer', 'real')"
        " GROUP BY t, channel, name ORDER BY t",
        {"bucket": bucket, "dev": device_id, "start": start, "now": now},
    ).fetchall()
    times = sorted({row["t"] for row in rows})
    index = {t: i for i, t in enumerate(times)}
    by_key: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = (row["channel"], row["name"])
        entry = by_key.setdefault(
            key,
            {
                "channel": row["channel"],
                "name": row["name"],
                "unit": row["unit"] or "",
                "values": [None] * len(times),
            },
        )
        entry["values"][index[row["t"]]] = row["value"]
    return {
        "window_s": window_s,
        "bucket_s": bucket,
        "times": times,
        "series": sorted(by_key.values(), key=lambda s: (s["channel"] or 0, s["name"] or "")),
    }


def downlinks_for(conn: sqlite3.Connection, device_id: str, limit: int = 20) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM downlinks WHERE device_id = ? ORDER BY id DESC LIMIT ?",
        (device_id, limit),
    ).fetchall()
    return [downlink_dict(row) for row in rows]


def downlink_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    try:
        d["args"] = json.loads(d["args"])
    except ValueError:
        d["args"] = {}
    return d


def alarms(
    conn: sqlite3.Connection,
    *,
    state: str | None = None,
    device_id: str | None = None,
    limit: int = 200,
) -> list[sqlite3.Row]:
    """Alarms newest first; ``state`` 'open' means raised or acknowledged."""
    sql, params = "SELECT * FROM alarms WHERE 1 = 1", []
    if state == "open":
        sql += " AND state != 'cleared'"
    elif state:
        sql += " AND state = ?"
        params.append(state)
    if device_id:
        sql += " AND device_id = ?"
        params.append(device_id)
    sql += " ORDER BY CASE state WHEN 'raised' THEN 0 WHEN 'acknowledged' THEN 1 ELSE 2 END, raised_at DESC, id DESC"
    sql += " LIMIT ?"
    params.append(limit)
    return conn.execute(sql, params).fetchall()


def open_alarm_count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM alarms WHERE state != 'cleared'").fetchone()[0]


def quarantine(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM quarantine ORDER BY last_seen DESC LIMIT 500").fetchall()


def quarantine_count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]


def buffer_disk(db_path: str) -> dict[str, Any]:
    """Bytes the buffer uses on disk (database, WAL, shared memory) and what the file system has left."""
    used = {}
    for suffix in ("", "-wal", "-shm"):
        try:
            used[suffix or "db"] = os.path.getsize(db_path + suffix)
        except OSError:
            used[suffix or "db"] = 0
    usage = shutil.disk_usage(os.path.dirname(os.path.abspath(db_path)))
    total = sum(used.values())
    return {
        "db_bytes": used["db"],
        "wal_bytes": used["-wal"],
        "buffer_bytes": total,
        "disk_total": usage.total,
        "disk_free": usage.free,
        "disk_used_fraction": (usage.total - usage.free) / usage.total if usage.total else 0.0,
    }


def change_cursor(conn: sqlite3.Connection) -> dict[str, float]:
    """Markers that move whenever something the live view shows changes (see views/overview.events)."""
    # One statement: the event stream runs this every SSE_POLL_S for every open page.
    r, d, a, q, s = conn.execute(
        "SELECT"
        " (SELECT coalesce(max(id), 0) FROM readings),"
        " (SELECT coalesce(max(status_at), 0) + count(*) FROM downlinks),"
        " (SELECT coalesce(max(id), 0) FROM alarm_history),"
        " (SELECT coalesce(max(last_seen), 0) + count(*) FROM quarantine),"
        " (SELECT coalesce(max(last_success), 0) + coalesce(max(last_error_at), 0) FROM sync_state)"
    ).fetchone()
    return {"r": r, "d": d, "a": a, "q": q, "s": s}


def new_reading_devices(conn: sqlite3.Connection, after_id: int, limit: int = 5000) -> tuple[list[str], int]:
    rows = conn.execute(
        "SELECT id, device_id FROM readings WHERE id > ? ORDER BY id LIMIT ?",
        (after_id, limit),
    ).fetchall()
    if not rows:
        return [], after_id
    return sorted({row["device_id"] for row in rows}), rows[-1]["id"]
