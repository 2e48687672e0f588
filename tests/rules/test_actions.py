"""A rule with an action queues a downlink (through edge.downlinks) and respects its cooldown."""

import json

import pytest

from edge.rules import RuleEngine, save_rule
from edge.store import connect
from tests.rules.helpers import NODE, OTHER, FakeClock, add_device, add_reading, alarm_rows

T0 = 2_000_000.0
FAN_ON = {
    "name": "cool down",
    "kind": "threshold",
    "metric": "temperature",
    "above": 30,
    "hysteresis": 2,
    "action": {
        "command": "set_output",
        "args": {"output": 1, "value": 1},
        "device": OTHER,
        "cooldown_s": 600,
    },
}


@pytest.fixture
def engine(db_path):
    engine = RuleEngine(lambda: connect(db_path), FakeClock(T0))
    try:
        yield engine
    finally:
        engine.close()


def send(conn, engine, fcnt, at, temp):
    engine.on_readings([add_reading(conn, NODE, fcnt, at, temperature=temp)])


def rule_downlinks(conn):
    return conn.execute(
        "SELECT device_id, command, args, source, status, created_at FROM downlinks WHERE source = 'rule' ORDER BY id"
    ).fetchall()


def test_action_queues_a_downlink_and_respects_the_cooldown(conn, engine):
    add_device(conn, NODE)
    add_device(conn, OTHER)  # the node that drives the fan
    save_rule(conn, FAN_ON, actor="admin", now=T0)

    send(conn, engine, 0, T0, 31)  # raise -> downlink
    dls = rule_downlinks(conn)
    assert [(d["device_id"], d["command"], json.loads(d["args"]), d["status"]) for d in dls] == [
        (OTHER, "set_output", {"output": 1, "value": 1}, "queued")
    ]
    send(conn, engine, 1, T0 + 60, 27)  # clear
    send(conn, engine, 2, T0 + 120, 32)  # raised again 2 minutes later: inside the 10-minute cooldown
    assert [r["state"] for r in alarm_rows(conn)] == ["cleared", "raised"]
    assert len(rule_downlinks(conn)) == 1
    send(conn, engine, 3, T0 + 180, 27)
    send(conn, engine, 4, T0 + 600, 33)  # cooldown over
    assert [d["created_at"] for d in rule_downlinks(conn)] == [T0, T0 + 600]

    # each queued downlink reached the outbox (for the cloud) and the audit log names the rule
    statuses = conn.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'downlink_status'").fetchone()[0]
    assert statuses == 2
    audit = conn.execute("SELECT actor, action, target FROM audit_log WHERE actor LIKE 'rule:%'").fetchall()
    assert [tuple(a) for a in audit] == [("rule:cool down", "downlink.queue", OTHER)] * 2


def test_cooldown_survives_a_restart(db_path, conn, engine):
    add_device(conn, NODE)
    add_device(conn, OTHER)
    save_rule(conn, FAN_ON, actor="admin", now=T0)
    send(conn, engine, 0, T0, 31)
    send(conn, engine, 1, T0 + 60, 20)
    engine.close()
    again = RuleEngine(lambda: connect(db_path), FakeClock(T0))
    try:
        send(conn, again, 2, T0 + 120, 35)
    finally:
        again.close()
    assert len(rule_downlinks(conn)) == 1


def test_action_on_the_alarms_own_device_and_on_clear(conn, engine):
    add_device(conn, NODE)
    rule = {
        "name": "fan off",
        "kind": "threshold",
        "metric": "temperature",
        "above": 30,
        "action": {
            "command": "set_output",
            "args": {"output": 1, "value": 0},
            "on": "cleared",
            "cooldown_s": 0,
        },
    }
    save_rule(conn, rule, actor="admin", now=T0)
    send(conn, engine, 0, T0, 31)
    assert rule_downlinks(conn) == []
    send(conn, engine, 1, T0 + 60, 29)
    assert [(d["device_id"], json.loads(d["args"])["value"]) for d in rule_downlinks(conn)] == [(NODE, 0)]


def test_a_refused_downlink_is_recorded_and_the_alarm_still_raised(conn, engine):
    add_device(conn, NODE)  # OTHER is not registered: edge.downlinks refuses it
    save_rule(conn, FAN_ON, actor="admin", now=T0)
    send(conn, engine, 0, T0, 31)
    assert [r["state"] for r in alarm_rows(conn)] == ["raised"]
    assert rule_downlinks(conn) == []
    event = conn.execute("SELECT kind, device_id, message FROM events").fetchone()
    assert event["kind"] == "rule_action_failed" and event["device_id"] == OTHER
    assert "device_id" in event["message"]
