"""Panel benchmark (issues 6 and 18): p50/p95 of the overview, a node page, the node's 30-day chart
data (downsampled per pixel in SQL) and the sync page, with N readings of D modules in the store v2
database, idle and while an ingest process writes 1,000 readings/s through the edge's ingest code
(group commits of 100, synchronous=FULL). The idle figures are the baseline, measured in the same
run on the same data; the ratios compare the two. Also the bytes a node page costs (HTML, its chart
data, and the static files a first visit loads), and the overview's first load (its sparklines
folded from a day of readings of every module) apart from the warm figures.

Sizes: full 10,000,000 readings over 1,000 modules (10,000 each, 30 days at one every ~4.3 min);
quick 200,000 over 100 modules. The panel is served by cheroot in this process, the ingest runs in
its own process (as the daemon does when the panel has its own unit), requests come over loopback
HTTP with a logged-in session.
"""

from __future__ import annotations

import http.cookiejar
import json
import multiprocessing
import os
import random
import re
import statistics
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from edge.store import connect, migrate, numbers, readings, transaction

FULL = {"readings": 10_000_000, "devices": 1000, "samples": 100, "ingest_devices": 50}
QUICK = {"readings": 200_000, "devices": 100, "samples": 20, "ingest_devices": 20}
SPAN_S = 30 * 86400
INGEST_RATE = 1000  # readings per second
MIN_SECONDS = 5.0  # each side (idle, under ingest) measured at least this long
INGEST_BATCH = 100  # per transaction (group commit), as the daemon does
PASSWORD = "benchmark password"
BRIDGE = "b0b0b0b0b0b0b0b0"


def device_id(i: int) -> str:
    return f"be{i:014x}"


def key_for(i: int) -> bytes:
    return bytes([i % 256]) * 16


def _payload_variants() -> list[bytes]:
    from edge.codecs import lpp

    return [
        lpp.encode(
            [
                (1, "temperature", round(2.0 + (k % 32) * 0.25, 1)),
                (2, "humidity", 40 + k % 20),
                (3, "analog_input", 3.6 + (k % 5) * 0.02),
            ]
        )
        for k in range(64)
    ]


def seed(db_path: str, *, readings_total: int, devices: int, now: float) -> dict:
    """Bulk-load readings in the store's own layout (loading is not what is measured: no fsync)."""
    conn = connect(db_path)
    migrate(conn)
    conn.execute("PRAGMA synchronous=OFF")
    per_device = readings_total // devices
    interval = SPAN_S / per_device
    variants = _payload_variants()
    t0 = time.perf_counter()
    with transaction(conn):
        bridge_n = numbers.ensure(conn, BRIDGE)
        conn.execute(
            "INSERT INTO devices (id, name, key, role, interval_s, created_at, last_fcnt, last_seen)"
            " VALUES (?, 'bridge', ?, 'bridge', 300, ?, -1, ?)",
            (BRIDGE, bytes(16), now - SPAN_S, now - 30),
        )
        for i in range(devices):
            numbers.ensure(conn, device_id(i))
            conn.execute(
                "INSERT INTO devices (id, name, key, interval_s, created_at, last_fcnt, last_seen, last_rssi,"
                " last_snr, last_bridge) VALUES (?, ?, ?, ?, ?, ?, ?, -90, 7.5, ?)",
                (
                    device_id(i),
                    f"module {i}",
                    key_for(i),
                    round(interval),
                    now - SPAN_S,
                    per_device - 1,
                    now - 30,
                    BRIDGE,
                ),
            )
    nums = {device_id(i): numbers.number_of(conn, device_id(i)) for i in range(devices)}
    total = 0
    for i in range(devices):
        n = nums[device_id(i)]
        start = now - per_device * interval
        rows = [
            (
                readings.reading_id(n, f),
                round((start + f * interval + i * 0.01) * 1000),
                1,
                -90 - (f % 20),
                30,
                bridge_n,
                None,
                variants[(f + i) % 64],
            )
            for f in range(per_device)
        ]
        with transaction(conn):
            readings.insert_many(conn, rows)
        total += len(rows)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {
        "readings": total,
        "per_device": per_device,
        "seconds": time.perf_counter() - t0,
        "db_bytes": os.path.getsize(db_path),
    }


