"""The frame a UDP or CoAP device sends, checked before it reaches the writer. Pure.

A datagram is exactly a Fieldpost radio uplink frame (docs/radio.md): kind 0x40, the device id
(8 bytes), the frame counter (u32), the port, the payload, and a 4-byte MIC (HMAC-SHA256 under
the device's key). The writer applies the radio's rules to it: MIC, replay floor, duplicate by
(device, fcnt) answered again with the same ACK. The answer is the radio ACK: a result byte,
then (stored / duplicate) a downlink frame signed with the device's key, which may carry a
queued command.
"""

from __future__ import annotations

from edge.radio import OVERHEAD, AckResult, RadioFormatError, build_serial_uplink, parse_frame
from edge.sources.errors import SourceInputError

RESULT_NAMES = {r.value: r.name.lower() for r in AckResult}


def check(data: bytes, *, max_size: int) -> bytes:
    """The datagram as the writer takes it (an UPLINK payload with empty receive metadata); raises
    SourceInputError naming what is wrong."""
    size = len(data)
    if size == 0:
        raise SourceInputError(
            "datagram", f"empty (0 bytes); a frame has at least {OVERHEAD}", reason="malformed"
        )
    if size > max_size:
        raise SourceInputError("datagram", f"{size} bytes; at most {max_size} are taken", reason="oversized")
    try:
        parse_frame(data)
    except RadioFormatError as exc:
        raise SourceInputError("frame", str(exc), reason="malformed") from None
    return build_serial_uplink(data)


def result_of(ack: bytes) -> str:
    """The counter name of an ACK's result byte (stored, duplicate, bad_mic, replayed, ...)."""
    return RESULT_NAMES.get(ack[0], "malformed") if ack else "malformed"
