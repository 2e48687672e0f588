"""Sources benchmarks (issue 16): what a ChirpStack uplink and a UDP frame cost to take in, each
next to a baseline measured in the same run on the same writer with the same durability.

- ChirpStack: uplinks (half JSON, half protobuf) published to a real Mosquitto and taken in by the
  source (parse, commit, PUBACK after the commit), against the same number of module frames handed
  straight to the ingest writer (no MQTT, no parse): what the MQTT integration adds;
- UDP: frames from 50 devices over real sockets on 127.0.0.1, each device waiting for its ACK,
  against the same frames handed straight to the writer: what the socket round trip adds.

Writes <out>/sources.json. Figures, not assertions."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge import registry
from edge.ingest import Ingestor
from edge.radio import build_serial_uplink, build_uplink
from edge.sources.chirpstack import ChirpstackSource
from edge.sources.config import ChirpstackConfig, DatagramConfig
from edge.sources.counters import Counters
from edge.sources.udp import UdpListener
from edge.store import connect, migrate
from tests.sources.sources_helpers import DatagramDevices, encode, uplink
from tests.sync.sync_helpers import MOSQUITTO, Mosquitto

LPP = bytes.fromhex("0367011003680a")


def _store(path: Path):
    conn = connect(path)
    migrate(conn)
    ingest = Ingestor(conn)
    ingest.start()
    return conn, ingest


def _direct(path: Path, devices: list[str], per_device: int, window: int) -> float:
    """The baseline: module frames handed to the writer, ``window`` waiting at a time (as the links do)."""
    conn, ingest = _store(path)
    keys = {d: registry.add_device(conn, d, actor="bench", now=time.time()) for d in devices}
    frames = [
        build_serial_uplink(build_uplink(keys[d], d, f, 1, LPP))
        for f in range(1, per_device + 1)
        for d in devices
    ]
    slots = threading.Semaphore(window)
    done = threading.Event()
    left = [len(frames)]
    lock = threading.Lock()

    def reply(_ack):
        slots.release()
        with lock:
            left[0] -= 1
            if not left[0]:
                done.set()

    started = time.perf_counter()
    for payload in frames:
        slots.acquire()
        ingest.submit(payload, bridge_id=None, reply=reply)
    done.wait(600)
    elapsed = time.perf_counter() - started
    ingest.stop()
    conn.close()
    return len(frames) / elapsed


def _chirpstack(work: Path, n: int) -> dict:
    broker = Mosquitto(work / "broker").start()
    try:
        conn, ingest = _store(work / "cs.db")
        counters = Counters()
        cfg = ChirpstackConfig(
            enabled=True, port=broker.port, client_id="bench", adopt_applications=("farm",)
        )
        source = ChirpstackSource(cfg, ingest, db_path=str(work / "cs.db"), counters=counters).start()
        source.connected.wait(10)
        time.sleep(0.3)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="chirpstack-bench")
        pub.max_inflight_messages_set(1000)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        devices = [f"70b3d57ed00{i:05x}" for i in range(20)]
        msgs = []
        for i in range(n):
            dev = devices[i % len(devices)]
            msgs.append(
                (
                    f"application/farm/device/{dev}/event/up",
                    encode(uplink(dev, "farm", i // len(devices), LPP), "json" if i % 2 else "protobuf"),
                )
            )
        started = time.perf_counter()
        for topic, payload in msgs:
            pub.publish(topic, payload, qos=1)
        while counters.get("chirpstack", "stored") < n and time.perf_counter() - started < 600:
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        pub.disconnect()
        pub.loop_stop()
        source.stop()
        ingest.stop()
        conn.close()
        baseline = _direct(work / "cs-baseline.db", devices, n // len(devices), 100)
        return {
            "uplinks": n,
            "uplinks_per_s": round(n / elapsed),
            "baseline_module_frames_per_s": round(baseline),
            "ratio_to_baseline": round(n / elapsed / baseline, 3),
        }
    finally:
        broker.stop()


def _udp(work: Path, per_device: int) -> dict:
    devices = [f"c0a8000000{i:06x}" for i in range(50)]
    conn, ingest = _store(work / "udp.db")
    keys = {d: registry.add_device(conn, d, actor="bench", now=time.time()) for d in devices}
    udp = UdpListener(
        DatagramConfig(enabled=True, host="127.0.0.1", port=0, rate_per_s=1e9, burst=10**9),
        ingest,
        counters=Counters(),
    ).start()
    driver = DatagramDevices(
        devices,
        per_device,
        target=udp.address,
        frame=lambda d, f, _a: (build_uplink(keys[d], d, f, 1, LPP), (d, f)),
        answer=lambda data: (
            (bytes(data[2:10]).hex(), int.from_bytes(data[10:14], "big")),
            data[0] in (0, 1),
        ),
        timeout=2.0,
    )
    started = time.perf_counter()
    driver.run(deadline_s=600)
    elapsed = time.perf_counter() - started
    udp.stop()
    ingest.stop()
    conn.close()
    n = len(devices) * per_device
    baseline = _direct(work / "udp-baseline.db", devices, per_device, len(devices))
    return {
        "frames": n,
        "frames_per_s": round(n / elapsed),
        "baseline_direct_frames_per_s": round(baseline),
        "ratio_to_baseline": round(n / elapsed / baseline, 3),
    }


def run(out_dir: Path, quick: bool) -> dict:
    if shutil.which(MOSQUITTO) is None:
        raise RuntimeError("mosquitto is not installed")
    with tempfile.TemporaryDirectory(prefix="bench-sources-") as tmp:
        work = Path(tmp)
        return {
            "chirpstack": _chirpstack(work, 2_000 if quick else 20_000),
            "udp": _udp(work, 40 if quick else 400),
        }
