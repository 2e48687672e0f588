"""Sources benchmarks (issue 16): what a ChirpStack uplink and a UDP frame cost to take in, each
next to the plain alternative a user would otherwise write, measured in the same run on the same
messages with the same durability (every message committed, synchronous=FULL, before it is
acknowledged), each side for at least 5 s.

- ChirpStack: uplinks (half JSON, half protobuf) published at QoS 1 to a real Mosquitto and taken in
  by the source (parse, dedupe by deduplicationId, decode-ready store, commit, PUBACK after the
  commit), against a plain paho subscriber that INSERTs each message's topic and raw payload into one
  table and commits in on_message (paho's PUBACK follows);
- UDP: frames from 50 devices over real sockets on 127.0.0.1, each device waiting for its ACK, taken
  in by the listener (frame check, rate limit, MIC, replay floor, commit, ACK after the commit),
  against a plain UDP server that INSERTs each datagram and commits before it answers.

Writes <out>/sources.json. Figures, not assertions."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge import registry
from edge.ingest import Ingestor
from edge.radio import build_uplink
from edge.sources.chirpstack import ChirpstackSource
from edge.sources.config import ChirpstackConfig, DatagramConfig
from edge.sources.counters import Counters
from edge.sources.udp import UdpListener
from edge.store import connect, migrate
from tests.sources.sources_helpers import DatagramDevices, encode, uplink
from tests.sync.sync_helpers import MOSQUITTO, Mosquitto

LPP = bytes.fromhex("0367011003680a")
MIN_SECONDS = 5.0  # each side measured at least this long


def _store(path: Path):
    conn = connect(path)
    migrate(conn)
    ingest = Ingestor(conn)
    ingest.start()
    return conn, ingest


def _plain_table(path: Path) -> sqlite3.Connection:
    """What a user would write first: one table, each message as it came; WAL, synchronous=FULL."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, source TEXT, payload BLOB, at REAL)")
    return conn


