"""Radio frames and the link payloads that carry them, edge side. Spec: docs/radio.md.

Pure functions over bytes: parse and build uplink/downlink radio frames, the MIC,
the serial UPLINK payload (receive metadata + radio frame), the ACK payload, and
downlink commands. The firmware twin is firmware/fp/radio_frame.py; both pass
tests/vectors/radio.json.
"""

from __future__ import annotations

import enum
import hmac
import json
import struct
from dataclasses import dataclass
from typing import Any

from edge.errors import ValidationError

KIND_UPLINK = 0x40
KIND_DOWNLINK = 0x60
MIC_SIZE = 4
HEADER = struct.Struct(">B8sIB")  # kind, device id, fcnt, port
OVERHEAD = HEADER.size + MIC_SIZE  # 18 bytes
RX_META = struct.Struct(">hbI")  # rssi dBm, snr quarter dB, receive time
# The largest downlink a node can receive: LoRa EU868 at SF12 carries 51 bytes.
MAX_DOWNLINK_FRAME = 51
MAX_COMMAND = MAX_DOWNLINK_FRAME - OVERHEAD

PORT_READINGS = 1
PORT_DOWNLINK_RESULT = 2
PORT_STATUS = 3
# A reading that waited on the module (docs/radio.md 0.9): its age, then the port-1 readings.
PORT_AGED = 8
AGE_MAX_S = (1 << 21) - 1  # three LEB128 bytes: 24.3 days; an older reading says this much
DOWNLINK_PORT_ACK = 0
DOWNLINK_PORT_COMMAND = 3
UPLINK_PORTS = (PORT_READINGS, PORT_DOWNLINK_RESULT, PORT_STATUS, PORT_AGED)
DOWNLINK_PORTS = (DOWNLINK_PORT_ACK, DOWNLINK_PORT_COMMAND)


class AckResult(enum.IntEnum):
    """First byte of the ACK of an UPLINK (docs/radio.md section 4)."""

    STORED = 0
    DUPLICATE = 1
    BAD_MIC = 2
    REPLAYED = 3
    UNKNOWN_DEVICE = 4
    MALFORMED = 5
    JOINED = 6  # a LoRaWAN join request accepted: the downlink is the join accept
    REJOIN = (
        7  # a valid frame whose counter went back with other bytes: the downlink tells the node to rejoin
    )


# Results whose ACK carries a downlink for the air (the bridge transmits it in the node's window).
WITH_DOWNLINK = (AckResult.STORED, AckResult.DUPLICATE, AckResult.JOINED, AckResult.REJOIN)


class Command(enum.IntEnum):
    SET_INTERVAL = 1
    SET_OUTPUT = 2
    REQUEST_STATUS = 3
    REBOOT = 4
    CONFIG = 5


COMMAND_NAMES = {
    "set_interval": Command.SET_INTERVAL,
    "set_output": Command.SET_OUTPUT,
    "request_status": Command.REQUEST_STATUS,
    "reboot": Command.REBOOT,
    "config": Command.CONFIG,
}

DOWNLINK_RESULTS = {0: "ok", 1: "unknown command", 2: "value out of range", 3: "failed"}


class RadioFormatError(ValueError):
    """Bytes that are not a well-formed radio frame or link payload (counted as 'malformed')."""


def split_aged(payload: bytes) -> tuple[int, bytes]:
    """(age in seconds, port-1 readings) of a port-8 payload: the age at transmission as an
    unsigned LEB128 of 1 to 3 bytes, then the readings unchanged (docs/radio.md 0.9)."""
    age = 0
    for i in range(min(len(payload), 3)):
        byte = payload[i]
        age |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if i + 1 == len(payload):
                raise RadioFormatError(f"port-8 reading of age {age} s carries no readings")
            return age, bytes(payload[i + 1 :])
    if len(payload) < 3:
        raise RadioFormatError(f"port-8 payload of {len(payload)} bytes: no age")
    raise RadioFormatError("port-8 age longer than 3 bytes (docs/radio.md 0.9)")


def mic(key: bytes, signed: bytes) -> bytes:
    """First 4 bytes of HMAC-SHA256(key, every byte before the MIC)."""
    return hmac.digest(key, signed, "sha256")[:MIC_SIZE]


@dataclass(frozen=True, slots=True)
class RadioFrame:
    kind: int
    device_id: str  # 16 lower-case hex digits
    fcnt: int
    port: int
    payload: bytes
    mic: bytes
    signed: bytes  # the bytes the MIC covers

    def mic_ok(self, key: bytes) -> bool:
        return hmac.compare_digest(mic(key, self.signed), self.mic)


def parse_frame(data: bytes, *, kind: int = KIND_UPLINK) -> RadioFrame:
    """Split a radio frame into its fields; the MIC is not checked here."""
    data = bytes(data)
    if len(data) < OVERHEAD:
        raise RadioFormatError(f"radio frame of {len(data)} bytes, at least {OVERHEAD}")
    fkind, dev, fcnt, port = HEADER.unpack_from(data)
    if fkind != kind:
        raise RadioFormatError(f"kind 0x{fkind:02x}, expected 0x{kind:02x}")
    ports = UPLINK_PORTS if kind == KIND_UPLINK else DOWNLINK_PORTS
    if port not in ports:
        raise RadioFormatError(f"unknown port {port}")
    return RadioFrame(
        kind=fkind,
        device_id=dev.hex(),
        fcnt=fcnt,
        port=port,
        payload=data[HEADER.size : -MIC_SIZE],
        mic=data[-MIC_SIZE:],
        signed=data[:-MIC_SIZE],
    )


