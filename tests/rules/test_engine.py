"""The rule engine on readings stored in a real SQLite file, with an injected clock."""

import json

import pytest

from edge import alarms
from edge.codecs import lpp
from edge.ingest import CommittedReading
from edge.rules import LinkStatus, RuleEngine, SiteStatus, save_rule, set_enabled
from edge.store import connect, transaction
from edge.store.readings import reading_id
from tests.rules.helpers import (
    NODE,
    OTHER,
    FakeClock,
    add_device,
    add_raw_reading,
    add_reading,
    alarm_rows,
    decoded,
    history_states,
)
from tests.storekit import mark_synced, put_readings

T0 = 1_000_000.0
FREEZER = {
    "name": "freezer warm",
    "kind": "threshold",
    "metric": "temperature",
    "above": 8,
    "hysteresis": 1,
    "for_s": 600,
    "severity": "critical",
}


@pytest.fixture
def clock():
    return FakeClock(T0)


@pytest.fixture
def engine(db_path, clock):
    engine = RuleEngine(lambda: connect(db_path), clock)
    try:
        yield engine
    finally:
        engine.close()


def feed(conn, engine, temps, *, start_fcnt=0, start=T0, step=60.0, device=NODE):
    """One reading a minute, each handed to the engine right after its commit (as ingest does)."""
    ids = []
    for i, temp in enumerate(temps):
        rid = add_reading(conn, device, start_fcnt + i, start + i * step, temperature=temp)
        engine.on_readings([rid])
        ids.append(rid)
    return ids


def test_threshold_raises_after_duration_once_and_clears_past_hysteresis(conn, engine):
    add_device(conn)
    save_rule(conn, FREEZER, actor="admin", now=T0)
    # above 8 from the 4th reading (t0+180); 10 minutes later is t0+780, the 14th reading.
    ids = feed(conn, engine, [5, 6, 7, 8.5, 9, 9.5, 10, 10, 10.5, 11, 11, 11.5, 12])
    assert alarm_rows(conn) == [], "raised before the condition held for 10 minutes"
    ids += feed(conn, engine, [12.5, 13, 14, 15], start_fcnt=13, start=T0 + 13 * 60)
    rows = alarm_rows(conn)
    assert len(rows) == 1, "raised more than once while the value kept rising"
    alarm = rows[0]
    assert alarm["raised_at"] == T0 + 13 * 60
    assert alarm["reading_id"] == ids[13] and alarm["value"] == 12.5
    assert (alarm["rule"], alarm["device_id"], alarm["severity"]) == ("freezer warm", NODE, "critical")
    assert "temperature 12.5 above 8" in alarm["message"]

    assert alarms.acknowledge(conn, alarm["id"], by="operator", now=T0 + 1100)
    # 7.5 is under 8 but inside the 1-degree hysteresis band: still open, no second alarm.
    feed(conn, engine, [7.5, 8.2, 7.1], start_fcnt=17, start=T0 + 17 * 60)
    assert [r["state"] for r in alarm_rows(conn)] == ["acknowledged"]
    feed(conn, engine, [6.9], start_fcnt=20, start=T0 + 20 * 60)
    rows = alarm_rows(conn)
    assert [r["state"] for r in rows] == ["cleared"] and rows[0]["cleared_at"] == T0 + 20 * 60
    assert history_states(conn, alarm["id"]) == ["raised", "acknowledged", "cleared"]
    outbox = [r[0] for r in conn.execute("SELECT msg_id FROM outbox WHERE kind = 'alarm' ORDER BY id")]
    assert outbox == [f"alarm:{alarm['id']}:{s}" for s in ("raised", "acknowledged", "cleared")]
    assert engine.stats["errors"] == 0


def test_a_dip_below_the_limit_restarts_the_duration(conn, engine):
    add_device(conn)
    save_rule(conn, FREEZER, actor="admin", now=T0)
    feed(conn, engine, [9] * 9 + [7.9] + [9] * 10)  # dip at minute 9; 9 more minutes above
    assert alarm_rows(conn) == []
    feed(conn, engine, [9], start_fcnt=20, start=T0 + 20 * 60)  # minute 20: 10 minutes since minute 10
    assert len(alarm_rows(conn)) == 1


