"""The edge with the real firmware: three virtual nodes through a virtual bridge (MicroPython
unix port, loopback air, the bridge's UART on a pty) land readings in SQLite, decoded."""

from __future__ import annotations

import json

import pytest
from edge_firmware_site import free_udp_ports, start_module, traced
from edge_helpers import decoded
from edge_helpers import stored as stored_readings

from edge import config as config_mod
from edge import registry
from edge.daemon import Daemon

pytestmark = pytest.mark.firmware

BRIDGE_ID = "00000000000000f0"
NODE_IDS = ["00000000000000f1", "00000000000000f2", "00000000000000f3"]


def test_three_virtual_nodes_through_a_virtual_bridge(tmp_path, db_path, db, virtual_module, wait_until):
    keys = {dev: registry.add_device(db, dev, actor="test", now=1.0) for dev in NODE_IDS}
    bridge_key = registry.add_device(db, BRIDGE_ID, role="bridge", actor="test", now=1.0)
    bridge_port, *node_ports = free_udp_ports(4)
    bridge = start_module(
        virtual_module,
        tmp_path,
        BRIDGE_ID,
        bridge_key,
        "bridge",
        bridge_port,
        node_ports,
        interval=60,
        status_every=10,
    )
    cfg = config_mod.from_dict(
        {
            "edge": {"db": str(db_path), "services": False},
            "link": {"ports": [bridge.port], "discover": False},
            "http": {"enabled": False},
        }
    )
    daemon = Daemon(cfg).start()
    try:
        wait_until(lambda: daemon.manager.links_up() == 1, timeout=15, what="the bridge's HELLO")
        nodes = {
            dev: start_module(
                virtual_module, tmp_path, dev, keys[dev], "node", port, [bridge_port], name=f"node-{dev[-2:]}"
            )
            for dev, port in zip(NODE_IDS, node_ports, strict=True)
        }

        def stored(dev):
            return {
                r[0]
                for r in db.execute("SELECT fcnt FROM reading_list WHERE device_id = ? AND port = 1", (dev,))
            }

        wait_until(
            lambda: all(len(traced(vm, "acked") & stored(dev)) >= 3 for dev, vm in nodes.items()),
            timeout=60,
            what="three ACKed readings from every node",
        )
        for dev, vm in nodes.items():
            assert traced(vm, "acked") <= {
                r[0] for r in db.execute("SELECT fcnt FROM reading_list WHERE device_id = ?", (dev,))
            }
            rows = [r for r in stored_readings(db, dev) if r.port == 1]
            for row in rows:
                found, error = decoded(db, row)
                assert error is None and row.bridge_id == BRIDGE_ID
                assert -100 <= row.rssi <= -94 and 5 <= row.snr <= 8
                values = {v["name"]: (v["value"], v["unit"], v["channel"]) for v in found}
                assert set(values) == {"temperature", "humidity", "battery"}
                t, h, b = values["temperature"], values["humidity"], values["battery"]
                assert (t[1], t[2], h[1], h[2], b[1], b[2]) == ("°C", 1, "%", 2, "V", 3)
                assert -40 <= t[0] <= 85 and 0 <= h[0] <= 100 and 3.3 <= b[0] <= 4.1
            assert db.execute("SELECT last_rssi FROM devices WHERE id = ?", (dev,)).fetchone()[0] is not None
        # the bridge said who it is, and reported its own status
        (fig,) = daemon.manager.figures()
        assert (fig["peer_id"], fig["role"], fig["board"]) == (BRIDGE_ID, "bridge", "unix")
        assert daemon.ingest.stats.results["bad_mic"] == 0
        # the bridge's STATUS frames (heap, uptime, radio counters) are kept on its device row
        wait_until(
            lambda: db.execute("SELECT status FROM devices WHERE id = ?", (BRIDGE_ID,)).fetchone()[0],
            timeout=20,
            what="the bridge's STATUS",
        )
        status = json.loads(db.execute("SELECT status FROM devices WHERE id = ?", (BRIDGE_ID,)).fetchone()[0])
        assert "uptime" in status or "heap_free" in status
        assert db.execute("SELECT firmware FROM devices WHERE id = ?", (BRIDGE_ID,)).fetchone()[0]
    finally:
        daemon.stop()


