"""A node and a bridge as virtual modules (real firmware under `micropython`) on the
loopback air, delivering to an edge peer over the bridge's pty.

The edge side is tests/firmware/edgepeer.py: a TEST STAND-IN built from the real
edge.link.session, not the edge's ingest."""

from __future__ import annotations

import json
import socket
import struct
import time

import pytest

from edge.tools.build_firmware import firmware_versions
from tests.conftest import wait_until
from tests.firmware.edgepeer import EdgePeer, radio_frame
from tests.firmware.modules import (
    AIR_SF7,
    BRIDGE_ID,
    BRIDGE_KEY,
    NODE_ID,
    NODE_KEY,
    bridge_config,
    free_udp_ports,
    journal_pending,
    module_dir,
    node_config,
    taken,
    trace,
)

FW_VERSION = firmware_versions()[0]

pytestmark = pytest.mark.firmware


@pytest.fixture
def site(tmp_path, virtual_module):
    """Start a bridge, an edge peer on its pty, and a node; yields a small namespace."""
    peers = []

    def start(node_over=None, bridge_over=None, loss=0.0):
        node_port, bridge_port = free_udp_ports(2)
        bcfg = bridge_config(bridge_port, node_port, **(bridge_over or {}))
        ncfg = node_config(node_port, bridge_port, **(node_over or {}))
        bcfg["air"]["loss"] = ncfg["air"]["loss"] = loss  # each end loses this share of what it hears
        bdir = module_dir(tmp_path, "bridge", **bcfg)
        ndir = module_dir(tmp_path, "node", **ncfg)
        bridge = virtual_module("main.py", ["config.json"], cwd=bdir, name="bridge")
        edge = EdgePeer(bridge.port, {NODE_ID: NODE_KEY, BRIDGE_ID: BRIDGE_KEY})
        peers.append(edge)
        wait_until(lambda: edge.sessions, timeout=10, what="HELLO from the bridge")
        node = virtual_module("main.py", ["config.json"], cwd=ndir, name="node")
        return type(
            "Site",
            (),
            {
                "bridge": bridge,
                "node": node,
                "edge": edge,
                "ndir": ndir,
                "bdir": bdir,
                "bridge_port": bridge_port,
                "node_port": node_port,
            },
        )

    yield start
    for p in peers:
        p.close()


def test_node_to_edge_through_bridge_and_downlinks(site):
    s = site()
    edge = s.edge
    hello = edge.sessions[0]
    assert hello["role"] == "bridge" and hello["id"] == BRIDGE_ID and hello["board"] == "unix"
    wait_until(lambda: len(edge.readings(NODE_ID)) >= 3, timeout=20, what="3 readings at the edge")
    r = edge.readings(NODE_ID)[min(edge.readings(NODE_ID))]
    # RSSI/SNR and receive time from the bridge (docs/radio.md section 4)
    assert -100 <= r.rssi <= -94 and 5 <= r.snr <= 8
    assert abs(r.rx_time - hello_time(edge)) < 3600
    # LPP: temperature, humidity, battery on channels 1..3 within 12 bytes
    assert len(r.payload) <= 12 and r.payload[0:2] == b"\x01\x67" and r.payload[4:6] == b"\x02\x68"

    # downlinks, each confirmed on port 2: set an output, ask for a status, then set the
    # interval to a day (last: a node only hears downlinks after its own uplinks)
    edge.queue_command(NODE_ID, 102, 2, bytes([1, 1]))
    wait_until(lambda: 102 in edge.downlink_results, timeout=20, what="set_output result")
    edge.queue_command(NODE_ID, 103, 3)
    wait_until(lambda: 103 in edge.downlink_results, timeout=20, what="request_status result")
    edge.queue_command(NODE_ID, 101, 1, struct.pack(">I", 86400))
    wait_until(lambda: 101 in edge.downlink_results, timeout=20, what="set_interval result")
    assert [edge.downlink_results[i][0] for i in (101, 102, 103)] == [0, 0, 0]
    wait_until(lambda: len(edge.of_port(NODE_ID, 3)) >= 2, timeout=20, what="requested status uplink")
    # the bridge reports itself too
    wait_until(lambda: edge.statuses, timeout=20, what="bridge STATUS")
    st = edge.statuses[-1]
    assert {"heap_free", "uptime", "journal", "rx", "tx", "bad_mic", "airtime_ms", "deferred"} <= set(st)
    assert st["rx"] >= 3 and st["tx"] >= 3

    # every fcnt the node used reached the edge; its journal is empty
    def drained():
        used = {f for (d, f) in edge.stored if d == NODE_ID}
        # every fcnt the node used is at the edge, and the node heard the ACK of the last one
        return used and used == set(range(max(used) + 1)) and str(max(used)) in trace(s.node, "acked")

    wait_until(drained, timeout=20, what="node journal drained")
    s.node.stop()
    assert journal_pending(s.ndir) == []
    assert all(n == 1 for n in [len([k for k in edge.stored if k == key]) for key in edge.stored])
    assert '"interval": 86400' in (s.ndir / "config.json").read_text()


