"""/health and Prometheus /metrics, served by the daemon on a small HTTP server.

The figures are read from the live objects at scrape time (a custom collector on
a registry of our own, no global state): ingest results and commit timing, the
backpressure backlog, per-port link counters, the outbox and downlink queues.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edge.logs import kv
from edge.store import backlog

log = logging.getLogger("fieldpost.metrics")

# Counters each port reports (see edge.link.manager.PortState.figures): name -> help.
LINK_COUNTERS = {
    "frames_rx": "Frames received on the serial link",
    "frames_tx": "Frames sent on the serial link",
    "crc_errors": "Frames dropped for a CRC mismatch",
    "frame_errors": "Frames dropped for any framing error (COBS, CRC, length, version, type)",
    "nacks_tx": "NACKs sent",
    "nacks_rx": "NACKs received",
    "busy_nacks": "NACK BUSY sent (backpressure)",
    "retransmits": "Frames retransmitted",
    "reconnects": "Times the port was (re)opened after the first time",
    "sessions": "HELLO handshakes completed",
}


@dataclass
class Sources:
    """Where the collector reads its figures; every field may be absent (None)."""

    ingest: Any = None  # edge.ingest.Ingestor
    backpressure: Any = None  # edge.ingest.Backpressure
    ports: Callable[[], list[dict[str, Any]]] | None = None  # manager.figures
    db_path: str | None = None
    extra: list[Callable[[], Iterator]] = field(default_factory=list)  # other areas' metric families


class EdgeCollector(Collector):
    def __init__(self, sources: Sources):
        self.s = sources

    def collect(self):
        yield from self._ingest()
        yield from self._links()
        yield from self._queues()
        for more in self.s.extra:
            try:
                yield from more()
            except Exception:  # one area's broken figures must not hide the others
                log.exception("metrics source failed")

    def _ingest(self):
        ingest = self.s.ingest
        if ingest is not None:
            st = ingest.stats
            results = CounterMetricFamily(
                "fieldpost_ingest_uplinks", "Uplinks handled, by result", labels=["result"]
            )
            for name, n in st.results.items():
                results.add_metric([name], n)
            yield results
            yield CounterMetricFamily(
                "fieldpost_ingest_batches", "Group-commit transactions", value=st.batches
            )
            yield CounterMetricFamily(
                "fieldpost_ingest_commit_failures",
                "Batches whose commit failed (nothing ACKed)",
                value=st.commit_failures,
            )
            yield CounterMetricFamily(
                "fieldpost_ingest_commit_seconds",
                "Time spent processing and committing batches",
                value=st.commit_seconds_total,
            )
            yield GaugeMetricFamily(
                "fieldpost_ingest_pending", "Uplinks waiting for the writer", value=ingest.pending()
            )
        bp = self.s.backpressure
        if bp is not None:
            yield GaugeMetricFamily(
                "fieldpost_backlog_unsynced",
                "Readings and messages the cloud has not had (counted up to just past the high-water mark)",
                value=bp.unsynced,
            )
            yield GaugeMetricFamily(
                "fieldpost_backlog_high_water",
                "Backlog above which uplinks get NACK BUSY",
                value=bp.high_water,
            )
            yield GaugeMetricFamily(
                "fieldpost_ingest_busy",
                "1 while refusing uplinks (backpressure)",
                value=1 if bp.is_busy else 0,
            )

    def _links(self):
        if self.s.ports is None:
            return
        ports = self.s.ports()
        up = GaugeMetricFamily("fieldpost_link_up", "1 while the port has a session", labels=["port", "peer"])
        families = {
            name: CounterMetricFamily(f"fieldpost_link_{name}", text, labels=["port"])
            for name, text in LINK_COUNTERS.items()
        }
        for p in ports:
            up.add_metric([p["path"], p.get("peer_id") or ""], 1 if p.get("up") else 0)
            for name, fam in families.items():
                fam.add_metric([p["path"]], p.get(name, 0))
        yield up
        yield from families.values()

    def _queues(self):
        if self.s.db_path is None:
            return
        try:
            conn = sqlite3.connect(f"file:{self.s.db_path}?mode=ro", uri=True, timeout=1)
            try:
                oldest = backlog.oldest_unsynced_at(conn)
                by_status = dict(
                    conn.execute("SELECT status, count(*) FROM downlinks GROUP BY status").fetchall()
                )
                quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
                devices = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.Error as exc:
            log.warning("metrics db read failed %s", kv(error=exc))
            return
        yield GaugeMetricFamily(
            "fieldpost_backlog_oldest_timestamp_seconds",
            "Receive time of the oldest reading or message the cloud has not had (0: none)",
            value=oldest or 0,
        )
        dl = GaugeMetricFamily("fieldpost_downlinks", "Downlinks by status", labels=["status"])
        for status in ("queued", "sent", "acked", "failed", "expired"):
            dl.add_metric([status], by_status.get(status, 0))
        yield dl
        yield GaugeMetricFamily("fieldpost_quarantine_devices", "Unknown devices heard", value=quarantined)
        yield GaugeMetricFamily("fieldpost_devices", "Registered devices", value=devices)


def make_registry(sources: Sources) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EdgeCollector(sources))
    return registry


class StatusServer:
    """HTTP server for /health (JSON) and /metrics (Prometheus text format)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        health: Callable[[], tuple[str, dict[str, Any]]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, ctype, code = generate_latest(owner.registry), CONTENT_TYPE_LATEST, 200
                elif path == "/health":
                    # "ok", or "degraded" (running, but not storing readings: e.g. a full disk) or
                    # "failing"; anything but ok answers 503 so a plain HTTP check notices.
                    status, detail = owner.health()
                    body = json.dumps({"status": status, **detail}).encode()
                    ctype, code = "application/json", 200 if status == "ok" else 503
                else:
                    body, ctype, code = b"not found\n", "text/plain", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt, *args):
                log.debug("http %s", kv(client=self.client_address[0], request=fmt % args))

        self.registry = registry
        self.health = health
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.host: str = str(self._server.server_address[0])
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> StatusServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fieldpost-http", daemon=True)
        self._thread.start()
        log.info("http listening %s", kv(host=self.host, port=self.port))
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
