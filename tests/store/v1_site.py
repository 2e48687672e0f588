"""A database as Fieldpost 0.1 (store v1) left it: the schema of migrations 0001-0007 and rows written
the way its ingest, outbox, alarms and rules wrote them (a reading row with its decoded JSON, a JSON
copy of it in the outbox, synced or not). What migration 0008 must convert without losing anything."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from edge.codecs import lpp
from edge.store import connect, migrate, transaction
from edge.store.migrations import MIGRATIONS

V1 = [m for m in MIGRATIONS if m[0] < "0008"]
BRIDGE = "00000000000000b0"
NODES = [f"00000000000000{i:02x}" for i in range(0xA1, 0xA5)]
T0 = 1_700_000_000.0


@dataclass
class V1Site:
    path: Path
    readings: dict[tuple[str, int], dict] = field(default_factory=dict)  # (device, fcnt) -> what was stored
    synced: set[tuple[str, int]] = field(default_factory=set)
    alarm_reading: dict[int, tuple[str, int]] = field(default_factory=dict)  # alarm id -> its reading


def values_for(fcnt: int) -> list[tuple[int, str, float]]:
    return [
        (1, "temperature", round(18 + (fcnt % 40) / 10, 1)),
        (2, "humidity", 40 + fcnt % 20),
        (3, "voltage", 3.6),
    ]


def _store_v1(
    conn: sqlite3.Connection, site: V1Site, dev: str, fcnt: int, at: float, *, port: int = 1
) -> int:
    """One reading as v1's handle_uplink stored it (process.py at 0.1.0): row, decoded JSON, outbox copy."""
    raw = lpp.encode(values_for(fcnt)) if port == 1 else b'{"b":3.61,"u":12}'
    values = lpp.decode(raw) if port == 1 else [{"channel": 0, "name": "battery", "value": 3.61, "unit": "V"}]
    cur = conn.execute(
        "INSERT INTO readings (device_id, fcnt, port, received_at, rx_time, rssi, snr, bridge_id, raw, decoded,"
        " decode_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
        (dev, fcnt, port, at, int(at) - 1, -90 - fcnt % 10, 6.25, BRIDGE, raw, json.dumps(values)),
    )
    body = {
        "id": f"{dev}:{fcnt}",
        "device": dev,
        "fcnt": fcnt,
        "ts": at,
        "port": port,
        "values": values,
        "raw": raw.hex(),
        "rssi": -90 - fcnt % 10,
        "snr": 6.25,
        "bridge": BRIDGE,
    }
    conn.execute(
        "INSERT INTO outbox (msg_id, kind, priority, device_id, ref_id, body, created_at) VALUES (?, ?, 1, ?, ?, ?, ?)",
        (f"{dev}:{fcnt}", "reading" if port == 1 else "status", dev, cur.lastrowid, json.dumps(body), at),
    )
    site.readings[(dev, fcnt)] = {"raw": raw, "at": at, "port": port, "rssi": -90 - fcnt % 10, "snr": 6.25}
    return int(cur.lastrowid)


def make_v1_site(path: Path, *, per_device: int = 50) -> V1Site:
    """Four nodes and a bridge; per node ``per_device`` readings and a status, the older 60 % synced;
    an alarm and a rule state pointing at readings; a purged device whose unsynced copies only the
    outbox still holds (v1 kept them there)."""
    site = V1Site(path)
    conn = connect(path)
    migrate(conn, V1)
    with transaction(conn):
        for dev in [BRIDGE, *NODES, "00000000000000c9"]:
            conn.execute(
                "INSERT INTO devices (id, key, created_at, role, battery_v) VALUES (?, ?, ?, ?, 3.6)",
                (dev, bytes(16), T0, "bridge" if dev == BRIDGE else "node"),
            )
        ids = {}
        for i in range(per_device):
            for n, dev in enumerate(NODES):
                ids[(dev, i + 1)] = _store_v1(conn, site, dev, i + 1, T0 + i * 60 + n)
        for n, dev in enumerate(NODES):
            _store_v1(conn, site, dev, per_device + 1, T0 + per_device * 60 + n, port=3)
        # a downlink result: a reading row, no outbox copy (v1 sent its downlink status instead)
        conn.execute(
            "INSERT INTO readings (device_id, fcnt, port, received_at, raw, decoded) VALUES (?, ?, 2, ?, ?, NULL)",
            (NODES[0], per_device + 2, T0 + per_device * 60 + 30, b"\x00\x01\x00"),
        )
        site.readings[(NODES[0], per_device + 2)] = {
            "raw": b"\x00\x01\x00",
            "at": T0 + per_device * 60 + 30,
            "port": 2,
            "rssi": None,
            "snr": None,
        }
        # the cloud confirmed the oldest 60 % of every device's readings
        cutoff = T0 + per_device * 60 * 0.6
        conn.execute("UPDATE outbox SET synced_at = created_at + 5 WHERE created_at < ?", (cutoff,))
        site.synced = {k for k, v in site.readings.items() if v["at"] < cutoff and v["port"] != 2}
        conn.execute(
            "INSERT INTO sync_state (sink, last_success, bytes_today) VALUES ('mqtt', ?, 0)", (cutoff,)
        )
        # an alarm raised by reading (NODES[1], 7), and a pending rule state on (NODES[2], 9)
        alarm = conn.execute(
            "INSERT INTO alarms (rule, device_id, severity, state, message, reading_id, value, raised_at)"
            " VALUES ('warm', ?, 'warning', 'raised', 'too warm', ?, 21.0, ?)",
            (NODES[1], ids[(NODES[1], 7)], T0),
        ).lastrowid
        site.alarm_reading[alarm] = (NODES[1], 7)
        conn.execute(
            "INSERT INTO rule_state (rule, subject, device_id, pending_since, pending_reading_id, updated_at)"
            " VALUES ('warm', ?, ?, ?, ?, ?)",
            (f"{NODES[2]}/1", NODES[2], T0, ids[(NODES[2], 9)], T0),
        )
        # a device removed with --purge: its readings rows are gone, its unsynced cloud copies are not
        purged = "00000000000000c9"
        for fcnt in (1, 2):
            _store_v1(conn, site, purged, fcnt, T0 + per_device * 60 * 0.9 + fcnt)
        conn.execute("DELETE FROM readings WHERE device_id = ?", (purged,))
        conn.execute("DELETE FROM devices WHERE id = ?", (purged,))
    conn.close()
    return site
