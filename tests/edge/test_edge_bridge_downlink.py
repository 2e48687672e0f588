"""A bridge's own commands travel as serial DOWNLINK frames (docs/radio.md section 4).

The real bridge firmware (MicroPython unix port, UART on a pty, own_readings off as on a default
site: it sends no uplinks of its own unless answering) in front of the real edge daemon. Commands
queued for the bridge reach it while its link is up, are applied, and end acked or failed from the
bridge's port-2 answer; a NACK of the DOWNLINK frame ends failed with its reason; an expired one is
never sent. Plus the pure parts of edge.bridge_downlinks on a real database.
"""

from __future__ import annotations

import json
import time

import pytest
from edge_module_peer import ModulePeer

from edge import bridge_downlinks, downlinks, registry
from edge.daemon import Daemon
from edge.ingest import Ingestor
from edge.link.manager import LinkManager
from edge.link.session import Received
from edge.radio import KIND_DOWNLINK, parse_downlink_result, parse_frame
from tests.conftest import wait_until
from tests.sitekit import BRIDGE_ID, BRIDGE_KEY, NODE_ID, register_modules, site_config, start_bridge

BRIDGE_SETTINGS = {"status_every": 3600, "own_readings": False}


def status_of(conn, dl_id):
    return conn.execute("SELECT status, result FROM downlinks WHERE id = ?", (dl_id,)).fetchone()


def settled(conn, dl_id):
    row = status_of(conn, dl_id)
    return row if row["status"] in ("acked", "failed") else None


def outbox_states(conn, dl_id):
    rows = conn.execute(
        "SELECT body FROM outbox WHERE kind = 'downlink_status' AND ref_id = ? ORDER BY id", (dl_id,)
    )
    return [json.loads(r["body"])["status"] for r in rows]


def answered_ids(conn):
    """The dl_ids the bridge answered on its own uplink port 2 (what the firmware actually did)."""
    rows = conn.execute("SELECT raw FROM reading_list WHERE device_id = ? AND port = 2", (BRIDGE_ID,))
    return [parse_downlink_result(bytes(r["raw"])).dl_id for r in rows]


@pytest.fixture
def site(tmp_path, virtual_module):
    """The bridge, started; the daemon is started by each test once the database is set up."""
    return start_bridge(tmp_path, virtual_module, node={}, bridge=BRIDGE_SETTINGS)


def start_daemon(db_path, site):
    return Daemon(site_config(db_path, site.bridge), attach_points=()).start()


@pytest.mark.firmware
def test_bridge_commands_are_sent_applied_and_acked(tmp_path, db, db_path, site):
    now = time.time()
    register_modules(db, now=now)
    status_before = downlinks.queue(db, BRIDGE_ID, "request_status", {}, source="panel", now=now)
    expired = downlinks.queue(db, BRIDGE_ID, "request_status", {}, source="panel", ttl_s=10, now=now - 60)
    for_node = downlinks.queue(db, NODE_ID, "request_status", {}, source="panel", now=now)
    daemon = start_daemon(db_path, site)
    try:
        # queued before the link came up: sent once the session starts
        row = wait_until(lambda: settled(db, status_before), timeout=10, what="request_status settled")
        assert row["status"] == "acked", row["result"]
        # the bridge did it: its port-3 status went up as an uplink of its own
        wait_until(
            lambda: db.execute(
                "SELECT 1 FROM reading_list WHERE device_id = ? AND port = 3", (BRIDGE_ID,)
            ).fetchone(),
            timeout=10,
            what="the bridge's status uplink",
        )
        # queued while the link is up: picked up by the manager's poll, no uplink needed to carry it
        interval = downlinks.queue(db, BRIDGE_ID, "set_interval", {"seconds": 120}, source="panel", now=now)
        row = wait_until(lambda: settled(db, interval), timeout=10, what="set_interval settled")
        assert row["status"] == "acked", row["result"]
        config = json.loads((tmp_path / "bridge" / "config.json").read_text())
        assert config["interval"] == 120  # applied and written by the firmware
        assert outbox_states(db, interval) == ["queued", "sent", "acked"]
        assert outbox_states(db, status_before) == ["queued", "sent", "acked"]
        sent_ids = answered_ids(db)
    finally:
        daemon.stop()
    # the expired one was never sent (still queued, or marked expired by the daemon's expiry job)
    assert status_of(db, expired)["status"] in ("queued", "expired")
    assert "sent" not in outbox_states(db, expired)
    assert expired not in sent_ids and {status_before, interval} <= set(sent_ids)
    # a node's downlink is not a bridge's: it waits for the node's next uplink
    assert status_of(db, for_node)["status"] == "queued"


