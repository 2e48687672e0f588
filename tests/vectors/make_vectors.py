"""Writes the serial link's golden vectors (docs/protocol.md section 6). Run once:

    .venv/bin/python tests/vectors/make_vectors.py

The wire bytes are built here from the spec with the standard library and the `cobs`
package, not with either codec under test, so both codecs are checked against the same
independent bytes. The files are checked in; regenerating must not change them
(tests/vectors/test_link_vectors.py checks that too).
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

from cobs import cobs

HERE = Path(__file__).resolve().parent
NAMES = {
    0x01: "HELLO",
    0x02: "HELLO_ACK",
    0x03: "ACK",
    0x04: "NACK",
    0x10: "UPLINK",
    0x11: "DOWNLINK",
    0x12: "STATUS",
    0x13: "LOG",
}


def raw_frame(version: int, ftype: int, seq: int, payload: bytes) -> bytes:
    body = struct.pack(">BBH", version, ftype, seq) + payload
    return body + struct.pack(">I", zlib.crc32(body))


def wire(raw: bytes) -> bytes:
    return cobs.encode(raw) + b"\x00"


def pattern(n: int, start: int = 0, nonzero: bool = False) -> bytes:
    if nonzero:
        return bytes(1 + (start + i) % 255 for i in range(n))
    return bytes((start + i) % 256 for i in range(n))


def good_frames() -> list[dict]:
    hello = json.dumps(
        {
            "proto": 1,
            "isn": 4660,
            "win": 8,
            "id": "0123456789abcdef",
            "fw": "0.1.0",
            "role": "bridge",
            "board": "unix",
        },
        separators=(",", ":"),
    ).encode()
    hello_ack = json.dumps(
        {"proto": 1, "isn": 65535, "win": 16, "edge": "0.1.0", "time": 1767225600, "re": 4660},
        separators=(",", ":"),
    ).encode()
    cases = [
        ("hello", 0x01, 0, hello),
        ("hello_ack", 0x02, 0, hello_ack),
        ("ack_empty", 0x03, 0x1234, b""),
        ("ack_result_downlink", 0x03, 0xFFFF, b"\x00" + bytes.fromhex("60" + "01" * 8 + "00000007" + "00")),
        ("nack_busy", 0x04, 7, b"\x01journal full"),
        ("nack_gap", 0x04, 9, b"\x02\x00\x05"),
        ("nack_unsupported", 0x04, 256, b"\x03frame type 0x14"),
        ("nack_invalid", 0x04, 255, b"\x04"),
        ("nack_no_session", 0x04, 0, b"\x05"),
        ("nack_version", 0x04, 0, b"\x06\x01"),
        ("uplink_empty", 0x10, 0, b""),
        ("uplink_one_zero", 0x10, 1, b"\x00"),
        ("uplink_zeros", 0x10, 2, bytes(16)),
        (
            "uplink_reading",
            0x10,
            0x8000,
            bytes.fromhex("ffc41c69a0f0c040" + "0123456789abcdef0000000101016700e10268630302016da1b2c3d4"),
        ),
        ("uplink_253_nonzero", 0x10, 3, pattern(253, nonzero=True)),
        ("uplink_254_nonzero", 0x10, 4, pattern(254, nonzero=True)),
        ("uplink_255_nonzero", 0x10, 5, pattern(255, nonzero=True)),
        ("uplink_max_payload", 0x10, 0xFFFE, pattern(512, 7)),
        ("uplink_max_nonzero", 0x10, 0x00FF, pattern(512, 3, nonzero=True)),
        ("downlink", 0x11, 0x0100, bytes.fromhex("60" + "ab" * 8 + "0000002a030001010000003cdeadbeef")),
        ("status", 0x12, 10, b'{"heap_free":41230,"uptime":3600,"journal":0}'),
        ("log", 0x13, 11, b'{"lvl":"error","msg":"radio timeout"}'),
        ("unknown_sequenced_type", 0x7F, 12, b"future"),
    ]
    out = []
    for name, ftype, seq, payload in cases:
        out.append(
            {
                "name": name,
                "type": ftype,
                "type_name": NAMES.get(ftype, "unknown"),
                "seq": seq,
                "payload": payload.hex(),
                "wire": wire(raw_frame(1, ftype, seq, payload)).hex(),
            }
        )
    return out


def bad_frames() -> list[dict]:
    good = raw_frame(1, 0x10, 5, b"reading")
    flipped_crc = bytearray(good)
    flipped_crc[-1] ^= 0x01
    flipped_payload = bytearray(good)
    flipped_payload[5] ^= 0x80
    cases = [
        ("crc_flipped_in_crc", wire(bytes(flipped_crc)), "crc"),
        ("crc_flipped_in_payload", wire(bytes(flipped_payload)), "crc"),
        ("crc_zeroed", wire(good[:-4] + b"\x00\x00\x00\x00"), "crc"),
        ("version_0", wire(raw_frame(0, 0x10, 5, b"reading")), "version"),
        ("version_2", wire(raw_frame(2, 0x01, 0, b"{}")), "version"),
        ("type_control_unknown", wire(raw_frame(1, 0x05, 0, b"")), "type"),
        ("type_zero", wire(raw_frame(1, 0x00, 0, b"")), "type"),
        ("type_0x80", wire(raw_frame(1, 0x80, 1, b"x")), "type"),
        ("type_0xff", wire(raw_frame(1, 0xFF, 1, b"")), "type"),
        ("short_one_byte", wire(b"\x01"), "short"),
        ("short_seven_bytes", wire(b"\x01\x10\x00\x01\xaa\xbb\xcc"), "short"),
        ("cobs_code_past_end", bytes.fromhex("0501020300"), "cobs"),
        ("cobs_truncated_frame", cobs.encode(good)[:-3] + b"\x00", "cobs"),
        ("overlong_no_delimiter", b"\x01" * 600 + b"\x00", "overlong"),
        ("overlong_payload_513", wire(raw_frame(1, 0x10, 1, pattern(513, nonzero=True))), "overlong"),
        ("overlong_payload_600", wire(raw_frame(1, 0x10, 1, pattern(600))), "overlong"),
    ]
    return [{"name": n, "wire": w.hex(), "error": e} for n, w, e in cases]


def cobs_cases() -> list[dict]:
    cases = [
        ("empty", b""),
        ("one_zero", b"\x00"),
        ("two_zeros", b"\x00\x00"),
        ("one_nonzero", b"\x11"),
        ("zero_both_ends", b"\x00\x11\x22\x00"),
        ("zeros_inside", b"\x11\x00\x00\x22"),
        ("run_253", pattern(253, nonzero=True)),
        ("run_254", pattern(254, nonzero=True)),
        ("run_255", pattern(255, nonzero=True)),
        ("run_254_then_zero", pattern(254, nonzero=True) + b"\x00"),
        ("zero_then_run_254", b"\x00" + pattern(254, nonzero=True)),
        ("run_508", pattern(508, nonzero=True)),
        ("run_520", pattern(520, nonzero=True)),
        ("all_bytes", bytes(range(256))),
    ]
    return [{"name": n, "raw": raw.hex(), "encoded": cobs.encode(raw).hex()} for n, raw in cases]


def documents() -> dict[str, object]:
    return {
        "frames.json": {"version": 1, "frames": good_frames()},
        "bad_frames.json": {"version": 1, "frames": bad_frames()},
        "cobs.json": {"cases": cobs_cases()},
    }


def render(doc: object) -> str:
    return json.dumps(doc, indent=1) + "\n"


def main() -> int:
    for name, doc in documents().items():
        (HERE / name).write_text(render(doc))
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