def _chirpstack_messages(devices: list[str], start: int, count: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(start, start + count):
        dev = devices[i % len(devices)]
        body = encode(uplink(dev, "farm", i // len(devices), LPP), "json" if i % 2 else "protobuf")
        out.append((f"application/farm/device/{dev}/event/up", body))
    return out


def _publish_rounds(
    port: int, devices: list[str], stored: Callable[[], int], batch: int
) -> tuple[int, float]:
    """Publish rounds of ``batch`` uplinks (QoS 1), each waited for, until >= MIN_SECONDS of them."""
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"chirpstack-bench-{port}-{time.monotonic_ns()}")
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    sent, elapsed = 0, 0.0
    try:
        while elapsed < MIN_SECONDS:
            msgs = _chirpstack_messages(devices, sent, batch)  # built outside the timed part
            started = time.perf_counter()
            for topic, payload in msgs:
                pub.publish(topic, payload, qos=1)
            sent += batch
            while stored() < sent:
                if time.perf_counter() - started > 600:
                    raise RuntimeError(f"only {stored()} of {sent} uplinks stored")
                time.sleep(0.002)
            elapsed += time.perf_counter() - started
    finally:
        pub.disconnect()
        pub.loop_stop()
    return sent, elapsed


def _chirpstack(work: Path, batch: int) -> dict:
    devices = [f"70b3d57ed00{i:05x}" for i in range(20)]
    broker = Mosquitto(work / "broker").start()
    try:
        conn, ingest = _store(work / "cs.db")
        counters = Counters()
        cfg = ChirpstackConfig(
            enabled=True, port=broker.port, client_id="bench", adopt_applications=("farm",)
        )
        source = ChirpstackSource(cfg, ingest, db_path=str(work / "cs.db"), counters=counters).start()
        try:
            source.connected.wait(10)
            time.sleep(0.3)
            n, elapsed = _publish_rounds(
                broker.port, devices, lambda: counters.get("chirpstack", "stored"), batch
            )
        finally:
            source.stop()
            ingest.stop()
            conn.close()

        # the baseline: a plain subscriber, one INSERT and COMMIT per message inside on_message
        plain = _plain_table(work / "cs-plain.db")
        taken = [0]

        def on_message(_client, _userdata, msg):
            plain.execute(
                "INSERT INTO messages (source, payload, at) VALUES (?, ?, ?)",
                (msg.topic, msg.payload, time.time()),
            )
            taken[0] += 1

        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="plain-bench", clean_session=False)
        sub.on_message = on_message
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("application/+/device/+/event/up", qos=1)
        sub.loop_start()
        try:
            time.sleep(0.3)
            base_n, base_elapsed = _publish_rounds(broker.port, devices, lambda: taken[0], batch)
        finally:
            sub.disconnect()
            sub.loop_stop()
            plain.close()
        return {
            "uplinks": n,
            "seconds": round(elapsed, 2),
            "uplinks_per_s": round(n / elapsed),
            "baseline_plain_subscriber": {
                "uplinks": base_n,
                "seconds": round(base_elapsed, 2),
                "uplinks_per_s": round(base_n / base_elapsed),
            },
            "ratio_to_baseline": round((n / elapsed) / (base_n / base_elapsed), 3),
        }
    finally:
        broker.stop()


class _PlainUdpServer:
    """The baseline: recvfrom, INSERT the datagram, COMMIT, answer (result 0 + the frame's device
    id and counter, the shape the devices read); one thread, as a first version would be."""

    def __init__(self, path: Path):
        self.db = _plain_table(path)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.db.execute(
                "INSERT INTO messages (source, payload, at) VALUES ('udp', ?, ?)", (data, time.time())
            )
            self.sock.sendto(b"\x00\x00" + data[1:13], addr)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        self.db.close()


def _udp_rounds(devices: list[str], keys: dict[str, bytes], target, per_device: int) -> tuple[int, float]:
    """Rounds of ``per_device`` frames from every device (each waits for its ACK) until >= MIN_SECONDS."""
    sent, elapsed, base = 0, 0.0, 0
    while elapsed < MIN_SECONDS:
        driver = DatagramDevices(
            devices,
            per_device,
            target=target,
            frame=lambda d, f, _a, b=base: (build_uplink(keys[d], d, b + f, 1, LPP), (d, b + f)),
            answer=lambda data: (
                (bytes(data[2:10]).hex(), int.from_bytes(data[10:14], "big")),
                data[0] in (0, 1),
            ),
            timeout=2.0,
        )
        started = time.perf_counter()
        driver.run(deadline_s=600)
        elapsed += time.perf_counter() - started
        sent += len(devices) * per_device
        base += per_device
    return sent, elapsed


def _udp(work: Path, per_device: int) -> dict:
    devices = [f"c0a8000000{i:06x}" for i in range(50)]
    conn, ingest = _store(work / "udp.db")
    keys = {d: registry.add_device(conn, d, actor="bench", now=time.time()) for d in devices}
    udp = UdpListener(
        DatagramConfig(enabled=True, host="127.0.0.1", port=0, rate_per_s=1e9, burst=10**9),
        ingest,
        counters=Counters(),
    ).start()
    try:
        n, elapsed = _udp_rounds(devices, keys, udp.address, per_device)
    finally:
        udp.stop()
        ingest.stop()
        conn.close()
    plain = _PlainUdpServer(work / "udp-plain.db")
    try:
        base_n, base_elapsed = _udp_rounds(devices, keys, plain.address, per_device)
    finally:
        plain.stop()
    return {
        "frames": n,
        "seconds": round(elapsed, 2),
        "frames_per_s": round(n / elapsed),
        "baseline_plain_server": {
            "frames": base_n,
            "seconds": round(base_elapsed, 2),
            "frames_per_s": round(base_n / base_elapsed),
        },
        "ratio_to_baseline": round((n / elapsed) / (base_n / base_elapsed), 3),
    }


def run(out_dir: Path, quick: bool) -> dict:
    if shutil.which(MOSQUITTO) is None:
        raise RuntimeError("mosquitto is not installed")
    with tempfile.TemporaryDirectory(prefix="bench-sources-") as tmp:
        work = Path(tmp)
        return {
            "chirpstack": _chirpstack(work, 1_000),
            "udp": _udp(work, 20),
        }