@pytest.mark.firmware
def test_out_of_range_commands_end_failed_with_the_bridges_reason(db, db_path, site):
    now = time.time()
    register_modules(db, now=now)
    daemon = start_daemon(db_path, site)
    try:
        wait_until(lambda: daemon.manager.links_up() == 1, timeout=10, what="the link to the bridge")
        too_fast = downlinks.queue(
            db, BRIDGE_ID, "config", {"values": {"interval": 5}}, source="panel", now=now
        )
        no_output = downlinks.queue(
            db, BRIDGE_ID, "set_output", {"output": 7, "value": 1}, source="panel", now=now
        )
        first = wait_until(lambda: settled(db, too_fast), timeout=10, what="config settled")
        second = wait_until(lambda: settled(db, no_output), timeout=10, what="set_output settled")
    finally:
        daemon.stop()
    assert first["status"] == "failed"
    assert first["result"].startswith("value out of range: interval")
    assert second["status"] == "failed"
    assert second["result"] == "value out of range: no output 7"
    assert outbox_states(db, too_fast) == ["queued", "sent", "failed"]


@pytest.mark.firmware
def test_a_downlink_the_bridge_cannot_verify_is_nacked_and_failed(db, db_path, site):
    # The edge holds another key for the bridge than the module has: the bridge NACKs INVALID.
    now = time.time()
    registry.add_device(db, BRIDGE_ID, key=bytes(16), role="bridge", actor="test", now=now)
    dl_id = downlinks.queue(db, BRIDGE_ID, "reboot", {}, source="panel", now=now)
    daemon = start_daemon(db_path, site)
    try:
        row = wait_until(lambda: settled(db, dl_id), timeout=10, what="the refused downlink to fail")
    finally:
        daemon.stop()
    assert row["status"] == "failed"
    assert row["result"] == "failed: refused by the bridge: INVALID (mic: bad MIC)"
    assert outbox_states(db, dl_id) == ["queued", "sent", "failed"]


# --- edge.bridge_downlinks without a module ----------------------------------------------------


def test_take_builds_signed_frames_for_a_bridge_only(db):
    now = 1_700_000_000.0
    register_modules(db, now=now)
    first = downlinks.queue(db, BRIDGE_ID, "set_interval", {"seconds": 60}, source="cli", now=now)
    second = downlinks.queue(db, BRIDGE_ID, "request_status", {}, source="cli", now=now)
    downlinks.queue(db, BRIDGE_ID, "reboot", {}, source="cli", ttl_s=5, now=now - 10)  # expired
    downlinks.queue(db, NODE_ID, "reboot", {}, source="cli", now=now)
    db.execute("UPDATE devices SET last_fcnt = 41 WHERE id = ?", (BRIDGE_ID,))
    db.commit()

    assert bridge_downlinks.take(db, NODE_ID, now=now) == []  # a node: its downlinks ride on ACKs
    taken = bridge_downlinks.take(db, BRIDGE_ID, limit=1, now=now)
    assert [t.id for t in taken] == [first]
    taken += bridge_downlinks.take(db, BRIDGE_ID, now=now)
    db.commit()
    assert [t.id for t in taken] == [first, second]  # oldest first; the expired one is not taken
    frame = parse_frame(taken[0].frame, kind=KIND_DOWNLINK)
    assert frame.mic_ok(BRIDGE_KEY) and frame.device_id == BRIDGE_ID
    assert frame.fcnt == 41  # the bridge's last stored uplink fcnt; the bridge does not check it
    assert frame.payload == downlinks.Pending(first, "set_interval", {"seconds": 60}).encode()
    assert taken[0].expires_at == now + 86400
    assert status_of(db, first)["status"] == "sent" and status_of(db, second)["status"] == "sent"


def test_downlink_fcnt_is_zero_before_any_uplink():
    assert bridge_downlinks.downlink_fcnt(-1) == 0
    assert bridge_downlinks.downlink_fcnt(7) == 7


def test_refused_marks_the_sent_downlink_failed(db):
    now = 1_700_000_000.0
    register_modules(db, now=now)
    dl_id = downlinks.queue(db, BRIDGE_ID, "reboot", {}, source="cli", now=now)
    bridge_downlinks.take(db, BRIDGE_ID, now=now)
    assert bridge_downlinks.refused(db, BRIDGE_ID, dl_id, "UNSUPPORTED", "type", now=now + 1) == dl_id
    db.commit()
    assert tuple(status_of(db, dl_id)) == ("failed", "failed: refused by the bridge: UNSUPPORTED (type)")


