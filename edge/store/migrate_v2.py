"""Migration 0008: the v1 store (reading rows + a JSON outbox copy of each) to the lean v2 store.

What changes, and how nothing is lost:

- ``device_numbers`` gives every device id (registered, a reading's device or bridge, an
  outbox message's device) a small integer.
- ``readings`` is rebuilt keyed by ``number << 32 | fcnt`` with the receive time in integer
  milliseconds, SNR in quarter dB, the bridge as a number and the bridge clock as its skew
  from the edge clock; the decoded JSON is dropped (derived from ``raw`` when read).
- An unsynced outbox copy of a reading whose row is gone (a device removed with ``--purge``
  keeps the cloud's copy) becomes a reading again, rebuilt from the JSON body.
- The cloud's "synced" marks become the ``cloud`` sync cursor: per device, up to just below its
  first unsynced reading. A synced reading after an unsynced one of the same device is sent
  again (the cloud deduplicates by message id): at least once, never lost.
- Reading references (``alarms.reading_id``, ``rule_state.pending_reading_id``) follow the new ids.
- The outbox keeps only what is not a reading (alarms, downlink status, events).

It runs in the migration's one transaction: a kill -9 leaves the v1 database, and the next
start runs it again.
"""

from __future__ import annotations

import json
import sqlite3

from edge.store.connection import run_script
from edge.store.readings import FCNT_BITS, FCNT_MASK

SCHEMA = f"""
CREATE TABLE device_numbers (
    n INTEGER PRIMARY KEY,                            -- the number readings store
    id TEXT NOT NULL UNIQUE                           -- 16 hex digits; never deleted, never renumbered
);
CREATE TABLE readings_v2 (
    id INTEGER PRIMARY KEY,                           -- device number << {FCNT_BITS} | fcnt: message id and dedupe key
    received_ms INTEGER NOT NULL,                     -- edge clock, Unix milliseconds
    port INTEGER NOT NULL,
    rssi INTEGER,                                     -- dBm
    snr_q INTEGER,                                    -- SNR in quarter dB, as on the serial link
    bridge INTEGER,                                   -- device_numbers.n of the bridge that heard it
    skew_s INTEGER,                                   -- bridge receive time minus edge time, s; NULL: none sent
    raw BLOB NOT NULL                                 -- the application payload, as received
);
CREATE TABLE sync_cursor (
    sink TEXT NOT NULL,                               -- 'cloud' (edge.store.cursor)
    device INTEGER NOT NULL,                          -- device_numbers.n
    synced_to INTEGER NOT NULL,                       -- readings.id: the sink has every reading up to it
    PRIMARY KEY (device, sink)                        -- by device first: the writer looks a device up
) WITHOUT ROWID;
"""

VIEW = f"""
-- For people and ad-hoc SQL: the readings with their ids spelled out. The code reads the table
-- by id ranges (edge.store.readings), which this view cannot use.
CREATE VIEW reading_list AS
SELECT r.id AS id, d.id AS device_id, r.id & {FCNT_MASK} AS fcnt, r.received_ms / 1000.0 AS received_at,
       r.port AS port, r.rssi AS rssi, r.snr_q / 4.0 AS snr, b.id AS bridge_id, r.raw AS raw
FROM readings AS r
JOIN device_numbers AS d ON d.n = r.id >> {FCNT_BITS}
LEFT JOIN device_numbers AS b ON b.n = r.bridge;
"""


def upgrade(conn: sqlite3.Connection) -> None:
    run_script(conn, SCHEMA)
    _number_devices(conn)
    conn.execute("CREATE TEMP TABLE v1_reading_ids (old INTEGER PRIMARY KEY, new INTEGER NOT NULL)")
    conn.execute(
        f"INSERT INTO temp.v1_reading_ids SELECT r.id, (d.n << {FCNT_BITS}) | r.fcnt"
        " FROM readings AS r JOIN device_numbers AS d ON d.id = r.device_id"
    )
    conn.execute(
        "INSERT INTO readings_v2 (id, received_ms, port, rssi, snr_q, bridge, skew_s, raw)"
        " SELECT m.new, CAST(round(r.received_at * 1000) AS INTEGER), r.port, r.rssi,"
        " CAST(round(r.snr * 4) AS INTEGER), b.n,"
        " CASE WHEN r.rx_time IS NULL OR r.rx_time = 0 THEN NULL"
        "      ELSE CAST(r.rx_time AS INTEGER) - CAST(r.received_at AS INTEGER) END,"
        " r.raw"
        " FROM readings AS r JOIN temp.v1_reading_ids AS m ON m.old = r.id"
        " LEFT JOIN device_numbers AS b ON b.id = r.bridge_id ORDER BY m.new"
    )
    _restore_orphans(conn)
    _cursor_from_outbox(conn)
    for table, column in (("alarms", "reading_id"), ("rule_state", "pending_reading_id")):
        conn.execute(
            f"UPDATE {table} SET {column} = (SELECT new FROM temp.v1_reading_ids WHERE old = {column})"
            f" WHERE {column} IS NOT NULL"
        )
    conn.execute("DELETE FROM outbox WHERE kind IN ('reading', 'status')")
    conn.execute("DROP TABLE temp.v1_reading_ids")
    conn.execute("DROP TABLE readings")
    conn.execute("ALTER TABLE readings_v2 RENAME TO readings")
    # Derived from the newest reading when shown (edge.store.decode.battery_of); a column the
    # writer would have to decode every reading for.
    conn.execute("ALTER TABLE devices DROP COLUMN battery_v")
    run_script(conn, VIEW)