def ingest_worker(db_path: str, devices: int, start_fcnt: int, stop_at: float, counter) -> None:
    """Write INGEST_RATE readings/s through edge.ingest (MIC check, decryption, replay check, store, device
    update), from LoRaWAN nodes."""
    from edge.codecs import lpp
    from edge.ingest.process import handle_batch
    from edge.lorawan.network import Network
    from edge.radio import build_serial_uplink
    from edge.store.numbers import Numbers
    from tests.edge.edge_module_peer import Node, activate

    conn = connect(db_path)
    known = Numbers()
    # LoRaWAN nodes (ABP sessions), as an edge ships: the MIC check and decryption of each frame
    nodes = activate(conn, [Node(device_id(i), key_for(i)) for i in range(devices)])
    network = Network()  # the edge's defaults, kept across batches as the daemon keeps it
    payload = lpp.encode([(1, "temperature", 5.5), (2, "humidity", 50), (3, "analog_input", 3.61)])
    fcnt = start_fcnt
    period = INGEST_BATCH / INGEST_RATE
    next_at = time.monotonic()
    while time.time() < stop_at:
        frames = [
            (
                build_serial_uplink(
                    nodes[k % devices].frame(fcnt + k // devices, 1, payload), rssi=-85, snr=8.0
                ),
                BRIDGE,
            )
            for k in range(INGEST_BATCH)
        ]
        with transaction(conn):
            handle_batch(conn, frames, numbers=known, now=time.time(), network=network)
        fcnt += INGEST_BATCH // devices
        with counter.get_lock():
            counter.value += INGEST_BATCH
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    conn.close()


class Session:
    """A logged-in browser-like HTTP client (cookie session, CSRF token from the login form)."""

    def __init__(self, base: str, username: str, password: str):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        page = self.opener.open(base + "/login").read().decode()
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        body = urllib.parse.urlencode(
            {"csrf_token": token, "username": username, "password": password}
        ).encode()
        final = self.opener.open(base + "/login", data=body)
        assert "/login" not in final.geturl(), "benchmark login failed"

    def get(self, path: str) -> float:
        return self.fetch(path)[0]

    def fetch(self, path: str, headers: dict[str, str] | None = None) -> tuple[float, int]:
        """(seconds, bytes of the body as transferred)."""
        t0 = time.perf_counter()
        with self.opener.open(urllib.request.Request(self.base + path, headers=headers or {})) as response:
            body = response.read()
            assert response.status == 200, (path, response.status)
        return time.perf_counter() - t0, len(body)


def measure(session: Session, pages: dict[str, str], samples: int) -> dict[str, dict[str, float]]:
    times: dict[str, list[float]] = {name: [] for name in pages}
    rounds, started = 0, time.perf_counter()
    # at least ``samples`` rounds of every page, and at least MIN_SECONDS of them (idle and under
    # ingest alike), so p95 stands on enough requests
    while rounds < samples or time.perf_counter() - started < MIN_SECONDS:
        for name, path in pages.items():
            times[name].append(session.get(path))
        rounds += 1
    out = {}
    for name, values in times.items():
        values.sort()
        out[name] = {
            "p50_ms": statistics.median(values) * 1000,
            "p95_ms": values[min(len(values) - 1, round(0.95 * (len(values) - 1)))] * 1000,
            "samples": len(values),
        }
    return out


def run(out_dir: Path, quick: bool) -> dict:
    from webui import accounts
    from webui.app import create_app
    from webui.server import Panel

    size = QUICK if quick else FULL
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-webui-") as tmp:
        db_path = os.path.join(tmp, "fieldpost.db")
        now = time.time()
        loaded = seed(db_path, readings_total=size["readings"], devices=size["devices"], now=now)
        conn = connect(db_path)
        with transaction(conn):
            accounts.create_user(conn, "bench", PASSWORD, "viewer", now=now)
        conn.close()
        app = create_app({"DATABASE": db_path, "SECRET_KEY": "bench", "LOGIN_RATE_LIMIT": "1000 per minute"})
        panel = Panel(app, "127.0.0.1", 0, threads=8).start()
        try:
            session = Session(f"http://127.0.0.1:{panel.port}", "bench", PASSWORD)
            dev = device_id(random.Random(6).randrange(size["ingest_devices"]))
            pages = {
                "overview": "/",
                "node_page": f"/devices/{dev}",
                "node_chart_30d": f"/devices/{dev}/series?range=30d&points=1100",
                "sync": "/sync",
            }
            first_overview_s, _ = session.fetch("/")  # folds a day of every module into the sparklines
            page_bytes = {name: session.fetch(path)[1] for name, path in pages.items()}
            chart_gzip_bytes = session.fetch(pages["node_chart_30d"], {"Accept-Encoding": "gzip"})[1]
            static = [
                "/static/app.css",
                "/static/app.js",
                "/static/charts.js",
                "/static/vendor/uplot/uPlot.iife.min.js",
                "/static/vendor/uplot/uPlot.min.css",
            ]
            static_bytes = sum(session.fetch(path)[1] for path in static)
            measure(session, pages, 3)  # warm the page cache and the templates
            idle = measure(session, pages, size["samples"])

            counter = multiprocessing.get_context("spawn").Value("q", 0)
            stop_at = time.time() + 600.0
            worker = multiprocessing.get_context("spawn").Process(
                target=ingest_worker,
                args=(db_path, size["ingest_devices"], loaded["per_device"] + 10, stop_at, counter),
                daemon=True,
            )
            worker.start()
            try:
                deadline = time.monotonic() + 30
                while counter.value < INGEST_BATCH * 5 and time.monotonic() < deadline:
                    time.sleep(0.05)  # ingest is up and running before measuring
                before, t0 = counter.value, time.perf_counter()
                busy = measure(session, pages, size["samples"])
                ingest_rate = (counter.value - before) / (time.perf_counter() - t0)
            finally:
                worker.terminate()
                worker.join(10)
        finally:
            panel.close()

    figures = {
        "readings_in_db": loaded["readings"],
        "devices": size["devices"],
        "db_mb": round(loaded["db_bytes"] / 1e6, 1),
        "seed_s": round(loaded["seconds"], 1),
        "ingest_target_per_s": INGEST_RATE,
        "ingest_achieved_per_s": round(ingest_rate, 1),
        "overview_first_load_ms": round(first_overview_s * 1000, 1),
        "bytes": {
            "node_page_html": page_bytes["node_page"],
            "node_chart_30d_json": page_bytes["node_chart_30d"],
            "node_chart_30d_json_gzip": chart_gzip_bytes,
            "node_page_total_warm": page_bytes["node_page"] + chart_gzip_bytes,
            "static_first_visit": static_bytes,
            "overview_html": page_bytes["overview"],
        },
        "idle": idle,
        "with_ingest": busy,
        "ratio_p50_with_ingest_vs_idle": {k: round(busy[k]["p50_ms"] / idle[k]["p50_ms"], 2) for k in pages},
        "ratio_p95_with_ingest_vs_idle": {k: round(busy[k]["p95_ms"] / idle[k]["p95_ms"], 2) for k in pages},
        "quick": quick,
    }
    (out_dir / "webui.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return figures


if __name__ == "__main__":
    import sys

    print(json.dumps(run(Path("build/bench"), "--full" not in sys.argv), indent=2))
