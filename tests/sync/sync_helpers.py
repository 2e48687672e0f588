"""Real Mosquitto brokers, a cloud-side subscriber and store fillers for the sync tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import paho.mqtt.client as mqtt
import tomli_w
from paho.mqtt.enums import CallbackAPIVersion

from edge.codecs import lpp
from edge.store import backlog, connect, cursor, migrate, numbers, readings, transaction
from edge.sync import encoding
from tests.conftest import wait_until

MOSQUITTO = "/usr/sbin/mosquitto"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 10.0, what: str = "", interval: float = 0.01):
    """tests.conftest.wait_until with ``what`` third, as the sync tests pass it: ``wait_for(p, 30, "what")``."""
    return wait_until(predicate, timeout, interval, what)


class Mosquitto:
    """One broker process on 127.0.0.1 with its own config, log and persistence in ``workdir``.

    Persistence is on (in ``workdir``) so that a broker stopped and started again keeps
    the cloud subscriber's session and the messages queued for it, as a real cloud
    broker does; a broker killed with SIGKILL loses what it had not saved.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        tls: dict | None = None,
        password_file: Path | None = None,
    ):
        """With ``tls`` (cafile, certfile, keyfile, optional require_certificate) ``port`` is a TLS
        listener and ``plain_port`` a plaintext one for the test's own cloud-side clients."""
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.plain_port = free_port() if tls else self.port
        self.log_path = workdir / "mosquitto.log"
        self.conf_path = workdir / "mosquitto.conf"
        lines = [
            "user root",
            f"listener {self.plain_port} 127.0.0.1",
            f"allow_anonymous {'false' if password_file else 'true'}",
            *([f"password_file {password_file}"] if password_file else []),
            "persistence true",
            f"persistence_location {workdir}/",
            "max_queued_messages 0",
            "max_inflight_messages 100",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if tls:
            lines += [
                # Listener options below apply to the TLS listener on self.port.
                f"listener {self.port} 127.0.0.1",
                f"cafile {tls['cafile']}",
                f"certfile {tls['certfile']}",
                f"keyfile {tls['keyfile']}",
            ]
            if tls.get("require_certificate"):
                lines.append("require_certificate true")
        self.conf_path.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> Mosquitto:
        assert self.proc is None
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._listening, 10, "mosquitto to listen")
        return self

    def _listening(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"mosquitto exited: {self.log_path.read_text() if self.log_path.exists() else ''}"
            )
        try:
            for port in {self.port, self.plain_port}:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    pass
            return True
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def clients_connected(self, client_id: str) -> int:
        """How many MQTT sessions ``client_id`` opened (mosquitto logs each CONNECT it accepted)."""
        return self.log().count(f" as {client_id} ")


