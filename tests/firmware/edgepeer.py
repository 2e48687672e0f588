"""TEST STAND-IN for the edge: a small CPython peer on a virtual bridge's pty.

Built from the real edge link (edge.link.session.Session) and a radio-frame verifier
written here from docs/radio.md, so the firmware tests do not depend on the EDGE
helper's ingest (edge/ingest/) while it is being written. It stores each
(device, fcnt) once, answers with the ACK result codes of docs/radio.md section 4
and attaches queued downlink commands for a node to the ACK of its next uplink.
With `ingest` (tests/firmware/realedge.py) the UPLINKs go to the real edge ingest instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import serial

from edge.link.frame import FrameType
from edge.link.session import Acked, Received, Refused, Session, SessionStarted

ACK_STORED, ACK_DUPLICATE, ACK_BAD_MIC, ACK_REPLAYED, ACK_UNKNOWN, ACK_MALFORMED = range(6)


def mic(key: bytes, signed: bytes) -> bytes:
    return hmac.new(key, signed, hashlib.sha256).digest()[:4]


def radio_frame(kind: int, key: bytes, device: str, fcnt: int, port: int, payload: bytes = b"") -> bytes:
    signed = struct.pack(">B8sIB", kind, bytes.fromhex(device), fcnt, port) + payload
    return signed + mic(key, signed)


def command(dl_id: int, cmd: int, args: bytes = b"") -> bytes:
    return struct.pack(">HB", dl_id, cmd) + args


@dataclass
class Stored:
    device: str
    fcnt: int
    port: int
    payload: bytes
    rssi: int
    snr: float
    rx_time: int


@dataclass
class EdgePeer:
    port: str
    keys: dict[str, bytes]
    wrong_key_downlinks: dict[str, int] = field(default_factory=dict)  # device -> how many to spoil
    # (device, fcnt) -> ACK result to answer every time instead of storing it: a frame the edge
    # will never accept, whatever the module does
    refuse: dict[tuple[str, int], int] = field(default_factory=dict)
    # the real edge instead of this stand-in: UPLINK payload -> ACK payload (tests/firmware/realedge.py)
    ingest: Callable[[bytes], bytes] | None = None

    def __post_init__(self):
        self.stored: dict[tuple[str, int], Stored] = {}
        self.arrivals: dict[tuple[str, int], int] = {}
        self.results: dict[str, int] = {}  # ACK result name -> count
        self.refusals: dict[tuple[str, int], int] = {}  # (device, fcnt) in `refuse` -> times refused
        self.statuses: list[dict] = []
        self.logs: list[dict] = []
        self.refused: list[tuple[object, str, str]] = []
        self.acked_tokens: list[tuple[object, bytes]] = []
        self.downlink_results: dict[int, tuple[int, str]] = {}  # dl_id -> (result, reason)
        self.sessions: list[dict] = []
        self.pending: dict[str, list[tuple[int, bytes]]] = {}  # device -> [(dl_id, command)]
        self._lock = threading.Lock()
        self._session = Session(
            {"edge": "test-peer", "time": int(time.time())},
            clock=time.monotonic,
            accept=(FrameType.UPLINK, FrameType.STATUS, FrameType.LOG),
        )
        self._ser = serial.Serial(self.port, 921600, timeout=0.005)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edgepeer", daemon=True)
        self._thread.start()

    # --- test API ----------------------------------------------------------------------

    def queue_command(self, device: str, dl_id: int, cmd: int, args: bytes = b"") -> None:
        with self._lock:
            self.pending.setdefault(device, []).append((dl_id, command(dl_id, cmd, args)))

    def send_downlink(self, frame: bytes, token: object) -> None:
        """A serial DOWNLINK (a command for the bridge itself)."""
        with self._lock:
            self._session.send(FrameType.DOWNLINK, frame, token)

    def readings(self, device: str) -> dict[int, Stored]:
        with self._lock:
            return {f: s for (d, f), s in self.stored.items() if d == device and s.port == 1}

    def of_port(self, device: str, port: int) -> list[Stored]:
        with self._lock:
            return [s for (d, _), s in sorted(self.stored.items()) if d == device and s.port == port]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._ser.close()

    # --- the peer ------------------------------------------------------------------------

    def _run(self) -> None:
        with self._lock:
            self._session.connect()
        while not self._stop.is_set():
            try:
                data = self._ser.read(4096)
            except serial.SerialException:
                time.sleep(0.01)
                continue
            with self._lock:
                events = self._session.receive(data) if data else []
                events += self._session.poll()
                for ev in events:
                    self._on_event(ev)
                out = self._session.take_output()
            if out:
                self._ser.write(out)

    def _on_event(self, ev) -> None:
        if isinstance(ev, SessionStarted):
            self.sessions.append(ev.peer)
        elif isinstance(ev, Acked):
            self.acked_tokens.append((ev.token, ev.result))
        elif isinstance(ev, Refused):
            self.refused.append((ev.token, ev.reason.name, ev.text))
        elif isinstance(ev, Received):
            f = ev.frame
            if f.type == FrameType.UPLINK:
                self._session.ack(f.seq, self._uplink(f.payload))
            elif f.type == FrameType.STATUS:
                self.statuses.append(json.loads(f.payload))
                self._session.ack(f.seq)
            elif f.type == FrameType.LOG:
                self.logs.append(json.loads(f.payload))
                self._session.ack(f.seq)

    def _count(self, name: str) -> None:
        self.results[name] = self.results.get(name, 0) + 1

    def _uplink(self, payload: bytes) -> bytes:
        if self.ingest is not None:
            return self.ingest(payload)
        if len(payload) < 7 + 18:
            self._count("malformed")
            return bytes([ACK_MALFORMED])
        rssi, snr_q, rx_time = struct.unpack_from(">hbI", payload)
        frame = payload[7:]
        kind, dev_b, fcnt, port = struct.unpack_from(">B8sIB", frame)
        device = dev_b.hex()
        if kind != 0x40 or port not in (1, 2, 3):
            self._count("malformed")
            return bytes([ACK_MALFORMED])
        key = self.keys.get(device)
        if key is None:
            self._count("unknown")
            return bytes([ACK_UNKNOWN])
        if not hmac.compare_digest(mic(key, frame[:-4]), frame[-4:]):
            self._count("bad_mic")
            return bytes([ACK_BAD_MIC])
        ident = (device, fcnt)
        if ident in self.refuse:
            self._count("refused")
            self.refusals[ident] = self.refusals.get(ident, 0) + 1
            return bytes([self.refuse[ident]])
        self.arrivals[ident] = self.arrivals.get(ident, 0) + 1
        if ident in self.stored:
            self._count("duplicate")
            result = ACK_DUPLICATE
        else:
            self._count("stored")
            result = ACK_STORED
            self.stored[ident] = Stored(device, fcnt, port, frame[14:-4], rssi, snr_q / 4, rx_time)
            if port == 2 and len(frame) >= 14 + 3 + 4:
                dl_id, res = struct.unpack_from(">HB", frame, 14)
                self.downlink_results[dl_id] = (res, frame[17:-4].decode("utf-8", "replace"))
                self.pending[device] = [p for p in self.pending.get(device, []) if p[0] != dl_id]
        queued = self.pending.get(device)
        dl_key = key
        if self.wrong_key_downlinks.get(device, 0) > 0:
            self.wrong_key_downlinks[device] -= 1
            dl_key = bytes(16)
        if queued:
            dl = radio_frame(0x60, dl_key, device, fcnt, 3, queued[0][1])
        else:
            dl = radio_frame(0x60, dl_key, device, fcnt, 0)
        return bytes([result]) + dl