def test_pending_duration_survives_a_restart(db_path, conn, clock):
    add_device(conn)
    save_rule(conn, FREEZER, actor="admin", now=T0)
    first = RuleEngine(lambda: connect(db_path), clock)
    feed(conn, first, [9, 9, 9, 9, 9, 9])  # above since t0, 5 minutes so far
    first.close()
    second = RuleEngine(lambda: connect(db_path), clock)
    try:
        feed(conn, second, [9, 9, 9, 9], start_fcnt=6, start=T0 + 360)
        assert alarm_rows(conn) == []
        feed(conn, second, [9], start_fcnt=10, start=T0 + 600)
        rows = alarm_rows(conn)
        assert len(rows) == 1 and rows[0]["raised_at"] == T0 + 600  # not t0+360+600
        # and the open alarm is remembered across a restart too: no second alarm.
        second.close()
        third = RuleEngine(lambda: connect(db_path), clock)
        feed(conn, third, [10, 11], start_fcnt=11, start=T0 + 660)
        third.close()
        assert len(alarm_rows(conn)) == 1
    finally:
        second.close()


def test_committed_readings_are_evaluated_from_memory(conn, engine):
    """Ingest hands the engine the readings it has just stored: their values come from the raw
    payload in hand, decoded with the codec the device had, not from reading the rows back."""
    add_device(conn)
    save_rule(conn, dict(FREEZER, for_s=0), actor="admin", now=T0)

    def committed(fcnt, codec):
        # Not in the database: only memory can tell the engine about it.
        return CommittedReading(
            id=reading_id(7, fcnt),
            device_id=NODE,
            fcnt=fcnt,
            port=1,
            received_at=T0 + fcnt,
            raw=lpp.encode([(1, "temperature", 9.5)]),
            rssi=-80,
            snr=7.0,
            bridge_id=None,
            codec=codec,
        )

    engine.on_readings([committed(0, "raw")])  # the raw codec gives no values: nothing to compare
    assert alarm_rows(conn) == []
    engine.on_readings([committed(1, "lpp")])
    assert [(r["device_id"], r["value"], r["reading_id"]) for r in alarm_rows(conn)] == [
        (NODE, 9.5, reading_id(7, 1))
    ]
    assert engine.stats["readings"] == 2 and engine.stats["errors"] == 0


def test_timer_raises_when_the_duration_runs_out_between_readings(conn, engine, clock):
    add_device(conn, interval_s=3600)
    save_rule(conn, FREEZER, actor="admin", now=T0)
    rid = add_reading(conn, NODE, 0, T0, temperature=9.0)
    engine.on_readings([{"id": rid}])
    engine.tick(T0 + 599)
    assert alarm_rows(conn) == []
    clock.now = T0 + 600
    engine.tick()
    rows = alarm_rows(conn)
    assert len(rows) == 1 and rows[0]["reading_id"] == rid and rows[0]["raised_at"] == T0 + 600
    engine.tick(T0 + 700)
    assert len(alarm_rows(conn)) == 1


def test_silent_module_after_n_intervals_and_back(conn, engine, clock):
    add_device(conn, NODE, interval_s=60, created_at=T0)
    add_device(conn, OTHER, interval_s=600, created_at=T0)
    save_rule(conn, {"name": "silent", "kind": "silent", "intervals": 3}, actor="admin", now=T0)
    add_reading(conn, NODE, 0, T0, temperature=5)
    add_reading(conn, OTHER, 0, T0, temperature=5)
    for t in (T0 + 60, T0 + 120, T0 + 180):  # exactly 3 intervals is not yet "longer than"
        clock.now = t
        engine.tick()
    assert alarm_rows(conn) == []
    clock.now = T0 + 181
    engine.tick()
    rows = alarm_rows(conn)
    assert [(r["rule"], r["device_id"]) for r in rows] == [("silent", NODE)]  # OTHER has 30 minutes
    assert "no reading from a1b2c3d4e5f60708 for 181s (limit 180s)" in rows[0]["message"]
    clock.now = T0 + 400
    engine.tick()
    assert len(alarm_rows(conn)) == 1
    rid = add_reading(conn, NODE, 1, T0 + 401, temperature=5)
    engine.on_readings([rid])  # cleared by the reading itself, not at the next tick
    assert [r["state"] for r in alarm_rows(conn)] == ["cleared"]


