"""Scheduled backups on a real SQLite file while readings keep being committed: checked copies, the
record of each, pruning to N, and the alarms when the directory is missing, full, read-only or late."""

from __future__ import annotations

import sqlite3

import pytest

from edge import alarms
from edge.backup import records
from edge.backup.config import BackupConfig, parse_backup
from edge.backup.copy import make_backup, verify
from edge.backup.schedule import KindHistory, due, overdue, to_prune
from edge.backup.service import FAILED, OVERDUE, BackupService, _metric_families
from edge.errors import BackupError, ConfigError
from edge.store import connect
from tests.conftest import wait_until
from tests.storekit import put_readings

DAY = 86_400.0
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now


def open_alarm_rules(db_path):
    conn = connect(db_path)
    try:
        return sorted(a.rule for a in alarms.open_alarms(conn))
    finally:
        conn.close()


def backup_rows(db_path):
    conn = connect(db_path)
    try:
        return records.listing(conn)
    finally:
        conn.close()


def stored(db_path):
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
    finally:
        conn.close()


def test_daily_and_weekly_backups_under_ingest_load_are_checked_recorded_and_pruned(
    db_path, tmp_path, ingest_load
):
    target = tmp_path / "usb"
    target.mkdir()
    clock = Clock()
    service = BackupService(db_path, BackupConfig(str(target), keep_daily=3, keep_weekly=2), clock=clock)
    load = ingest_load()
    wait_until(lambda: load.committed >= 500, what="the daemon ingesting")
    acked_while_backing_up = 0
    for day in range(15):
        clock.now = T0 + day * DAY
        before = load.committed  # ACKed, so committed before the backup began
        service.run_due()
        acked_while_backing_up += load.committed - before
        after = stored(db_path)
        newest = backup_rows(db_path)[0]
        assert newest.status == "ok", newest.error
        # the copy is of one instant during the backup: every reading committed before it began
        assert before <= newest.row_counts["readings"] <= after
    load.stop()
    assert acked_while_backing_up > 0  # ingest went on during the backups

    rows = backup_rows(db_path)
    kept = {kind: [r for r in rows if r.kind == kind and r.status == "ok"] for kind in ("daily", "weekly")}
    assert len(kept["daily"]) == 3 and len(kept["weekly"]) == 2
    assert [r.kind for r in rows if r.status == "pruned"].count("daily") == 12
    assert [r.kind for r in rows if r.status == "pruned"].count("weekly") == 1  # days 0, 7, 14: 3 made
    files = sorted(p.name for p in target.iterdir())
    assert files == sorted(r.path.rsplit("/", 1)[1] for r in kept["daily"] + kept["weekly"])
    for r in kept["daily"] + kept["weekly"]:
        assert verify(target / r.path.rsplit("/", 1)[1], r.row_counts) == r.row_counts
    assert open_alarm_rules(db_path) == []
    [made] = _metric_families(service)
    assert {s.labels["outcome"]: s.value for s in made.samples} == {"ok": 18, "failed": 0, "pruned": 13}


def test_a_backup_of_a_large_store_is_of_one_instant_while_the_daemon_commits(db_path, tmp_path, ingest_load):
    conn = connect(db_path)
    put_readings(conn, "0011223344556677", range(60_000))  # many backup steps, ingest between them
    conn.close()
    load = ingest_load()
    wait_until(lambda: load.committed >= 200, what="the daemon ingesting")
    for n in range(3):
        before = load.committed
        result = make_backup(db_path, tmp_path / f"b{n}.db")  # raises if the copy's rows differ
        assert result.row_counts["readings"] >= 60_000 + before
    assert load.committed > before


