"""Kill -9 of the edge at random points during ingest, 50 times.

The edge daemon runs as a subprocess on a pty (forked from a pre-imported parent, so
that 50 restarts stay fast); a CPython module peer in this process
sends readings from three nodes continuously and logs every ACK it receives (what the
firmware logs). After 50 seeded-random SIGKILLs and a final clean run: every reading
the edge ACKed is in the database, PRAGMA integrity_check is ok, the module resent
the rest, and nothing is stored twice.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest
from edge_forkserver import ForkedEdges
from edge_helpers import add
from edge_module_peer import ModulePeer, Node, activate

from edge.store import backlog, connect
from tests.conftest import wait_until

NODES = ["0000000000000c01", "0000000000000c02", "0000000000000c03"]
KILLS = int(os.environ.get("FP_KILLS", "50"))
SEED = 20261122


@pytest.mark.slow
def test_kill9_during_ingest_loses_nothing_acked(db_path, db, tmp_path):
    keys = {dev: add(db, dev) for dev in NODES}
    peer = ModulePeer("00000000000000c0", activate(db, [Node(d, k) for d, k in keys.items()])).start()
    rng = random.Random(SEED)
    generating = threading.Event()
    generating.set()
    produced = []

    def produce():
        i = 0
        while generating.is_set():
            dev = NODES[i % 3]
            produced.append((dev, peer.add_reading(dev)))
            i += 1
            time.sleep(0.004)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    edge_log = (tmp_path / "edge.log").open("ab")
    edges = ForkedEdges.for_port(tmp_path, db_path, peer.path, log_file=edge_log)
    acked_at_kill = []
    try:
        for _ in range(KILLS):
            sessions = peer.log.sessions
            edges.start()
            wait_until(
                lambda s=sessions: peer.log.sessions > s, timeout=10, interval=0.005, what="the edge's HELLO"
            )
            time.sleep(rng.uniform(0.0, 0.25))  # somewhere in the middle of ingest
            assert edges.stop(signal.SIGKILL) == -signal.SIGKILL
            acked_at_kill.append(len(peer.log.acked))
        generating.clear()
        producer.join()
        # a last, clean run: the module resends what was never ACKed
        sessions = peer.log.sessions
        edges.start()
        wait_until(
            lambda: peer.log.sessions > sessions, timeout=10, interval=0.005, what="the last edge's HELLO"
        )
        drain_started = time.monotonic()
        wait_until(
            lambda: peer.pending == 0 and len(peer.log.acked) == len(produced),
            timeout=60,
            interval=0.005,
            what="the journal drained",
        )
        drain_s = time.monotonic() - drain_started
        assert edges.stop(signal.SIGTERM) == 0  # SIGTERM: a clean stop
    finally:
        generating.clear()
        edges.close()
        peer.close()
        edge_log.close()

    # ingest really was under way at the kills: ACKs kept arriving between them
    assert len(set(acked_at_kill)) > KILLS // 2
    check = connect(db_path)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = check.execute("SELECT device_id, fcnt FROM reading_list").fetchall()
    stored_ids = {(r[0], r[1]) for r in stored}
    assert len(stored) == len(stored_ids)  # nothing stored twice
    assert set(peer.log.acked) <= stored_ids  # every ACKed reading survived
    assert stored_ids == set(produced)  # and the rest were resent and stored
    # and every one of them waits for the cloud, once: past the (absent) sync cursor
    assert backlog.unsynced(check) == len(produced)
    duplicates = sum(1 for r in peer.log.acked.values() if r == 1)
    print(
        f"kills={KILLS} readings={len(produced)} acked_as_duplicate={duplicates} final_drain_s={drain_s:.1f}"
    )
    check.close()
