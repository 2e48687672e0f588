"""What the pages and the API read. Every filter is a bound parameter; every list is bounded."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from typing import Any

from edge.radio import is_device_id
from edge.store import readings as store_readings
from edge.store.decode import battery_of
from edge.store.query import ReadingReader, reading_dict
from edge.store.readings import Reading

WINDOWS = {"24h": 86400, "7d": 7 * 86400}
CHART_POINTS = 288  # buckets per chart: 5 min over 24 h, 35 min over 7 days
ALARM_STATES = ("raised", "acknowledged", "cleared")


READINGS_PORT = 1  # docs/radio.md: port 1 carries sensor readings; 2 downlink results, 3 module status


def latest_decoded_reading(reader: ReadingReader, device_id: str, *, scan: int = 50) -> Reading | None:
    """The newest sensor reading with values.

    Downlink results (port 2) and module status (port 3) decode to values too, but an
    operator asking "what does it measure" wants the sensors; those ports are shown only
    for a module that has never sent a sensor reading.
    """
    for ports in ((READINGS_PORT,), None):
        found = _newest_with_values(reader, device_id, ports, scan)
        if found is not None:
            return found
    return None


def _newest_with_values(
    reader: ReadingReader, device_id: str, ports: tuple[int, ...] | None, scan: int
) -> Reading | None:
    # The newest reading nearly always decodes: more rows are read (and turned into readings,
    # most of the overview's time) only when it does not.
    for limit in (1, scan):
        for reading in reader.newest(device_id, limit=limit, ports=ports):
            if reader.values(reading):
                return reading
    return None


def latest_values(reader: ReadingReader, device_id: str) -> dict[str, Any] | None:
    """The newest sensor reading with values, as the panel and the API show it (reading_dict)."""
    latest = latest_decoded_reading(reader, device_id)
    return None if latest is None else reading_dict(reader, latest)


def battery_v(reader: ReadingReader, device_id: str, latest: dict[str, Any] | None) -> float | None:
    """The battery voltage to show: from the latest values when they carry it, else from the
    newest readings that do (a module status reports it too)."""
    volts = battery_of(latest["values"]) if latest else None
    return volts if volts is not None else reader.battery(device_id)


def is_online(device: sqlite3.Row | dict, now: float, intervals: int) -> bool:
    last_seen = device["last_seen"]
    return last_seen is not None and now - last_seen <= intervals * max(device["interval_s"], 10)


def devices_overview(reader: ReadingReader, now: float, online_intervals: int) -> list[dict[str, Any]]:
    out = []
    for device in reader.conn.execute("SELECT * FROM devices ORDER BY name, id").fetchall():
        d = device_dict(device)
        d["online"] = is_online(device, now, online_intervals)
        d["latest"] = latest_values(reader, device["id"])
        d["battery_v"] = battery_v(reader, device["id"], d["latest"])
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


def raw_frames(reader: ReadingReader, device_id: str, limit: int = 30) -> list[Reading]:
    return reader.newest(device_id, limit=limit)


def payload_lengths_since(reader: ReadingReader, device_id: str, since: float) -> list[int]:
    return [len(r.raw) for r in reader.device_readings(device_id, start=since)]


def readings(
    reader: ReadingReader,
    device_id: str,
    *,
    start: float,
    end: float,
    limit: int,
    after_id: int = 0,
) -> list[Reading]:
    """A page of a device's readings measured in [start, end), oldest first (as
    edge.store.readings.iter_device: measured never after received, in fcnt order).

    ``after_id`` (the last id of the previous page) continues a page: the next page is read
    from that key on, not found by skipping the pages before it, so paging through a long
    range costs the same per page.
    """
    conn = reader.conn
    number = reader.numbers.number(conn, device_id)
    if number is None:
        return []
    start_ms, end_ms = round(start * 1000), round(end * 1000)
    first = store_readings.first_at_or_after(conn, number, start_ms)
    if first is None:
        return []
    low, high = max(first, after_id + 1), store_readings.device_bounds(number)[1]
    out: list[Reading] = []
    while len(out) < limit:
        want = limit - len(out)
        rows = store_readings.select_rows(conn, low, high, limit=want)
        for row in rows:
            measured_ms = store_readings.measured_ms(row[1], row[8])
            if measured_ms >= end_ms:
                return out
            if measured_ms >= start_ms:  # a clock stepped back can put one before the start
                out.append(reader.reading(row))
        if len(rows) < want:
            return out
        low = rows[-1][0] + 1
    return out


def iter_readings(reader: ReadingReader, device_id: str, *, start: float, end: float) -> Iterator[Reading]:
    """Every reading of a device in [start, end), in time order, fetched in chunks (for streaming)."""
    return reader.device_readings(device_id, start=start, end=end)


def series(reader: ReadingReader, device_id: str, *, window_s: int, now: float) -> dict[str, Any]:
    """Numeric values averaged into CHART_POINTS time buckets, one series per (channel, name)."""
    bucket = max(1, window_s // CHART_POINTS)
    sums: dict[tuple[Any, Any], dict[int, list[float]]] = {}
    units: dict[tuple[Any, Any], str] = {}
    for reading in reader.device_readings(device_id, start=now - window_s, end=now + 0.001):
        t = int(reading.measured_at // bucket) * bucket
        for v in reader.values(reading):
            value = v.get("value")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            key = (v.get("channel"), v.get("name"))
            acc = sums.setdefault(key, {}).setdefault(t, [0.0, 0])
            acc[0] += value
            acc[1] += 1
            units[key] = max(units.get(key, ""), v.get("unit") or "")
    times = sorted({t for by_time in sums.values() for t in by_time})
    index = {t: i for i, t in enumerate(times)}
    out = []
    for key, by_time in sums.items():
        values: list[float | None] = [None] * len(times)
        for t, (total, count) in by_time.items():
            values[index[t]] = total / count
        out.append({"channel": key[0], "name": key[1], "unit": units[key], "values": values})
    return {
        "window_s": window_s,
        "bucket_s": bucket,
        "times": times,
        "series": sorted(out, key=lambda s: (s["channel"] or 0, s["name"] or "")),
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
    sql, params = "SELECT * FROM alarms WHERE 1 = 1", list[Any]()
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
    # One statement: the event stream runs this every SSE_POLL_S for every open page. New readings
    # move their device's last_seen (the writer sets it in the commit that stores them).
    r, d, a, q, s = conn.execute(
        "SELECT"
        " (SELECT coalesce(max(last_seen), 0) FROM devices),"
        " (SELECT coalesce(max(status_at), 0) + count(*) FROM downlinks),"
        " (SELECT coalesce(max(id), 0) FROM alarm_history),"
        " (SELECT coalesce(max(last_seen), 0) + count(*) FROM quarantine),"
        " (SELECT coalesce(max(last_success), 0) + coalesce(max(last_error_at), 0) FROM sync_state)"
    ).fetchone()
    return {"r": r, "d": d, "a": a, "q": q, "s": s}


def new_reading_devices(conn: sqlite3.Connection, after: float, limit: int = 5000) -> list[str]:
    """The devices that stored readings since ``after`` (a change cursor's "r")."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT id FROM devices WHERE last_seen > ? ORDER BY id LIMIT ?", (after, limit)
        ).fetchall()
    ]
