"""ChirpStack messages built from chirpstack-api, the edge as a process, a lossy UDP relay and a
datagram client for the sources tests. Everything on 127.0.0.x."""

from __future__ import annotations

import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from chirpstack_api import integration
from google.protobuf import json_format

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("edge_runner.py")


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --- ChirpStack ---------------------------------------------------------------------------------


def _device_info(msg, dev_eui: str, app: str, name: str = "", tags: dict | None = None) -> None:
    info = msg.device_info
    info.dev_eui = dev_eui
    info.application_id = app
    info.application_name = f"{app} application"
    info.tenant_id = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"
    info.device_name = name
    info.device_profile_name = "class A"
    for k, v in (tags or {}).items():
        info.tags[k] = v


def encode(msg, encoding: str) -> bytes:
    """As ChirpStack's MQTT integration publishes it: protobuf's JSON mapping, or binary protobuf."""
    if encoding == "json":
        return json_format.MessageToJson(msg, indent=None).encode()
    return msg.SerializeToString()


def uplink(
    dev_eui: str,
    app: str,
    fcnt: int,
    data: bytes,
    *,
    dedup_id: str | None = None,
    obj: dict | None = None,
    name: str = "",
    tags: dict | None = None,
    rssi: int = -70,
    snr: float = 5.5,
    gateway: str = "aa555a0000000001",
) -> integration.UplinkEvent:
    up = integration.UplinkEvent(
        deduplication_id=dedup_id or str(uuid.uuid4()), f_cnt=fcnt, f_port=2, data=data, dev_addr="01020304"
    )
    _device_info(up, dev_eui, app, name, tags)
    if obj is not None:
        up.object.update(obj)
    for i, (r, s) in enumerate(((rssi - 20, snr - 8), (rssi, snr))):
        rx = up.rx_info.add()
        rx.gateway_id = gateway if i else "aa555a00000000ff"
        rx.rssi, rx.snr = r, s
    return up


def join(dev_eui: str, app: str, *, dedup_id: str | None = None) -> integration.JoinEvent:
    ev = integration.JoinEvent(deduplication_id=dedup_id or str(uuid.uuid4()), dev_addr="01020305")
    _device_info(ev, dev_eui, app)
    return ev


def ack(dev_eui: str, app: str, queue_id: str, acknowledged: bool = True) -> integration.AckEvent:
    ev = integration.AckEvent(
        deduplication_id=str(uuid.uuid4()), queue_item_id=queue_id, acknowledged=acknowledged, f_cnt_down=7
    )
    _device_info(ev, dev_eui, app)
    return ev


def txack(dev_eui: str, app: str, queue_id: str) -> integration.TxAckEvent:
    ev = integration.TxAckEvent(
        downlink_id=123, queue_item_id=queue_id, f_cnt_down=7, gateway_id="aa555a0000000001"
    )
    _device_info(ev, dev_eui, app)
    return ev


def topic(app: str, dev_eui: str, event: str) -> str:
    return f"application/{app}/device/{dev_eui}/event/{event}"


def write_config(path: Path, db: Path, sources: dict) -> Path:
    lines = [
        "[edge]",
        f'db = "{db}"',
        "disk_reserve_mb = 0",
        "[link]",
        "discover = false",
        "[http]",
        "enabled = false",
        "[log]",
        'level = "WARNING"',
    ]
    for name, table in sources.items():
        lines.append(f"[sources.{name}]")
        for key, value in table.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, (int, float)):
                lines.append(f"{key} = {value}")
            elif isinstance(value, (list, tuple)):
                lines.append(f"{key} = [{', '.join(repr(str(v)).replace(chr(39), chr(34)) for v in value)}]")
            else:
                lines.append(f'{key} = "{value}"')
    path.write_text("\n".join(lines) + "\n")
    return path


class EdgeProcess:
    """The daemon with the sources attached (tests/sources/edge_runner.py), as a process to kill."""

    def __init__(self, config: Path, log_path: Path):
        self.config = config
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> EdgeProcess:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(RUNNER), str(self.config)], stdout=log, stderr=subprocess.STDOUT, env=env
            )
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        code, self.proc = self.proc.returncode, None
        return code


