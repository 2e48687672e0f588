"""Prometheus figures for sync (added to the daemon's /metrics through its ``extra`` sources)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edge.store import connect
from edge.sync.state import sync_status

log = logging.getLogger("fieldpost.sync")


def sync_families(db_path: str | Path, service: Any, clock: Callable[[], float]) -> Iterator:
    """The sync state as metric families; ``service`` is the running SyncService (or None)."""
    try:
        conn = connect(db_path, readonly=True, timeout=1.0)
        try:
            status = sync_status(conn, clock())
        finally:
            conn.close()
    except sqlite3.Error as exc:
        log.warning("sync=metrics event=db_read_failed error=%r", exc)
        return
    backlog = GaugeMetricFamily(
        "fieldpost_sync_backlog", "Outbox messages not yet synced", labels=["priority"]
    )
    for name, count in status["backlog_by_priority"].items():
        backlog.add_metric([name], count)
    yield backlog
    yield GaugeMetricFamily(
        "fieldpost_sync_backlog_age_seconds",
        "Age of the oldest unsynced message (0: none)",
        value=status["backlog_age_s"] or 0,
    )
    yield GaugeMetricFamily(
        "fieldpost_sync_last_success_timestamp_seconds",
        "Last acknowledged batch (0: never)",
        value=status["last_success"] or 0,
    )
    yield GaugeMetricFamily(
        "fieldpost_sync_last_error_timestamp_seconds",
        "Last sync error (0: never)",
        value=status["last_error_at"] or 0,
    )
    yield GaugeMetricFamily(
        "fieldpost_sync_bytes_today",
        "Bytes sent to the cloud today (UTC)",
        value=status["bytes_today"],
    )
    if service is not None:
        yield GaugeMetricFamily(
            "fieldpost_sync_connected",
            "1 while connected to the sink",
            value=1 if service.connected else 0,
        )
        yield CounterMetricFamily(
            "fieldpost_sync_messages_acked",
            "Messages the sink acknowledged",
            value=service.messages_acked,
        )
        yield CounterMetricFamily(
            "fieldpost_sync_batches_sent",
            "Batches sent (resends included)",
            value=service.batches_sent,
        )
        yield CounterMetricFamily(
            "fieldpost_sync_connects",
            "Successful connections to the sink",
            value=service.reconnects,
        )
