"""The overview's sparklines: a device's first measure over the last 24 hours, hour by hour.

Kept in ``panel_hourly`` (count, sum, min, max per device, channel and hour) and brought up to
date incrementally: each call decodes only the readings past the device's cursor in
``panel_hourly_cursor``, inside one write transaction (so two page loads never count a reading
twice). A page load after a quiet minute decodes a handful of readings, not a day of them.
A reading stored below the cursor later (a re-provisioned counter) is not counted: the sparkline
is a glance, the device page's charts read the readings themselves.
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from edge.codecs import CodecRunner
from edge.radio import PORT_READINGS
from edge.store import readings
from edge.store.decode import decode_payload
from edge.store.numbers import Numbers

HOURS = 24
FOLD_LIMIT = 20_000  # readings decoded per device per call at most: a long-idle panel catches up over calls
KEEP_HOURS = 48


def fold(
    conn: sqlite3.Connection,
    codecs: CodecRunner,
    numbers: Numbers,
    device: sqlite3.Row,
    *,
    now: float,
) -> None:
    """Add the device's new readings to its hourly rows. Call inside a write transaction."""
    number = numbers.number(conn, device["id"])
    if number is None:
        return
    low, high = readings.device_bounds(number)
    row = conn.execute(
        "SELECT reading_id FROM panel_hourly_cursor WHERE device_id = ?", (device["id"],)
    ).fetchone()
    since_ms = round((now - HOURS * 3600) * 1000)
    if row is None or row[0] < low:
        first = readings.first_at_or_after(conn, number, since_ms)
        after = (first - 1) if first is not None else readings.last_id(conn, number) or low - 1
    else:
        after = row[0]
    rows = conn.execute(
        f"SELECT id, {readings.MEASURED_MS}, port, raw FROM readings WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
        (after, high, FOLD_LIMIT),
    ).fetchall()
    acc: dict[tuple[int, int], list[float]] = {}
    for rid, ms, port, raw in rows:
        after = rid
        if port != PORT_READINGS or ms < since_ms:
            continue
        values, _error = decode_payload(codecs, device["codec"], port, bytes(raw))
        hour = int(ms // 3_600_000)
        for v in values or ():
            value = v.get("value")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            a = acc.setdefault((int(v.get("channel") or 0), hour), [0, 0.0, value, value])
            a[0] += 1
            a[1] += value
            a[2] = min(a[2], value)
            a[3] = max(a[3], value)
    conn.executemany(
        "INSERT INTO panel_hourly (device_id, channel, hour, n, total, lo, hi) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (device_id, channel, hour) DO UPDATE SET n = n + excluded.n,"
        " total = total + excluded.total, lo = min(lo, excluded.lo), hi = max(hi, excluded.hi)",
        [(device["id"], ch, hour, *a) for (ch, hour), a in acc.items()],
    )
    conn.execute(
        "INSERT INTO panel_hourly_cursor (device_id, reading_id) VALUES (?, ?)"
        " ON CONFLICT (device_id) DO UPDATE SET reading_id = excluded.reading_id",
        (device["id"], after),
    )
    conn.execute(
        "DELETE FROM panel_hourly WHERE device_id = ? AND hour < ?",
        (device["id"], int(now // 3600) - KEEP_HOURS),
    )


def hourly(conn: sqlite3.Connection, device_id: str, *, now: float) -> dict[str, Any] | None:
    """The lowest channel's hourly averages over the last 24 h: {"channel", "hours", "avg", "lo", "hi"}."""
    first_hour = int(now // 3600) - HOURS + 1
    rows = conn.execute(
        "SELECT channel, hour, total / n, lo, hi FROM panel_hourly WHERE device_id = ? AND hour >= ?"
        " AND channel = (SELECT min(channel) FROM panel_hourly WHERE device_id = ? AND hour >= ?) ORDER BY hour",
        (device_id, first_hour, device_id, first_hour),
    ).fetchall()
    if not rows:
        return None
    return {
        "channel": rows[0][0],
        "hours": [r[1] for r in rows],
        "avg": [r[2] for r in rows],
        "lo": min(r[3] for r in rows),
        "hi": max(r[4] for r in rows),
        "first_hour": first_hour,
    }


def svg_points(line: dict[str, Any], *, width: int = 120, height: int = 28) -> list[str]:
    """Polyline point lists for an inline SVG, one per run of consecutive hours (a missing hour
    breaks the line)."""
    span = (line["hi"] - line["lo"]) or 1.0
    runs: list[list[str]] = []
    previous = None
    for hour, value in zip(line["hours"], line["avg"], strict=True):
        x = (hour - line["first_hour"]) / (HOURS - 1) * width
        y = height - 2 - (value - line["lo"]) / span * (height - 4)
        if previous is None or hour != previous + 1:
            runs.append([])
        runs[-1].append(f"{x:.1f},{y:.1f}")
        previous = hour
    return [" ".join(run) for run in runs]
