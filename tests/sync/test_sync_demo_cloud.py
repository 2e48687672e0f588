"""The demo's stand-in cloud: a local Mosquitto that shows the readings leaving the edge."""

from __future__ import annotations

import shutil

import pytest
from sync_helpers import buffer_readings, unsynced, wait_for

from edge.sync import SyncService
from edge.sync.demo_cloud import DemoCloud


@pytest.mark.skipif(
    shutil.which("mosquitto") is None and not shutil.os.path.exists("/usr/sbin/mosquitto"),
    reason="mosquitto not installed",
)
def test_demo_cloud_receives_and_shows_the_edge_sync(db, tmp_path):
    path, conn = db
    lines: list[str] = []
    cloud = DemoCloud(tmp_path / "cloud", out=lines.append).start()
    assert cloud is not None
    try:
        buffer_readings(conn, 30)
        service = SyncService(path, cloud.sync_section("demo")).start()
        try:
            wait_for(lambda: unsynced(conn) == 0, 10, "synced to the demo cloud")
            wait_for(lambda: cloud.received == 30, 10, "shown by the demo cloud")
        finally:
            service.stop()
    finally:
        cloud.stop()
    assert lines[0].startswith("cloud: local Mosquitto on 127.0.0.1:")
    assert any(line.startswith("cloud <- a0b0c0d000000000:") and "message(s)" in line for line in lines[1:])
