"""TEST STAND-IN for "bridge + edge" on the loopback air: a CPython UDP peer that hears
a node's uplinks, checks their MIC (CPython hmac) and their payload (readings decoded with
the edge's own LPP codec, status as JSON) and answers with an acknowledging downlink, a
given share of the time. Used where the test is about the node alone.

The node signs each frame when it sends it, so a good MIC proves the key, not the journal
record: the payload check is what would notice a damaged record that got through."""

from __future__ import annotations

import dataclasses
import json
import random
import socket
import struct
import threading
import time

from edge.codecs import lpp
from edge.lorawan import frames as lw
from edge.radio import PORT_AGED, split_aged
from tests.firmware import air
from tests.firmware.edgepeer import mic, radio_frame

UPLINK = air.SF7  # what the node sends with
# When and how the peer answers (the node's class A windows, tests/firmware/air.py rx_delays_s):
# "rx1" at RX1's start on the uplink's channel, "rx2" at RX2's start on RX2's (869.525 MHz SF12);
# and where a node must NOT hear it: "between" the windows (uplink's channel), "rx2_on_rx1" (RX2's
# time and data rate on the uplink's frequency), "rx1_on_rx2" (RX1's time and data rate on RX2's
# frequency): only the frequency is wrong in the last two; "rx1_as_uplink": RX1's time, channel and
# data rate with an uplink's normal IQ, as another node's uplink would come: only the IQ is wrong
WINDOWS = ("rx1", "rx2", "between", "rx2_on_rx1", "rx1_on_rx2", "rx1_as_uplink")


