"""Retention on a real SQLite file: synced data first, the file shrinks, unsynced drops raise an alarm."""

from __future__ import annotations

import json
import os
import time

import pytest
from sync_helpers import add_devices, buffer_readings, unsynced

from edge import alarms
from edge.store import transaction
from edge.errors import ConfigError
from edge.store.retention import (
    RetentionPolicy,
    apply_retention,
    parse_retention_config,
    used_bytes,
)

N = 12_000


@pytest.fixture
def filled(db):
    """N readings (with their readings rows); the oldest 3/4 synced, the newest 1/4 not."""
    path, conn = db
    add_devices(conn)
    buffer_readings(conn, N, with_readings=True)
    with transaction(conn):
        conn.execute("UPDATE outbox SET synced_at = ? WHERE id <= ?", (time.time(), N * 3 // 4))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path, conn


def _ids(conn, where: str) -> list[int]:
    return [r[0] for r in conn.execute(f"SELECT id FROM outbox WHERE {where} ORDER BY id")]


def test_auto_vacuum_is_incremental(db):
    _, conn = db
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL


def test_size_limit_evicts_oldest_synced_first_and_the_file_shrinks(filled):
    path, conn = filled
    size_before = os.path.getsize(path)
    pending_before = _ids(conn, "synced_at IS NULL")
    # Room for the unsynced quarter and some synced data, not for everything.
    limit = int(used_bytes(conn) * 0.5)

    report = apply_retention(conn, RetentionPolicy(max_age_s=None, max_db_bytes=limit), now=time.time())

    assert _ids(conn, "synced_at IS NULL") == pending_before, (
        "no unsynced message may go while synced ones can"
    )
    synced_left = _ids(conn, "synced_at IS NOT NULL")
    assert report.synced_evicted > 0 and len(synced_left) < N * 3 // 4
    # The survivors are the NEWEST synced rows: eviction went oldest first.
    assert synced_left == list(range(N * 3 // 4 - len(synced_left) + 1, N * 3 // 4 + 1))
    assert report.unsynced_dropped == 0 and report.alarm_id is None
    assert used_bytes(conn) <= limit
    # Space was handed back to the file system, not just put on the free list.
    assert os.path.getsize(path) < size_before * 0.7
    assert report.bytes_after == os.path.getsize(path) < report.bytes_before
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert alarms.open_alarms(conn) == []


def test_tiny_limit_drops_unsynced_oldest_first_never_alarms_and_raises_an_alarm(
    filled,
):
    path, conn = filled
    # Three unsynced alarms (priority 0): they must survive whatever happens.
    alarm_ids = [
        alarms.raise_alarm(
            conn,
            rule="freezer",
            device_id=None,
            severity="warning",
            message=f"warm {i}",
            now=1.0,
        )
        for i in range(3)
    ]
    alarm_rows = _ids(conn, "kind = 'alarm'")
    pending = _ids(conn, "synced_at IS NULL AND kind = 'reading'")
    limit = 256 * 1024  # far smaller than the unsynced quarter needs

    report = apply_retention(conn, RetentionPolicy(max_age_s=None, max_db_bytes=limit), now=time.time())

    assert _ids(conn, "synced_at IS NOT NULL") == [], "every synced row goes before any unsynced one"
    assert (
        conn.execute(
            "SELECT count(*) FROM readings r WHERE NOT EXISTS (SELECT 1 FROM outbox o"
            " WHERE o.ref_id = r.id AND o.kind = 'reading')"
        ).fetchone()[0]
        == 0
    )
    left = _ids(conn, "synced_at IS NULL AND kind = 'reading'")
    assert 0 < report.unsynced_dropped == len(pending) - len(left)
    assert left == pending[len(pending) - len(left) :], "the oldest unsynced readings are dropped first"
    assert set(alarm_rows) <= set(_ids(conn, "kind = 'alarm'")), "unsynced alarms are never dropped"
    assert used_bytes(conn) <= limit

    # The alarm says how much was dropped, and is itself on its way to the cloud.
    alarm = alarms.get_alarm(conn, report.alarm_id)
    assert alarm.rule == "retention" and alarm.severity == "critical" and alarm.state == "raised"
    assert f"dropped {report.unsynced_dropped} unsynced messages" in alarm.message
    assert f"{report.unsynced_dropped_bytes} bytes" in alarm.message
    assert alarm.id not in alarm_ids
    out = conn.execute(
        "SELECT body, priority FROM outbox WHERE msg_id = ?",
        (f"alarm:{alarm.id}:raised",),
    ).fetchone()
    assert out is not None and out["priority"] == 0
    event = conn.execute(
        "SELECT message, detail FROM events WHERE kind = 'retention_unsynced_dropped'"
    ).fetchone()
    assert json.loads(event["detail"])["dropped_messages"] == report.unsynced_dropped
    assert os.path.getsize(path) <= limit * 1.05


def test_age_removes_old_synced_data_but_keeps_old_unsynced(db):
    _, conn = db
    add_devices(conn)
    old = time.time() - 100 * 86400
    buffer_readings(conn, 400, created_at=old, with_readings=True)
    with transaction(conn):
        conn.execute("UPDATE outbox SET synced_at = ? WHERE id <= 300", (old + 60,))
        conn.execute(
            "INSERT INTO events (at, kind, message) VALUES (?, 'link', 'old event')",
            (old,),
        )
        conn.execute(
            "INSERT INTO events (at, kind, message) VALUES (?, 'link', 'new event')",
            (time.time(),),
        )

    report = apply_retention(conn, RetentionPolicy(max_age_s=90 * 86400), now=time.time())

    assert _ids(conn, "synced_at IS NOT NULL") == []
    assert len(_ids(conn, "synced_at IS NULL")) == 100
    assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 100
    assert [r[0] for r in conn.execute("SELECT message FROM events")] == ["new event"]
    assert report.aged_out == 300 + 300 + 1
    assert unsynced(conn) == 100


def test_nothing_to_do_changes_nothing(filled):
    _, conn = filled
    before = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    report = apply_retention(conn, RetentionPolicy(max_age_s=86400, max_db_bytes=10**12), now=time.time())
    assert (report.aged_out, report.synced_evicted, report.unsynced_dropped) == (
        0,
        0,
        0,
    )
    assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == before


def test_retention_config_is_validated_with_the_key_named():
    policy = parse_retention_config({"max_age_days": 30, "max_db_bytes": 10_000_000, "low_water": 0.7})
    assert policy.max_age_s == 30 * 86400 and policy.max_db_bytes == 10_000_000 and policy.low_water == 0.7
    with pytest.raises(ConfigError, match=r"retention\.max_db_bytes"):
        parse_retention_config({"max_db_bytes": "big"})
    with pytest.raises(ConfigError, match=r"retention\.low_water"):
        parse_retention_config({"low_water": 2})
    with pytest.raises(ConfigError, match=r"retention\.max_size"):
        parse_retention_config({"max_size": 1})