# --- datagrams ----------------------------------------------------------------------------------


class LossyRelay:
    """Forwards datagrams between clients and a server, losing and duplicating ``rate`` of them each
    way (seeded): a real UDP hop, so the server sees real sockets. One upstream socket per client."""

    def __init__(self, server: tuple[str, int], *, loss: float, dup: float, seed: int = 16):
        self.server = server
        self.loss, self.dup = loss, dup
        self.rng = random.Random(seed)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.address = self.front.getsockname()
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.front, selectors.EVENT_READ, None)
        self.upstream: dict[tuple, socket.socket] = {}
        self.dropped = self.duplicated = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> LossyRelay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in (self.front, *self.upstream.values()):
            s.close()

    def _send(self, sock: socket.socket, data: bytes, to) -> None:
        r = self.rng.random()
        if r < self.loss:
            self.dropped += 1
            return
        sock.sendto(data, to)
        if r < self.loss + self.dup:
            self.duplicated += 1
            sock.sendto(data, to)

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.sel.select(0.1):
                sock, client = key.fileobj, key.data
                data, addr = sock.recvfrom(65535)
                if client is None:  # from a client: on to the server through its own upstream socket
                    up = self.upstream.get(addr)
                    if up is None:
                        up = self.upstream[addr] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        up.bind(("127.0.0.1", 0))
                        self.sel.register(up, selectors.EVENT_READ, addr)
                    self._send(up, data, self.server)
                else:  # the server's answer: back to its client
                    self._send(self.front, data, client)


class DatagramDevices:
    """``count`` devices each sending ``per_device`` frames one at a time, resending a frame whose
    answer did not come within ``timeout`` s, all at once over one selector.

    ``frame(dev, fcnt, attempt) -> (bytes, token)`` builds a request; ``answer(data) -> (token, ok)``
    reads a reply. ``on_acked(dev, fcnt)`` is called when a frame's positive answer arrives.
    """

    def __init__(
        self, devices, per_device: int, *, target, frame, answer, timeout: float = 0.3, on_acked=None
    ):
        self.devices = devices
        self.per_device = per_device
        self.target = target
        self.frame = frame
        self.answer = answer
        self.timeout = timeout
        self.on_acked = on_acked
        self.resends = 0
        self.stray = 0

    def run(self, deadline_s: float) -> dict[str, int]:
        sel = selectors.DefaultSelector()
        state = {}
        for dev in self.devices:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sel.register(sock, selectors.EVENT_READ, dev)
            state[dev] = {"sock": sock, "fcnt": 1, "attempt": 0, "token": None, "sent": 0.0}
        done: dict[str, int] = {}

        def send(dev):
            st = state[dev]
            data, st["token"] = self.frame(dev, st["fcnt"], st["attempt"])
            st["sent"] = time.monotonic()
            st["sock"].sendto(data, self.target)

        for dev in self.devices:
            send(dev)
        end = time.monotonic() + deadline_s
        try:
            while len(done) < len(self.devices):
                if time.monotonic() > end:
                    raise AssertionError(
                        f"only {len(done)} of {len(self.devices)} devices done in {deadline_s} s"
                    )
                for key, _ in sel.select(0.02):
                    dev = key.data
                    st = state[dev]
                    data = key.fileobj.recv(65535)
                    token, ok = self.answer(data)
                    if dev in done or token != st["token"]:
                        self.stray += 1  # a duplicated answer, or one to a frame already answered
                        continue
                    assert ok, f"{dev} fcnt {st['fcnt']}: refused {data!r}"
                    if self.on_acked is not None:
                        self.on_acked(dev, st["fcnt"])
                    if st["fcnt"] == self.per_device:
                        done[dev] = st["fcnt"]
                        continue
                    st["fcnt"] += 1
                    st["attempt"] = 0
                    send(dev)
                now = time.monotonic()
                for dev, st in state.items():
                    if dev not in done and now - st["sent"] > self.timeout:
                        st["attempt"] += 1
                        self.resends += 1
                        send(dev)
        finally:
            for st in state.values():
                st["sock"].close()
            sel.close()
        return done
