"""A LoRaWAN end device written against edge/lorawan/frames.py, for edge tests that need one
(the firmware's own node is tested under MicroPython in tests/firmware)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from edge.lorawan import frames as F
from edge.radio import build_serial_uplink


def lpp_reading(temp: float) -> bytes:
    return struct.pack(">BBh", 1, 0x67, round(temp * 10)) + struct.pack(">BBB", 2, 0x68, 97)


@dataclass
class EndDevice:
    dev_eui: str
    app_key: bytes
    join_eui: str = "0000000000000000"
    dev_nonce: int = 0
    devaddr: int | None = None
    nwk: bytes = b""
    app: bytes = b""
    fcnt: int = 0
    fcnt_down: int = -1
    sent: list[bytes] = field(default_factory=list)

    def join_request(self) -> bytes:
        self.dev_nonce += 1
        frame = F.build_join_request(
            self.app_key, bytes.fromhex(self.join_eui), bytes.fromhex(self.dev_eui), self.dev_nonce
        )
        return build_serial_uplink(frame, rssi=-70, snr=5.0, rx_time=1_700_000_000)

    def accept(self, join_accept: bytes) -> None:
        join_nonce, net_id, self.devaddr, _, _, _ = F.open_join_accept(self.app_key, join_accept)
        self.nwk, self.app = F.session_keys(self.app_key, join_nonce, net_id, self.dev_nonce)
        self.fcnt, self.fcnt_down = 0, -1

    def uplink(
        self,
        payload: bytes,
        *,
        port: int = 1,
        fcnt: int | None = None,
        confirmed: bool = True,
        rssi: int = -70,
        snr: float = 5.0,
        rx_time: int = 1_700_000_000,
    ) -> bytes:
        if fcnt is None:
            fcnt, self.fcnt = self.fcnt, self.fcnt + 1
        mhdr = F.CONFIRMED_UP if confirmed else F.UNCONFIRMED_UP
        frame = F.build_data(mhdr, self.devaddr, fcnt, port, payload, nwk_key=self.nwk, app_key=self.app)
        self.sent.append(frame)
        return build_serial_uplink(frame, rssi=rssi, snr=snr, rx_time=rx_time)

    def downlink(self, frame: bytes) -> tuple[bool, int | None, bytes]:
        """(ACK bit, port, plaintext) of a downlink for this node; checks MIC and freshness."""
        d = F.parse_data(frame)
        assert d.devaddr == self.devaddr and not d.uplink
        full = F.full_fcnt(self.fcnt_down, d.fcnt16)
        assert full > self.fcnt_down and d.mic_ok(self.nwk, full), "stale or forged downlink"
        self.fcnt_down = full
        return bool(d.fctrl & F.FCTRL_ACK), d.fport, d.decrypt(self.nwk, self.app, full)