def test_rate_of_change(conn, engine):
    add_device(conn)
    rule = {
        "name": "heating fast",
        "kind": "rate",
        "metric": "temperature",
        "max_rate": 2,
        "direction": "rise",
    }
    save_rule(conn, rule, actor="admin", now=T0)
    feed(conn, engine, [5, 6, 7, 6, 3])  # +1/min, +1/min, -1, -3: falls do not count with direction=rise
    assert alarm_rows(conn) == []
    feed(conn, engine, [6.5, 7], start_fcnt=5, start=T0 + 300)  # +3.5/min raises, +0.5/min clears
    rows = alarm_rows(conn)
    assert len(rows) == 1 and rows[0]["value"] == pytest.approx(3.5) and rows[0]["state"] == "cleared"


def test_battery_low_from_readings_and_from_device_status(conn, engine):
    add_device(conn, NODE)
    add_device(conn, OTHER)
    save_rule(
        conn, {"name": "battery", "kind": "battery", "below": 3.3, "hysteresis": 0.1}, actor="a", now=T0
    )
    rid = add_reading(conn, NODE, 0, T0, battery=3.25)
    engine.on_readings([rid])
    # OTHER only reported its battery in a module status (port 3), never handed to on_readings.
    add_raw_reading(conn, OTHER, 0, T0, json.dumps({"b": 3.1, "u": 600}).encode(), port=3)
    engine.tick(T0 + 10)
    assert sorted((r["device_id"], r["value"]) for r in alarm_rows(conn)) == [(OTHER, 3.1), (NODE, 3.25)]
    rid = add_reading(conn, NODE, 1, T0 + 60, battery=3.35)  # not past 3.3 + 0.1: stays open
    engine.on_readings([rid])
    rid = add_reading(conn, NODE, 2, T0 + 120, voltage=3.45)  # the LPP codec's name for it
    engine.on_readings([rid])
    assert {r["device_id"]: r["state"] for r in alarm_rows(conn)} == {NODE: "cleared", OTHER: "raised"}


def test_link_cloud_and_buffer_rules(db_path, conn, clock):
    links = {"/dev/ttyUSB0": LinkStatus("/dev/ttyUSB0", up=True)}
    status = SiteStatus(links=lambda: list(links.values()), buffer_capacity=10)
    engine = RuleEngine(lambda: connect(db_path), clock, status=status)
    try:
        for rule in (
            {"name": "link", "kind": "link_down", "for_s": 300},
            {"name": "cloud", "kind": "cloud_down", "for_s": 600, "severity": "info"},
            {"name": "buffer", "kind": "buffer", "above": 50, "hysteresis": 20},
        ):
            save_rule(conn, rule, actor="admin", now=T0)
        engine.tick(T0)
        assert alarm_rows(conn) == []
        # the link went down at t0 (the link manager knows when); the cloud sink starts failing at t0+100
        links["/dev/ttyUSB0"] = LinkStatus("/dev/ttyUSB0", up=False, since=T0)
        with transaction(conn):
            conn.execute(
                "INSERT INTO sync_state (sink, last_success, last_error_at) VALUES ('mqtt', ?, ?)",
                (T0 - 50, T0 + 100),
            )
            for i in range(6):  # 6 unsynced of capacity 10: 60 %
                conn.execute(
                    "INSERT INTO outbox (msg_id, kind, body, created_at) VALUES (?, 'event', '{}', ?)",
                    (f"e{i}", T0),
                )
        engine.tick(T0 + 100)  # starts the cloud timer, raises buffer
        assert [r["rule"] for r in alarm_rows(conn)] == ["buffer"]
        engine.tick(T0 + 300)
        assert [r["rule"] for r in alarm_rows(conn)] == ["buffer", "link"]
        engine.tick(T0 + 699)
        assert len(alarm_rows(conn)) == 2
        engine.tick(T0 + 700)
        assert [r["rule"] for r in alarm_rows(conn)] == ["buffer", "link", "cloud"]
        link_alarm = alarm_rows(conn, "link")[0]
        assert "/dev/ttyUSB0" in link_alarm["message"] and link_alarm["device_id"] is None

        links["/dev/ttyUSB0"] = LinkStatus("/dev/ttyUSB0", up=True, since=T0 + 710)
        with transaction(conn):
            conn.execute("UPDATE sync_state SET last_success = ? WHERE sink = 'mqtt'", (T0 + 710,))
            conn.execute("UPDATE outbox SET synced_at = ? WHERE msg_id IN ('e0', 'e1')", (T0 + 710,))
        sync_alarm_messages(conn)
        engine.tick(T0 + 720)  # 40 %: inside the hysteresis band, buffer stays open
        assert {r["rule"]: r["state"] for r in alarm_rows(conn)} == {
            "buffer": "raised",
            "link": "cleared",
            "cloud": "cleared",
        }
        with transaction(conn):
            conn.execute("UPDATE outbox SET synced_at = ? WHERE msg_id = 'e2'", (T0 + 730,))
        sync_alarm_messages(conn)
        engine.tick(T0 + 730)  # 30 %
        assert alarm_rows(conn, "buffer")[0]["state"] == "cleared"
    finally:
        engine.close()


