"""Sync benchmark: drain an outbox backlog into a loopback Mosquitto at QoS 1.

Figures (written to ``sync.json``):
- batched, pipelined drain (the SyncService as configured for a backlog): readings/s;
- baseline: one PUBLISH per reading, waiting for each PUBACK before the next (measured on a
  subset and expressed per reading), both with and without a per-reading "mark synced"
  commit; the ratios batched/baseline;
- bytes on the wire per reading (MQTT PUBLISH packets, exact sizes) with gzip, without
  compression, and for the one-publish-per-reading baseline.

Sizes: ``quick`` drains 50,000 readings, the full run 1,000,000.
Run alone: ``python -m tests.bench.bench_sync [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.store import connect, migrate, transaction
from edge.sync import encoding
from edge.sync.service import SyncService

MOSQUITTO = "/usr/sbin/mosquitto"
DEVICES = [f"{0xB0B0000000000000 + i:016x}" for i in range(16)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_broker(workdir: pathlib.Path) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
    )
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("mosquitto did not start") from None
            time.sleep(0.02)


def _body(device: str, fcnt: int, ts: float) -> str:
    return json.dumps(
        {
            "id": f"{device}:{fcnt}",
            "device": device,
            "fcnt": fcnt,
            "ts": ts,
            "port": 1,
            "values": [
                {
                    "channel": 1,
                    "name": "temperature",
                    "value": round(18 + (fcnt % 70) / 10, 1),
                    "unit": "°C",
                },
                {
                    "channel": 2,
                    "name": "humidity",
                    "value": 40 + fcnt % 30,
                    "unit": "%",
                },
                {
                    "channel": 3,
                    "name": "battery",
                    "value": round(3.3 - (fcnt % 50) / 100, 2),
                    "unit": "V",
                },
            ],
            "raw": f"0167{fcnt % 65536:04x}0268{fcnt % 256:02x}0302{fcnt % 4096:04x}",
            "rssi": -70 - fcnt % 40,
            "snr": round(7.5 - (fcnt % 10) / 4, 2),
            "bridge": "b0b0b0b0b0b0b0b0",
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def _fill(db_path: pathlib.Path, n: int) -> None:
    conn = connect(db_path)
    migrate(conn)
    start = time.time() - n * 1e-3
    chunk = 100_000
    for first in range(0, n, chunk):
        rows = []
        for i in range(first, min(n, first + chunk)):
            device = DEVICES[i % len(DEVICES)]
            fcnt = i // len(DEVICES)
            rows.append(
                (
                    f"{device}:{fcnt}",
                    device,
                    _body(device, fcnt, start + i * 1e-3),
                    start + i * 1e-3,
                )
            )
        with transaction(conn):
            conn.executemany(
                "INSERT INTO outbox (msg_id, kind, priority, device_id, body, created_at)"
                " VALUES (?, 'reading', 1, ?, ?, ?)",
                rows,
            )
    conn.close()


def _drain(db_path: pathlib.Path, port: int, n: int, compression: str) -> dict:
    config = {
        "site": "bench",
        "compression": compression,
        "batch_max_messages": 500,
        "batch_max_bytes": 256 * 1024,
        "batch_max_wait_s": 0.0,
        "max_inflight": 16,
        "poll_interval_s": 0.05,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 1.0,
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "tls": {"enabled": False},
            "client_id": f"bench-{compression}",
        },
    }
    service = SyncService(db_path, config)
    started = time.perf_counter()
    service.start()
    try:
        while service.messages_acked < n:
            time.sleep(0.05)
            if time.perf_counter() - started > 3600:
                raise RuntimeError("drain did not finish in an hour")
        elapsed = time.perf_counter() - started
    finally:
        service.stop()
    conn = connect(db_path)
    left = conn.execute("SELECT count(*) FROM outbox WHERE synced_at IS NULL").fetchone()[0]
    conn.close()
    if left:
        raise RuntimeError(f"{left} rows left unsynced after the drain")
    return {
        "readings": n,
        "seconds": round(elapsed, 3),
        "readings_per_s": round(n / elapsed, 1),
        "batches": service.batches_sent,
        "wire_bytes": service.bytes_sent,
        "wire_bytes_per_reading": round(service.bytes_sent / n, 2),
    }


def _one_by_one(db_path: pathlib.Path, port: int, m: int, *, mark_synced: bool) -> dict:
    """The naive way: publish one reading, wait for its PUBACK, (commit 'synced'), next."""
    conn = connect(db_path)
    rows = conn.execute(
        "SELECT id, device_id, body FROM outbox WHERE synced_at IS NULL ORDER BY id LIMIT ?",
        (m,),
    ).fetchall()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-baseline-{mark_synced}",
        clean_session=False,
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    wire = 0
    try:
        started = time.perf_counter()
        for row_id, device, body in rows:
            topic = encoding.up_topic("fieldpost", "bench", device)
            payload = body.encode()
            client.publish(topic, payload, qos=1).wait_for_publish(10)
            wire += encoding.mqtt_publish_size(topic, len(payload), 1, False)
            if mark_synced:
                with transaction(conn):
                    conn.execute(
                        "UPDATE outbox SET synced_at = ? WHERE id = ?",
                        (time.time(), row_id),
                    )
        elapsed = time.perf_counter() - started
    finally:
        client.disconnect()
        client.loop_stop()
        conn.close()
    return {
        "readings": len(rows),
        "seconds": round(elapsed, 3),
        "readings_per_s": round(len(rows) / elapsed, 1),
        "ms_per_reading": round(elapsed / len(rows) * 1000, 3),
        "wire_bytes_per_reading": round(wire / len(rows), 2),
        "marks_synced_per_reading": mark_synced,
    }


def run(out_dir: pathlib.Path, quick: bool) -> dict:
    if shutil.which(MOSQUITTO) is None:
        raise RuntimeError("mosquitto is not installed")
    n = 50_000 if quick else 1_000_000
    n_plain = 20_000 if quick else 100_000
    m = 1_000 if quick else 5_000
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        work = pathlib.Path(tmp)
        broker, port = _start_broker(work)
        try:
            fill_started = time.perf_counter()
            _fill(work / "gzip.db", n)
            fill_s = time.perf_counter() - fill_started
            _fill(work / "plain.db", n_plain)
            _fill(work / "baseline.db", m)
            batched = _drain(work / "gzip.db", port, n, "gzip")
            plain = _drain(work / "plain.db", port, n_plain, "none")
            naive_mqtt = _one_by_one(work / "baseline.db", port, m, mark_synced=False)
            naive_sync = _one_by_one(work / "baseline.db", port, m, mark_synced=True)
        finally:
            broker.terminate()
            broker.wait(10)
    figures = {
        "backlog_readings": n,
        "fill_seconds": round(fill_s, 2),
        "batched_gzip": batched,
        "batched_uncompressed": plain,
        "baseline_publish_wait_puback": naive_mqtt,
        "baseline_publish_wait_puback_commit": naive_sync,
        "ratio_vs_publish_wait_puback": round(batched["readings_per_s"] / naive_mqtt["readings_per_s"], 1),
        "ratio_vs_publish_wait_puback_commit": round(
            batched["readings_per_s"] / naive_sync["readings_per_s"], 1
        ),
        "wire_bytes_per_reading": {
            "gzip_batched": batched["wire_bytes_per_reading"],
            "uncompressed_batched": plain["wire_bytes_per_reading"],
            "one_publish_per_reading": naive_mqtt["wire_bytes_per_reading"],
        },
        "baseline_extrapolated_seconds_for_backlog": round(n * naive_mqtt["ms_per_reading"] / 1000, 1),
    }
    (out_dir / "sync.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 readings instead of 1,000,000")
    parser.add_argument("--out", default="build/bench", help="directory for sync.json")
    args = parser.parse_args()
    print(json.dumps(run(pathlib.Path(args.out), args.quick), indent=2))


if __name__ == "__main__":
    main()
