"""The daemon in-process against CPython module peers on ptys: ingest, rejects, replug, backpressure,
/health and /metrics."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from edge_helpers import add, decoded, stored
from edge_module_peer import ModulePeer, Node, activate
from lorawan_node import EndDevice

from edge import config as config_mod
from edge import registry
from edge.codecs import lpp
from edge.daemon import Daemon
from edge.radio import build_serial_uplink
from edge.store import connect, transaction
from tests.conftest import wait_until

PEER_DEFAULT = [(1, "temperature", 21.5), (2, "humidity", 50.0)]  # ModulePeer.add_reading's values
NODES = ["0000000000000a01", "0000000000000a02", "0000000000000a03"]
BRIDGE = "00000000000000b0"


@pytest.fixture
def keys(db):
    return {dev: add(db, dev) for dev in NODES}


def make_daemon(db_path, ports, **ingest):
    cfg = config_mod.from_dict(
        {
            "edge": {"db": str(db_path), "expire_interval_s": 0.5},
            "link": {"ports": ports, "discover": False, "reconnect_min_s": 0.05, "reconnect_max_s": 0.5},
            "ingest": ingest,
            "http": {"port": 0},
        }
    )
    return Daemon(cfg, attach_points=())


@pytest.fixture
def peer(db, keys):
    p = ModulePeer(BRIDGE, activate(db, [Node(d, k) for d, k in keys.items()])).start()
    try:
        yield p
    finally:
        p.close()


def test_three_nodes_through_a_bridge_land_decoded(db_path, db, peer, keys):
    daemon = make_daemon(db_path, [peer.path]).start()
    try:
        for i in range(10):
            for dev in NODES:
                peer.add_reading(
                    dev, values=[(1, "temperature", 20 + i / 10), (2, "humidity", 40.5), (3, "voltage", 3.3)]
                )
        wait_until(lambda: len(peer.log.acked) == 30, what="30 ACKs")
        rows = stored(db)
        assert len(rows) == 30
        assert {r.device_id for r in rows} == set(NODES)
        assert all(r.bridge_id == BRIDGE and r.rssi == -90 for r in rows)
        last, _ = decoded(db, next(r for r in rows if r.device_id == NODES[2] and r.fcnt == 10))
        assert last == [
            {"channel": 1, "name": "temperature", "value": 20.9, "unit": "°C"},
            {"channel": 2, "name": "humidity", "value": 40.5, "unit": "%"},
            {"channel": 3, "name": "voltage", "value": 3.3, "unit": "V"},
        ]
        assert set(peer.log.acked.values()) == {0}
        assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0  # no copy: sync reads readings
        # the bridge's HELLO is shown on the port's figures
        (fig,) = daemon.manager.figures()
        assert (fig["up"], fig["peer_id"], fig["role"]) == (True, BRIDGE, "bridge")
        assert fig["frames_rx"] >= 30
    finally:
        daemon.stop()


def test_rejections_counted_and_quarantined(db_path, db, peer, keys):
    daemon = make_daemon(db_path, [peer.path]).start()
    try:
        good, other = NODES[0], "00000000000000ee"
        node, stranger = peer.nodes[good], EndDevice(other, bytes(16))
        forged = Node(good, bytes(16))  # its DevAddr, other session keys
        peer.add_raw(good, 1, build_serial_uplink(forged.frame(1, 1, b"\x01")))  # wrong MIC
        peer.add_reading(good)  # fcnt 1, stored
        # the same frame again (its ACK lost): a duplicate
        again = node.frame(1, 1, lpp.encode(PEER_DEFAULT))
        peer.add_raw(good, 1, build_serial_uplink(again, rssi=-90, snr=5.0))
        peer.add_reading(good)  # fcnt 2
        # an old counter with other bytes: the node lost its counter; told to join again
        went_back = node.frame(0, 1, b"\x01\x67\x00\x01")
        peer.add_raw(good, 0, build_serial_uplink(went_back))
        peer.add_raw(other, 1, stranger.join_request())  # unknown device
        wait_until(lambda: peer.pending == 0 and daemon.ingest.stats.frames == 6, what="all answered")
        results = daemon.ingest.stats.results
        assert (
            results["bad_mic"],
            results["rejoin"],
            results["unknown_device"],
            results["duplicate"],
            results["stored"],
        ) == (1, 1, 1, 1, 2)
        assert sorted(r for _, r in peer.log.refused) == ["result 2", "result 4", "result 7"]
        q = registry.list_quarantine(db)
        assert [(r["device_id"], r["count"], r["last_bridge"]) for r in q] == [(other, 1, BRIDGE)]
        assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 2
        metrics = (
            urllib.request.urlopen(f"http://127.0.0.1:{daemon.http.port}/metrics", timeout=5).read().decode()
        )
        assert 'fieldpost_ingest_uplinks_total{result="bad_mic"} 1.0' in metrics
        assert 'fieldpost_ingest_uplinks_total{result="rejoin"} 1.0' in metrics
        assert 'fieldpost_ingest_uplinks_total{result="unknown_device"} 1.0' in metrics
        assert "fieldpost_quarantine_devices 1.0" in metrics
        assert f'fieldpost_link_up{{peer="{BRIDGE}",port="{peer.path}"}} 1.0' in metrics
        health = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{daemon.http.port}/health", timeout=5).read()
        )
        assert health["status"] == "ok" and health["links_up"] == 1
        # adopting the quarantined device lets it join
        registry.adopt(db, other, key=bytes(16), actor="test", now=time.time())
        peer.add_raw(other, 2, stranger.join_request())
        wait_until(lambda: daemon.ingest.stats.results.get("joined") == 1, what="adopted device joined")
    finally:
        daemon.stop()


def test_unplug_and_replug_link_up_within_2_s(db_path, db, keys, tmp_path):
    """The configured path is a symlink (as /dev/serial/by-id is); replugging points it at the new pty."""
    link = tmp_path / "ttyFP0"
    first = ModulePeer(BRIDGE, activate(db, [Node(d, k) for d, k in keys.items()])).start()
    link.symlink_to(first.path)
    daemon = make_daemon(db_path, [str(link)]).start()
    second = None
    try:
        first.add_reading(NODES[0])
        wait_until(lambda: len(first.log.acked) == 1, what="first ACK")
        first.close()  # unplug
        link.unlink()
        wait_until(lambda: daemon.manager.links_up() == 0, what="link down")
        second = ModulePeer(BRIDGE, [Node(d, k, next_fcnt=2) for d, k in keys.items()]).start()
        second.add_reading(NODES[0])
        plugged = time.monotonic()
        link.symlink_to(second.path)  # replug
        wait_until(lambda: second.up and daemon.manager.links_up() == 1, timeout=5, what="link up again")
        assert time.monotonic() - plugged < 2.0
        wait_until(lambda: len(second.log.acked) == 1, what="ACK after replug")
        (fig,) = daemon.manager.figures()
        assert fig["reconnects"] == 1
    finally:
        daemon.stop()
        if second is not None:
            second.close()


def test_backpressure_busy_nacks_and_module_keeps_readings(db_path, db, peer, keys):
    # 5 unsynced outbox rows already: at the high-water mark of 5, every uplink is refused with BUSY.
    with transaction(db):
        for i in range(5):
            db.execute(
                "INSERT INTO outbox (msg_id, kind, body, created_at) VALUES (?, 'event', '{}', 0)",
                (f"old:{i}",),
            )
    daemon = make_daemon(db_path, [peer.path], high_water=5, low_water=2).start()
    try:
        for dev in NODES:
            peer.add_reading(dev)
        wait_until(lambda: peer.log.busy_nacks_rx >= 1, what="a BUSY NACK")
        time.sleep(0.3)
        assert peer.pending == 3 and peer.log.acked == {}  # the module still holds all three
        assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 0
        (fig,) = daemon.manager.figures()
        assert fig["busy_nacks"] >= 1
        # the cloud drains the backlog: ingest resumes and the held readings arrive
        with transaction(db):
            db.execute("UPDATE outbox SET synced_at = 1")
        wait_until(lambda: len(peer.log.acked) == 3, timeout=15, what="held readings stored after the drain")
    finally:
        daemon.stop()
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 3


def test_sigterm_style_stop_flushes(db_path, db, peer, keys):
    daemon = make_daemon(db_path, [peer.path]).start()
    for i in range(50):
        peer.add_reading(NODES[i % 3])
    wait_until(lambda: len(peer.log.acked) >= 10, what="some ACKs")
    daemon.stop()
    stored = {(r[0], r[1]) for r in connect(db_path).execute("SELECT device_id, fcnt FROM reading_list")}
    assert set(peer.log.acked) <= stored


def test_queued_downlink_rides_on_ack_and_unsent_ones_expire(db_path, db, peer, keys):
    from edge import downlinks

    dev = NODES[0]
    late = downlinks.queue(db, NODES[1], "reboot", {}, source="cli", ttl_s=0.3, now=time.time())
    dl = downlinks.queue(db, dev, "set_interval", {"seconds": 120}, source="cli", now=time.time())
    daemon = make_daemon(db_path, [peer.path]).start()
    try:
        wait_until(lambda: downlinks.get(db, late)["status"] == "expired", what="the unsent downlink expired")
        peer.add_reading(dev)
        wait_until(lambda: len(peer.log.acked) == 1, what="ACK")
        row = downlinks.get(db, dl)
        assert (row["status"], row["sent_fcnt"]) == ("sent", 1)
        statuses = [
            json.loads(r[0])["status"]
            for r in db.execute(
                "SELECT body FROM outbox WHERE kind = 'downlink_status' AND ref_id = ? ORDER BY id", (dl,)
            )
        ]
        assert statuses == ["queued", "sent"]
        # the node answers on port 2: acknowledged
        result = (dl & 0xFFFF).to_bytes(2, "big") + b"\x00"
        peer.add_raw(dev, 2, build_serial_uplink(peer.nodes[dev].frame(2, 2, result)))
        wait_until(lambda: downlinks.get(db, dl)["status"] == "acked", what="downlink acked")
    finally:
        daemon.stop()


SERVICE = """
seen = []
ticks = []

def attach(daemon):
    daemon.add_hook(lambda readings: seen.extend((r.device_id, r.fcnt, r.codec) for r in readings))
    daemon.add_periodic(0.1, lambda: ticks.append(1))
    daemon.add_closer(lambda: ticks.append("closed"))
"""


def test_other_areas_attach_hooks_timers_and_closers(db_path, db, peer, keys, tmp_path, monkeypatch):
    (tmp_path / "fp_test_service.py").write_text(SERVICE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import fp_test_service

    cfg = config_mod.from_dict(
        {
            "edge": {"db": str(db_path)},
            "link": {"ports": [peer.path], "discover": False},
            "http": {"enabled": False},
        }
    )
    daemon = Daemon(cfg, attach_points=("fp_test_service:attach", "fp_not_installed.service:attach")).start()
    try:
        peer.add_reading(NODES[0])
        wait_until(lambda: fp_test_service.seen == [(NODES[0], 1, "lpp")], what="the hook's reading")
        wait_until(lambda: len(fp_test_service.ticks) >= 2, what="the periodic job")
    finally:
        daemon.stop()
    assert fp_test_service.ticks[-1] == "closed"
