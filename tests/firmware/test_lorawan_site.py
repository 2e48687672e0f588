"""LoRaWAN end to end with the real firmware (a virtual node and bridge) and the real edge ingest:
what a sniffer on the loopback air sees, and a node whose counter went back under its session."""

from __future__ import annotations

import json
import shutil

import pytest

from edge import alarms
from edge.lorawan.network import COUNTER_RESET_RULE
from edge.radio import AckResult
from tests.conftest import wait_until
from tests.firmware import air
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
    taken,
    trace,
)
from tests.firmware.realedge import RealEdge

pytestmark = pytest.mark.firmware


@pytest.fixture
def site(tmp_path, virtual_module):
    edge = RealEdge(tmp_path / "edge.db")
    edge.register(NODE_ID, NODE_KEY)
    edge.register(BRIDGE_ID, BRIDGE_KEY, role="bridge")
    sniffer = air.Sniffer()
    node_port, bridge_port = free_udp_ports(2)
    ncfg = node_config(node_port, bridge_port, interval=10)
    ncfg["air"]["peers"].append(sniffer.port)
    bcfg = bridge_config(bridge_port, node_port)
    bcfg["air"]["peers"].append(sniffer.port)
    ndir = module_dir(tmp_path, "node", **ncfg)
    bridge = virtual_module(
        "main.py", ["config.json"], cwd=module_dir(tmp_path, "bridge", **bcfg), name="bridge"
    )
    peer = EdgePeer(bridge.port, {}, ingest=edge)
    node = virtual_module("main.py", ["config.json"], cwd=ndir, name="node")
    try:
        yield edge, node, ndir, sniffer
    finally:
        node.stop()
        peer.close()
        sniffer.close()
        edge.close()


def test_a_sniffer_on_the_air_sees_no_plaintext_reading(site):
    edge, node, _, sniffer = site
    wait_until(lambda: len(edge.stored(NODE_ID, port=1)) >= 8, timeout=40, what="8 readings stored")
    with edge.lock:
        raws = [
            bytes(r[0])
            for r in edge.conn.execute(
                "SELECT raw FROM reading_list WHERE device_id = ? AND port = 1", (NODE_ID,)
            )
        ]
    # what the edge stored is what the node measured: standard LPP readings (temperature,
    # humidity, battery), decrypted with the session key, not bytes a broken cipher made up
    assert all(r[0:2] == b"\x01\x67" and r[4:6] == b"\x02\x68" and r[7:9] == b"\x03\x02" for r in raws)
    heard = list(sniffer.frames)
    assert len(heard) >= 16  # uplinks and their downlinks
    # every frame on the air is LoRaWAN: join request/accept, confirmed data up, data down
    assert {f[0] for f in heard} <= {0x00, 0x20, 0x60, 0x80}
    assert {0x00, 0x20, 0x80, 0x60} <= {f[0] for f in heard}
    # no reading's value is readable on the air: neither the whole LPP payload nor any of its
    # 3- or 4-byte channel records (channel, type, value)
    pieces = {raw[i : i + 4] for raw in raws for i in (0, 7)} | {raw[4:7] for raw in raws}
    assert raws and pieces
    leaked = [p.hex() for p in pieces for f in heard if p in f]
    assert leaked == []
    # a standard reading is 24 bytes on the air (13 of LoRaWAN overhead + 11 of LPP)
    assert 24 in {len(f) for f in heard if f[0] == 0x80}


def test_counter_reset_under_the_same_session_loses_nothing(site):
    edge, node, ndir, _ = site
    wait_until(lambda: len(edge.stored(NODE_ID, port=1)) >= 4, timeout=30, what="4 readings stored")
    node.stop()
    before = edge.stored(NODE_ID, port=1)
    # The node loses its counter and journal (flash restored from an old image, say) but keeps
    # its session: its next readings reuse FCnt values the edge has stored, with other bytes.
    for name in ("fcnt.a", "fcnt.b"):
        (ndir / name).unlink(missing_ok=True)
    shutil.rmtree(ndir / "journal", ignore_errors=True)
    # and its sensors read other values than at the same counters before (the simulated sensors'
    # phase comes from the seed): same bytes at a stored counter would be a true duplicate
    cfg = json.loads((ndir / "config.json").read_text())
    (ndir / "config.json").write_text(json.dumps({**cfg, "seed": 500}))
    node.output.clear()
    mark = len(edge.results)
    node.start()
    wait_until(lambda: trace(node, "rejoin"), timeout=30, what="the node told to rejoin")
    wait_until(
        lambda: len(edge.stored(NODE_ID, port=1)) >= len(before) + 4,
        timeout=40,
        what="readings flowing again",
    )
    node.stop()
    after = edge.results[mark:]
    mine = [(f, r) for d, f, r in after if d == NODE_ID]
    # nothing of the reset node was ACKed "duplicate" of a reading stored before the reset: it was
    # told to rejoin instead. (A frame of its new session whose ACK it missed in its receive windows
    # is sent again and is a true duplicate of what that session stored: those are allowed.)
    assert AckResult.REJOIN in {r for _, r in mine}
    stored_since = [f for f, r in mine if r == AckResult.STORED]
    for i, (f, r) in enumerate(mine):
        if r == AckResult.DUPLICATE:
            assert f in {g for g, q in mine[:i] if q == AckResult.STORED}, (f, mine)
    assert stored_since
    # the readings stored before are untouched, every reading taken since is stored (ids above them)
    stored = edge.stored(NODE_ID, port=1)
    assert set(before) <= set(stored)
    new = [f for f in stored if f > max(before)]
    assert len(new) >= len(taken(node)) - 1  # the last one may still be in flight at the stop
    with edge.lock:
        raised = [a for a in alarms.open_alarms(edge.conn) if a.rule == COUNTER_RESET_RULE]
    assert len(raised) == 1 and raised[0].device_id == NODE_ID
