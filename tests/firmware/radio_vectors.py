"""Builds tests/vectors/radio.json, the golden vectors of docs/radio.md.

Written with CPython's own hmac/struct (independent of the firmware code), so the
firmware (tests/firmware/test_radio_vectors.py, under `micropython`) and the edge
(edge/radio.py) are both checked against a third implementation.
Regenerate with: python -m tests.firmware.radio_vectors > tests/vectors/radio.json
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import sys
from typing import Any

KEY = bytes(range(1, 17))
OTHER_KEY = bytes(range(101, 117))
DEVICE = "0123456789abcdef"
BRIDGE = "fedcba9876543210"


def mic(key: bytes, signed: bytes) -> bytes:
    return hmac.new(key, signed, hashlib.sha256).digest()[:4]


def frame(kind: int, key: bytes, device: str, fcnt: int, port: int, payload: bytes) -> bytes:
    signed = struct.pack(">B8sIB", kind, bytes.fromhex(device), fcnt, port) + payload
    return signed + mic(key, signed)


def lpp_standard(temp: float, rh: float, batt: float) -> bytes:
    return (
        struct.pack(">BBh", 1, 0x67, round(temp * 10))
        + struct.pack(">BBB", 2, 0x68, round(rh * 2))
        + struct.pack(">BBh", 3, 0x02, round(batt * 100))
    )


AGE_MAX = (1 << 21) - 1


def leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def build() -> dict[str, Any]:
    uplinks = []
    for name, fcnt, port, payload in [
        ("reading", 7, 1, lpp_standard(21.5, 48.5, 3.71)),
        ("reading negative temperature", 0x01020304, 1, lpp_standard(-12.3, 100.0, 2.9)),
        ("downlink result ok", 8, 2, struct.pack(">HB", 513, 0)),
        ("downlink result with reason", 9, 2, struct.pack(">HB", 514, 2) + b"seconds 5 < 10"),
        ("status", 10, 3, b'{"b":3.71,"u":3600,"j":0,"a":1647}'),
        ("empty payload", 0xFFFFFFFF, 1, b""),
    ]:
        f = frame(0x40, KEY, DEVICE, fcnt, port, payload)
        uplinks.append(
            {
                "name": name,
                "device": DEVICE,
                "key": KEY.hex(),
                "fcnt": fcnt,
                "port": port,
                "payload": payload.hex(),
                "mic": f[-4:].hex(),
                "hex": f.hex(),
            }
        )

    commands = [
        ("ack only", None, None, {}, None),
        ("set interval 600", 513, 1, {"seconds": 600}, struct.pack(">I", 600)),
        ("set output 1 on", 514, 2, {"output": 1, "value": 1}, struct.pack(">BB", 1, 1)),
        ("request status", 515, 3, {}, b""),
        ("reboot", 516, 4, {}, b""),
        ("config update", 517, 5, {"values": {"interval": 120}}, b'{"interval":120}'),
    ]
    downlinks = []
    for name, dl_id, cmd, args, argbytes in commands:
        command = None if cmd is None else struct.pack(">HB", dl_id, cmd) + argbytes
        port = 0 if command is None else 3
        f = frame(0x60, KEY, DEVICE, 7, port, command or b"")
        entry: dict[str, Any] = {
            "name": name,
            "device": DEVICE,
            "key": KEY.hex(),
            "fcnt": 7,
            "port": port,
            "hex": f.hex(),
        }
        if command is not None:
            entry.update({"dl_id": dl_id, "cmd": cmd, "args": args, "command": command.hex()})
        downlinks.append(entry)

    good = frame(0x40, KEY, DEVICE, 7, 1, lpp_standard(21.5, 48.5, 3.71))
    bad_mic = bytearray(good)
    bad_mic[-1] ^= 0x01
    flipped = bytearray(good)
    flipped[15] ^= 0x80
    bad_uplinks = [
        {"name": "bad MIC", "hex": bytes(bad_mic).hex(), "reason": "mic", "ack_result": 2},
        {"name": "payload bit flipped", "hex": bytes(flipped).hex(), "reason": "mic", "ack_result": 2},
        {
            "name": "signed with another key",
            "hex": frame(0x40, OTHER_KEY, DEVICE, 7, 1, b"\x01\x67\x00\xd7").hex(),
            "reason": "mic",
            "ack_result": 2,
        },
        {"name": "truncated to 17 bytes", "hex": good[:17].hex(), "reason": "short", "ack_result": 5},
        {"name": "empty", "hex": "", "reason": "short", "ack_result": 5},
        {
            "name": "downlink kind on uplink",
            "hex": frame(0x60, KEY, DEVICE, 7, 0, b"").hex(),
            "reason": "kind",
            "ack_result": 5,
        },
        {
            "name": "unknown port 9",
            "hex": frame(0x40, KEY, DEVICE, 7, 9, b"\x00").hex(),
            "reason": "port",
            "ack_result": 5,
        },
    ]
    for b in bad_uplinks:
        b.update({"device": DEVICE, "key": KEY.hex()})

    def cmd_frame(c: bytes) -> str:
        return frame(0x60, KEY, DEVICE, 7, 3, c).hex()

    bad_downlinks = [
        {"name": "bad MIC", "hex": frame(0x60, OTHER_KEY, DEVICE, 7, 0, b"").hex(), "reason": "mic"},
        {"name": "other device", "hex": frame(0x60, KEY, BRIDGE, 7, 0, b"").hex(), "reason": "device"},
        {"name": "answers another fcnt", "hex": frame(0x60, KEY, DEVICE, 6, 0, b"").hex(), "reason": "fcnt"},
        {"name": "truncated", "hex": frame(0x60, KEY, DEVICE, 7, 0, b"")[:10].hex(), "reason": "short"},
        {"name": "unknown port 5", "hex": frame(0x60, KEY, DEVICE, 7, 5, b"").hex(), "reason": "port"},
        {
            "name": "unknown command 9",
            "hex": cmd_frame(struct.pack(">HB", 600, 9)),
            "reason": "command",
            "dl_id": 600,
            "result": 1,
        },
        {
            "name": "interval 5 s below range",
            "hex": cmd_frame(struct.pack(">HBI", 601, 1, 5)),
            "reason": "range",
            "dl_id": 601,
            "result": 2,
        },
        {
            "name": "interval 86401 s above range",
            "hex": cmd_frame(struct.pack(">HBI", 602, 1, 86401)),
            "reason": "range",
            "dl_id": 602,
            "result": 2,
        },
        {
            "name": "output value 2",
            "hex": cmd_frame(struct.pack(">HBBB", 603, 2, 0, 2)),
            "reason": "range",
            "dl_id": 603,
            "result": 2,
        },
        {
            "name": "set interval without argument",
            "hex": cmd_frame(struct.pack(">HB", 604, 1)),
            "reason": "range",
            "dl_id": 604,
            "result": 2,
        },
        {
            "name": "config not JSON",
            "hex": cmd_frame(struct.pack(">HB", 605, 5) + b"{nope"),
            "reason": "range",
            "dl_id": 605,
            "result": 2,
        },
    ]
    for b in bad_downlinks:
        b.update({"device": DEVICE, "key": KEY.hex(), "fcnt": 7})

    serial_uplinks = []
    for rssi, snr, rx_time in [(-97, 7.25, 1_700_000_000), (0, 0.0, 0), (-137, -20.0, 4_000_000_000)]:
        payload = struct.pack(">hbI", rssi, round(snr * 4), rx_time) + good
        serial_uplinks.append(
            {"rssi": rssi, "snr": snr, "rx_time": rx_time, "frame": good.hex(), "hex": payload.hex()}
        )

    dl = frame(0x60, KEY, DEVICE, 7, 0, b"")
    acks = [
        {"name": "stored, ack-only downlink", "result": 0, "downlink": dl.hex(), "hex": (b"\x00" + dl).hex()},
        {"name": "duplicate", "result": 1, "downlink": dl.hex(), "hex": (b"\x01" + dl).hex()},
        {"name": "bad MIC", "result": 2, "downlink": "", "hex": "02"},
        {"name": "replayed counter", "result": 3, "downlink": "", "hex": "03"},
        {"name": "unknown device", "result": 4, "downlink": "", "hex": "04"},
        {"name": "malformed", "result": 5, "downlink": "", "hex": "05"},
    ]

    lpp = [
        {
            "name": "standard reading",
            "temperature": 21.5,
            "humidity": 48.5,
            "battery": 3.71,
            "hex": lpp_standard(21.5, 48.5, 3.71).hex(),
        },
        {
            "name": "cold, saturated, low battery",
            "temperature": -12.3,
            "humidity": 100.0,
            "battery": 2.9,
            "hex": lpp_standard(-12.3, 100.0, 2.9).hex(),
        },
    ]

    # Readings that waited (docs/radio.md 0.9): port 8, the age in seconds as an unsigned
    # LEB128 of at most 3 bytes (capped at 2^21 - 1), then the port-1 LPP unchanged.
    reading = lpp_standard(21.5, 48.5, 3.71)
    aged = []
    for name, age, sent in [
        ("one second", 1, 1),
        ("largest one-byte age", 127, 127),
        ("smallest two-byte age", 128, 128),
        ("two hours", 7200, 7200),
        ("largest two-byte age", 16383, 16383),
        ("smallest three-byte age", 16384, 16384),
        ("the cap", AGE_MAX, AGE_MAX),
        ("above the cap: sent as the cap", 3_000_000, AGE_MAX),
    ]:
        leb = leb128(sent)
        unsigned = bytes((0x40,)) + bytes.fromhex(DEVICE) + (9).to_bytes(4, "big")
        aged.append(
            {
                "name": name,
                "age_s": age,
                "sent_age_s": sent,
                "readings": reading.hex(),
                "payload": (leb + reading).hex(),
                "unsigned_in": (unsigned + b"\x01" + reading).hex(),
                "unsigned_out": (unsigned + b"\x08" + leb + reading).hex(),
            }
        )
    bad_aged = [
        {"name": "empty", "payload": "", "reason": "no age"},
        {"name": "age cut short", "payload": "80", "reason": "no age"},
        {"name": "age of four bytes", "payload": "80808001" + reading.hex(), "reason": "age"},
        {"name": "age without readings", "payload": "05", "reason": "readings"},
    ]

    hmacs = []
    for key, msg in [
        (b"key", b"The quick brown fox jumps over the lazy dog"),
        (KEY, b""),
        (bytes(80), b"a key longer than the SHA-256 block"),
        (KEY, bytes(range(256))),
    ]:
        hmacs.append(
            {"key": key.hex(), "msg": msg.hex(), "hex": hmac.new(key, msg, hashlib.sha256).hexdigest()}
        )

    return {
        "doc": "Golden vectors for docs/radio.md, from tests/firmware/radio_vectors.py (CPython hmac).",
        "lpp_channels": {
            "1": "temperature (0x67, 0.1 degC)",
            "2": "humidity (0x68, 0.5 %RH)",
            "3": "battery (0x02 analog input, 0.01 V)",
        },
        "uplinks": uplinks,
        "downlinks": downlinks,
        "bad_uplinks": bad_uplinks,
        "bad_downlinks": bad_downlinks,
        "serial_uplinks": serial_uplinks,
        "acks": acks,
        "lpp": lpp,
        "aged": aged,
        "bad_aged": bad_aged,
        "hmac_sha256": hmacs,
    }


def render() -> str:
    return json.dumps(build(), indent=1) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
