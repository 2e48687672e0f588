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
from edge.lorawan import frames as lw
from edge.radio import PORT_AGED, split_aged

ACK_STORED, ACK_DUPLICATE, ACK_BAD_MIC, ACK_REPLAYED, ACK_UNKNOWN, ACK_MALFORMED, ACK_JOINED = range(7)


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
    age: int = 0  # a reading that waited on the module (port 8): its age in s, stored as port 1
    at: float = 0.0  # when this peer received it (time.time())


def _stored(device: str, fcnt: int, port: int, payload: bytes, rssi: int, snr: float, rx_time: int) -> Stored:
    """As the edge stores it: a port-8 reading (docs/radio.md 0.9) as port 1 with its age."""
    age = 0
    if port == PORT_AGED:
        age, payload = split_aged(payload)
        port = 1
    return Stored(device, fcnt, port, payload, rssi, snr, rx_time, age, time.time())


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
    ack_delay: float = 0.0  # s before an UPLINK is answered: an edge that answers late

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
        # LoRaWAN: this peer is also a minimal join + network server (edge/lorawan/frames.py crypto)
        self.lw_sessions: dict[int, dict] = {}  # DevAddr -> session
        self.lw_nonces: dict[str, int] = {}  # DevEUI -> highest DevNonce
        self.joins: list[str] = []
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
        if self.ack_delay:
            time.sleep(self.ack_delay)
        if self.ingest is not None:
            return self.ingest(payload)
        if len(payload) > 7 and payload[7] == lw.JOIN_REQUEST:
            return self._join(payload[7:])
        if len(payload) > 7 and payload[7] == lw.CONFIRMED_UP:
            return self._lorawan(payload)
        if len(payload) < 7 + 18:
            self._count("malformed")
            return bytes([ACK_MALFORMED])
        rssi, snr_q, rx_time = struct.unpack_from(">hbI", payload)
        frame = payload[7:]
        kind, dev_b, fcnt, port = struct.unpack_from(">B8sIB", frame)
        device = dev_b.hex()
        if kind != 0x40 or port not in (1, 2, 3, PORT_AGED):
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
            self.stored[ident] = _stored(device, fcnt, port, frame[14:-4], rssi, snr_q / 4, rx_time)
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

    # --- LoRaWAN ---------------------------------------------------------------------------

    def _join(self, frame: bytes) -> bytes:
        try:
            jr = lw.parse_join_request(frame)
        except lw.LoRaWANFormatError:
            self._count("malformed")
            return bytes([ACK_MALFORMED])
        device = jr.dev_eui.hex()
        key = self.keys.get(device)
        if key is None:
            self._count("unknown")
            return bytes([ACK_UNKNOWN])
        if not jr.mic_ok(key):
            self._count("bad_mic")
            return bytes([ACK_BAD_MIC])
        if jr.dev_nonce <= self.lw_nonces.get(device, -1):
            self._count("replayed")
            return bytes([ACK_REPLAYED])
        self.lw_nonces[device] = jr.dev_nonce
        for addr in [a for a, s in self.lw_sessions.items() if s["device"] == device]:
            del self.lw_sessions[addr]
        devaddr = 0x26000000 + len(self.joins) + 1
        nwk, app = lw.session_keys(key, len(self.joins) + 1, 0x13, jr.dev_nonce)
        base = 1 + max((f for d, f in self.stored if d == device), default=-1)
        self.lw_sessions[devaddr] = {
            "device": device,
            "nwk": nwk,
            "app": app,
            "base": base,
            "fcnt_up": -1,
            "fcnt_down": 0,
        }
        self.joins.append(device)
        self._count("joined")
        return bytes([ACK_JOINED]) + lw.build_join_accept(key, len(self.joins), 0x13, devaddr)

    def _lorawan(self, payload: bytes) -> bytes:
        rssi, snr_q, rx_time = struct.unpack_from(">hbI", payload)
        try:
            d = lw.parse_data(payload[7:])
        except lw.LoRaWANFormatError:
            self._count("malformed")
            return bytes([ACK_MALFORMED])
        s = self.lw_sessions.get(d.devaddr)
        if s is None:
            self._count("unknown")
            return bytes([ACK_UNKNOWN])
        full = lw.full_fcnt(s["fcnt_up"], d.fcnt16)
        if not d.mic_ok(s["nwk"], full):
            self._count("bad_mic")
            return bytes([ACK_BAD_MIC])
        device, port = s["device"], d.fport
        data = d.decrypt(s["nwk"], s["app"], full)
        if port == 5 and len(data) == 4:  # session start: ids = the node's own counters
            s["base"] = struct.unpack(">I", data)[0] - (full + 1)
            s["fcnt_up"] = max(s["fcnt_up"], full)
            self._count("session")
            dl = lw.build_data(
                lw.UNCONFIRMED_DOWN,
                d.devaddr,
                s["fcnt_down"],
                None,
                b"",
                nwk_key=s["nwk"],
                app_key=s["app"],
                fctrl=lw.FCTRL_ACK,
            )
            s["fcnt_down"] += 1
            return bytes([ACK_STORED]) + dl
        ident = (device, s["base"] + full)
        if ident in self.refuse:
            self._count("refused")
            self.refusals[ident] = self.refusals.get(ident, 0) + 1
            return bytes([self.refuse[ident]])
        self.arrivals[ident] = self.arrivals.get(ident, 0) + 1
        s["fcnt_up"] = max(s["fcnt_up"], full)
        if ident in self.stored:
            self._count("duplicate")
            result = ACK_DUPLICATE
        else:
            self._count("stored")
            result = ACK_STORED
            self.stored[ident] = _stored(device, ident[1], port, data, rssi, snr_q / 4, rx_time)
            if port == 2 and len(data) >= 3:
                dl_id, res = struct.unpack_from(">HB", data)
                self.downlink_results[dl_id] = (res, data[3:].decode("utf-8", "replace"))
                self.pending[device] = [p for p in self.pending.get(device, []) if p[0] != dl_id]
        queued = self.pending.get(device)
        nwk = s["nwk"]
        if self.wrong_key_downlinks.get(device, 0) > 0:
            self.wrong_key_downlinks[device] -= 1
            nwk = bytes(16)
        dl = lw.build_data(
            lw.UNCONFIRMED_DOWN,
            d.devaddr,
            s["fcnt_down"],
            3 if queued else None,
            queued[0][1] if queued else b"",
            nwk_key=nwk,
            app_key=s["app"],
            fctrl=lw.FCTRL_ACK,
        )
        s["fcnt_down"] += 1
        return bytes([result]) + dl
