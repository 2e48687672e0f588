"""The sources' own errors. Every one names the field that was wrong and the counter it counts as."""

from __future__ import annotations

from edge.errors import ValidationError


class SourceInputError(ValidationError):
    """A message from a source (ChirpStack event, UDP datagram, CoAP request) that is refused.

    ``field`` names what was wrong (``deviceInfo.devEui``, ``datagram``, ``content-format``);
    ``reason`` is the counter it is counted under (malformed, oversized, unknown_device ...).
    """

    def __init__(self, field: str, message: str, *, reason: str = "malformed"):
        self.reason = reason
        super().__init__(field, message)
