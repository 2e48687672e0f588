"""Retention on a real SQLite file: synced data first, the file shrinks, unsynced drops raise an alarm,
every delete a small transaction."""

from __future__ import annotations

import json
import os
import time

import pytest
from sync_helpers import DEVICES, add_devices, buffer_readings, mark_first_synced, new_db, unsynced

from edge import alarms
from edge.errors import ConfigError
from edge.store import transaction
from edge.store.retention import (
    RetentionPolicy,
    apply_retention,
    parse_retention_config,
    used_bytes,
)
from tests.storekit import unsynced_ids

N = 12_000


@pytest.fixture
def filled(db):
    """N readings over 8 devices, 1 ms apart; the oldest 3/4 synced, the newest 1/4 not."""
    path, conn = db
    add_devices(conn)
    ids = buffer_readings(conn, N)
    mark_first_synced(conn, ids, N * 3 // 4)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path, conn, ids


def _stored(conn) -> list[int]:
    """Ids of the stored readings, oldest received first."""
    return [r[0] for r in conn.execute("SELECT id FROM readings ORDER BY received_ms, id")]


def _synced(conn) -> list[int]:
    pending = set(unsynced_ids(conn))
    return [i for i in _stored(conn) if i not in pending]


def test_auto_vacuum_is_incremental(db):
    _, conn = db
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL


def test_size_limit_evicts_oldest_synced_first_and_the_file_shrinks(filled):
    path, conn, _ = filled
    size_before = os.path.getsize(path)
    pending_before = unsynced_ids(conn)
    synced_before = _synced(conn)
    # Room for the empty schema, the unsynced quarter and some synced data, not for everything
    # (half of what the readings take: the schema's own pages grow with every area's tables).
    empty = _empty_store_bytes(path.parent)
    limit = empty + (used_bytes(conn) - empty) // 2

    report = apply_retention(conn, RetentionPolicy(max_age_s=None, max_db_bytes=limit), now=time.time())

    assert unsynced_ids(conn) == pending_before, "no unsynced reading may go while synced ones can"
    synced_left = _synced(conn)
    assert report.synced_evicted > 0 and len(synced_left) < len(synced_before)
    # The survivors are the NEWEST synced readings, across all devices: eviction went oldest first.
    assert synced_left == synced_before[len(synced_before) - len(synced_left) :]
    assert report.unsynced_dropped == 0 and report.alarm_id is None
    assert used_bytes(conn) <= limit
    # In many small transactions, not one long one.
    assert report.transactions > 5
    # Space was handed back to the file system, not just put on the free list.
    assert os.path.getsize(path) < size_before * 0.7
    assert report.bytes_after == os.path.getsize(path) < report.bytes_before
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert alarms.open_alarms(conn) == []


def test_tiny_limit_drops_unsynced_oldest_first_never_alarms_and_raises_an_alarm(filled):
    path, conn, _ = filled
    # Three unsynced alarms (priority 0): they must survive whatever happens.
    alarm_ids = [
        alarms.raise_alarm(
            conn, rule="freezer", device_id=None, severity="warning", message=f"warm {i}", now=1.0
        )
        for i in range(3)
    ]
    alarm_rows = [r[0] for r in conn.execute("SELECT id FROM outbox WHERE kind = 'alarm'")]
    pending = sorted(unsynced_ids(conn), key=lambda i: _received(conn, i))
    # Far smaller than the unsynced quarter needs: the empty schema plus room for a third of it.
    limit = _empty_store_bytes(path.parent) + _readings_bytes(conn) // 4 // 3

    report = apply_retention(conn, RetentionPolicy(max_age_s=None, max_db_bytes=limit), now=time.time())

    assert _synced(conn) == [], "every synced reading goes before any unsynced one"
    left = sorted(unsynced_ids(conn), key=lambda i: _received(conn, i))
    assert 0 < report.unsynced_dropped == len(pending) - len(left)
    assert left == pending[len(pending) - len(left) :], "the oldest unsynced readings are dropped first"
    kept = {r[0] for r in conn.execute("SELECT id FROM outbox WHERE kind = 'alarm'")}
    assert set(alarm_rows) <= kept, "unsynced alarms are never dropped"
    assert used_bytes(conn) <= limit

    # The alarm says how much was dropped, and is itself on its way to the cloud.
    alarm = alarms.get_alarm(conn, report.alarm_id)
    assert alarm.rule == "retention" and alarm.severity == "critical" and alarm.state == "raised"
    assert f"dropped {report.unsynced_dropped} unsynced readings and messages" in alarm.message
    assert f"{report.unsynced_dropped_bytes} bytes" in alarm.message
    assert alarm.id not in alarm_ids
    out = conn.execute(
        "SELECT body, priority FROM outbox WHERE msg_id = ?", (f"alarm:{alarm.id}:raised",)
    ).fetchone()
    assert out is not None and out["priority"] == 0
    event = conn.execute(
        "SELECT message, detail FROM events WHERE kind = 'retention_unsynced_dropped'"
    ).fetchone()
    assert json.loads(event["detail"])["dropped_messages"] == report.unsynced_dropped
    assert os.path.getsize(path) <= limit * 1.05


def _empty_store_bytes(where) -> int:
    conn = new_db(where / "empty.db")
    try:
        return used_bytes(conn)
    finally:
        conn.close()


def _readings_bytes(conn) -> int:
    return conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name = 'readings'").fetchone()[0]


def _received(conn, rid: int) -> int:
    return conn.execute("SELECT received_ms FROM readings WHERE id = ?", (rid,)).fetchone()[0]


def test_age_removes_old_synced_data_but_keeps_old_unsynced(db):
    _, conn = db
    add_devices(conn)
    old = time.time() - 100 * 86400
    ids = buffer_readings(conn, 400, created_at=old)
    mark_first_synced(conn, ids, 300)
    buffer_readings(conn, 16, start_fcnt=1000)  # young
    with transaction(conn):
        conn.execute("INSERT INTO events (at, kind, message) VALUES (?, 'link', 'old event')", (old,))
        conn.execute("INSERT INTO events (at, kind, message) VALUES (?, 'link', 'new event')", (time.time(),))
        conn.execute(
            "INSERT INTO outbox (msg_id, kind, body, created_at, synced_at) VALUES ('e1', 'event', '{}', ?, ?)",
            (old, old + 1),
        )

    report = apply_retention(conn, RetentionPolicy(max_age_s=90 * 86400), now=time.time())

    assert unsynced(conn) == 100 + 16  # old but unsynced: kept
    assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 100 + 16
    assert [r[0] for r in conn.execute("SELECT message FROM events")] == ["new event"]
    assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    assert report.aged_out == 300 + 1 + 1


def test_downlink_results_age_out_whether_or_not_a_cloud_ever_synced(db):
    from tests.storekit import put_readings

    _, conn = db
    old = time.time() - 100 * 86400
    put_readings(conn, DEVICES[0], [1, 2], received_at=old)  # sensor readings: the cloud gets them
    put_readings(conn, DEVICES[0], [3], received_at=old, port=2, raw=b"\x00\x01\x00")  # a downlink result
    report = apply_retention(conn, RetentionPolicy(max_age_s=90 * 86400), now=time.time())
    assert report.aged_out == 1 and unsynced(conn) == 2


def test_nothing_to_do_changes_nothing(filled):
    _, conn, _ = filled
    before = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
    report = apply_retention(conn, RetentionPolicy(max_age_s=86400, max_db_bytes=10**12), now=time.time())
    assert (report.aged_out, report.synced_evicted, report.unsynced_dropped) == (0, 0, 0)
    assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == before


def test_a_pass_told_to_stop_ends_early_and_the_next_one_resumes(filled):
    path, conn, _ = filled
    empty = _empty_store_bytes(path.parent)
    limit = empty + (used_bytes(conn) - empty) // 2
    steps = []

    def stop() -> bool:
        steps.append(1)
        return len(steps) > 3

    policy = RetentionPolicy(max_age_s=None, max_db_bytes=limit, chunk_rows=100)
    first = apply_retention(conn, policy, now=time.time(), stop=stop)
    assert 0 < first.synced_evicted < N // 2 and used_bytes(conn) > limit
    second = apply_retention(conn, policy, now=time.time())
    assert second.synced_evicted > 0 and used_bytes(conn) <= limit


def test_retention_config_is_validated_with_the_key_named():
    policy = parse_retention_config({"max_age_days": 30, "max_db_bytes": 10_000_000, "low_water": 0.7})
    assert policy.max_age_s == 30 * 86400 and policy.max_db_bytes == 10_000_000 and policy.low_water == 0.7
    with pytest.raises(ConfigError, match=r"retention\.max_db_bytes"):
        parse_retention_config({"max_db_bytes": "big"})
    with pytest.raises(ConfigError, match=r"retention\.low_water"):
        parse_retention_config({"low_water": 2})
    with pytest.raises(ConfigError, match=r"retention\.max_size"):
        parse_retention_config({"max_size": 1})
    with pytest.raises(ConfigError, match=r"retention\.chunk_target_ms"):
        parse_retention_config({"chunk_target_ms": 0})