@pytest.mark.parametrize("trouble", ["missing", "read-only", "full"])
def test_a_bad_directory_fails_clearly_raises_the_alarm_and_loses_nothing(
    db_path, tmp_path, mount_tmpfs, trouble
):
    conn = connect(db_path)
    put_readings(conn, "a1b2c3d4e5f60708", range(3000), raw=bytes(40))
    conn.close()
    if trouble == "missing":
        target = tmp_path / "not-mounted"
    elif trouble == "read-only":
        target = mount_tmpfs("ro", read_only=True)
    else:
        target = mount_tmpfs("small", size="64k")  # the database is larger than that
    clock = Clock()
    service = BackupService(db_path, BackupConfig(str(target), weekly=False), clock=clock)
    service.run_due()

    [row] = backup_rows(db_path)
    assert row.status == "failed" and str(target) in row.error
    expected = {"missing": "does not exist", "read-only": "read-only", "full": "full"}[trouble]
    assert expected in row.error
    assert open_alarm_rules(db_path) == [FAILED]
    assert list(target.iterdir()) == [] if target.exists() else True  # no half-written file left
    assert stored(db_path) == 3000  # the database only read
    # a retry waits retry_s; once the directory is fine, the next good backup clears the alarm
    assert service.run_due() == []
    good = tmp_path / "good"
    good.mkdir()
    service.config = BackupConfig(str(good), weekly=False)
    clock.now += service.config.retry_s
    assert service.run_due() == ["daily"]
    assert backup_rows(db_path)[0].status == "ok"
    assert open_alarm_rules(db_path) == []


def test_overdue_raises_the_alarm_and_a_good_backup_clears_it(db_path, tmp_path):
    target = tmp_path / "usb"
    target.mkdir()
    clock = Clock()
    config = BackupConfig(str(target), weekly=False, grace_s=3600, retry_s=10 * DAY)
    service = BackupService(db_path, config, clock=clock)
    service.run_due()
    target.rename(tmp_path / "stick-elsewhere")  # the stick is pulled
    clock.now = T0 + DAY + 10
    service.run_due()  # fails: backup_failed; not yet overdue (within the grace)
    assert open_alarm_rules(db_path) == [FAILED]
    clock.now = T0 + DAY + 3601
    service.run_due()  # no retry yet (retry_s), but a day and an hour without a good backup
    assert open_alarm_rules(db_path) == [FAILED, OVERDUE]
    target.mkdir()
    clock.now = T0 + 12 * DAY
    assert service.run_due() == ["daily"]
    assert open_alarm_rules(db_path) == []


def test_the_service_runs_on_its_own_thread(db_path, tmp_path):
    target = tmp_path / "usb"
    target.mkdir()
    service = BackupService(db_path, BackupConfig(str(target), check_every_s=0.05)).start()
    try:
        wait_until(lambda: len(list(target.iterdir())) == 2, what="the daily and weekly backups")
        assert service.alive
    finally:
        service.stop()
    assert not service.alive


def test_a_backup_never_overwrites_a_file(db_path, tmp_path):
    existing = tmp_path / "there.db"
    existing.write_bytes(b"keep me")
    with pytest.raises(BackupError, match="exists already") as err:
        make_backup(db_path, existing)
    assert err.value.path == str(existing) and existing.read_bytes() == b"keep me"


def test_schedule_rules():
    config = BackupConfig("/b", retry_s=900)
    assert due("daily", KindHistory(), config, T0)
    assert not due("daily", KindHistory(T0, T0), config, T0 + DAY - 1)
    assert due("daily", KindHistory(T0, T0), config, T0 + DAY)
    assert not due("daily", KindHistory(T0, T0 + DAY), config, T0 + DAY + 899)  # failed at T0 + DAY
    assert due("daily", KindHistory(T0, T0 + DAY), config, T0 + DAY + 900)
    assert not due("weekly", KindHistory(T0, T0), config, T0 + 6 * DAY)
    assert not overdue("daily", KindHistory(), config, T0 + DAY + 3600, since=T0)
    assert overdue("daily", KindHistory(), config, T0 + DAY + 3601, since=T0)
    assert overdue("daily", KindHistory(T0, T0), config, T0 + DAY + 3601, since=0)
    assert to_prune([(1, 10.0), (2, 30.0), (3, 20.0), (4, 5.0)], keep=2) == [1, 4]


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"directory": "relative/dir"}, "backup.directory"),
        ({"directory": "/b", "keep_daily": 0}, "backup.keep_daily"),
        ({"directory": "/b", "daily": "yes"}, "backup.daily"),
        ({"directory": "/b", "grace_s": -1}, "backup.grace_s"),
        ({"directory": "/b", "every": "day"}, "backup.every"),
    ],
)
def test_bad_backup_settings_name_the_key(table, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_backup(table)