def hello_time(edge: EdgePeer) -> int:
    return edge._session._hello["time"]


def test_thirty_percent_loss_every_reading_exactly_once(site):
    s = site(loss=0.3)
    edge = s.edge
    # the first 12 readings the node took must all arrive, each stored once
    wait_until(lambda: len(taken(s.node)) >= 12, timeout=30, what="12 readings taken")
    first = taken(s.node)[:12]

    def delivered():
        got = edge.readings(NODE_ID)
        return all(f in got for f in first)

    wait_until(delivered, timeout=60, what="all of the first 12 readings at the edge")
    s.node.stop()
    s.bridge.stop()
    readings = edge.readings(NODE_ID)
    assert set(first) <= set(readings)
    # the loss made the node retry: the edge saw duplicates, stored none of them twice
    arrivals = {f: n for (d, f), n in edge.arrivals.items() if d == NODE_ID}
    assert sum(arrivals.values()) > len(arrivals)
    assert edge.results.get("duplicate", 0) >= 1
    assert len(edge.stored) == len(set(edge.stored))
    # each fcnt used once: taken readings never share a counter value
    assert len(taken(s.node)) == len(set(taken(s.node)))


def test_bad_input_rejected_and_reported(site):
    s = site()
    edge = s.edge
    wait_until(lambda: len(edge.readings(NODE_ID)) >= 1, timeout=20, what="a first reading")

    # rogue radio frames on the air, heard by the bridge. The bridge is deaf while it
    # transmits (half duplex), so each frame is repeated until the bridge has reported it.
    good = radio_frame(0x40, NODE_KEY, NODE_ID, 999999, 1, b"\x01\x67\x00\xd7")
    rogue_frames = [
        ("short", good[:10]),
        ("kind", bytes([0x41]) + good[1:]),
        ("port", radio_frame(0x40, NODE_KEY, NODE_ID, 999998, 9, b"x")),
    ]
    rogue = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for reason, bad in rogue_frames:

            def reported(reason=reason, bad=bad):
                if any(reason in log["msg"] for log in edge.logs):
                    return True
                rogue.sendto(AIR_SF7.datagram(bad), ("127.0.0.1", s.bridge_port))
                time.sleep(0.2)
                return False

            wait_until(reported, timeout=15, what=f"LOG frame for a {reason} radio frame")
        forged = radio_frame(0x40, bytes(16), NODE_ID, 999997, 1, b"\x01\x67\x00\xd7")

        def refused():
            if edge.results.get("bad_mic", 0) >= 1:
                return True
            rogue.sendto(AIR_SF7.datagram(forged), ("127.0.0.1", s.bridge_port))
            time.sleep(0.2)
            return False

        wait_until(refused, timeout=15, what="forged frame forwarded and refused for its MIC")
    finally:
        rogue.close()
    assert all(log["lvl"] == "warn" for log in edge.logs)
    wait_until(
        lambda: any(st.get("bad_mic", 0) >= 1 for st in edge.statuses),
        timeout=30,
        what="bridge STATUS counting the bad MIC",
    )

    # downlinks the node must refuse, each answered on port 2 with the reason
    edge.queue_command(NODE_ID, 201, 9)  # unknown command
    wait_until(lambda: 201 in edge.downlink_results, timeout=20, what="unknown command answer")
    edge.queue_command(NODE_ID, 202, 1, struct.pack(">I", 5))  # interval below 10 s
    wait_until(lambda: 202 in edge.downlink_results, timeout=20, what="out of range answer")
    assert edge.downlink_results[201][0] == 1 and "unknown" in edge.downlink_results[201][1]
    assert edge.downlink_results[202][0] == 2 and "interval" in edge.downlink_results[202][1]

    # a downlink with a bad MIC: the node refuses it, keeps its reading and sends it again
    before = len(edge.readings(NODE_ID))
    edge.wrong_key_downlinks[NODE_ID] = 2
    wait_until(lambda: edge.wrong_key_downlinks[NODE_ID] == 0, timeout=20, what="spoiled downlinks sent")
    wait_until(lambda: edge.results.get("duplicate", 0) >= 1, timeout=30, what="the refused reading resent")
    edge.queue_command(NODE_ID, 203, 3)
    wait_until(
        lambda: any(_status_has(st.payload, "m") for st in edge.of_port(NODE_ID, 3)),
        timeout=30,
        what="node status counting bad MIC downlinks",
    )

    # the bridge's own commands over serial DOWNLINK: a bad MIC is refused with a reason
    edge.send_downlink(radio_frame(0x60, bytes(16), BRIDGE_ID, 0, 3, struct.pack(">HB", 301, 3)), "bad")
    wait_until(lambda: edge.refused, timeout=10, what="NACK of the bad own downlink")
    assert edge.refused[0][1] == "INVALID" and "mic" in edge.refused[0][2]
    edge.send_downlink(radio_frame(0x60, BRIDGE_KEY, BRIDGE_ID, 0, 3, struct.pack(">HB", 302, 9)), "unknown")
    wait_until(lambda: 302 in edge.downlink_results, timeout=10, what="bridge answers its own command")
    assert edge.downlink_results[302][0] == 1

    # and both modules keep working
    wait_until(lambda: len(edge.readings(NODE_ID)) >= before + 2, timeout=30, what="readings after bad input")
    assert s.node.running and s.bridge.running


