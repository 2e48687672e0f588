"""Migration 0008: a v1 database (a reading row plus a JSON outbox copy of each) becomes the lean v2
store without losing a reading, an outbox state or an alarm; running it again changes nothing; a
kill -9 in the middle leaves the v1 database, which the next start migrates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from v1_site import BRIDGE, NODES, make_v1_site

from edge.store import (
    MIGRATIONS,
    applied_migrations,
    backlog,
    connect,
    cursor,
    migrate,
    readings,
    transaction,
)
from edge.store.query import ReadingReader
from tests.conftest import wait_until
from tests.storekit import unsynced_ids

# What a v1 database (0001..0007) still needs: the store v2 and every migration after it.
SINCE_V1 = [name for name, _ in MIGRATIONS if name >= "0008"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_reading_outbox_state_and_alarm_survives(tmp_path):
    site = make_v1_site(tmp_path / "v1.db")
    conn = connect(site.path)
    try:
        assert migrate(conn) == SINCE_V1
        reader = ReadingReader(conn)
        stored = {(r.device_id, r.fcnt): r for r in reader.all_readings()}
        # every reading, the purged device's unsynced cloud copies included, with what it carried
        assert set(stored) == set(site.readings)
        for key, was in site.readings.items():
            r = stored[key]
            assert (r.raw, r.port, r.received_at) == (was["raw"], was["port"], was["at"]), key
            assert (r.rssi, r.snr) == (was["rssi"], was["snr"]), key
            if was["port"] != 2 and key[0] in NODES:
                assert r.bridge_id == BRIDGE and r.rx_time == int(was["at"]) - 1
        # decoded from the raw payload exactly as v1 had stored it
        values = reader.values(stored[(NODES[0], 3)])
        assert values[0] == {"channel": 1, "name": "temperature", "value": 18.3, "unit": "°C"}
        # what was synced stays synced; everything else (ports 1 and 3) waits for the cloud
        pending = {
            (reader.reading(row).device_id, reader.reading(row).fcnt)
            for row in _rows(conn, unsynced_ids(conn))
        }
        waiting = {k for k, v in site.readings.items() if v["port"] != 2} - site.synced
        assert pending - {k for k in pending if site.readings[k]["port"] == 2} == waiting
        assert backlog.unsynced(conn) == len(waiting)
        # alarms and rule state point at the same readings under their new ids
        for alarm_id, (dev, fcnt) in site.alarm_reading.items():
            rid = conn.execute("SELECT reading_id FROM alarms WHERE id = ?", (alarm_id,)).fetchone()[0]
            assert rid == stored[(dev, fcnt)].id
        (pending_id,) = conn.execute("SELECT pending_reading_id FROM rule_state").fetchone()
        assert pending_id == stored[(NODES[2], 9)].id
        # the outbox keeps no reading copies; the columns the writer no longer fills are gone
        assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
        assert "battery_v" not in [r[1] for r in conn.execute("PRAGMA table_info(devices)")]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        reader.close()
    finally:
        conn.close()


def _rows(conn, ids):
    return [
        conn.execute(f"SELECT {readings.COLUMNS} FROM readings WHERE id = ?", (i,)).fetchone() for i in ids
    ]


def test_a_second_run_is_a_no_op(tmp_path):
    site = make_v1_site(tmp_path / "v1.db")
    conn = connect(site.path)
    try:
        migrate(conn)
        before = _snapshot(conn)
        assert migrate(conn) == []
        assert _snapshot(conn) == before
    finally:
        conn.close()


def _snapshot(conn):
    return (
        conn.execute("SELECT * FROM readings ORDER BY id").fetchall(),
        conn.execute("SELECT * FROM sync_cursor ORDER BY sink, device").fetchall(),
        conn.execute("SELECT * FROM device_numbers ORDER BY n").fetchall(),
        applied_migrations(conn),
    )


def test_the_cursor_continues_the_v1_sync_marks(tmp_path):
    site = make_v1_site(tmp_path / "v1.db")
    conn = connect(site.path)
    try:
        migrate(conn)
        marks = cursor.load(conn)
        for dev in NODES:
            n = conn.execute("SELECT n FROM device_numbers WHERE id = ?", (dev,)).fetchone()[0]
            synced = max(f for d, f in site.synced if d == dev)
            assert marks[n] == readings.reading_id(n, synced), dev
    finally:
        conn.close()


MIGRATE = """
import sys
from edge.store import connect, migrate
conn = connect(sys.argv[1])
print("migrating", flush=True)
migrate(conn)
print("done", flush=True)
"""


def test_a_kill_9_in_the_middle_leaves_v1_and_the_next_start_migrates(tmp_path):
    path = tmp_path / "big.db"
    site = make_v1_site(path, per_device=40_000)  # big enough that the conversion takes a while
    proc = subprocess.Popen(
        [sys.executable, "-c", MIGRATE, str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "migrating"
        wal = path.with_name(path.name + "-wal")
        # the new table is being written: the WAL grows by the converted pages
        wait_until(
            lambda: wal.exists() and wal.stat().st_size > 2_000_000,
            timeout=60,
            what="the conversion under way",
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    conn = connect(path)
    try:
        assert "0008_store_v2" not in applied_migrations(conn)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == len(site.readings) - 2
        started = time.monotonic()
        assert migrate(conn) == SINCE_V1
        took = time.monotonic() - started
        assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == len(site.readings)
        print(f"migrated {len(site.readings)} readings in {took:.1f} s")
    finally:
        conn.close()


def test_a_new_database_gets_the_v2_schema_directly_usable(tmp_path):
    conn = connect(tmp_path / "new.db")
    try:
        migrate(conn)
        with transaction(conn):
            n = conn.execute(
                "INSERT INTO device_numbers (id) VALUES ('00000000000000a1') RETURNING n"
            ).fetchone()[0]
            readings.insert_many(conn, [(readings.reading_id(n, 1), 1000, 1, -80, 29, None, None, b"\x01")])
        row = conn.execute("SELECT device_id, fcnt, received_at, snr FROM reading_list").fetchone()
        assert tuple(row) == ("00000000000000a1", 1, 1.0, 7.25)
    finally:
        conn.close()


def test_the_space_the_v1_tables_took_is_handed_back_by_retention(tmp_path):
    from edge.store.retention import RetentionPolicy, apply_retention

    site = make_v1_site(tmp_path / "v1.db", per_device=4000)
    size_v1 = site.path.stat().st_size
    conn = connect(site.path)
    try:
        migrate(conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] > 0  # the old tables' pages
        report = apply_retention(conn, RetentionPolicy(max_age_s=None), now=time.time())
        assert report.aged_out == report.synced_evicted == 0  # nothing to delete, only to reclaim
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
    finally:
        conn.close()
    assert site.path.stat().st_size < size_v1 / 3
