"""The real edge's uplink path (edge.ingest.handle_uplink on a real SQLite database, devices
registered with edge.registry) for the firmware tests: plugged into EdgePeer as `ingest`, it
answers the bridge's UPLINKs exactly as the edge daemon does (MIC with the registered key,
replay floor, dedupe by (device, fcnt), downlink on the ACK)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from edge import registry
from edge.store.numbers import Numbers
from edge.store import connect, migrate, transaction
from edge.ingest import handle_uplink
from edge.radio import AckResult


class RealEdge:
    def __init__(self, db_path: Path):
        self.db_path = db_path
        self.conn = connect(db_path)
        migrate(self.conn)
        self.numbers = Numbers()
        self.lock = threading.Lock()
        self.results: list[tuple[str | None, int | None, AckResult]] = []  # every answer, in order

    def register(self, device_id: str, key: bytes, role: str = "node") -> None:
        registry.add_device(self.conn, device_id, key=key, role=role, actor="test", now=time.time())

    def rotate_key(self, device_id: str, key: bytes) -> None:
        """As `fieldpost provision module --rotate-key` does on the edge side: new key, replay floor reset."""
        with self.lock:
            registry.rotate_key(self.conn, device_id, key=key, actor="test", now=time.time())

    def __call__(self, payload: bytes) -> bytes:
        with self.lock, transaction(self.conn):
            outcome = handle_uplink(
                self.conn, payload, bridge_id="bridge", numbers=self.numbers, now=time.time()
            )
        with self.lock:
            self.results.append((outcome.device_id, outcome.fcnt, outcome.result))
        return outcome.ack

    def stored(self, device_id: str, port: int | None = None) -> list[int]:
        """Frame counters of the readings stored for a device (one row per (device, fcnt))."""
        sql = "SELECT fcnt FROM reading_list WHERE device_id = ?" + (
            " AND port = ?" if port is not None else ""
        )
        args = (device_id, port) if port is not None else (device_id,)
        with self.lock:
            return sorted(r[0] for r in self.conn.execute(sql, args))

    def answers(self, result: AckResult) -> list[tuple[str | None, int | None]]:
        with self.lock:
            return [(d, f) for d, f, r in self.results if r == result]

    def close(self) -> None:
        self.conn.close()
