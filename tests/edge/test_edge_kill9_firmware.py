"""Kill -9 of the edge at random points during ingest, 50 times, with the REAL firmware:
three virtual nodes (MicroPython unix port) send through a virtual bridge whose UART is a
pty that the edge daemon (a subprocess) opens. The nodes log every reading they take and
every ACK they receive ("T taken n", "T acked n"). Afterwards: every reading a node saw
ACKed is in the database, PRAGMA integrity_check is ok, the nodes resent the rest (every
reading taken before the last start is stored), and nothing is stored twice.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
from edge_firmware_site import free_udp_ports, start_module, traced
from edge_forkserver import ForkedEdges

from edge import registry
from edge.store import connect

pytestmark = [pytest.mark.firmware, pytest.mark.slow]

BRIDGE_ID = "00000000000000d0"
NODE_IDS = ["00000000000000d1", "00000000000000d2", "00000000000000d3"]
KILLS = int(os.environ.get("FP_KILLS", "50"))
SEED = 4242


def test_kill9_with_real_firmware(tmp_path, db_path, db, virtual_module, wait_until):
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
        status_every=5,
    )
    rng = random.Random(SEED)
    log_file = (tmp_path / "edge.log").open("ab")
    edges = ForkedEdges.for_port(tmp_path, db_path, bridge.port, log_file=log_file)
    check = connect(db_path)

    def stored_count():
        return check.execute("SELECT count(*) FROM readings").fetchone()[0]

    try:
        edges.start()
        nodes = {
            dev: start_module(
                virtual_module, tmp_path, dev, keys[dev], "node", port, [bridge_port], name=f"node-{dev[-2:]}"
            )
            for dev, port in zip(NODE_IDS, node_ports, strict=True)
        }
        wait_until(lambda: stored_count() >= 3, timeout=30, what="the first readings")
        stored_at_kill = []
        for i in range(KILLS):
            if i:
                edges.start()
            time.sleep(rng.uniform(0.05, 0.3))  # somewhere in the middle of ingest
            assert edges.stop(signal.SIGKILL) == -signal.SIGKILL
            stored_at_kill.append(stored_count())
        taken_before = {dev: traced(vm, "taken") for dev, vm in nodes.items()}
        before = stored_count()
        edges.start()  # a last, clean run: the nodes resend what was never ACKed
        wait_until(lambda: stored_count() > before, timeout=30, what="the last edge storing readings")

        def drained():
            return all(taken_before[dev] <= traced(vm, "acked") for dev, vm in nodes.items())

        wait_until(drained, timeout=60, what="every reading taken before the last start ACKed")
        assert edges.stop(signal.SIGTERM) == 0
    finally:
        edges.close()
        log_file.close()

    assert len(set(stored_at_kill)) > KILLS // 3  # ingest was under way at the kills
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for dev, vm in nodes.items():
        rows = [r[0] for r in check.execute("SELECT fcnt FROM reading_list WHERE device_id = ?", (dev,))]
        assert len(rows) == len(set(rows))  # nothing stored twice
        assert traced(vm, "acked") <= set(rows)  # every ACK the firmware logged is backed by a stored reading
        assert taken_before[dev] <= set(rows)  # the rest were resent
    print(
        f"kills={KILLS} readings={stored_count()} stored_between_kills={stored_at_kill[-1] - stored_at_kill[0]}"
    )
    check.close()