def test_in_flight_frames_wait_again_when_their_port_closes():
    def item(dl_id, expires_at=100.0):
        return bridge_downlinks.BridgeDownlink(dl_id, BRIDGE_ID, b"f%d" % dl_id, expires_at)

    inflight = bridge_downlinks.InFlight()
    port_a, port_b = object(), object()
    inflight.add([item(2), item(1), item(3, expires_at=10.0)])
    assert [d.id for d in inflight.waiting(BRIDGE_ID, now=5.0)] == [1, 2, 3]
    inflight.handed(BRIDGE_ID, 1, port_a)
    inflight.handed(BRIDGE_ID, 2, port_b)
    assert [d.id for d in inflight.waiting(BRIDGE_ID, now=20.0)] == []  # 3 expired while waiting
    assert inflight.port_closed(port_a) == 1
    assert [d.id for d in inflight.waiting(BRIDGE_ID, now=20.0)] == [1]
    inflight.done(BRIDGE_ID, 2)
    inflight.done(BRIDGE_ID, 1)
    assert inflight.count(BRIDGE_ID) == 0


def test_probe_names_only_bridges_with_live_queued_downlinks(db, db_path):
    now = 1_700_000_000.0
    register_modules(db, now=now)
    probe = bridge_downlinks.QueuedProbe(db_path, clock=lambda: now)
    try:
        assert probe([BRIDGE_ID, NODE_ID]) == set()
        downlinks.queue(db, NODE_ID, "reboot", {}, source="cli", now=now)  # a node: not the manager's
        downlinks.queue(db, BRIDGE_ID, "reboot", {}, source="cli", ttl_s=5, now=now - 10)  # expired
        assert probe([BRIDGE_ID, NODE_ID]) == set()
        downlinks.queue(db, BRIDGE_ID, "request_status", {}, source="cli", now=now)
        assert probe([BRIDGE_ID, NODE_ID]) == {BRIDGE_ID}  # seen through its own connection at once
        assert probe([NODE_ID]) == set() and probe([]) == set()
        bridge_downlinks.take(db, BRIDGE_ID, now=now)
        db.commit()
        assert probe([BRIDGE_ID]) == set()  # sent: nothing queued any more
    finally:
        probe.close()


class HoldingPeer(ModulePeer):
    """A CPython bridge that records the DOWNLINK frames it receives and ACKs them only if told to."""

    def __init__(self, *args, answer: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.answer = answer
        self.downlinks: list[bytes] = []

    def _on_event(self, event) -> None:
        if isinstance(event, Received):
            self.downlinks.append(bytes(event.frame.payload))
            if self.answer:
                with self._lock:
                    self.session.ack(event.frame.seq)  # written by the peer's loop
            return
        super()._on_event(event)


def test_a_downlink_whose_link_went_away_goes_to_the_bridges_next_link(tmp_path, db, db_path):
    now = time.time()
    register_modules(db, now=now)
    dl_id = downlinks.queue(db, BRIDGE_ID, "request_status", {}, source="panel", now=now)
    alias = tmp_path / "by-id-bridge"  # the configured path: the same udev name after a replug
    first = HoldingPeer(BRIDGE_ID, [], answer=False).start()
    alias.symlink_to(first.path)
    ingest = Ingestor(db)
    ingest.start()
    probe = bridge_downlinks.QueuedProbe(db_path, clock=time.time)
    manager = LinkManager(
        ingest=ingest, ports=[str(alias)], discover_ports=False, reconnect_min_s=0.05, queued=probe
    ).start()
    second = None
    try:
        wait_until(lambda: first.downlinks, timeout=10, what="the DOWNLINK at the first link")
        assert status_of(db, dl_id)["status"] == "sent"
        sent_first = first.downlinks[0]
        first.close()  # pulled before the bridge ACKed it
        first = None
        alias.unlink()
        second = HoldingPeer(BRIDGE_ID, [], answer=True).start()
        alias.symlink_to(second.path)
        wait_until(lambda: second.downlinks, timeout=10, what="the DOWNLINK again at the next link")
        assert second.downlinks[0] == sent_first  # the same frame, not taken a second time
        frame = parse_frame(second.downlinks[0], kind=KIND_DOWNLINK)
        assert frame.mic_ok(BRIDGE_KEY) and frame.payload[:2] == (dl_id & 0xFFFF).to_bytes(2, "big")
    finally:
        manager.stop()
        ingest.stop()
        probe.close()
        for peer in (first, second):
            if peer is not None:
                peer.close()
    assert outbox_states(db, dl_id) == ["queued", "sent"]  # sent once; the bridge's answer settles it