class AirPeer:
    def __init__(
        self,
        node_port: int,
        device: str,
        key: bytes,
        ack_share: float = 1.0,
        seed: int = 1,
        time_scale: float = 1,
        window: str = "rx1",
    ):
        assert window in WINDOWS, window
        self.node_port = node_port
        self.time_scale = time_scale
        self.window = window
        self.phy = dataclasses.replace(UPLINK, time_scale=time_scale)  # v1 downlinks: normal IQ
        # LoRaWAN downlinks go with inverted IQ, as a gateway sends them (air.RX1_EU868)
        self.rx1_phy = dataclasses.replace(air.RX1_EU868, time_scale=time_scale)
        self.rx2_phy = dataclasses.replace(air.RX2_EU868, time_scale=time_scale)
        self.sent_at: list[tuple[str, float]] = []  # (window, real s after the uplink's end) per downlink
        self.device = device
        self.key = key
        self.ack_share = ack_share
        self.rng = random.Random(seed)
        self.frames: dict[int, bytes] = {}  # fcnt -> the frame first heard with it
        self.repeats_with_other_bytes: list[int] = []  # a counter value reused for a different frame
        self.bad_mic = 0
        self.malformed: list[int] = []  # fcnts whose payload is not a reading or status the node makes
        self.heard = 0
        self.acked: set[int] = set()
        self.ages: dict[int, int] = {}  # fcnt -> the age a port-8 reading came with (docs/radio.md 0.9)
        # LoRaWAN: a minimal join + network server (edge/lorawan/frames.py crypto); the node's
        # port-5 session start makes fcnt = its own counter, as the edge does
        self.session: dict | None = None
        self.joins = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def received(self) -> set[int]:
        with self._lock:
            return set(self.frames)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(512)
            except OSError:
                continue
            parsed = air.parse(data)
            if parsed is None or (parsed[0]["sf"], parsed[0]["bw_hz"]) != (UPLINK.sf, UPLINK.bw_hz):
                continue
            frame = parsed[1]
            # the datagram came when the uplink started: it ends one time on air later
            end = time.monotonic() + parsed[0]["toa_us"] / 1e6
            if frame[:1] in (b"\x00", b"\x80"):
                dl = self._lorawan(frame)
                if dl is not None:
                    self._answer(dl, end, join=frame[0] == 0)
                continue
            with self._lock:
                self.heard += 1
                if len(frame) < 18 or mic(self.key, frame[:-4]) != frame[-4:]:
                    self.bad_mic += 1
                    continue
                fcnt = struct.unpack_from(">I", frame, 9)[0]
                if not well_formed(frame[13], frame[14:-4]):
                    self.malformed.append(fcnt)
                if frame[13] == PORT_AGED:  # kept as the port-1 reading it is (the edge stores it so)
                    self.ages[fcnt], lpp_bytes = split_aged(frame[14:-4])
                    frame = radio_frame(0x40, self.key, self.device, fcnt, 1, lpp_bytes)
                first = self.frames.setdefault(fcnt, frame)
                if first != frame:
                    self.repeats_with_other_bytes.append(fcnt)
                if self.rng.random() >= self.ack_share:
                    continue
                self.acked.add(fcnt)
            dl = radio_frame(0x60, self.key, self.device, fcnt, 0)
            time.sleep(parsed[0]["toa_us"] / 1e6)  # the uplink is still on the air: half duplex
            self.sock.sendto(self.phy.datagram(dl), ("127.0.0.1", self.node_port))

    def _answer(self, dl: bytes, end: float, join: bool) -> None:
        """Send a LoRaWAN downlink where self.window says, timed from the uplink's end."""
        d1, d2 = air.rx_delays_s(self.time_scale, join)
        at, phy = {
            "rx1": (d1, self.rx1_phy),
            "rx2": (d2, self.rx2_phy),
            "between": ((d1 + d2) / 2, self.rx1_phy),
            "rx2_on_rx1": (d2, dataclasses.replace(self.rx2_phy, freq_hz=self.rx1_phy.freq_hz)),
            "rx1_on_rx2": (d1, dataclasses.replace(self.rx1_phy, freq_hz=self.rx2_phy.freq_hz)),
            "rx1_as_uplink": (d1, self.phy),
        }[self.window]
        if join and self.window != "rx1":  # the tests' windows are those of data downlinks
            at, phy = d1, self.rx1_phy
        time.sleep(max(0.0, end + at - time.monotonic()))
        self.sock.sendto(phy.datagram(dl), ("127.0.0.1", self.node_port))
        self.sent_at.append((self.window, time.monotonic() - end))

    def _lorawan(self, frame: bytes) -> bytes | None:
        """The downlink for a LoRaWAN uplink (None: none), after the same checks as for v1."""
        with self._lock:
            self.heard += 1
            if frame[0] == lw.JOIN_REQUEST:
                jr = lw.parse_join_request(frame)
                if not jr.mic_ok(self.key):
                    self.bad_mic += 1
                    return None
                self.joins += 1
                nwk, app = lw.session_keys(self.key, self.joins, 0x13, jr.dev_nonce)
                self.session = {
                    "devaddr": 0x26000000 + self.joins,
                    "nwk": nwk,
                    "app": app,
                    "base": 0,
                    "up": -1,
                }
                self.session["down"] = 0
                return lw.build_join_accept(self.key, self.joins, 0x13, self.session["devaddr"])
            s = self.session
            d = lw.parse_data(frame)
            if s is None or d.devaddr != s["devaddr"]:
                return None
            full = lw.full_fcnt(s["up"], d.fcnt16)
            if not d.mic_ok(s["nwk"], full):
                self.bad_mic += 1
                return None
            s["up"] = max(s["up"], full)
            data = d.decrypt(s["nwk"], s["app"], full)
            if d.fport == 5:
                s["base"] = struct.unpack(">I", data)[0] - (full + 1)
            else:
                fcnt = s["base"] + full
                if not well_formed(d.fport, data):
                    self.malformed.append(fcnt)
                port = d.fport
                if port == PORT_AGED:
                    self.ages[fcnt], data = split_aged(data)
                    port = 1
                # kept as the v1 frame of the same reading (what the tests parse; the LoRaWAN
                # bytes of one reading differ per session)
                as_v1 = radio_frame(0x40, self.key, self.device, fcnt, port, data)
                first = self.frames.setdefault(fcnt, as_v1)
                if first != as_v1:
                    self.repeats_with_other_bytes.append(fcnt)
                if self.rng.random() >= self.ack_share:
                    return None
                self.acked.add(fcnt)
            dl = lw.build_data(
                lw.UNCONFIRMED_DOWN,
                s["devaddr"],
                s["down"],
                None,
                b"",
                nwk_key=s["nwk"],
                app_key=s["app"],
                fctrl=lw.FCTRL_ACK,
            )
            s["down"] += 1
            return dl

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def well_formed(port: int, payload: bytes) -> bool:
    """A standard reading (temperature, humidity, battery; LPP) or a status (JSON object)."""
    try:
        if port == PORT_AGED:
            port, payload = 1, split_aged(payload)[1]
        if port == 1:
            values = lpp.decode(payload, analog_channels=lpp.FIELDPOST_ANALOG_CHANNELS)
            return [v["channel"] for v in values] == [1, 2, 3]
        if port == 3:
            return isinstance(json.loads(payload), dict)
    except (lpp.LppError, ValueError):  # RadioFormatError is a ValueError
        return False
    return False
