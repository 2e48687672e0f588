"""With the cloud sink down the alarm is raised locally, then reaches the cloud FIRST when it returns.

Real parts: a Mosquitto broker on a free loopback port, the sync helper's SyncService
(edge.sync) draining the outbox and the readings past the cloud cursor, the rule engine on
readings stored in SQLite.
"""

import time

import pytest

from edge.rules import RuleEngine, save_rule
from edge.store import connect
from edge.sync import SyncService, encoding
from tests.rules.helpers import NODE, add_device, add_reading, alarm_rows
from tests.rules.netgate import InternetGate
from tests.storekit import put_backlog
from tests.sync.sync_helpers import (
    MOSQUITTO,
    CloudSubscriber,
    Mosquitto,
    free_port,
    sync_config,
)

pytestmark = pytest.mark.skipif(not __import__("os").path.exists(MOSQUITTO), reason="mosquitto not installed")


def wait_for(predicate, timeout=20.0, what=""):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def arrivals(sub):
    """Every message id the cloud received, in arrival order."""
    with sub.lock:
        raw = list(sub.raw)
    ids = []
    for topic, payload in raw:
        if topic.endswith("/up"):
            ids += [item["id"] for item in encoding.decode_envelope(payload)["messages"]]
    return ids


# 40 readings fit in partial batches; 400 fill whole ones (64 KB): the alarms go first either way.
@pytest.mark.parametrize("backlog_size", [40, 400])
def test_alarm_raised_offline_is_delivered_before_the_backlog(tmp_path, db_path, conn, backlog_size):
    broker = Mosquitto(tmp_path / "broker").start()
    cloud = CloudSubscriber(broker.port, ["fieldpost/#"]).start()
    internet = InternetGate(free_port(), broker.port)  # the site reaches the cloud only through this; cut now
    sync = engine = None
    try:
        add_device(conn)
        save_rule(
            conn,
            {
                "name": "freezer",
                "kind": "threshold",
                "metric": "temperature",
                "above": 8,
                "severity": "critical",
            },
            actor="admin",
            now=time.time(),
        )
        save_rule(conn, {"name": "cloud", "kind": "cloud_down", "for_s": 0}, actor="admin", now=time.time())
        backlog = put_backlog(
            conn, backlog_size, ["00000000000000aa", "00000000000000bb"], received_at=time.time() - 60
        )

        sync = SyncService(db_path, sync_config(internet.port, site="site1"), clock=time.time).start()
        engine = RuleEngine(lambda: connect(db_path), time.time)
        wait_for(
            lambda: conn.execute("SELECT last_error_at FROM sync_state").fetchone() is not None,
            what="the sync service to record the failed connection",
        )
        engine.tick()
        now = time.time()
        for fcnt, temp in enumerate([5.0, 9.5]):
            engine.on_readings([add_reading(conn, NODE, fcnt, now - 2 + fcnt, temperature=temp)])
        raised = {r["rule"]: r["id"] for r in alarm_rows(conn)}
        assert set(raised) == {"freezer", "cloud"}, "alarms must be raised locally while the cloud is down"
        assert arrivals(cloud) == []

        internet.open()  # the connection comes back
        expected_alarms = {f"alarm:{raised['freezer']}:raised", f"alarm:{raised['cloud']}:raised"}
        wait_for(lambda: set(backlog) | expected_alarms <= set(arrivals(cloud)), what="the backlog to drain")
        got = arrivals(cloud)
        first_reading = min(got.index(msg_id) for msg_id in backlog)
        alarm_positions = sorted(got.index(msg_id) for msg_id in expected_alarms)
        assert alarm_positions[-1] < first_reading, (
            f"alarms at {alarm_positions}, first reading at {first_reading}"
        )
        # once the sink is back, the cloud_down alarm clears on the next tick (and that change is synced too)
        wait_for(
            lambda: conn.execute("SELECT last_success FROM sync_state").fetchone()[0] is not None,
            what="a recorded success",
        )
        engine.tick()
        assert {r["rule"]: r["state"] for r in alarm_rows(conn)} == {"freezer": "raised", "cloud": "cleared"}
        wait_for(
            lambda: f"alarm:{raised['cloud']}:cleared" in arrivals(cloud), what="the clear to reach the cloud"
        )
    finally:
        if engine is not None:
            engine.close()
        if sync is not None:
            sync.stop()
        internet.cut()
        cloud.stop()
        broker.stop()


def test_sync_drain_order_puts_alarms_raised_later_first(db_path, conn):
    """The sync side's own scanners, read the way SyncService fills its batches (the outbox, then
    the readings past the cursor), return the alarm before the rest of the backlog."""
    from edge.codecs import CodecRunner
    from edge.sync.pending import PendingScanner
    from edge.sync.reading_scan import ReadingScanner

    add_device(conn)
    save_rule(
        conn,
        {"name": "freezer", "kind": "threshold", "metric": "temperature", "above": 8},
        actor="admin",
        now=1.0,
    )
    backlog = put_backlog(conn, 50, ["00000000000000aa"], received_at=1.0)
    outbox, readings = PendingScanner(), ReadingScanner(CodecRunner())

    def next_messages(limit):
        rows = outbox.next_rows(conn, limit)
        return rows + readings.next_messages(conn, limit - len(rows), per_device=limit)

    first = next_messages(10)
    assert [m.msg_id for m in first] == backlog[:10]
    readings.handed_out(first, {m.row_id for m in first})  # ten readings already in flight
    engine = RuleEngine(lambda: connect(db_path), time.time)
    try:
        engine.on_readings([add_reading(conn, NODE, 0, 2.0, temperature=12.0)])
    finally:
        engine.close()
    alarm_id = alarm_rows(conn)[0]["id"]
    after = [m.msg_id for m in next_messages(5)]
    assert after[0] == f"alarm:{alarm_id}:raised"
    assert after[1:] == backlog[10:14]