def _number_devices(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO device_numbers (id) SELECT id FROM devices ORDER BY created_at, id")
    for sql in (
        "SELECT DISTINCT device_id FROM readings",
        "SELECT DISTINCT bridge_id FROM readings WHERE bridge_id IS NOT NULL",
        "SELECT DISTINCT device_id FROM outbox WHERE kind IN ('reading', 'status') AND device_id IS NOT NULL",
        "SELECT DISTINCT json_extract(body, '$.bridge') FROM outbox"
        " WHERE kind IN ('reading', 'status') AND json_valid(body) AND json_extract(body, '$.bridge') IS NOT NULL",
    ):
        conn.execute(f"INSERT OR IGNORE INTO device_numbers (id) {sql}")


def _restore_orphans(conn: sqlite3.Connection) -> None:
    """Unsynced outbox copies whose reading row is gone become readings again (from the body)."""
    rows = conn.execute(
        "SELECT o.device_id, o.body, o.created_at FROM outbox AS o"
        " WHERE o.kind IN ('reading', 'status') AND o.synced_at IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM temp.v1_reading_ids AS m WHERE m.old = o.ref_id)"
    ).fetchall()
    numbers = {i: n for n, i in conn.execute("SELECT n, id FROM device_numbers")}
    restored = []
    for device_id, body, created_at in rows:
        try:
            doc = json.loads(body)
            number = numbers[device_id]
            fcnt = int(doc["fcnt"])
            ts = float(doc.get("ts") or created_at)
            snr = doc.get("snr")
            restored.append(
                (
                    (number << FCNT_BITS) | (fcnt & FCNT_MASK),
                    round(ts * 1000),
                    int(doc["port"]),
                    doc.get("rssi"),
                    None if snr is None else round(float(snr) * 4),
                    numbers.get(doc.get("bridge")),
                    None,
                    bytes.fromhex(doc.get("raw") or ""),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue  # a body that was never a reading document: nothing to rebuild
    conn.executemany(
        "INSERT OR IGNORE INTO readings_v2 (id, received_ms, port, rssi, snr_q, bridge, skew_s, raw)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        restored,
    )


def _cursor_from_outbox(conn: sqlite3.Connection) -> None:
    """Per device: synced up to just below its first unsynced reading (or its last reading)."""
    unsynced = conn.execute(
        "SELECT d.n, min(coalesce(m.new, (d.n << ?) | (json_extract(o.body, '$.fcnt') & ?)))"
        " FROM outbox AS o JOIN device_numbers AS d ON d.id = o.device_id"
        " LEFT JOIN temp.v1_reading_ids AS m ON m.old = o.ref_id"
        " WHERE o.kind IN ('reading', 'status') AND o.synced_at IS NULL GROUP BY d.n",
        (FCNT_BITS, FCNT_MASK),
    ).fetchall()
    first_unsynced = {int(n): int(k) for n, k in unsynced if k is not None}
    # Was anything ever synced? A site that never had a cloud keeps everything unsynced.
    ever = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE kind IN ('reading', 'status') AND synced_at IS NOT NULL)"
        " OR EXISTS (SELECT 1 FROM sync_state WHERE last_success IS NOT NULL)"
    ).fetchone()[0]
    if not ever:
        return
    marks = []
    for (n,) in conn.execute("SELECT n FROM device_numbers").fetchall():
        low, high = n << FCNT_BITS, (n << FCNT_BITS) | FCNT_MASK
        if n in first_unsynced:
            mark = first_unsynced[n] - 1
        else:
            last = conn.execute(
                "SELECT max(id) FROM readings_v2 WHERE id BETWEEN ? AND ?", (low, high)
            ).fetchone()[0]
            if last is None:
                continue
            mark = last
        if mark >= low:
            marks.append(("cloud", n, mark))
    conn.executemany("INSERT INTO sync_cursor (sink, device, synced_to) VALUES (?, ?, ?)", marks)
