"""Sync and retention inside the real edge daemon (attach points), with /metrics showing sync state."""

from __future__ import annotations

import time
import urllib.request

from sync_helpers import (
    CloudSubscriber,
    buffer_readings,
    sync_config,
    unsynced,
    wait_for,
)

from edge import config as config_mod
from edge.daemon import Daemon
from edge.store import connect


def test_the_daemon_starts_sync_and_retention_and_exports_sync_metrics(broker, tmp_path):
    db_path = tmp_path / "daemon.db"
    section = sync_config(broker.port)
    section.pop("site")
    cfg = config_mod.from_dict(
        {
            "edge": {"db": str(db_path), "site": "testsite"},
            "link": {"discover": False, "ports": []},
            "http": {"port": 0},
            "sync": section,
            "retention": {"max_age_days": 30, "interval_s": 1},
        }
    )
    sub = CloudSubscriber(broker.port, ["fieldpost/testsite/+/up"]).start()
    daemon = Daemon(
        cfg, attach_points=("edge.sync.service:attach", "edge.store.retention_worker:attach")
    ).start()
    conn = connect(db_path)  # our own connection: the daemon's belongs to its ingest writer
    try:
        ids = buffer_readings(conn, 500)
        wait_for(lambda: sub.count() == len(ids), 20, "readings at the cloud via the daemon")
        wait_for(lambda: unsynced(conn) == 0, 10, "synced")
        url = f"http://{daemon.http.host}:{daemon.http.port}/metrics"
        body = wait_for(
            lambda: (
                (b := urllib.request.urlopen(url, timeout=5).read().decode())
                and "fieldpost_sync_messages_acked_total 500.0" in b
                and b
            ),
            10,
            "metrics",
        )
    finally:
        conn.close()
        daemon.stop()
        sub.stop()
    assert 'fieldpost_sync_backlog{priority="readings"} 0.0' in body
    assert "fieldpost_sync_connected 1.0" in body
    last = [
        line for line in body.splitlines() if line.startswith("fieldpost_sync_last_success_timestamp_seconds")
    ]
    assert float(last[0].split()[-1]) > time.time() - 60
