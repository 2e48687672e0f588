"""A CPython stand-in for a bridge module on a pty, for ingest tests and benchmarks.

It runs the module side of the link with the same Session the edge uses (module
role: ``yields=False``), keeps a journal of readings from its nodes, sends them as
UPLINK frames, and records every ACK it receives — what the firmware logs. A
reading leaves the journal only when an ACK with result 0 (stored) or 1 (duplicate)
arrives; BUSY NACKs and lost links keep it.

Its nodes speak LoRaWAN, activated by personalisation (ABP): no join to wait for. Each node's
session (DevAddr, session keys) follows from its id and key, and the edge is given the same with
``activate`` (or `fieldpost devices add --activation abp` with ``Node.abp_options``).
"""

from __future__ import annotations

import collections
import hmac
import os
import select
import threading
import time
from dataclasses import dataclass, field

from edge.codecs import lpp
from edge.link.frame import FrameType
from edge.link.session import Acked, Refused, Session, SessionStarted
from edge.lorawan import frames as lw
from edge.lorawan import server as lorawan_server
from edge.radio import build_serial_uplink
from edge.sim import open_raw_pty
from edge.store import transaction
from edge.store.numbers import Numbers


@dataclass
class Node:
    device_id: str
    key: bytes
    next_fcnt: int = 1  # FCnt of its next reading; a fresh device's reading ids are its FCnts
    devaddr: int = field(init=False)
    nwk_skey: bytes = field(init=False, repr=False)
    app_skey: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.devaddr = int(self.device_id, 16) & 0x1FFFFFF  # NwkID 0: the default [lorawan] net_id
        self.nwk_skey = hmac.digest(self.key, b"nwk_skey", "sha256")[:16]
        self.app_skey = hmac.digest(self.key, b"app_skey", "sha256")[:16]

    def abp_options(self) -> list[str]:
        """`fieldpost devices add` options that give the edge this node's session."""
        return [
            "--activation",
            "abp",
            "--devaddr",
            f"{self.devaddr:08x}",
            "--nwk-skey",
            self.nwk_skey.hex(),
            "--app-skey",
            self.app_skey.hex(),
        ]

    def frame(self, fcnt: int, port: int, payload: bytes) -> bytes:
        return lw.build_data(
            lw.CONFIRMED_UP, self.devaddr, fcnt, port, payload, nwk_key=self.nwk_skey, app_key=self.app_skey
        )


def activate(conn, nodes: list[Node]) -> list[Node]:
    """Give the edge the ABP session of each registered node that has none yet (one kept from an
    earlier run carries on with its counters); returns ``nodes``."""
    numbers = Numbers()
    with transaction(conn):
        for node in nodes:
            if not lorawan_server.has_session(conn, node.device_id):
                lorawan_server.activate_abp(
                    conn,
                    node.device_id,
                    devaddr=node.devaddr,
                    nwk_skey=node.nwk_skey,
                    app_skey=node.app_skey,
                    number=numbers.number(conn, node.device_id, create=True),
                    now=time.time(),
                )
    return nodes


@dataclass
class PeerLog:
    acked: dict[tuple[str, int], int] = field(default_factory=dict)  # (device, fcnt) -> result byte
    ack_latency: list[float] = field(default_factory=list)
    refused: list[tuple[tuple[str, int], str]] = field(default_factory=list)
    sessions: int = 0
    busy_nacks_rx: int = 0


class ModulePeer:
    def __init__(self, bridge_id: str, nodes: list[Node], *, window: int = 8, rssi: int = -90):
        self.bridge_id = bridge_id
        self.nodes = {n.device_id: n for n in nodes}
        self.rssi = rssi
        self.master, self.slave, self.path = open_raw_pty()
        os.set_blocking(self.master, False)
        self.session = Session(
            {"id": bridge_id, "fw": "peer", "role": "bridge", "board": "cpython"},
            clock=time.monotonic,
            window=window,
            accept=(FrameType.DOWNLINK,),
            yields=False,
        )
        self.journal: collections.deque = collections.deque()  # (device, fcnt, payload, created)
        self.log = PeerLog()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"peer-{bridge_id}", daemon=True)
        self.dropped_tx = 0

    def start(self) -> ModulePeer:
        with self._lock:
            self.session.connect()
        self._thread.start()
        return self

    def add_reading(self, device_id: str, values=((1, "temperature", 21.5), (2, "humidity", 50.0))) -> int:
        node = self.nodes[device_id]
        with self._lock:
            fcnt = node.next_fcnt
            node.next_fcnt += 1
            frame = node.frame(fcnt, 1, lpp.encode(list(values)))
            self.journal.append((device_id, fcnt, build_serial_uplink(frame, rssi=self.rssi, snr=5.0)))
        return fcnt

    def add_raw(self, device_id: str, fcnt: int, payload: bytes) -> None:
        """Queue an arbitrary UPLINK payload (bad MICs, replays ...)."""
        with self._lock:
            self.journal.append((device_id, fcnt, payload))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self.journal) + self.session.unacked

    @property
    def up(self) -> bool:
        return self.session.up

    def close(self) -> None:
        """Stop, and close both ends of the pty: the port disappears (a pulled cable)."""
        self._stop.set()
        self._thread.join(5)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    # --- loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                deadline = self.session.next_deadline()
            timeout = 0.02 if deadline is None else max(0.0, min(0.02, deadline - time.monotonic()))
            readable, _, _ = select.select([self.master], [], [], timeout)
            data = b""
            if readable:
                try:
                    data = os.read(self.master, 65536)
                except (BlockingIOError, OSError):
                    data = b""
            with self._lock:
                events = self.session.receive(data) if data else []
                events += self.session.poll()
                while self.journal and self.session.up and self.session.can_send():
                    dev, fcnt, payload = self.journal.popleft()
                    self.session.send(FrameType.UPLINK, payload, token=(dev, fcnt, time.monotonic()))
                out = self.session.take_output()
                self.log.busy_nacks_rx = self.session.counters.nacks_rx.get("BUSY", 0)
            for event in events:
                self._on_event(event)
            if out:
                self._write(out)

    def _write(self, data: bytes) -> None:
        try:
            os.write(self.master, data)
        except BlockingIOError:
            self.dropped_tx += len(data)  # nobody reading the port: bytes are lost, as on a UART
        except OSError:
            self.dropped_tx += len(data)

    def _on_event(self, event) -> None:
        if isinstance(event, Acked):
            dev, fcnt, sent = event.token
            result = event.result[0] if event.result else -1
            if result in (0, 1):
                self.log.acked[(dev, fcnt)] = result
                self.log.ack_latency.append(time.monotonic() - sent)
            else:
                self.log.refused.append(((dev, fcnt), f"result {result}"))
        elif isinstance(event, Refused):
            dev, fcnt, _ = event.token
            self.log.refused.append(((dev, fcnt), f"{event.reason.name} {event.text}"))
        elif isinstance(event, SessionStarted):
            self.log.sessions += 1
