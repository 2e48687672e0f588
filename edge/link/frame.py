"""Serial link frame codec, edge side. The spec is docs/protocol.md.

The firmware has its own pure-Python codec (firmware/fp/frame.py); both pass the
golden vectors in tests/vectors/. Here COBS comes from the ``cobs`` package's C
extension, which `make bench` measures against the firmware's pure-Python one.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from cobs import cobs

from edge.errors import FrameError

VERSION = 1
MAX_PAYLOAD = 512
HEADER = struct.Struct(">BBH")
CRC = struct.Struct(">I")
MAX_RAW = HEADER.size + MAX_PAYLOAD + CRC.size
MAX_ENCODED = MAX_RAW + -(-MAX_RAW // 254)
DELIMITER = b"\x00"


class FrameType(enum.IntEnum):
    HELLO = 0x01
    HELLO_ACK = 0x02
    ACK = 0x03
    NACK = 0x04
    UPLINK = 0x10
    DOWNLINK = 0x11
    STATUS = 0x12
    LOG = 0x13
    UPDATE_OFFER = 0x14  # firmware update of a module over its link (edge.fuota.serial)
    UPDATE_CHUNK = 0x15
    UPDATE_COMMIT = 0x16


class NackReason(enum.IntEnum):
    BUSY = 1
    GAP = 2
    UNSUPPORTED = 3
    INVALID = 4
    NO_SESSION = 5
    VERSION = 6


def is_sequenced(ftype: int) -> bool:
    return 0x10 <= ftype <= 0x7F


@dataclass(frozen=True, slots=True)
class Frame:
    type: int  # a FrameType, or an unknown code in the sequenced range
    seq: int
    payload: bytes = b""

    def encode(self) -> bytes:
        return encode(self.type, self.seq, self.payload)


def encode(ftype: int, seq: int, payload: bytes = b"") -> bytes:
    """Raw frame -> COBS -> delimiter: the bytes to write to the port."""
    if len(payload) > MAX_PAYLOAD:
        raise FrameError("overlong", f"payload of {len(payload)} bytes, at most {MAX_PAYLOAD}")
    if not 0 <= seq <= 0xFFFF:
        raise ValueError(f"seq {seq} out of range 0..65535")
    raw = HEADER.pack(VERSION, ftype, seq) + payload
    return cobs.encode(raw + CRC.pack(zlib.crc32(raw))) + DELIMITER


def decode(body: bytes) -> Frame:
    """Decode the bytes between two delimiters. Raises FrameError only."""
    if len(body) > MAX_ENCODED:
        raise FrameError("overlong", f"{len(body)} encoded bytes, at most {MAX_ENCODED}")
    try:
        raw = cobs.decode(body)
    except cobs.DecodeError as exc:
        raise FrameError("cobs", str(exc)) from None
    if len(raw) < HEADER.size + CRC.size:
        raise FrameError("short", f"{len(raw)} bytes")
    if len(raw) > MAX_RAW:
        raise FrameError("overlong", f"{len(raw)} decoded bytes, at most {MAX_RAW}")
    (crc,) = CRC.unpack_from(raw, len(raw) - CRC.size)
    if zlib.crc32(raw[: -CRC.size]) != crc:
        raise FrameError("crc", f"stored {crc:08x}")
    version, ftype, seq = HEADER.unpack_from(raw)
    if version != VERSION:
        raise FrameError("version", f"version {version}, expected {VERSION}")
    if ftype not in FrameType._value2member_map_ and not is_sequenced(ftype):
        raise FrameError("type", f"unknown frame type 0x{ftype:02x}")
    return Frame(ftype, seq, raw[HEADER.size : -CRC.size])


class Deframer:
    """Turns a byte stream into frames, resynchronising at every delimiter.

    ``feed`` never raises: a bad frame is counted in ``errors`` under its reason
    and passed to ``on_error`` (for logging), and reading goes on.
    """

    def __init__(self, on_error: Callable[[FrameError], None] | None = None):
        self._buf = bytearray()
        self._skipping = False  # inside an over-long frame: drop until the next delimiter
        self.errors: dict[str, int] = {}
        self._on_error = on_error

    def _reject(self, err: FrameError) -> None:
        self.errors[err.reason] = self.errors.get(err.reason, 0) + 1
        if self._on_error is not None:
            self._on_error(err)

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        *complete, tail = bytes(data).split(DELIMITER)
        for piece in complete:
            if self._skipping:
                self._skipping = False
                continue
            self._buf += piece
            if self._buf:
                body, self._buf = bytes(self._buf), bytearray()
                try:
                    frames.append(decode(body))
                except FrameError as err:
                    self._reject(err)
        if not self._skipping:
            self._buf += tail
            if len(self._buf) > MAX_ENCODED:
                self._reject(FrameError("overlong", f"no delimiter within {MAX_ENCODED} bytes"))
                self._buf = bytearray()
                self._skipping = True
        return frames
