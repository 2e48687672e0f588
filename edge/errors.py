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


class SyncError(FieldpostError):
    """Cloud sync could not deliver (raised by edge.sync sinks)."""


class SinkUnavailable(SyncError):
    """The sink cannot be reached, refused the TLS handshake or dropped the connection.

    Transient by nature: the sync service backs off and tries again; nothing is lost.
    ``answered``: the endpoint was reachable and said no (a refused CONNACK, an HTTP 5xx), so
    probing whether it is reachable again says nothing; wait the back-off out.
    """

    def __init__(self, message: str, *, answered: bool = False):
        self.answered = answered
        super().__init__(message)


class SinkRejected(SyncError):
    """The sink answered that this batch will never be accepted (e.g. HTTP 400).

    Resending it at once would not help; ``status`` is the sink's answer code.
    """

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


class ProvisioningError(FieldpostError):
    """Provisioning a module failed at ``step`` (port, board, repl, copy, verify, register, hello...).

    Raised before anything is registered with the edge unless ``step`` says otherwise, so the
    message can tell the operator what state the module and the edge were left in.
    """

    def __init__(self, step: str, message: str):
        self.step = step
        self.message = message
        super().__init__(f"{step}: {message}")


class SimError(FieldpostError):
    """A virtual module could not be started (no micropython, no entry file...)."""


class SetupError(FieldpostError):
    """This machine is not set up for what was asked: a file the user cannot read or write, a read-only
    file system, a missing account. The message names the path and the fix."""


class UpdateError(FieldpostError):
    """A firmware update bundle or package is unusable (wrong board, version, hash, format)."""


class UpdateRefused(UpdateError):
    """A module update that cannot start; ``field`` names what was wrong ("device", "board",
    "version"), so the panel can show the message next to its field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class DeliveryError(FieldpostError):
    """A notification could not be handed to ``target`` (a webhook URL, an address, a target name).

    ``permanent``: retrying cannot help (a malformed apprise URL, no SMTP settings); the queue
    dead-letters such a notification at once instead of retrying it for days.
    """

    def __init__(self, target: str, message: str, *, permanent: bool = False):
        self.target = target
        self.permanent = permanent
        super().__init__(f"{target}: {message}")


class BackupError(FieldpostError):
    """A backup or a restore could not be done; ``path`` is the file or directory at fault.

    Nothing already stored is touched when this is raised: the database is only ever read by a
    backup, and a restore replaces it only after the copy has been checked.
    """

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path}: {message}")


class DaemonRunning(FieldpostError):
    """The edge daemon holds the database (its run lock); the operation needs it stopped."""
