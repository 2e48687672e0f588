"""A virtual node and a virtual bridge on a real board profile, each running the board's own firmware
bundle (mpy-cross for its arch, with micropython-lib's lora driver for its chip) over the emulated
chip the profile wires (heltec_v2: SX1276, heltec_v3: SX1262), under the board's heap, in front of
the real edge daemon: 1,000 uplinks (heltec_v3; 250 on heltec_v2) and their downlinks (the edge's ACKs, some carrying commands,
each received in the node's window), every reading stored once."""

from __future__ import annotations

import json
import time

import pytest

from edge import downlinks
from edge.daemon import Daemon
from edge.store import connect
from tests.conftest import wait_until
from tests.firmware import modules as fw
from tests.sitekit import NODE_ID, register_modules, site_config, stored_counts

pytestmark = pytest.mark.firmware

# 1,000 on the default board (issue 14: OTAA nodes' 1,000 uplinks end to end); the SX1276 board's own
# driver and chip are as well exercised by 250, at a quarter of its 85 s (the suite's budget is 20 min)
UPLINKS_OF = {"heltec_v3": 1000, "heltec_v2": 250}
# Virtual ms per real ms: a reading every 10 virtual s is one every 83 real ms. Each uplink waits for
# its receive windows, on a scaled clock at least 30 and 60 real ms after it (fp/lorawan/phy.py
# rx_timing: the edge answers in real time, ~33 ms a round trip on this host), so the node can keep
# up; SF7 packets last 0.5 ms of real time.
SCALE = 120
LINES = 10 * max(UPLINKS_OF.values())  # the node traces every reading, transmission and ACK
# 1,000 uplinks within an hour of virtual time: no duty-cycle limit; one status at boot only
COMMON = {
    "duty_cycle": 0,
    "status_every": 86400,
    "dr": 5,
    "time_scale": SCALE,
    "rx_window": 30,
    "watchdog_s": 600,
}
NODE = {**COMMON, "interval": 10, "retry_base": 1, "retry_max": 10}


def frames_made(vm) -> set[int]:
    """The frame counters of the readings and statuses the node traced."""
    return set(fw.taken(vm)) | {int(v) for v in fw.trace(vm, "status")}


def status(conn, dl_id) -> str:
    return conn.execute("SELECT status FROM downlinks WHERE id = ?", (dl_id,)).fetchone()[0]


@pytest.mark.parametrize("board", ["heltec_v2", "heltec_v3"])
def test_a_thousand_uplinks_and_their_downlinks_stored_once(board, tmp_path, db_path, virtual_module):
    uplinks = UPLINKS_OF[board]
    # the board's own bundle under a heap sized from the board's (tests.firmware.modules.HEAP_FACTOR)
    image = {"firmware_dir": fw.virtual_bundle(tmp_path, board), "heapsize": fw.board_heap(board)}
    node_port, bridge_port = fw.free_udp_ports(2)
    conn = connect(db_path)
    register_modules(conn, now=time.time())
    bridge_cfg = fw.bridge_config(bridge_port, node_port, board=board, **COMMON)
    node_cfg = fw.node_config(node_port, bridge_port, board=board, **NODE)
    bridge_dir = fw.module_dir(tmp_path, "bridge", **bridge_cfg)
    node_dir = fw.module_dir(tmp_path, "node", **node_cfg)
    bridge = virtual_module(
        "main.py", ["config.json"], cwd=bridge_dir, name="bridge", precompile=False, **image
    )
    daemon = Daemon(site_config(db_path, bridge), attach_points=()).start()
    try:
        wait_until(lambda: daemon.manager.links_up() == 1, timeout=15, what="the bridge's HELLO")
        now = time.time()
        commands = [
            downlinks.queue(conn, NODE_ID, "set_output", {"output": 1, "value": 1}, source="panel", now=now),
            downlinks.queue(conn, NODE_ID, "request_status", {}, source="panel", now=now),
        ]
        node = virtual_module(
            "main.py",
            ["config.json"],
            cwd=node_dir,
            name="node",
            precompile=False,
            output_lines=LINES,
            **image,
        )
        wait_until(
            lambda: len(stored_counts(conn, NODE_ID, port=1)) >= uplinks,
            timeout=300,
            interval=0.5,
            what=f"{uplinks} readings stored",
        )
        commands.append(downlinks.queue(conn, NODE_ID, "request_status", {}, source="panel", now=time.time()))

        def drained():
            # every frame the node made so far is stored, it heard the downlink of its latest, and
            # the commands were answered: returns that set of frames
            made = frames_made(node)
            acked = {int(v) for v in fw.trace(node, "acked")}
            done = made <= set(stored_counts(conn, NODE_ID)) and max(made) in acked
            return made if done and all(status(conn, c) == "acked" for c in commands) else None

        made = wait_until(drained, timeout=60, interval=0.2, what="the node's frames stored and acknowledged")
        node.stop()
    finally:
        daemon.stop()

    stored = stored_counts(conn, NODE_ID)
    # all stored, each exactly once (the retries the radio caused were answered as duplicates)
    assert sum(stored.values()) >= uplinks and set(stored.values()) == {1}
    answers = stored_counts(conn, NODE_ID, port=2)
    assert made <= set(stored) and len(answers) == len(commands)  # plus the commands' port-2 answers
    # it heard the downlink of every one: all that waits in its journal is what it took after that,
    # or a frame whose "done" record had not reached its flash when the node was stopped (it is
    # sent again after a restart and answered as a duplicate: stored once all the same)
    # A frame taken after the drained point may sit in the journal before its "taken" line reached
    # the trace (the node was stopped between the two): it counts as later, not as unfinished.
    later = frames_made(node) - made
    pending = set(fw.journal_pending(node_dir))
    unfinished = {f for f in pending if f <= max(made)}
    assert unfinished <= set(stored) and len(unfinished) <= 1 and all(f > max(made) for f in later)
    # downlinks in the node's receive window, one per uplink at least (retries get theirs too)
    assert len(fw.trace(node, "acked")) >= uplinks
    # the radio metadata came through the chips' registers and the driver: -97 dBm and 6.5 dB
    rows = conn.execute(
        "SELECT rssi, snr FROM reading_list WHERE device_id = ? AND port = 1", (NODE_ID,)
    ).fetchall()
    assert all(-100 <= r["rssi"] <= -94 and 5 <= r["snr"] <= 8 for r in rows)
    assert json.loads((node_dir / "config.json").read_text())["board"] == board
    assert fw.radio_complaints(node) == [] and fw.radio_complaints(bridge) == []
    assert not [line for vm in (node, bridge) for line in vm.output if "Error" in line]
    conn.close()
