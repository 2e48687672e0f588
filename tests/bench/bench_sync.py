"""Sync benchmark: drain a backlog of stored readings into a loopback Mosquitto at QoS 1.

Figures (``sync.json``), each next to its baseline measured in the same run, on the same readings:
- ``batched``: the SyncService as shipped (its default [sync] settings: batches of 200 readings or
  64 KB, 8 in flight, gzip'd JSON) draining the backlog straight from the readings table past the
  cursor (decoding each reading's raw payload, building its document, marking the cursor);
  ``sync_drain_s`` for the whole backlog (``sync_drain_1m_s`` at full size, 1,000,000 readings);
- ``baseline_publish_wait_puback``: what a user would write first: one PUBLISH per reading (the
  same document, JSON), waiting for its PUBACK before the next, no fsync, for at least 5 s;
- ``sync_vs_publish_wait``: the ratio of the two rates; and the bytes on the wire per reading.

Sizes: ``quick`` drains 100,000 readings, the full run 1,000,000.
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

from edge.codecs import CodecRunner, lpp
from edge.store import connect, migrate, numbers, readings, transaction
from edge.store.decode import decode_payload
from edge.store.document import reading_json
from edge.store.query import ReadingReader
from edge.sync import encoding
from edge.sync.service import SyncService

MOSQUITTO = "/usr/sbin/mosquitto"
DEVICES = [f"{0xB0B0000000000000 + i:016x}" for i in range(16)]
BRIDGE = "b0b0b0b0b0b0b0b0"
BASELINE_SECONDS = 5.0


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
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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


def _fill(db_path: pathlib.Path, n: int) -> None:
    """``n`` readings as ingest stores them (real LPP payloads that vary), round-robin over 16 devices."""
    conn = connect(db_path)
    migrate(conn)
    conn.execute("PRAGMA synchronous=OFF")  # set-up only; the drain runs with the store's own settings
    start_ms = round((time.time() - n * 1e-3) * 1000)
    with transaction(conn):
        nums = [numbers.ensure(conn, d) for d in DEVICES]
        bridge = numbers.ensure(conn, BRIDGE)
        for d in DEVICES:
            conn.execute("INSERT INTO devices (id, key, created_at) VALUES (?, ?, 0)", (d, bytes(16)))
    chunk = 100_000
    for first in range(0, n, chunk):
        rows = []
        for i in range(first, min(n, first + chunk)):
            fcnt = i // len(DEVICES)
            raw = lpp.encode(
                [
                    (1, "temperature", 18 + (fcnt % 70) / 10),
                    (2, "humidity", 40 + fcnt % 30),
                    (3, "voltage", 3.3 - (fcnt % 50) / 100),
                ]
            )
            rows.append(
                (
                    readings.reading_id(nums[i % len(DEVICES)], fcnt),
                    start_ms + i,
                    1,
                    -70 - fcnt % 40,
                    30 - fcnt % 10,
                    bridge,
                    0,
                    raw,
                )
            )
        with transaction(conn):
            readings.insert_many(conn, rows)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _drain(db_path: pathlib.Path, port: int, n: int) -> dict:
    config = {
        "site": "bench",
        "mqtt": {"host": "127.0.0.1", "port": port, "tls": {"enabled": False}, "client_id": "bench-sync"},
    }
    service = SyncService(db_path, config)
    cfg = service.config
    started = time.perf_counter()
    service.start()
    try:
        while service.messages_acked < n:
            time.sleep(0.02)
            if time.perf_counter() - started > 3600:
                raise RuntimeError("drain did not finish in an hour")
        elapsed = time.perf_counter() - started
    finally:
        service.stop()
    conn = connect(db_path)
    try:
        from edge.store import backlog

        left = backlog.unsynced(conn)
    finally:
        conn.close()
    if left:
        raise RuntimeError(f"{left} readings left unsynced after the drain")
    return {
        "readings": n,
        "seconds": round(elapsed, 3),
        "readings_per_s": round(n / elapsed, 1),
        "batches": service.batches_sent,
        "wire_bytes_per_reading": round(service.bytes_sent / n, 2),
        "settings": {
            "batch_max_messages": cfg.batch_max_messages,
            "batch_max_bytes": cfg.batch_max_bytes,
            "max_inflight": cfg.max_inflight,
            "compression": cfg.compression,
            "qos": cfg.mqtt.qos,
        },
    }


def _publish_and_wait(db_path: pathlib.Path, port: int) -> dict:
    """The plain alternative: for each reading, build its document, PUBLISH it at QoS 1, wait for the
    PUBACK; for at least BASELINE_SECONDS."""
    conn = connect(db_path)
    reader = ReadingReader(conn)
    codecs = CodecRunner()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-baseline", clean_session=False)
    client.connect("127.0.0.1", port)
    client.loop_start()
    wire = count = 0
    try:
        started = time.perf_counter()
        for r in reader.all_readings():
            values, _ = decode_payload(codecs, "lpp", r.port, r.raw)
            body = reading_json(
                r.device_id, r.fcnt, r.received_ms, r.port, values, r.raw, r.rssi, r.snr_q, r.bridge_id
            )
            topic = encoding.up_topic("fieldpost", "bench", r.device_id)
            payload = body.encode()
            client.publish(topic, payload, qos=1).wait_for_publish(10)
            wire += encoding.mqtt_publish_size(topic, len(payload), 1, False)
            count += 1
            if count % 100 == 0 and time.perf_counter() - started >= BASELINE_SECONDS:
                break
        elapsed = time.perf_counter() - started
    finally:
        client.disconnect()
        client.loop_stop()
        codecs.close()
        reader.close()
        conn.close()
    return {
        "readings": count,
        "seconds": round(elapsed, 3),
        "readings_per_s": round(count / elapsed, 1),
        "wire_bytes_per_reading": round(wire / count, 2),
        "fsync": False,
    }


def run(out_dir: pathlib.Path, quick: bool) -> dict:
    if shutil.which(MOSQUITTO) is None:
        raise RuntimeError("mosquitto is not installed")
    n = 100_000 if quick else 1_000_000
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        work = pathlib.Path(tmp)
        broker, port = _start_broker(work)
        try:
            fill_started = time.perf_counter()
            _fill(work / "backlog.db", n)
            fill_s = time.perf_counter() - fill_started
            _fill(work / "baseline.db", 200_000)  # more than BASELINE_SECONDS can send one by one
            batched = _drain(work / "backlog.db", port, n)
            baseline = _publish_and_wait(work / "baseline.db", port)
        finally:
            broker.terminate()
            broker.wait(10)
    ratio = batched["readings_per_s"] / baseline["readings_per_s"]
    figures = {
        "quick": quick,
        "backlog_readings": n,
        "fill_seconds": round(fill_s, 2),
        "batched": batched,
        "baseline_publish_wait_puback": baseline,
        f"sync_drain_{'100k' if quick else '1m'}_s": batched["seconds"],
        "sync_vs_publish_wait": round(ratio, 1),
        "goals": {
            "sync_drain_1m_s": "<= 20",
            "sync_vs_publish_wait": ">= 20",
            "met_vs_publish_wait": ratio >= 20,
            **({} if quick else {"met_drain_1m": batched["seconds"] <= 20}),
        },
        "baseline_extrapolated_seconds_for_backlog": round(n / baseline["readings_per_s"], 1),
    }
    (out_dir / "sync.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 readings instead of 1,000,000")
    parser.add_argument("--out", default="build/bench", help="directory for sync.json")
    args = parser.parse_args()
    print(json.dumps(run(pathlib.Path(args.out), args.quick), indent=2))


if __name__ == "__main__":
    main()