def test_unplug_and_replug_the_real_bridge(tmp_path, db_path, db, virtual_module, wait_until):
    """Closing the bridge's pty is a pulled cable; the configured path (a symlink, as udev's
    /dev/fieldpost/serial-* is) then points at the new pty: the link is up again within 2 s."""
    import time

    bridge_key = registry.add_device(db, BRIDGE_ID, role="bridge", actor="test", now=1.0)
    (bridge_port, node_port) = free_udp_ports(2)
    bridge = start_module(virtual_module, tmp_path, BRIDGE_ID, bridge_key, "bridge", bridge_port, [node_port])
    alias = tmp_path / "serial-bridge"
    alias.symlink_to(bridge.port)
    cfg = config_mod.from_dict(
        {
            "edge": {"db": str(db_path), "services": False},
            "link": {"ports": [str(alias)], "discover": False},
            "http": {"enabled": False},
        }
    )
    daemon = Daemon(cfg).start()
    try:
        wait_until(lambda: daemon.manager.links_up() == 1, timeout=15, what="the bridge's HELLO")
        bridge.close()  # unplugged: the pty is gone
        alias.unlink()
        wait_until(lambda: daemon.manager.links_up() == 0, timeout=5, what="the link going down")
        bridge.start()  # plugged back in: the module boots on a new pty
        alias.symlink_to(bridge.port)
        plugged = time.monotonic()
        wait_until(lambda: daemon.manager.links_up() == 1, timeout=10, what="the link up again")
        assert time.monotonic() - plugged < 2.0
        (fig,) = daemon.manager.figures()
        assert fig["reconnects"] == 1 and fig["peer_id"] == BRIDGE_ID
    finally:
        daemon.stop()


def test_backpressure_with_the_real_firmware(tmp_path, db_path, db, virtual_module, wait_until):
    """At the high-water mark the bridge gets NACK BUSY, nothing is stored, the node keeps its
    readings in its journal; once the cloud has drained the backlog they all arrive."""
    from edge.store import transaction

    node = NODE_IDS[0]
    key = registry.add_device(db, node, actor="test", now=1.0)
    bridge_key = registry.add_device(db, BRIDGE_ID, role="bridge", actor="test", now=1.0)
    with transaction(db):  # the backlog is already at the mark
        for i in range(50):
            db.execute(
                "INSERT INTO outbox (msg_id, kind, body, created_at) VALUES (?, 'event', '{}', 0)", (f"e{i}",)
            )
    bridge_port, node_port = free_udp_ports(2)
    bridge = start_module(virtual_module, tmp_path, BRIDGE_ID, bridge_key, "bridge", bridge_port, [node_port])
    cfg = config_mod.from_dict(
        {
            "edge": {"db": str(db_path), "services": False},
            "link": {"ports": [bridge.port], "discover": False},
            "ingest": {"high_water": 50},
            "http": {"enabled": False},
        }
    )
    daemon = Daemon(cfg).start()
    try:
        wait_until(lambda: daemon.manager.links_up() == 1, timeout=15, what="the bridge's HELLO")
        vm = start_module(virtual_module, tmp_path, node, key, "node", node_port, [bridge_port], name="node")
        wait_until(lambda: daemon.manager.figures()[0]["busy_nacks"] >= 1, timeout=20, what="a BUSY NACK")
        wait_until(lambda: len(traced(vm, "taken")) >= 2, timeout=20, what="two readings taken")
        assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 0
        assert traced(vm, "acked") == set()  # nothing ACKed: the node still holds them
        held = traced(vm, "taken")
        with transaction(db):  # the cloud confirmed the backlog
            db.execute("UPDATE outbox SET synced_at = 1")
        wait_until(lambda: held <= traced(vm, "acked"), timeout=40, what="the held readings ACKed")
        stored = {r[0] for r in db.execute("SELECT fcnt FROM reading_list WHERE device_id = ?", (node,))}
        assert held <= stored
    finally:
        daemon.stop()
