"""A key rotated while readings wait in the journals, end to end against the real edge.

A node and a bridge with its own sensors run the real firmware under `micropython`; the
edge side is the real ingest (edge.ingest.handle_uplink on a real SQLite database, devices
registered with edge.registry: MIC with the registered key, replay floor, dedupe) behind
the real link session (tests/firmware/edgepeer.py with tests/firmware/realedge.py).

1. Both modules deliver under key 1.
2. The edge goes away; both modules journal readings under key 1 (the backlog).
3. The key is rotated as `fieldpost provision module --rotate-key` does it: the module is
   stopped, config.json gets key 2, the edge gets key 2 and resets its replay floor.
4. The modules boot again with the edge back: the backlog goes out signed with key 2, then
   the new readings. Nothing lost, nothing refused, both journals empty.

The refusal policy (fp/refusal.py) is checked on the bridge's own uplinks, the only ones
whose refusals the edge reports to a module: against the stand-in edge, one frame refused
for good is given up after LIMIT refusals and the readings behind it go through; an unknown
device (quarantined, adoptable) keeps everything.
"""

from __future__ import annotations

import json
import struct
import time
import zlib

import pytest

from edge.radio import AckResult
from tests.conftest import wait_until
from tests.firmware.edgepeer import EdgePeer, radio_frame
from tests.firmware.modules import (
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
from tests.firmware.realedge import RealEdge

pytestmark = pytest.mark.firmware

NEW_NODE_KEY = bytes(range(31, 47))
NEW_BRIDGE_KEY = bytes(range(131, 147))
LIMIT = 5  # fp/refusal.py LIMIT


@pytest.fixture
def real_edge(tmp_path):
    edge = RealEdge(tmp_path / "edge.db")
    try:
        yield edge
    finally:
        edge.close()


def set_config(module, **values) -> None:
    path = module / "config.json"
    cfg = json.loads(path.read_text())
    cfg.update(values)
    path.write_text(json.dumps(cfg))


def test_key_rotated_mid_backlog_delivers_everything(tmp_path, virtual_module, real_edge):
    edge = real_edge
    edge.register(NODE_ID, NODE_KEY)
    edge.register(BRIDGE_ID, BRIDGE_KEY, role="bridge")
    node_port, bridge_port = free_udp_ports(2)
    # long intervals first: after the boot reading (and the node's boot status) both
    # modules are idle for half a minute, so the edge can leave with nothing in flight
    bdir = module_dir(
        tmp_path,
        "bridge",
        **bridge_config(bridge_port, node_port, own_readings=True, interval=600, retry_base=1, retry_max=4),
    )
    ndir = module_dir(tmp_path, "node", **node_config(node_port, bridge_port, interval=600))
    bridge = virtual_module("main.py", ["config.json"], cwd=bdir, name="bridge")
    node = virtual_module("main.py", ["config.json"], cwd=ndir, name="node")

    # 1. delivery under key 1
    peer = EdgePeer(bridge.port, {}, ingest=edge)
    try:
        wait_until(
            lambda: len(edge.stored(NODE_ID)) >= 2 and edge.stored(BRIDGE_ID),
            timeout=20,
            what="the boot reading and status of the node, the bridge's own reading",
        )
        wait_until(
            lambda: len([ln for ln in node.output if ln.startswith("T acked")]) >= 2,
            timeout=10,
            what="the node's downlinks",
        )
        time.sleep(0.3)  # the bridge's last ACK on its way back
    finally:
        peer.close()
    before_rotation = {NODE_ID: edge.stored(NODE_ID), BRIDGE_ID: edge.stored(BRIDGE_ID)}

    # 2. no edge: a reading every 10 s (0.5 s real) piles up in both journals, under key 1
    for vm, d in ((node, ndir), (bridge, bdir)):
        vm.stop()
        set_config(d, interval=10)
        vm.start()
    first = len(taken(node))
    wait_until(lambda: len(taken(node)) >= first + 6, timeout=20, what="readings taken with no edge")
    time.sleep(1.0)  # the bridge's own readings, which it does not trace
    node.stop()
    bridge.stop()
    backlog = {NODE_ID: journal_pending(ndir), BRIDGE_ID: journal_pending(bdir)}
    assert len(backlog[NODE_ID]) >= 6 and len(backlog[BRIDGE_ID]) >= 3, backlog
    assert not set(backlog[NODE_ID]) & set(before_rotation[NODE_ID])

    # 3. rotation, as provisioning does it on both sides (modules stopped meanwhile)
    rotated_at = len(edge.results)
    set_config(ndir, key=NEW_NODE_KEY.hex())
    set_config(bdir, key=NEW_BRIDGE_KEY.hex())
    edge.rotate_key(NODE_ID, NEW_NODE_KEY)
    edge.rotate_key(BRIDGE_ID, NEW_BRIDGE_KEY)

    # 4. back with the edge: the backlog under key 2, then new readings
    bridge.start()
    node.start()
    taken_before = set(taken(node))
    peer = EdgePeer(bridge.port, {}, ingest=edge)
    try:
        wait_until(
            lambda: (
                set(backlog[NODE_ID]) <= set(edge.stored(NODE_ID))
                and set(backlog[BRIDGE_ID]) <= set(edge.stored(BRIDGE_ID))
            ),
            timeout=30,
            what="the backlog of both modules stored under the new key",
        )
        # (and the node caught up with them: each uplink waits for its receive windows, a second
        # or more of the node's time, so the backlog and the join take a while to go through)
        wait_until(
            lambda: (
                len(set(taken(node)) - taken_before) >= 3
                and len((set(taken(node)) - taken_before) & set(edge.stored(NODE_ID))) >= 2
                and max(edge.stored(BRIDGE_ID)) > max(backlog[BRIDGE_ID]) + 1
            ),
            timeout=30,
            what="new readings after the rotation, stored",
        )
        node.stop()
        bridge.stop()
        statuses = list(peer.statuses)
    finally:
        peer.close()

    after = edge.results[rotated_at:]
    # nothing refused: no frame went out with the old key, no counter was taken for a replay
    # (a LoRaWAN node joins again under its new AppKey: JOINED)
    assert [r for r in after if r[2] not in (AckResult.STORED, AckResult.DUPLICATE, AckResult.JOINED)] == []
    # nothing lost: every reading the node took, in every phase, is stored (once: one row per
    # (device, fcnt)) or, if taken in the last moments before the stop, still in its journal
    # (an ACK may also have been on its way); nothing of the backlog waits any more
    for device, module, took in ((NODE_ID, ndir, set(taken(node))), (BRIDGE_ID, bdir, None)):
        stored = edge.stored(device)
        pending = journal_pending(module)
        assert len(pending) <= 3 and all(f > max(backlog[device]) for f in pending), (device, pending)
        assert set(backlog[device]) | set(before_rotation[device]) <= set(stored)
        if took is not None:
            assert took <= set(stored) | set(pending)
    # nothing given up
    assert statuses and all(st.get("given_up", 0) == 0 for st in statuses)


def test_node_whose_acks_were_lost_before_a_rotation_drains_its_journal(tmp_path, virtual_module, real_edge):
    """The wedge of a radio node: readings stored by the edge whose downlinks (ACKs) the node never
    heard, then a key rotation. The node sends them again under the new key; the real edge answers
    "duplicate" (same port and payload as stored) with the ACK, so the node's journal drains. The
    node learns nothing from a rejection (the bridge cannot sign one): an edge answering "replayed"
    had it retry the first such frame for ever, every later reading stuck behind it."""
    edge = real_edge
    edge.register(NODE_ID, NODE_KEY)
    edge.register(BRIDGE_ID, BRIDGE_KEY, role="bridge")
    node_port, bridge_port = free_udp_ports(2)
    bdir = module_dir(tmp_path, "bridge", **bridge_config(bridge_port, node_port))
    ncfg = node_config(node_port, bridge_port, interval=30)
    ndir = module_dir(tmp_path, "node", **ncfg)
    bridge = virtual_module("main.py", ["config.json"], cwd=bdir, name="bridge")
    peer = EdgePeer(bridge.port, {}, ingest=edge)
    try:
        # LoRaWAN: the node joins (and opens its session) while it can hear, then goes deaf
        node = virtual_module("main.py", ["config.json"], cwd=ndir, name="node")
        wait_until(lambda: trace(node, "announced"), timeout=20, what="the node's session open")
        node.stop()
        ncfg["air"]["loss"] = 1.0  # the node hears nothing: every downlink (ACK) is lost
        (ndir / "config.json").write_text(json.dumps(ncfg))
        node.output.clear()
        node.start()
        # the head of its journal stored, and sent again since the node never heard the ACK
        wait_until(lambda: edge.answers(AckResult.DUPLICATE), timeout=20, what="a frame stored and resent")
        node.stop()
        pending = journal_pending(ndir)
        assert trace(node, "acked") == []
        stored_unacked = [f for f in pending if f in edge.stored(NODE_ID)]
        assert stored_unacked and pending[0] == stored_unacked[0] and len(pending) >= 2

        # rotation, as provisioning does it; the node hears again
        rotated_at = len(edge.results)
        ncfg = json.loads((ndir / "config.json").read_text())
        ncfg["key"] = NEW_NODE_KEY.hex()
        ncfg["air"]["loss"] = 0.0
        (ndir / "config.json").write_text(json.dumps(ncfg))
        edge.rotate_key(NODE_ID, NEW_NODE_KEY)
        node.start()
        wait_until(
            lambda: {str(f) for f in pending} <= set(trace(node, "acked")),
            timeout=30,
            what="every frame of the backlog acknowledged to the node",
        )
        node.stop()
    finally:
        peer.close()
    after = [(f, r) for d, f, r in edge.results[rotated_at:] if d == NODE_ID]
    # (JOINED: a LoRaWAN node joins again under its new AppKey)
    assert [
        (f, r) for f, r in after if r not in (AckResult.STORED, AckResult.DUPLICATE, AckResult.JOINED)
    ] == []
    # the frames stored before the rotation came back under the new key: duplicates, then the rest stored
    assert set(stored_unacked) <= {f for f, r in after if r == AckResult.DUPLICATE}
    assert set(pending) - set(stored_unacked) <= {f for f, r in after if r == AckResult.STORED}
    assert all(f > max(pending) for f in journal_pending(ndir))


def test_bridge_gives_up_a_frame_refused_for_good_and_keeps_an_unknown_devices(tmp_path, virtual_module):
    node_port, bridge_port = free_udp_ports(2)
    bdir = module_dir(
        tmp_path,
        "bridge",
        **bridge_config(
            bridge_port, node_port, own_readings=True, interval=10, retry_base=1, retry_max=4, status_every=2
        ),
    )
    bridge = virtual_module("main.py", ["config.json"], cwd=bdir, name="bridge")
    # the edge does not know the bridge yet: quarantined, "unknown device" to every uplink
    peer = EdgePeer(bridge.port, {}, refuse={(BRIDGE_ID, 0): 2})
    try:
        wait_until(
            lambda: peer.results.get("unknown", 0) >= 2 * LIMIT,
            timeout=30,
            what="uplinks refused as from an unknown device",
        )
        assert all(st.get("given_up", 0) == 0 for st in peer.statuses)  # kept: it may be adopted
        # adopted: known from now on; its first frame (fcnt 0) stays refused (bad MIC) whatever it does
        peer.keys[BRIDGE_ID] = BRIDGE_KEY
        wait_until(
            lambda: len(peer.readings(BRIDGE_ID)) >= 3,
            timeout=30,
            what="the readings behind the refused frame",
        )
        wait_until(
            lambda: any(st.get("given_up") == 1 for st in peer.statuses),
            timeout=10,
            what="the frame given up, in STATUS",
        )
        time.sleep(0.5)
        bridge.stop()
        refusals = dict(peer.refusals)
        logs = list(peer.logs)
        stored = peer.readings(BRIDGE_ID)
    finally:
        peer.close()
    assert refusals == {(BRIDGE_ID, 0): LIMIT}  # LIMIT tries, then never sent again
    assert 0 not in stored and min(stored) == 1  # the one refused for good; all others stored
    assert any("given up" in entry["msg"] for entry in logs)
    assert 0 not in journal_pending(bdir)


def format1_record(rtype: int, body: bytes) -> bytes:
    """A journal record as firmware 0.1.0 wrote it (and format 2 still does): magic, type, len, body, CRC."""
    head = bytes([0xA5, rtype, len(body)])
    return head + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(head[1:3])))


