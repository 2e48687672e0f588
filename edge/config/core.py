"""The edge core's sections: [edge], [link], [ingest], [http], [log], [gpio]."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Any

from edge.config.schema import SettingError, setting

# USB VID:PID of the boards Fieldpost supports (serial bridges and native USB).
KNOWN_USB_IDS = (
    "10c4:ea60",  # Silicon Labs CP210x (Heltec, TTGO LoRa32, many ESP32 boards)
    "1a86:7523",  # WCH CH340
    "1a86:55d4",  # WCH CH9102 (LilyGO T-Beam v1.1+)
    "0403:6001",  # FTDI FT232R
    "0403:6015",  # FTDI FT231X
    "303a:1001",  # Espressif native USB (ESP32-S3/C3)
    "2e8a:0005",  # Raspberry Pi RP2040 running MicroPython
    "239a:8029",  # Adafruit Feather RP2040 / M0 RFM9x
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def is_loopback(host: str) -> bool:
    """Is ``host`` this machine (a name or an address)? Plaintext with a password goes only there."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def nonempty(value: Any) -> str | None:
    return None if value else "must not be empty"


def plain_text(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "must not contain control characters (newline, tab...)"
    return None


def usb_id(value: str) -> str | None:
    parts = value.split(":")
    try:
        if len(parts) == 2 and all(len(p) == 4 and int(p, 16) >= 0 for p in parts):
            return None
    except ValueError:
        pass
    return "must be 'vvvv:pppp' (USB vendor and product id in hex)"


def existing_or_empty(value: str) -> str | None:
    if value and not os.path.isfile(value):
        return "does not exist; fix: give an existing file, or remove the key for the default"
    return None


@dataclass(frozen=True)
class EdgeSection:
    """The site and its buffer database."""

    db: str = setting(
        "/var/lib/fieldpost/fieldpost.db",
        doc="The SQLite buffer database; its folder must exist (`fieldpost init` or `run --create` makes it)",
        check=nonempty,
    )
    site: str = setting(
        "site",
        doc="This site's name, as the cloud and the panel show it",
        check=plain_text,
        example="farm-north",
    )
    expire_interval_s: float = setting(
        10.0, doc="How often expired downlinks are retired", unit="s", lo=0.001, hi=3600
    )
    disk_reserve_mb: float = setting(
        8.0,
        doc="Space kept in <db>.reserve and released when the disk fills, so the edge can raise its alarm, evict and recover (docs/store.md); 0: none",
        unit="MiB",
        lo=0,
        hi=1024,
    )
    services: bool = setting(
        True, doc="false: only the edge core (links, ingest, status), no rules/sync/panel"
    )


@dataclass(frozen=True)
class LinkSection:
    """Serial links to the bridge modules (docs/protocol.md)."""

    ports: list[str] = setting(
        [],
        doc="Serial ports to keep open (e.g. /dev/serial/by-id/...)",
        check=lambda v: None if all(v) else "must not hold ''",
    )
    discover: bool = setting(True, doc="Open every USB serial port whose VID:PID is in usb_ids")
    usb_ids: list[str] = setting(
        list(KNOWN_USB_IDS),
        doc="USB VID:PID pairs (hex) that discovery opens",
        check=lambda v: next((f"[{x!r}] {usb_id(x)}" for x in v if usb_id(x)), None),
    )
    baudrate: int = setting(115200, doc="Serial speed", unit="baud", lo=1200, hi=4_000_000)
    window: int = setting(8, doc="Largest link window offered in HELLO", lo=1, hi=32)
    reconnect_min_s: float = setting(
        0.2, doc="First wait before reopening a lost port", unit="s", lo=0.001, hi=3600
    )
    reconnect_max_s: float = setting(
        1.0, doc="Longest wait before reopening a lost port", unit="s", lo=0.001, hi=3600
    )
    scan_interval_s: float = setting(1.0, doc="How often USB ports are scanned", unit="s", lo=0.01, hi=3600)

    def validate(self) -> None:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise SettingError(
                "link.reconnect_max_s",
                "must be >= link.reconnect_min_s; fix: raise it or lower reconnect_min_s",
            )


@dataclass(frozen=True)
class IngestSection:
    """Durable ingest of uplinks, and backpressure."""

    batch_max: int = setting(256, doc="Uplinks committed per transaction at most", lo=1, hi=10000)
    batch_wait_ms: float = setting(
        5.0, doc="How long the writer waits for more frames once it has one", unit="ms", lo=0, hi=1000
    )
    high_water: int = setting(
        500_000,
        doc="Readings and messages waiting for the cloud above which uplinks get NACK BUSY",
        lo=1,
        hi=10**12,
    )
    low_water: int = setting(
        0, doc="Unsynced readings at which ACKs resume (0: 90 % of high_water)", lo=0, hi=10**12
    )
    codec_timeout_s: float = setting(
        1.0, doc="Time limit of a plug-in codec per payload", unit="s", lo=0.001, hi=60
    )

    @property
    def resume_below(self) -> int:
        return max(1, self.low_water or int(self.high_water * 0.9))

    def validate(self) -> None:
        if self.low_water > self.high_water:
            raise SettingError(
                "ingest.low_water", "must be <= ingest.high_water; fix: lower it or raise high_water"
            )


@dataclass(frozen=True)
class HttpSection:
    """The /health and /metrics endpoint."""

    enabled: bool = setting(True, doc="Serve /health and /metrics")
    host: str = setting("127.0.0.1", doc="Address /health and /metrics listen on", check=nonempty)
    port: int = setting(9110, doc="Port of /health and /metrics (0: any free port)", lo=0, hi=65535)


@dataclass(frozen=True)
class LogSection:
    """Logging (to stdout, for journald)."""

    level: str = setting(
        "INFO",
        doc="Log level: DEBUG, INFO, WARNING or ERROR",
        check=lambda v: None if v.upper() in LOG_LEVELS else "must be DEBUG, INFO, WARNING or ERROR",
    )
    timestamps: bool = setting(False, doc="true: prefix ts=<unix time> (journald adds its own)")


@dataclass(frozen=True)
class GpioSection:
    """Status LEDs, buzzer and buttons on the Pi's GPIO (docs/provisioning.md)."""

    enabled: bool = setting(True, doc="Drive the status LEDs and buttons when a GPIO backend is present")
    map: str = setting(
        "", doc="Pin map file (JSON); empty: the bundled hardware/pi/gpio.json", check=existing_or_empty
    )
    refresh_s: float = setting(1.0, doc="How often the LEDs are refreshed", unit="s", lo=0.05, hi=3600)

    def validate(self) -> None:
        if not self.map:
            return
        from edge.errors import ValidationError
        from edge.gpio.pinmap import load_pin_map  # the pin map's own schema check, as `run` does

        try:
            load_pin_map(self.map)
        except (ValidationError, OSError, ValueError) as exc:
            raise SettingError(
                "gpio.map", f"{self.map}: {exc}; fix: correct the file or remove the key"
            ) from None