def test_buffer_counts_the_readings_past_the_sync_cursor(db_path, conn, clock):
    status = SiteStatus(buffer_capacity=10)
    engine = RuleEngine(lambda: connect(db_path), clock, status=status)
    try:
        save_rule(
            conn, {"name": "buffer", "kind": "buffer", "above": 50, "hysteresis": 20}, actor="a", now=T0
        )
        put_readings(conn, NODE, range(6), received_at=T0)  # 6 of 10 waiting for the cloud: 60 %
        engine.tick(T0 + 1)
        assert [(r["rule"], r["value"]) for r in alarm_rows(conn)] == [("buffer", 60.0)]
        mark_synced(conn, NODE, 3)  # the cloud took fcnt 0 .. 3; the alarm's own message too
        sync_alarm_messages(conn)
        engine.tick(T0 + 2)  # 20 %
        assert alarm_rows(conn, "buffer")[0]["state"] == "cleared"
    finally:
        engine.close()


def sync_alarm_messages(conn):
    # the alarms' own outbox rows count towards the buffer too; the cloud took them
    with transaction(conn):
        conn.execute("UPDATE outbox SET synced_at = 1 WHERE kind = 'alarm'")


def test_cloud_outage_timer_survives_a_restart(db_path, conn, clock):
    save_rule(conn, {"name": "cloud", "kind": "cloud_down", "for_s": 600}, actor="admin", now=T0)
    with transaction(conn):
        conn.execute("INSERT INTO sync_state (sink, last_error_at) VALUES ('mqtt', ?)", (T0,))
    first = RuleEngine(lambda: connect(db_path), clock)
    first.tick(T0)
    first.close()
    second = RuleEngine(lambda: connect(db_path), clock)
    second.tick(T0 + 600)
    second.close()
    assert [r["raised_at"] for r in alarm_rows(conn)] == [T0 + 600]


def test_disabling_a_rule_clears_its_open_alarm(conn, engine):
    add_device(conn)
    rule_id = save_rule(conn, dict(FREEZER, for_s=0), actor="admin", now=T0)
    feed(conn, engine, [9])
    assert [r["state"] for r in alarm_rows(conn)] == ["raised"]
    set_enabled(conn, rule_id, False, actor="admin", now=T0 + 10)
    engine.tick(T0 + 20)
    assert [r["state"] for r in alarm_rows(conn)] == ["cleared"]
    assert conn.execute("SELECT COUNT(*) FROM rule_state").fetchone()[0] == 0


def test_rules_apply_only_to_their_devices_and_channels(conn, engine):
    add_device(conn, NODE)
    add_device(conn, OTHER)
    save_rule(conn, dict(FREEZER, for_s=0, devices=[OTHER]), actor="admin", now=T0)
    feed(conn, engine, [20])
    assert alarm_rows(conn) == []
    feed(conn, engine, [20], device=OTHER)
    assert [r["device_id"] for r in alarm_rows(conn)] == [OTHER]


