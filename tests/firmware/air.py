"""The loopback air of virtual modules (firmware/fp/hal/airwire.py), from CPython: test peers and
rogue transmitters put datagrams on it and read them off it.

One datagram per LoRa transmission, sent when it starts; a 23-byte header (big-endian): b"FPA2",
frequency Hz u32, bandwidth Hz u32, SF u8, coding rate denominator u8, sync word u8, flags u8
(1 IQ inverted, 2 CRC, 4 implicit header, 8 LDRO), preamble u16, power dBm i8, how long the packet
occupies the air in real us (its time on air divided by the sender's time_scale) u32; then the payload,
unchanged."""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

MAGIC = b"FPA2"
FMT = ">4sIIBBBBHbI"
HDR = struct.calcsize(FMT)
F_IQ_INV, F_CRC, F_IMPLICIT, F_LDRO = 1, 2, 4, 8


def symbols_x4(
    pl: int,
    sf: int,
    cr: int = 5,
    preamble: int = 8,
    explicit: bool = True,
    crc: bool = True,
    ldro: bool = False,
) -> int:
    """Symbols of a LoRa packet times 4 (SX1276 DS 4.1.1.7, SX1261/2 DS 6.1.4 for SF7..12)."""
    bits = 8 * pl + (16 if crc else 0) - 4 * sf + 8 + (20 if explicit else 0)
    den = 4 * (sf - (2 if ldro else 0))
    blocks = max(0, -(-bits // den))
    return (preamble + 4) * 4 + 1 + 4 * (8 + blocks * cr)


def time_on_air_us(pl: int, sf: int = 7, bw_hz: int = 125_000, **kw) -> int:
    ldro = (1 << sf) * 1_000_000 // bw_hz >= 16_000
    return symbols_x4(pl, sf, ldro=ldro, **kw) * (1 << sf) * 1_000_000 // (4 * bw_hz)


@dataclass(frozen=True)
class Phy:
    """What a transmission is sent with; the defaults are the firmware's EU868 DR5 (SF7) settings."""

    sf: int = 7
    bw_hz: int = 125_000
    freq_hz: int = 868_100_000
    cr: int = 5
    sync: int = 0x12
    iq_inverted: bool = False
    crc: bool = True
    preamble: int = 8
    power_dbm: int = 14
    time_scale: float = 1  # the sender's: its packets last time_on_air / time_scale in real time

    def flags(self) -> int:
        ldro = (1 << self.sf) * 1_000_000 // self.bw_hz >= 16_000
        return (F_IQ_INV if self.iq_inverted else 0) | (F_CRC if self.crc else 0) | (F_LDRO if ldro else 0)

    def datagram(self, payload: bytes) -> bytes:
        toa = int(
            time_on_air_us(
                len(payload), self.sf, self.bw_hz, cr=self.cr, preamble=self.preamble, crc=self.crc
            )
            / self.time_scale
        )
        return (
            struct.pack(
                FMT,
                MAGIC,
                self.freq_hz,
                self.bw_hz,
                self.sf,
                self.cr,
                self.sync,
                self.flags(),
                self.preamble,
                self.power_dbm,
                toa,
            )
            + payload
        )


SF7 = Phy()
# LoRaWAN downlinks go with inverted IQ (what a node listens with in its receive windows; uplinks
# go with normal IQ, so nodes do not hear each other). EU868 RX1: the uplink's channel and data
# rate (SF7 here, RX1DROffset 0); RX2: 869.525 MHz, DR0 (SF12 BW125)
RX1_EU868 = Phy(iq_inverted=True)
RX2_EU868 = Phy(sf=12, freq_hz=869_525_000, iq_inverted=True)

# Class A receive windows as the firmware times them (firmware/fp/lorawan/phy.py): on a scaled
# clock each delay is at least HOST_MS real ms, and a window is open MARGIN_MS real ms either side
HOST_MS, MARGIN_MS = 30, 10


def rx_delays_s(time_scale: float, join: bool = False, rx1_delay_s: int = 1) -> tuple[float, float]:
    """(RX1, RX2) starts in real seconds after the end of an uplink of a module at time_scale."""
    d1, gap = (5 if join else rx1_delay_s) * 1000.0, 1000.0
    if time_scale > 1:
        d1, gap = max(d1, HOST_MS * time_scale), max(gap, HOST_MS * time_scale)
    return d1 / time_scale / 1000, (d1 + gap) / time_scale / 1000


def parse(data: bytes) -> tuple[dict, bytes] | None:
    """(header fields, payload) of a datagram, or None when it is not one."""
    if len(data) < HDR or not data.startswith(MAGIC):
        return None
    _, freq, bw, sf, cr, sync, flags, preamble, power, toa = struct.unpack_from(FMT, data)
    fields = {
        "freq_hz": freq,
        "bw_hz": bw,
        "sf": sf,
        "cr": cr,
        "sync": sync,
        "flags": flags,
        "preamble": preamble,
        "power_dbm": power,
        "toa_us": toa,
    }
    return fields, data[HDR:]


class Sniffer:
    """A UDP port on the air that every module also sends to (add ``port`` to each module's
    ``air.peers``): every transmission it hears, as (monotonic s, time on air us, frame)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.heard: list[tuple[float, int, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def frames(self) -> list[bytes]:
        return [frame for _, _, frame in self.heard]

    def _run(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(1024)
            except OSError:
                continue
            parsed = parse(data)
            if parsed is not None:
                self.heard.append((time.monotonic(), parsed[0]["toa_us"], parsed[1]))

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()
