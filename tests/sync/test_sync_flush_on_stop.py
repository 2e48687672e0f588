"""The final flush on stop: readings stored just before a stop still leave, on a healthy connection only.

Every test buffers readings that the normal loop would hold back (``batch_max_wait_s`` = 60: each
device's partial batch waits for company), so whatever reaches the broker left through the flush.
"""

from __future__ import annotations

import signal
import time

import pytest
from sync_helpers import (
    CloudSubscriber,
    assert_complete_and_ordered,
    buffer_readings,
    start_sync_process,
    sync_config,
    unsynced,
    wait_for,
    write_toml,
)

from edge.errors import ConfigError
from edge.sync import SyncService
from edge.sync.config import parse_sync_config

UP = "fieldpost/testsite/+/up"
N = 500  # about 60 per device: partial batches, none of them ripe for 60 s
HELD_BACK = {"batch_max_wait_s": 60.0}


def _connected_service(path, broker, **overrides) -> SyncService:
    service = SyncService(path, sync_config(broker.port, **HELD_BACK, **overrides)).start()
    wait_for(lambda: service.connected, 10, "the sync service to connect")
    return service


def test_readings_written_just_before_stop_are_synced_and_received(broker, db):
    path, conn = db
    sub = CloudSubscriber(broker.port, [UP]).start()
    try:
        service = _connected_service(path, broker)
        try:
            ids = buffer_readings(conn, N)
        finally:
            service.stop()
        # stop() has returned: the flush is over, and every row was marked synced on its PUBACK.
        assert unsynced(conn) == 0
        assert service.messages_acked == N
        wait_for(lambda: sub.count() == N, 10, "every flushed reading at the subscriber")
        assert_complete_and_ordered(sub, ids)
    finally:
        sub.stop()


def test_flush_on_stop_zero_stops_at_once_and_leaves_rows_for_the_next_start(broker, db):
    path, conn = db
    sub = CloudSubscriber(broker.port, [UP]).start()
    try:
        service = _connected_service(path, broker, flush_on_stop_s=0)
        ids = buffer_readings(conn, N)
        service.stop()
        assert unsynced(conn) == N
        assert service.messages_acked == 0

        # Not lost: the next start (with the flush disabled again) sends them once they are ripe.
        service = SyncService(path, sync_config(broker.port, flush_on_stop_s=0)).start()
        try:
            wait_for(lambda: unsynced(conn) == 0, 20, "the next start to sync the held rows")
        finally:
            service.stop()
        wait_for(lambda: sub.count() == N, 10, "the held readings at the subscriber")
        assert_complete_and_ordered(sub, ids)
    finally:
        sub.stop()


def test_stop_is_immediate_when_the_broker_is_down(broker, db):
    path, conn = db
    # The longest flush allowed: a flush (or a connection attempt) would show as a slow stop.
    service = _connected_service(path, broker, flush_on_stop_s=20)
    broker.stop(signal.SIGKILL)
    wait_for(lambda: not service.connected, 10, "the service to notice the broker is gone")
    buffer_readings(conn, N)
    started = time.monotonic()
    service.stop()
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"stop() took {elapsed:.2f}s with the broker down"
    assert unsynced(conn) == N  # nothing marked synced without an ack


def test_sigterm_to_the_sync_process_flushes_before_exit(broker, db, tmp_path):
    path, conn = db
    sub = CloudSubscriber(broker.port, [UP]).start()
    proc = None
    try:
        config = write_toml(tmp_path / "sync.toml", sync_config(broker.port, **HELD_BACK))
        proc = start_sync_process(path, config, tmp_path / "sync.log")
        wait_for(lambda: broker.clients_connected("fieldpost-testsite") >= 1, 20, "the process to connect")
        ids = buffer_readings(conn, N)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (tmp_path / "sync.log").read_text()
        assert unsynced(conn) == 0
        wait_for(lambda: sub.count() == N, 10, "every flushed reading at the subscriber")
        assert_complete_and_ordered(sub, ids)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        sub.stop()


def test_flush_on_stop_defaults_to_three_seconds_and_zero_disables():
    assert parse_sync_config({}).flush_on_stop_s == 3.0
    assert parse_sync_config({"flush_on_stop_s": 0}).flush_on_stop_s == 0.0
    assert parse_sync_config({"flush_on_stop_s": 1.5}).flush_on_stop_s == 1.5


@pytest.mark.parametrize("bad", [-1, -0.5, "3", True, [3], 21])
def test_bad_flush_on_stop_is_a_config_error_naming_the_key(bad, tmp_path):
    with pytest.raises(ConfigError, match=r"sync\.flush_on_stop_s"):
        parse_sync_config({"flush_on_stop_s": bad})
    # The service refuses it too, before starting anything.
    with pytest.raises(ConfigError, match=r"sync\.flush_on_stop_s"):
        SyncService(tmp_path / "edge.db", sync_config(1883, flush_on_stop_s=bad))