def test_node_upgraded_from_0_1_0_with_a_signed_backlog_and_a_new_key(tmp_path, virtual_module, real_edge):
    # A node that ran firmware 0.1.0 kept its backlog signed with key 1 (format 1, no FORMAT
    # record). Provisioning then copies this firmware and rotates the key. On boot the journal
    # is migrated (MICs stripped, one atomic compaction); the readings go out under key 2.
    edge = real_edge
    edge.register(NODE_ID, NODE_KEY)
    edge.register(BRIDGE_ID, BRIDGE_KEY, role="bridge")
    payloads = {fcnt: bytes([1, 0x67, 0, 200 + fcnt, 2, 0x68, 97, 3, 2, 1, 0x73]) for fcnt in range(5)}
    node_port, bridge_port = free_udp_ports(2)
    ndir = module_dir(
        tmp_path, "node", **node_config(node_port, bridge_port, interval=600, key=NEW_NODE_KEY.hex())
    )
    (ndir / "journal").mkdir()
    with open(ndir / "journal" / "s00000001.j", "wb") as f:
        for fcnt, payload in payloads.items():
            f.write(format1_record(1, radio_frame(0x40, NODE_KEY, NODE_ID, fcnt, 1, payload)))
        f.write(format1_record(2, struct.pack(">I", 0)))  # fcnt 0 was acknowledged
    edge.rotate_key(NODE_ID, NEW_NODE_KEY)
    bdir = module_dir(tmp_path, "bridge", **bridge_config(bridge_port, node_port))
    bridge = virtual_module("main.py", ["config.json"], cwd=bdir, name="bridge")
    peer = EdgePeer(bridge.port, {}, ingest=edge)
    try:
        node = virtual_module("main.py", ["config.json"], cwd=ndir, name="node")
        wait_until(
            lambda: {1, 2, 3, 4} <= set(edge.stored(NODE_ID)), timeout=20, what="the old backlog stored"
        )
        # then the boot reading and status (the next reading is 30 s away: the node goes idle)
        wait_until(
            lambda: (
                taken(node)
                and set(taken(node)) <= set(edge.stored(NODE_ID))
                and len(edge.stored(NODE_ID)) >= 6
            ),
            timeout=20,
            what="the boot reading and status stored",
        )
        wait_until(lambda: len(trace(node, "acked")) >= 6, timeout=10, what="the node's downlinks")
        node.stop()
    finally:
        peer.close()
    assert "journal: 4 pending frame(s) of format 1 kept" in node.output_text()
    assert edge.answers(AckResult.BAD_MIC) == [] and edge.answers(AckResult.REPLAYED) == []
    with edge.lock:
        rows = dict(
            edge.conn.execute(
                "SELECT fcnt, raw FROM reading_list WHERE device_id = ? AND port = 1", (NODE_ID,)
            )
        )
    assert {f: bytes(rows[f]) for f in (1, 2, 3, 4)} == {f: payloads[f] for f in (1, 2, 3, 4)}
    assert 0 not in rows  # acknowledged before the upgrade: not sent again
    # counted on from above the old backlog: the boot reading got a fresh counter value
    assert taken(node) and all(f > 4 for f in taken(node))
    assert journal_pending(ndir) == []