def test_listeners_hear_raise_and_clear(conn, engine):
    heard = []

    class Buzzer:
        def alarm_raised(self, alarm):
            heard.append(("on", alarm.rule))

        def alarm_acknowledged(self, alarm):
            heard.append(("silence", alarm.rule))

        def alarm_cleared(self, alarm):
            heard.append(("off", alarm.rule))

    add_device(conn)
    save_rule(conn, dict(FREEZER, for_s=0), actor="admin", now=T0)
    engine.subscribe(Buzzer())
    feed(conn, engine, [9])
    alarms.acknowledge(conn, alarm_rows(conn)[0]["id"], by="op", now=T0 + 5)  # e.g. from the panel
    feed(conn, engine, [1], start_fcnt=1, start=T0 + 60)
    engine.tick(T0 + 61)
    assert heard == [("on", "freezer warm"), ("silence", "freezer warm"), ("off", "freezer warm")]


def test_a_broken_reading_never_breaks_the_caller(conn, engine, json_codec):
    add_device(conn)
    add_device(conn, OTHER)
    save_rule(conn, dict(FREEZER, for_s=0), actor="admin", now=T0)
    bad = add_raw_reading(conn, NODE, 0, T0, b"\x00")  # not LPP: does not decode
    assert decoded(conn, bad) == (None, "lpp: truncated item header at byte 0")
    engine.on_readings([bad])
    engine.on_readings([{"id": 12345}])  # unknown id: nothing to do
    with transaction(conn):
        conn.execute("UPDATE devices SET codec = ? WHERE id = ?", (json_codec, OTHER))
    warm = [{"channel": 1, "name": "temperature", "value": "warm"}]  # a codec gave a non-number
    rid = add_raw_reading(conn, OTHER, 1, T0 + 1, json.dumps(warm).encode())
    engine.on_readings([rid])
    assert alarm_rows(conn) == [] and engine.stats["errors"] == 0
    values, _error = decoded(conn, rid)
    assert [v["value"] for v in values] == ["warm"], "the engine was not handed a non-number"


def test_threaded_engine_evaluates_everything_queued_before_it_closes(db_path, conn, clock):
    add_device(conn)
    save_rule(conn, dict(FREEZER, for_s=120), actor="admin", now=T0)
    engine = RuleEngine(lambda: connect(db_path), clock).start()
    ids = [add_reading(conn, NODE, i, T0 + 60 * i, temperature=9 + i) for i in range(5)]
    for rid in ids:
        engine.on_readings([rid])  # returns at once: queued for the engine's thread
    assert engine.drain(10)
    assert engine.stats["readings"] == 5
    engine.on_readings([add_reading(conn, NODE, 5, T0 + 300, temperature=1)])
    engine.close()  # evaluates what is still queued first
    assert [(r["raised_at"], r["state"]) for r in alarm_rows(conn)] == [(T0 + 120, "cleared")]


def test_a_backlog_of_readings_that_waited_is_judged_by_when_they_were_measured(conn, engine):
    """Issue 13 item 9: readings held 2 h on a node arrive within a second of each other. Judged
    by their receive times, 20 minutes above the limit would be a second and raise nothing; by
    their measured times (received - age) the duration is there, and the alarm says when."""
    add_device(conn)
    save_rule(conn, FREEZER, actor="admin", now=T0)  # above 8 for 10 minutes
    arrived = T0 + 7200

    def held(fcnt, age_s):
        return CommittedReading(
            id=reading_id(7, fcnt),
            device_id=NODE,
            fcnt=fcnt,
            port=1,
            received_at=arrived,  # the backlog arrives in one batch
            raw=lpp.encode([(1, "temperature", 9.5)]),
            rssi=-80,
            snr=7.0,
            bridge_id=None,
            codec="lpp",
            age_s=age_s,
        )

    # measured every 5 minutes from T0 (2 h before they arrived), 20 minutes in all
    engine.on_readings([held(f, 7200 - 300 * f) for f in range(5)])
    rows = alarm_rows(conn)
    assert len(rows) == 1
    assert rows[0]["reading_id"] == reading_id(7, 2) and rows[0]["raised_at"] == T0 + 600