def _status_has(payload: bytes, key: str) -> bool:
    import json

    doc = json.loads(payload)
    return doc.get(key, 0) >= 1


def test_reboot_config_update_own_readings_and_edge_restart(site):
    s = site(bridge_over={"own_readings": True, "interval": 10})
    edge = s.edge
    wait_until(lambda: len(edge.readings(NODE_ID)) >= 2, timeout=20, what="node readings")
    # the bridge's own sensors go up like any reading, with RSSI 0 and SNR 0
    own = wait_until(lambda: edge.readings(BRIDGE_ID), timeout=20, what="the bridge's own reading")
    first = own[min(own)]
    assert (first.rssi, first.snr) == (0, 0) and len(first.payload) == 11

    # config update: allowed keys are applied and persisted; identity keys are refused
    edge.queue_command(NODE_ID, 401, 5, b'{"interval":20,"rx_window":2}')
    wait_until(lambda: 401 in edge.downlink_results, timeout=20, what="config update result")
    assert edge.downlink_results[401][0] == 0
    saved = json.loads((s.ndir / "config.json").read_text())
    assert saved["interval"] == 20 and saved["rx_window"] == 2 and saved["id"] == NODE_ID
    edge.queue_command(NODE_ID, 402, 5, json.dumps({"key": "00" * 16}).encode())
    wait_until(lambda: 402 in edge.downlink_results, timeout=20, what="refused config update")
    assert edge.downlink_results[402][0] == 2 and "not changeable" in edge.downlink_results[402][1]

    # reboot: confirmed on port 2, the node restarts, the counter moves on, readings go on
    before = max(f for (d, f) in edge.stored if d == NODE_ID)
    edge.queue_command(NODE_ID, 403, 4)
    wait_until(lambda: 403 in edge.downlink_results, timeout=20, what="reboot result")
    wait_until(
        lambda: s.node.output_text().count(f"fieldpost {FW_VERSION} node") >= 2, timeout=20, what="reboot"
    )
    assert "SAFE MODE" not in s.node.output_text()
    wait_until(lambda: max(edge.readings(NODE_ID)) > before + 1, timeout=30, what="readings after reboot")

    # the edge restarts: it opens the port again and says HELLO; the bridge answers, delivery goes on
    edge.close()
    edge2 = EdgePeer(s.bridge.port, {NODE_ID: NODE_KEY, BRIDGE_ID: BRIDGE_KEY})
    try:
        wait_until(lambda: edge2.sessions, timeout=10, what="new session with the restarted edge")
        wait_until(lambda: len(edge2.readings(NODE_ID)) >= 2, timeout=30, what="readings at the new edge")
    finally:
        edge2.close()
