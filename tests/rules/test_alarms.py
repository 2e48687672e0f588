"""Alarm lifecycle: every change lands in alarm_history and in the outbox with priority 0."""

import json

import pytest

from edge import alarms
from edge.errors import ValidationError
from edge.store import transaction


def _outbox(conn):
    return conn.execute("SELECT msg_id, kind, priority, ref_id, body FROM outbox ORDER BY id").fetchall()


def test_raise_acknowledge_clear_records_each_change(conn):
    alarm_id = alarms.raise_alarm(
        conn,
        rule="freezer",
        device_id="00112233aabbccdd",
        severity="critical",
        message="too warm",
        value=9.5,
        now=100.0,
    )
    assert [a.id for a in alarms.open_alarms(conn)] == [alarm_id]
    assert alarms.acknowledge(conn, alarm_id, by="alice", now=110.0) is True
    assert alarms.acknowledge(conn, alarm_id, by="bob", now=111.0) is False  # already acknowledged
    assert alarms.clear(conn, alarm_id, now=120.0) is True
    assert alarms.clear(conn, alarm_id, now=121.0) is False
    assert alarms.open_alarms(conn) == []

    alarm = alarms.get_alarm(conn, alarm_id)
    assert (alarm.state, alarm.acknowledged_by, alarm.acknowledged_at, alarm.cleared_at) == (
        "cleared",
        "alice",
        110.0,
        120.0,
    )
    assert [(h.state, h.at, h.by) for h in alarms.history(conn, alarm_id)] == [
        ("raised", 100.0, None),
        ("acknowledged", 110.0, "alice"),
        ("cleared", 120.0, None),
    ]

    rows = _outbox(conn)
    assert [r["msg_id"] for r in rows] == [
        f"alarm:{alarm_id}:{s}" for s in ("raised", "acknowledged", "cleared")
    ]
    assert {(r["kind"], r["priority"], r["ref_id"]) for r in rows} == {("alarm", 0, alarm_id)}
    body = json.loads(rows[1]["body"])
    assert body == {
        "id": f"alarm:{alarm_id}:acknowledged",
        "alarm": alarm_id,
        "rule": "freezer",
        "device": "00112233aabbccdd",
        "severity": "critical",
        "state": "acknowledged",
        "message": "too warm",
        "ts": 110.0,
        "value": 9.5,
    }


def test_joins_the_callers_transaction(conn):
    with pytest.raises(RuntimeError), transaction(conn):
        alarms.raise_alarm(
            conn,
            rule="retention",
            device_id=None,
            severity="warning",
            message="dropped 5 unsynced readings",
            now=1.0,
        )
        raise RuntimeError("the caller's own write failed")
    assert conn.execute("SELECT COUNT(*) FROM alarms").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0


def test_bad_input_names_the_field(conn):
    with pytest.raises(ValidationError) as err:
        alarms.raise_alarm(conn, rule="r", device_id=None, severity="loud", message="m", now=1.0)
    assert err.value.field == "severity"
    with pytest.raises(ValidationError) as err:
        alarms.acknowledge(conn, 999, by="alice", now=1.0)
    assert err.value.field == "alarm_id"


class Recorder:
    def __init__(self):
        self.calls = []

    def alarm_raised(self, alarm):
        self.calls.append(("raised", alarm.id))

    def alarm_acknowledged(self, alarm):
        self.calls.append(("acknowledged", alarm.id))

    def alarm_cleared(self, alarm):
        self.calls.append(("cleared", alarm.id))


class Broken(Recorder):
    def alarm_raised(self, alarm):
        raise OSError("buzzer unplugged")


def test_feed_tells_listeners_about_changes_made_by_another_connection(db_path, conn):
    from edge.store import connect

    old = alarms.raise_alarm(conn, rule="old", device_id=None, severity="info", message="before", now=1.0)
    recorder = Recorder()
    feed = alarms.AlarmFeed(conn, [Broken(), recorder])
    other = connect(db_path)  # e.g. the panel process
    try:
        new = alarms.raise_alarm(other, rule="r", device_id=None, severity="warning", message="m", now=2.0)
        alarms.acknowledge(other, new, by="op", now=3.0)
        alarms.clear(other, old, now=4.0)
    finally:
        other.close()
    assert feed.poll() == 3
    assert recorder.calls == [("raised", new), ("acknowledged", new), ("cleared", old)]
    assert feed.poll() == 0
