"""Panel benchmark (issue 6): p50/p95 latency of the overview and device pages (and the device's chart
data) with N readings in the database, while an ingest process writes 1,000 readings/s through the
edge's ingest code (group commits of 100, synchronous=FULL) — against the same pages with no ingest
running (the baseline, measured in the same run), as a ratio.

Sizes: full 10,000,000 readings over 200 modules (about 35 days at one reading a minute each);
quick 200,000 over 50 modules. The panel is served by cheroot in this process, the ingest runs in
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

from edge.store import connect, migrate, transaction

FULL = {"readings": 10_000_000, "devices": 200, "samples": 200, "ingest_devices": 50}
QUICK = {"readings": 200_000, "devices": 50, "samples": 40, "ingest_devices": 20}
INGEST_RATE = 1000  # readings per second
INGEST_BATCH = 100  # per transaction (group commit), as the daemon does
PASSWORD = "benchmark password"


def device_id(i: int) -> str:
    return f"be{i:014x}"


def key_for(i: int) -> bytes:
    return bytes([i % 256]) * 16


def _payload_variants():
    from edge.codecs import lpp

    out = []
    for k in range(64):
        temperature = round(2.0 + (k % 32) * 0.25, 1)
        payload = lpp.encode(
            [
                (1, "temperature", temperature),
                (2, "humidity", 40 + k % 20),
                (3, "analog_input", 3.6 + (k % 5) * 0.02),
            ]
        )
        decoded = json.dumps(
            lpp.decode(payload, analog_channels=lpp.FIELDPOST_ANALOG_CHANNELS),
            separators=(",", ":"),
            ensure_ascii=False,
        )
        out.append((payload, decoded))
    return out


def seed(db_path: str, *, readings: int, devices: int, now: float) -> dict:
    """Bulk-load readings straight into SQLite (loading is not what is measured: no fsync per batch)."""
    conn = connect(db_path)
    migrate(conn)
    conn.execute("PRAGMA synchronous=OFF")
    per_device = readings // devices
    interval = 60.0
    variants = _payload_variants()
    t0 = time.perf_counter()
    with transaction(conn):
        for i in range(devices):
            conn.execute(
                "INSERT INTO devices (id, name, key, interval_s, created_at, last_fcnt, last_seen, last_rssi,"
                " last_snr, battery_v) VALUES (?, ?, ?, 60, ?, ?, ?, -90, 7.5, 3.6)",
                (
                    device_id(i),
                    f"module {i}",
                    key_for(i),
                    now - per_device * interval,
                    per_device - 1,
                    now - 30,
                ),
            )
    chunk = 50_000
    rows = []
    total = 0
    for n in range(per_device):
        t = now - (per_device - n) * interval
        for i in range(devices):
            payload, decoded = variants[(n + i) % 64]
            rows.append(
                (
                    device_id(i),
                    n,
                    1,
                    t + i * 0.01,
                    -90 - (n % 20),
                    7.5,
                    "b0b0b0b0b0b0b0b0",
                    payload,
                    decoded,
                )
            )
        if len(rows) >= chunk:
            _insert(conn, rows)
            total += len(rows)
            rows = []
    if rows:
        _insert(conn, rows)
        total += len(rows)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {
        "readings": total,
        "per_device": per_device,
        "seconds": time.perf_counter() - t0,
        "db_bytes": os.path.getsize(db_path),
    }


def _insert(conn, rows):
    with transaction(conn):
        conn.executemany(
            "INSERT INTO readings (device_id, fcnt, port, received_at, rssi, snr, bridge_id, raw, decoded)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def ingest_worker(db_path: str, devices: int, start_fcnt: int, stop_at: float, counter) -> None:
    """Write INGEST_RATE readings/s through edge.ingest (MIC check, decode, outbox, device update)."""
    from edge.codecs import CodecRunner, lpp
    from edge.ingest.process import handle_uplink
    from edge.radio import build_serial_uplink, build_uplink

    conn = connect(db_path)
    codecs = CodecRunner()
    payload = lpp.encode([(1, "temperature", 5.5), (2, "humidity", 50), (3, "analog_input", 3.61)])
    fcnt = start_fcnt
    period = INGEST_BATCH / INGEST_RATE
    next_at = time.monotonic()
    while time.time() < stop_at:
        with transaction(conn):
            for k in range(INGEST_BATCH):
                i = k % devices
                frame = build_uplink(key_for(i), device_id(i), fcnt + k // devices, 1, payload)
                handle_uplink(
                    conn,
                    build_serial_uplink(frame, rssi=-85, snr=8.0),
                    bridge_id="b0b0b0b0b0b0b0b0",
                    codecs=codecs,
                    now=time.time(),
                )
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
        t0 = time.perf_counter()
        with self.opener.open(self.base + path) as response:
            response.read()
            assert response.status == 200, (path, response.status)
        return time.perf_counter() - t0


def measure(session: Session, pages: dict[str, str], samples: int) -> dict[str, dict[str, float]]:
    times: dict[str, list[float]] = {name: [] for name in pages}
    for _ in range(samples):
        for name, path in pages.items():
            times[name].append(session.get(path))
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
        loaded = seed(db_path, readings=size["readings"], devices=size["devices"], now=now)
        conn = connect(db_path)
        with transaction(conn):
            accounts.create_user(conn, "bench", PASSWORD, "viewer", now=now)
        conn.close()
        app = create_app(
            {
                "DATABASE": db_path,
                "SECRET_KEY": "bench",
                "LOGIN_RATE_LIMIT": "1000 per minute",
            }
        )
        panel = Panel(app, "127.0.0.1", 0, threads=8).start()
        try:
            session = Session(f"http://127.0.0.1:{panel.port}", "bench", PASSWORD)
            dev = device_id(random.Random(6).randrange(size["ingest_devices"]))
            pages = {
                "overview": "/",
                "device": f"/devices/{dev}",
                "chart_24h": f"/devices/{dev}/series?window=24h",
                "chart_7d": f"/devices/{dev}/series?window=7d",
            }
            measure(session, pages, 3)  # warm the page cache and the templates
            idle = measure(session, pages, size["samples"])

            counter = multiprocessing.get_context("spawn").Value("q", 0)
            budget_s = 600.0
            stop_at = time.time() + budget_s
            worker = multiprocessing.get_context("spawn").Process(
                target=ingest_worker,
                args=(
                    db_path,
                    size["ingest_devices"],
                    loaded["per_device"] + 10,
                    stop_at,
                    counter,
                ),
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
