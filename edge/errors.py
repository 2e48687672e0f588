"""Every exception the edge raises on purpose derives from FieldpostError."""


class FieldpostError(Exception):
    """Root of the edge's own exceptions."""


class LinkError(FieldpostError):
    """Something went wrong on a serial link."""


class FrameError(LinkError):
    """Bytes that are not a valid frame.

    ``reason`` is the counter name from docs/protocol.md section 5
    (cobs, short, overlong, crc, version, type).
    """

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class LinkDown(LinkError):
    """The peer stopped answering or the port went away."""


class ConfigError(FieldpostError):
    """A configuration value is missing or wrong; the message names the key."""


class ValidationError(FieldpostError):
    """Input (a form field, an API body, a config value, a downlink argument) is not acceptable.

    ``field`` names what was wrong, so a form can show the message next to it.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
