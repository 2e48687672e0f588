"""Retention of a million expired readings in the daemon as shipped: start-up does not wait for it,
ingest and the panel carry on while it runs, and no write transaction holds the lock for long,
because every delete is a small step that the ingest writer runs between its uplink batches."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest

from edge import config as config_mod
from edge import registry
from edge.daemon import Daemon
from edge.store import connect, cursor, migrate, numbers, readings, transaction
from tests.conftest import wait_until
from tests.edge.edge_module_peer import ModulePeer, Node, activate

pytestmark = pytest.mark.slow

EXPIRED = 1_000_000
OLD_DEVICES = 100
NODES = ["00000000000000f1", "00000000000000f2", "00000000000000f3"]
WRITER_WAIT_LIMIT_S = 0.1


def fill_expired(db_path, n: int) -> None:
    """``n`` readings received 100 days ago, all synced: every one of them is due for deletion."""
    conn = connect(db_path)
    migrate(conn)
    conn.execute("PRAGMA synchronous=OFF")  # set-up only
    old_ms = round((time.time() - 100 * 86400) * 1000)
    per_device = n // OLD_DEVICES
    raw = bytes.fromhex("016700d702686e03740172")
    with transaction(conn):
        marks = {}
        for d in range(OLD_DEVICES):
            num = numbers.ensure(conn, f"{0xD0000000 + d:016x}")
            readings.insert_many(
                conn,
                (
                    (readings.reading_id(num, f), old_ms + f * 60_000, 1, -90, 28, None, 0, raw)
                    for f in range(per_device)
                ),
            )
            marks[num] = readings.reading_id(num, per_device - 1)
        cursor.advance(conn, marks)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def test_a_million_expired_readings_go_in_small_steps_while_the_edge_works(tmp_path):
    db_path = tmp_path / "fieldpost.db"
    fill_expired(db_path, EXPIRED)
    conn = connect(db_path)
    keys = {dev: registry.add_device(conn, dev, actor="test", now=time.time()) for dev in NODES}
    nodes = activate(conn, [Node(d, k) for d, k in keys.items()])
    conn.close()
    peer = ModulePeer("00000000000000fb", nodes).start()
    cfg = config_mod.from_dict(
        {
            "edge": {"db": str(db_path)},  # services on: rules, retention, the panel
            "link": {"ports": [peer.path], "discover": False},
            "http": {"port": 0},
            "webui": {"host": "127.0.0.1", "port": 0},
            "retention": {"max_age_days": 90},
            "log": {"level": "WARNING"},
        }
    )
    started = time.monotonic()
    daemon = Daemon(cfg).start()
    start_s = time.monotonic() - started
    worker = next(
        c.__self__
        for c in daemon._closers
        if type(getattr(c, "__self__", None)).__name__ == "RetentionWorker"
    )
    panel = next(
        c.__self__ for c in daemon._closers if type(getattr(c, "__self__", None)).__name__ == "Panel"
    )
    sending = threading.Event()
    sending.set()

    def generate() -> None:
        i = 0
        while sending.is_set():
            peer.add_reading(NODES[i % 3])
            i += 1
            time.sleep(0.005)

    generator = threading.Thread(target=generate, daemon=True)
    panel_times: list[float] = []
    try:
        assert start_s < 5, f"start-up took {start_s:.1f} s"
        generator.start()
        wait_until(lambda: daemon.manager.links_up() == 1, timeout=10, what="the link")
        # While retention works through the backlog, uplinks are ACKed and the panel answers.
        deadline = time.monotonic() + 300
        while worker.passes == 0 and time.monotonic() < deadline:
            t0 = time.monotonic()
            with urllib.request.urlopen(f"http://127.0.0.1:{panel.port}/login", timeout=10) as resp:
                assert resp.status == 200
            panel_times.append(time.monotonic() - t0)
            time.sleep(0.2)
        assert worker.passes >= 1, "the retention pass did not finish"
        report = worker.last_report
        health = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{daemon.http.port}/health", timeout=5).read()
        )
    finally:
        sending.clear()
        generator.join(5)
        try:
            wait_until(lambda: peer.pending == 0, timeout=30, what="the module's readings ACKed")
        finally:
            daemon.stop()
            peer.close()
    assert report.aged_out == EXPIRED
    assert report.transactions > 50  # many small steps, not one
    # What retention adds to a writer transaction (its step, before the commit every batch has anyway)
    longest = daemon.ingest.stats.longest_call_s
    assert longest < WRITER_WAIT_LIMIT_S, f"a retention step held the writer {longest * 1000:.0f} ms"
    assert len(peer.log.acked) > 100 and health["status"] == "ok"
    assert panel_times and max(panel_times) < 2.0
    check = connect(db_path, readonly=True)
    try:
        assert check.execute("SELECT count(*) FROM readings").fetchone()[0] == len(peer.log.acked)
    finally:
        check.close()
    print(
        f"retention: {EXPIRED} rows in {report.transactions} steps, longest step {report.longest_transaction_ms:.0f} ms,"
        f" longest writer transaction {daemon.ingest.stats.longest_batch_s * 1000:.0f} ms,"
        f" {len(peer.log.acked)} readings ACKed meanwhile,"
        f" panel p100 {max(panel_times) * 1000:.0f} ms"
    )