class CloudSubscriber:
    """The cloud side: a persistent-session QoS 1 subscriber that records every message id it gets.

    ``arrivals[device]`` is the list of message ids in arrival order (duplicates kept),
    ``bodies[msg_id]`` the distinct bodies (dicts) seen for that id.
    """

    def __init__(
        self,
        port: int,
        topics: list[str],
        *,
        client_id: str = "cloud-test",
        tls_ca: str | None = None,
    ):
        self.port = port
        self.topics = topics
        self.lock = threading.Lock()
        self.arrivals: dict[str, list[str]] = defaultdict(list)
        self.bodies: dict[str, list[dict]] = defaultdict(list)
        self.raw: list[tuple[str, bytes]] = []
        self.distinct: set[str] = set()
        self.payload_bytes = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.max_inflight_messages_set(100)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.05, 0.2)
        self.connected = threading.Event()

    def start(self) -> CloudSubscriber:
        self.client.connect_async("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        wait_for(self.connected.is_set, 10, "subscriber to connect")
        return self

    def stop(self) -> None:
        self.client.disconnect()  # first: wakes the network thread, so loop_stop returns at once
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            return
        for topic in self.topics:
            client.subscribe(topic, qos=1)
        self.connected.set()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.raw.append((msg.topic, msg.payload))
            self.payload_bytes += len(msg.payload)
            if not msg.topic.endswith("/up"):
                return
            doc = encoding.decode_envelope(msg.payload)
            for item in doc["messages"]:
                device = (item["body"] or {}).get("device") or doc["device"] or "_edge"
                self.arrivals[device].append(item["id"])
                seen = self.bodies[item["id"]]
                if item["body"] not in seen:  # dict equality: cheap, and only duplicates compare
                    seen.append(item["body"])
                self.distinct.add(item["id"])

    def count(self) -> int:
        with self.lock:
            return len(self.distinct)


def new_db(path: Path):
    conn = connect(path)
    migrate(conn)
    return conn


DEVICES = [f"{0xA0B0C0D000000000 + i:016x}" for i in range(8)]


def add_devices(conn, devices=DEVICES, now: float | None = None) -> None:
    now = time.time() if now is None else now
    with transaction(conn):
        for d in devices:
            conn.execute(
                "INSERT OR IGNORE INTO devices (id, key, created_at, interval_s) VALUES (?, ?, ?, 60)",
                (d, bytes(16), now),
            )


BRIDGE = "b0b0b0b0b0b0b0b0"


def reading_values(fcnt: int) -> list[tuple[int, str, float]]:
    """The LPP items a test reading with this fcnt carries (Cayenne LPP as the firmware sends)."""
    return [(1, "temperature", round(20 + (fcnt % 50) / 10, 1)), (2, "humidity", 40 + fcnt % 30)]


def reading_body(device: str, fcnt: int, ts: float) -> dict:
    """The document the cloud receives for a test reading (edge.store.document)."""
    raw = lpp.encode(reading_values(fcnt))
    return {
        "id": f"{device}:{fcnt}",
        "device": device,
        "fcnt": fcnt,
        "ts": round(ts * 1000) / 1000,
        "port": 1,
        "values": lpp.decode(raw),
        "raw": raw.hex(),
        "rssi": -70 - fcnt % 40,
        "snr": 7.5,
        "bridge": BRIDGE,
    }


def buffer_readings(
    conn,
    n: int,
    devices=DEVICES,
    *,
    start_fcnt: int = 0,
    created_at: float | None = None,
) -> list[str]:
    """Store ``n`` readings, round-robin over devices, as ingest does (the rows of edge.store.readings).

    Bulk SQL rather than the ingest path: the rows are the same, but 100,000 of them go in one
    executemany in about a second. Returns their message ids in the order they were received.
    """
    # Spread over the past millisecond by millisecond, like a backlog that built up while offline.
    created_at = time.time() - n * 1e-3 if created_at is None else created_at
    msg_ids = []
    rows = []
    with transaction(conn):
        number = {d: numbers.ensure(conn, d) for d in devices}
        bridge = numbers.ensure(conn, BRIDGE)
        for i in range(n):
            device = devices[i % len(devices)]
            fcnt = start_fcnt + i // len(devices)
            msg_ids.append(f"{device}:{fcnt}")
            rows.append(
                (
                    readings.reading_id(number[device], fcnt),
                    round((created_at + i * 1e-3) * 1000),
                    1,
                    -70 - fcnt % 40,
                    30,  # 7.5 dB
                    bridge,
                    0,
                    lpp.encode(reading_values(fcnt)),
                )
            )
        readings.insert_many(conn, rows)
    return msg_ids


def unsynced(conn) -> int:
    """Readings and messages the cloud has not acknowledged yet."""
    return backlog.unsynced(conn)


def sync_config(port: int, **overrides) -> dict:
    """A [sync] section for a plaintext loopback broker, tuned for test speed."""
    cfg = {
        "site": "testsite",
        "batch_max_messages": 250,
        "batch_max_wait_s": 0.05,
        "max_inflight": 8,
        "backoff_initial_s": 0.02,
        "backoff_max_s": 0.3,
        "ack_timeout_s": 10.0,
        "poll_interval_s": 0.05,
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "tls": {"enabled": False},
            "connect_timeout_s": 3.0,
        },
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def write_toml(path: Path, sync: dict) -> Path:
    """A config file with this [sync] table (written by tomli-w, as the project writes TOML)."""
    path.write_text(tomli_w.dumps({"sync": sync}))
    return path


def start_sync_process(db_path: Path, config_path: Path, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge.sync",
                "run",
                "--db",
                str(db_path),
                "--config",
                str(config_path),
                "--log-level",
                "WARNING",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(REPO),
        )


def assert_complete_and_ordered(sub: CloudSubscriber, expected_ids: list[str]) -> dict:
    """All ids arrived; per device the first arrivals are in fcnt order; duplicates carry the same body."""
    with sub.lock:
        missing = set(expected_ids) - sub.distinct
        assert not missing, f"{len(missing)} messages never arrived, e.g. {sorted(missing)[:5]}"
        duplicates = 0
        for device, ids in sub.arrivals.items():
            seen: set[str] = set()
            last = -1
            for msg_id in ids:
                if msg_id in seen:
                    duplicates += 1
                    continue
                seen.add(msg_id)
                fcnt = int(msg_id.rsplit(":", 1)[1])
                assert fcnt > last, f"{device}: {msg_id} arrived after fcnt {last}"
                last = fcnt
        conflicting = [i for i, bodies in sub.bodies.items() if len(bodies) != 1]
        assert not conflicting, f"one id, different bodies: {conflicting[:5]}"
        return {"distinct": len(sub.distinct), "duplicates": duplicates}


def mark_first_synced(conn, msg_ids: list[str], n: int) -> None:
    """The cloud acknowledged the first ``n`` of ``msg_ids`` (as buffer_readings returned them):
    per device, the sync cursor moves to the highest fcnt among them."""
    through: dict[str, int] = {}
    for msg_id in msg_ids[:n]:
        device, fcnt = msg_id.rsplit(":", 1)
        through[device] = max(through.get(device, -1), int(fcnt))
    with transaction(conn):
        cursor.advance(
            conn,
            {
                numbers.ensure(conn, d): readings.reading_id(numbers.ensure(conn, d), f)
                for d, f in through.items()
            },
        )
