"""Small writers for the tables the rule engine reads (what ingest and the registry would store)."""

import json

from edge.store import transaction

NODE = "a1b2c3d4e5f60708"
OTHER = "0102030405060708"


def add_device(conn, device_id=NODE, *, interval_s=60, created_at=0.0, role="node"):
    with transaction(conn):
        conn.execute(
            "INSERT INTO devices (id, key, interval_s, created_at, role) VALUES (?, ?, ?, ?, ?)",
            (device_id, bytes(16), interval_s, created_at, role),
        )


def add_reading(conn, device_id, fcnt, at, **values):
    """Store one decoded reading like ingest does; returns its id."""
    decoded = [
        {"channel": i + 1, "name": name, "value": value, "unit": ""}
        for i, (name, value) in enumerate(values.items())
    ]
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO readings (device_id, fcnt, port, received_at, raw, decoded) VALUES (?, ?, 1, ?, ?, ?)",
            (device_id, fcnt, at, b"\x00", json.dumps(decoded)),
        )
        conn.execute("UPDATE devices SET last_seen = ? WHERE id = ?", (at, device_id))
    return cur.lastrowid


def alarm_rows(conn, rule=None):
    sql = "SELECT * FROM alarms" + (" WHERE rule = ?" if rule else "") + " ORDER BY id"
    return conn.execute(sql, (rule,) if rule else ()).fetchall()


def history_states(conn, alarm_id):
    return [
        r[0]
        for r in conn.execute("SELECT state FROM alarm_history WHERE alarm_id = ? ORDER BY id", (alarm_id,))
    ]


class FakeClock:
    """An injected clock the test moves by hand."""

    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now
