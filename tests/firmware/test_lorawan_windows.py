"""LoRaWAN class A receive windows (docs/radio.md 0.7) with the real firmware: a virtual node
(micropython-lib's SX1262 driver over the emulated chip) hears a downlink only in RX1 (RECEIVE_DELAY1
after its uplink, the uplink's channel) or RX2 (a second later, 869.525 MHz SF12), with inverted IQ;
one sent between them, on the other window's channel, or with an uplink's normal IQ is lost. The
node's air peer stands in for bridge + edge and sends where each test says; the bridge's own
scheduling (RX1, or RX2 when forced) runs end to end with the real edge ingest in the second half."""

from __future__ import annotations

import time

import pytest

from tests.conftest import wait_until
from tests.firmware.airpeer import AirPeer
from tests.firmware.edgepeer import EdgePeer
from tests.firmware.modules import (
    BRIDGE_ID,
    BRIDGE_KEY,
    NODE_ID,
    NODE_KEY,
    bridge_config,
    free_udp_ports,
    module_dir,
    node_config,
    radio_complaints,
    trace,
)
from tests.firmware.realedge import RealEdge

pytestmark = pytest.mark.firmware

# Slow enough for the windows to be far apart in real time: RX1 200 real ms after the uplink, RX2
# 200 ms later, each open 10 real ms either side of its start (fp/lorawan/phy.py)
SCALE = 5


def start_node(tmp_path, virtual_module, peer: AirPeer, node_port: int):
    cfg = node_config(node_port, peer.port, time_scale=SCALE, interval=20, retry_base=2, retry_max=4)
    return virtual_module("main.py", ["config.json"], cwd=module_dir(tmp_path, "node", **cfg), name="node")


@pytest.mark.parametrize("window", ["rx1", "rx2"])
def test_downlinks_heard_in_rx1_and_in_rx2(tmp_path, virtual_module, window):
    (node_port,) = free_udp_ports(1)
    peer = AirPeer(node_port, NODE_ID, NODE_KEY, time_scale=SCALE, window=window)
    try:
        node = start_node(tmp_path, virtual_module, peer, node_port)
        wait_until(lambda: len(trace(node, "acked")) >= 2, timeout=30, what="two readings acknowledged")
    finally:
        peer.close()
    n = window[-1]
    # the join accept came in RX1 (the peer answers joins there); every data downlink in `window`
    assert set(trace(node, "window")[1:]) == {n}
    assert trace(node, "announced")


@pytest.mark.parametrize("window", ["between", "rx2_on_rx1", "rx1_on_rx2", "rx1_as_uplink"])
def test_a_downlink_outside_the_windows_or_on_the_wrong_channel_is_lost(tmp_path, virtual_module, window):
    # rx1_as_uplink: in RX1 on its channel, but with normal IQ, as another node's uplink comes: the
    # node listens with inverted IQ (as a gateway sends), so nodes do not hear each other
    (node_port,) = free_udp_ports(1)
    peer = AirPeer(node_port, NODE_ID, NODE_KEY, time_scale=SCALE, window=window)
    try:
        node = start_node(tmp_path, virtual_module, peer, node_port)
        wait_until(lambda: trace(node, "joined"), timeout=20, what="the join (its accept comes in RX1)")
        # the peer answers the session start, and then its retries, each with a valid ACK
        wait_until(
            lambda: len([w for w, _ in peer.sent_at if w == window]) >= 4,
            timeout=30,
            what="four ACKs sent outside the windows",
        )
        time.sleep(0.5)  # the last one's windows are over
    finally:
        peer.close()
    # none was heard: the session start is never acknowledged, nothing after the join accept
    assert trace(node, "window") == ["1"]
    assert not trace(node, "announced") and not trace(node, "acked")


@pytest.mark.parametrize("late", [False, True])
def test_the_bridge_sends_in_rx1_or_rx2_end_to_end(tmp_path, virtual_module, late):
    """Node, bridge (real firmware) and the edge's ingest: the bridge puts each downlink in RX1
    when the edge's answer is in time, in RX2 when the edge answers too late for RX1 (60 real
    ms: RX1 opens 50 real ms after the uplink at time_scale 20, RX2 100)."""
    edge = RealEdge(tmp_path / "edge.db")
    edge.register(NODE_ID, NODE_KEY)
    edge.register(BRIDGE_ID, BRIDGE_KEY, role="bridge")
    node_port, bridge_port = free_udp_ports(2)
    bcfg = bridge_config(bridge_port, node_port, status_every=2)
    bridge = virtual_module(
        "main.py", ["config.json"], cwd=module_dir(tmp_path, "bridge", **bcfg), name="bridge"
    )
    peer = EdgePeer(bridge.port, {}, ingest=edge, ack_delay=0.06 if late else 0.0)
    try:
        ncfg = node_config(node_port, bridge_port, interval=10)
        node = virtual_module(
            "main.py", ["config.json"], cwd=module_dir(tmp_path, "node", **ncfg), name="node"
        )
        wait_until(lambda: len(edge.stored(NODE_ID, port=1)) >= 4, timeout=40, what="4 readings stored")
        wait_until(lambda: len(trace(node, "acked")) >= 3, timeout=20, what="3 readings acknowledged")
        wait_until(
            lambda: peer.statuses and peer.statuses[-1]["tx"] >= 4,
            timeout=20,
            what="a bridge status counting the downlinks",
        )
    finally:
        peer.close()
        edge.close()
    heard = trace(node, "window")
    status = peer.statuses[-1]
    # the SX1262 (board unix) of each sent and received with inverted IQ as the datasheet says (15.4)
    assert radio_complaints(node) == [] and radio_complaints(bridge) == []
    if late:
        # the join accept in RX1 (JOIN_ACCEPT_DELAY1 is 5 s: time enough), every ACK after it in
        # RX2 (869.525 MHz, SF12)
        assert heard[0] == "1" and set(heard[1:]) == {"2"} and status["tx"] >= 4
    else:
        assert "1" in heard and status["tx"] >= 4
