"""The frame a UDP or CoAP device sends, checked before it reaches the writer. Pure.

A datagram is exactly a Fieldpost radio uplink frame (docs/radio.md): kind 0x40, the device id
(8 bytes), the frame counter (u32), the port, the payload, and a 4-byte MIC (HMAC-SHA256 under
the device's key). The writer applies the radio's rules to it: MIC, replay floor, duplicate by
(device, fcnt) answered again with the same ACK. The answer is the radio ACK: a result byte,
then (stored / duplicate) a downlink frame signed with the device's key, which may carry a
queued command.
"""

from __future__ import annotations

from collections.abc import Callable

from edge.radio import OVERHEAD, AckResult, RadioFormatError, build_serial_uplink, parse_frame
from edge.sources.config import DatagramConfig
from edge.sources.errors import SourceInputError
from edge.sources.ratelimit import RateLimiter

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


class Gate:
    """What the UDP listener and the CoAP server both ask before a datagram reaches the writer:
    is it a frame, is its sender within its rate, can the store take it. ``admit`` returns the
    UPLINK payload or raises SourceInputError whose ``reason`` is the refusal's counter."""

    def __init__(
        self, config: DatagramConfig, *, clock: Callable[[], float], busy: Callable[[], str | None] | None
    ):
        self.max_size = config.max_datagram
        self.limiter = RateLimiter(config.rate_per_s, config.burst, clock=clock)
        self._busy = busy  # the daemon's: stopping, disk full, backlog over the high-water mark

    def admit(self, data: bytes, sender: str) -> bytes:
        payload = check(data, max_size=self.max_size)
        if not self.limiter.allow(sender):
            raise SourceInputError("rate", "over the per-address limit", reason="rate_limited")
        why = self._busy() if self._busy is not None else None
        if why:  # no commit possible now: the device keeps the frame and sends it again later
            raise SourceInputError("store", why, reason="busy")
        return payload
