"""A virtual node and a virtual bridge on a real board profile, each running the firmware with
micropython-lib's lora driver over the emulated chip the profile wires (heltec_v2: SX1276,
heltec_v3: SX1262), in front of the real edge daemon: 1,000 uplinks and their downlinks, every
reading stored once.

The node first runs alone (no bridge on the air) at a high time scale until it has journaled
1,000 readings, as a node does through a long outage; then the bridge and the edge come up and
the node sends its backlog, each uplink answered by a downlink in its receive window (the edge's
ACK, some carrying commands), while it goes on taking readings."""

from __future__ import annotations

import json
import time

import pytest

from edge import downlinks
from edge.daemon import Daemon
from edge.db import connect
from tests.conftest import wait_until
from tests.firmware import modules as fw
from tests.sitekit import NODE_ID, register_modules, site_config, stored_counts

pytestmark = pytest.mark.firmware

UPLINKS = 1000
SCALE = 50  # virtual ms per real ms once the bridge is up: SF7 packets last ~1.3 ms of real time
LINES = 10 * UPLINKS  # the node traces every reading, transmission and ACK
COMMON = {"duty_cycle": 0, "status_every": 86400, "dr": 5}  # the test sends 1,000 uplinks in an hour


def node_settings(board, time_scale):
    return {
        **COMMON,
        "board": board,
        "interval": 10,
        "time_scale": time_scale,
        "rx_window": 10,
        "retry_base": 2,
        "retry_max": 60,
        "journal_max": 2 * UPLINKS,
        "journal_seg": 8192,
        "fcnt_block": 64,
        "watchdog_s": 60,
    }


def frames_made(vm):
    """The frame counters of the readings and statuses the node traced."""
    return set(fw.taken(vm)) | {int(v) for v in fw.trace(vm, "status")}


def radio_complaints(vm):
    """Lines where an emulated chip logged invalid use (notes are harmless by definition)."""
    return [line for line in vm.output if line.startswith("radio sx12") and "note:" not in line]


@pytest.mark.parametrize("board", ["heltec_v2", "heltec_v3"])
def test_a_thousand_uplinks_and_their_downlinks_stored_once(board, tmp_path, db_path, virtual_module):
    node_port, bridge_port = fw.free_udp_ports(2)
    conn = connect(db_path)
    register_modules(conn, now=time.time())

    # 1. the node alone: a backlog of readings in its journal
    node_dir = fw.module_dir(
        tmp_path, "node", **fw.node_config(node_port, bridge_port, **node_settings(board, 50000))
    )
    node = virtual_module("main.py", ["config.json"], cwd=node_dir, name="node", output_lines=LINES)
    wait_until(lambda: len(fw.taken(node)) >= UPLINKS, timeout=60, interval=0.1, what=f"{UPLINKS} readings")
    node.stop()
    backlog = set(fw.taken(node))
    made = backlog | frames_made(node)
    assert fw.trace(node, "acked") == []  # nobody heard it

    # 2. the bridge and the edge come up, then the node again, at a scale a host can follow
    bridge_cfg = fw.bridge_config(
        bridge_port, node_port, board=board, time_scale=SCALE, rx_window=10, **COMMON
    )
    bridge_dir = fw.module_dir(tmp_path, "bridge", **bridge_cfg)
    bridge = virtual_module("main.py", ["config.json"], cwd=bridge_dir, name="bridge", output_lines=LINES)
    daemon = Daemon(site_config(db_path, bridge), attach_points=()).start()
    try:
        wait_until(lambda: daemon.manager.links_up() == 1, timeout=15, what="the bridge's HELLO")
        (node_dir / "config.json").write_text(
            json.dumps(fw.node_config(node_port, bridge_port, **node_settings(board, SCALE)))
        )
        node.output.clear()
        node.start()
        now = time.time()
        commands = [
            downlinks.queue(conn, NODE_ID, "set_output", {"output": 1, "value": 1}, source="panel", now=now),
            downlinks.queue(conn, NODE_ID, "request_status", {}, source="panel", now=now),
        ]

        def delivered():
            stored = stored_counts(conn, NODE_ID)
            return backlog <= set(stored) and all(
                conn.execute("SELECT status FROM downlinks WHERE id = ?", (c,)).fetchone()[0] == "acked"
                for c in commands
            )

        wait_until(delivered, timeout=120, interval=0.2, what=f"the {UPLINKS} readings of the backlog stored")

        def drained():  # every reading the node took is stored, and the node heard each one's downlink
            taken = backlog | set(fw.taken(node))
            acked = {int(v) for v in fw.trace(node, "acked")}
            return taken <= set(stored_counts(conn, NODE_ID)) and max(taken) in acked

        wait_until(drained, timeout=60, interval=0.2, what="the node's journal drained")
        node.stop()
    finally:
        daemon.stop()
        node.stop()

    stored = stored_counts(conn, NODE_ID)
    # all stored, each exactly once: the retries the radio caused were answered as duplicates
    assert sum(stored.values()) >= UPLINKS and set(stored.values()) == {1}
    # every frame the node made: its readings and statuses, and its answers to the commands on port 2
    made |= frames_made(node)
    answers = stored_counts(conn, NODE_ID, port=2)
    assert made <= set(stored) and len(answers) == len(commands)
    assert fw.journal_pending(node_dir) == []  # and it heard the downlink of each
    # the radio metadata came through the chips' registers and the driver: -97 dBm and 6.5 dB
    rows = conn.execute(
        "SELECT rssi, snr FROM readings WHERE device_id = ? AND port = 1", (NODE_ID,)
    ).fetchall()
    assert all(-100 <= r["rssi"] <= -94 and 5 <= r["snr"] <= 8 for r in rows)
    # the commands rode on downlinks, were applied and answered on port 2
    for c in commands:
        assert conn.execute("SELECT status FROM downlinks WHERE id = ?", (c,)).fetchone()[0] == "acked"
    assert radio_complaints(node) == [] and radio_complaints(bridge) == []
    conn.close()
