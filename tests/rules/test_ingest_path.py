"""Readings through the EDGE helper's real ingest path (LoRaWAN radio frames -> Ingestor ->
SQLite commit -> post-commit hook) drive the rule engine; a rule's downlink rides on the
ACK of the node's next uplink."""

import threading

import pytest

from edge import alarms, registry
from edge.codecs import lpp
from edge.ingest import Ingestor
from edge.radio import build_serial_uplink
from edge.rules import RuleEngine, save_rule
from edge.store import connect
from tests.conftest import wait_until
from tests.edge.edge_module_peer import Node, activate
from tests.rules.helpers import FakeClock, alarm_rows, history_states

DEV = "c0ffee00c0ffee01"
T0 = 1_700_000_000.0


@pytest.fixture
def site(db_path):
    clock = FakeClock(T0)
    writer_conn = connect(db_path)
    ingest = Ingestor(writer_conn, clock=clock, batch_wait_s=0.001)
    # On its own thread, as in the daemon, with the process's device numbers.
    engine = RuleEngine(lambda: connect(db_path), clock, numbers=ingest.numbers).start()
    ingest.add_hook(engine.on_readings)
    ingest.start()
    try:
        yield ingest, engine, clock
    finally:
        ingest.stop()
        engine.close()
        writer_conn.close()


def send(ingest, engine, node: Node, fcnt, temp):
    """One uplink as the bridge hands it over; returns the ACK payload once the hook has run."""
    acked = threading.Event()
    ack = []
    before = engine.stats["readings"]
    payload = lpp.encode([(1, "temperature", temp), (3, "voltage", 3.7)])
    frame = build_serial_uplink(node.frame(fcnt, 1, payload), rssi=-80, snr=7.0)
    ingest.submit(frame, bridge_id="b0b0b0b0b0b0b0b0", reply=lambda a: (ack.append(a), acked.set()))
    assert acked.wait(10), "no ACK"
    # the hook runs just after the replies
    wait_until(lambda: engine.stats["readings"] > before, timeout=10, what="the post-commit hook")
    return ack[0]


def test_rising_temperature_through_ingest_raises_once_clears_and_acts(conn, site):
    ingest, engine, clock = site
    key = registry.add_device(conn, DEV, actor="test", now=T0)
    (node,) = activate(conn, [Node(DEV, key)])  # a LoRaWAN node, by ABP
    save_rule(
        conn,
        {
            "name": "freezer",
            "kind": "threshold",
            "metric": "temperature",
            "above": 8,
            "hysteresis": 1,
            "for_s": 600,
            "action": {"command": "set_output", "args": {"output": 1, "value": 1}, "cooldown_s": 3600},
        },
        actor="admin",
        now=T0,
    )
    temps = [4, 6, 8.5, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]  # above 8 from minute 2
    acks = []
    for fcnt, temp in enumerate(temps):
        clock.now = T0 + 60 * fcnt
        acks.append(send(ingest, engine, node, fcnt, temp))
        raised = alarm_rows(conn)
        if fcnt < 12:
            assert raised == [], f"raised at minute {fcnt}, before 10 minutes above the limit"
    rows = alarm_rows(conn)
    assert len(rows) == 1 and rows[0]["raised_at"] == T0 + 720
    reading = conn.execute("SELECT fcnt FROM reading_list WHERE id = ?", (rows[0]["reading_id"],)).fetchone()
    assert reading["fcnt"] == 12  # the causing reading is the one that completed the 10 minutes
    queued = conn.execute("SELECT id, status, source FROM downlinks").fetchall()
    assert [(d["status"], d["source"]) for d in queued] == [("queued", "rule")]

    clock.now = T0 + 780
    ack = send(ingest, engine, node, 13, 17.5)  # the next uplink's ACK carries the rule's set_output
    assert len(ack) > len(acks[0]), "ACK without the downlink"
    assert conn.execute("SELECT status FROM downlinks").fetchone()[0] == "sent"

    alarms.acknowledge(conn, rows[0]["id"], by="operator", now=T0 + 800)
    for fcnt, temp in [(14, 7.5), (15, 6.5)]:
        clock.now = T0 + 60 * fcnt
        send(ingest, engine, node, fcnt, temp)
    assert [r["state"] for r in alarm_rows(conn)] == ["cleared"]
    assert history_states(conn, rows[0]["id"]) == ["raised", "acknowledged", "cleared"]
    assert engine.stats["errors"] == 0