def build_frame(kind: int, key: bytes, device_id: str, fcnt: int, port: int, payload: bytes = b"") -> bytes:
    if not 0 <= fcnt <= 0xFFFFFFFF:
        raise ValueError(f"fcnt {fcnt} out of range for u32")
    signed = HEADER.pack(kind, device_id_bytes(device_id), fcnt, port) + bytes(payload)
    return signed + mic(key, signed)


def build_uplink(key: bytes, device_id: str, fcnt: int, port: int, payload: bytes) -> bytes:
    return build_frame(KIND_UPLINK, key, device_id, fcnt, port, payload)


def build_downlink(key: bytes, device_id: str, fcnt: int, command: bytes | None = None) -> bytes:
    """The downlink that acknowledges uplink ``fcnt`` and may carry one encoded command."""
    return downlink_for(key, device_id_bytes(device_id), fcnt, command)


def downlink_for(key: bytes, device: bytes, fcnt: int, command: bytes | None = None) -> bytes:
    """:func:`build_downlink` for a device id already in bytes (8, as the uplink carried it): the
    ingest writer builds one per reading stored."""
    if command is None:
        signed = HEADER.pack(KIND_DOWNLINK, device, fcnt, DOWNLINK_PORT_ACK)
    else:
        signed = HEADER.pack(KIND_DOWNLINK, device, fcnt, DOWNLINK_PORT_COMMAND) + command
    return signed + hmac.digest(key, signed, "sha256")[:MIC_SIZE]


def device_id_bytes(device_id: str) -> bytes:
    if not is_device_id(device_id):
        raise ValidationError("device_id", f"{device_id!r} is not 16 lower-case hex digits")
    return bytes.fromhex(device_id)


def is_device_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 16 and all(c in "0123456789abcdef" for c in value)


# --- serial link payloads ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RxUplink:
    rssi: int
    snr: float  # dB (the wire carries quarter dB)
    rx_time: int
    frame: bytes  # the radio frame, unchanged


def parse_serial_uplink(payload: bytes) -> RxUplink:
    payload = bytes(payload)
    if len(payload) < RX_META.size + OVERHEAD:
        raise RadioFormatError(f"UPLINK payload of {len(payload)} bytes, at least {RX_META.size + OVERHEAD}")
    rssi, snr_q, rx_time = RX_META.unpack_from(payload)
    return RxUplink(rssi, snr_q / 4.0, rx_time, payload[RX_META.size :])


_SERIAL_UPLINK = struct.Struct(">hbIB8sIB")  # RX_META then HEADER: one unpack for both


def split_serial_uplink(payload: bytes) -> tuple[int, int, int, bytes, int, int, bytes, bytes, bytes]:
    """(rssi, snr quarter dB, rx time, device id bytes, fcnt, port, app payload, signed, mic) of an
    UPLINK payload, in one unpack: :func:`parse_serial_uplink` and :func:`parse_frame` in one go, for
    the ingest writer (no object per frame). Raises RadioFormatError as they do; the MIC is not checked."""
    if len(payload) < RX_META.size + OVERHEAD:
        raise RadioFormatError(f"UPLINK payload of {len(payload)} bytes, at least {RX_META.size + OVERHEAD}")
    rssi, snr_q, rx_time, kind, dev, fcnt, port = _SERIAL_UPLINK.unpack_from(payload)
    if kind != KIND_UPLINK:
        raise RadioFormatError(f"kind 0x{kind:02x}, expected 0x{KIND_UPLINK:02x}")
    if port not in UPLINK_PORTS:
        raise RadioFormatError(f"unknown port {port}")
    return (
        rssi,
        snr_q,
        rx_time,
        dev,
        fcnt,
        port,
        payload[_SERIAL_UPLINK.size : -MIC_SIZE],
        payload[RX_META.size : -MIC_SIZE],
        payload[-MIC_SIZE:],
    )


def build_serial_uplink(frame: bytes, *, rssi: int = 0, snr: float = 0.0, rx_time: int = 0) -> bytes:
    return RX_META.pack(rssi, max(-128, min(127, round(snr * 4))), rx_time) + bytes(frame)


def build_ack(result: AckResult, downlink: bytes = b"") -> bytes:
    """Payload of the serial ACK of an UPLINK: result byte, then the downlink for results 0, 1, 6, 7."""
    if result not in WITH_DOWNLINK:
        downlink = b""
    return bytes([result]) + downlink


# --- commands --------------------------------------------------------------------------


def encode_command(dl_id: int, command: str, args: dict[str, Any]) -> bytes:
    """Encode a validated command (see edge.downlinks.validate) for downlink port 3."""
    code = COMMAND_NAMES[command]
    head = struct.pack(">HB", dl_id & 0xFFFF, code)
    if code == Command.SET_INTERVAL:
        return head + struct.pack(">I", int(args["seconds"]))
    if code == Command.SET_OUTPUT:
        return head + struct.pack(">BB", int(args["output"]), int(args["value"]))
    if code == Command.CONFIG:
        return head + json.dumps(args["values"], separators=(",", ":")).encode()
    return head


@dataclass(frozen=True, slots=True)
class DownlinkResult:
    dl_id: int
    result: int
    reason: str

    @property
    def ok(self) -> bool:
        return self.result == 0

    def describe(self) -> str:
        text = DOWNLINK_RESULTS.get(self.result, f"result {self.result}")
        return f"{text}: {self.reason}" if self.reason else text


def parse_downlink_result(payload: bytes) -> DownlinkResult:
    """Uplink port 2: dl_id u16, result u8, optional UTF-8 reason."""
    if len(payload) < 3:
        raise RadioFormatError(f"downlink result of {len(payload)} bytes, at least 3")
    dl_id, result = struct.unpack_from(">HB", payload)
    return DownlinkResult(dl_id, result, bytes(payload[3:]).decode("utf-8", "replace"))
