"""The TOML configuration: embedded defaults < the file < FIELDPOST_* environment variables.

The file is /etc/fieldpost/fieldpost.toml unless ``--config`` (or FIELDPOST_CONFIG)
names another; a missing default file just means "all defaults". An environment
variable ``FIELDPOST_<SECTION>_<KEY>`` overrides one key, e.g.
``FIELDPOST_INGEST_HIGH_WATER=50000`` or ``FIELDPOST_LINK_PORTS=/dev/ttyUSB0,/dev/ttyUSB1``.
Every bad value is reported as a ConfigError naming the key and why.

The sections below are the edge core's. Sections other areas own (sync, rules,
retention, webui, gpio, ...) are passed through untouched in ``Config.extra`` for
their own validation.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import ConfigError

DEFAULT_PATH = Path("/etc/fieldpost/fieldpost.toml")
ENV_PREFIX = "FIELDPOST_"

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

# (section, key) -> (default, type, check, why) ; the checks return True when the value is fine.
_SCHEMA: dict[str, dict[str, tuple[Any, type, Any, str]]] = {
    "edge": {
        "db": ("/var/lib/fieldpost/fieldpost.db", str, lambda v: bool(v), "must not be empty"),
        "site": ("site", str, lambda v: bool(v), "must not be empty"),
        "expire_interval_s": (10.0, float, lambda v: v > 0, "must be > 0"),
        "disk_reserve_mb": (
            8.0,
            float,
            lambda v: 0 <= v <= 1024,
            "must be 0 .. 1024 (space kept free to recover from a full disk; 0: none)",
        ),
        "services": (
            True,
            bool,
            None,
            "false: only the edge core (links, ingest, status), no rules/sync/panel",
        ),
    },
    "link": {
        "ports": (
            [],
            list,
            lambda v: all(isinstance(p, str) and p for p in v),
            "must be a list of device paths",
        ),
        "discover": (True, bool, None, ""),
        "usb_ids": (
            list(KNOWN_USB_IDS),
            list,
            lambda v: all(_is_usb_id(x) for x in v),
            "must be 'vvvv:pppp' hex",
        ),
        "baudrate": (115200, int, lambda v: 1200 <= v <= 4_000_000, "must be 1200 .. 4000000"),
        "window": (8, int, lambda v: 1 <= v <= 32, "must be 1 .. 32"),
        "reconnect_min_s": (0.2, float, lambda v: v > 0, "must be > 0"),
        "reconnect_max_s": (1.0, float, lambda v: v > 0, "must be > 0"),
        "scan_interval_s": (1.0, float, lambda v: v > 0, "must be > 0"),
    },
    "ingest": {
        "batch_max": (256, int, lambda v: 1 <= v <= 10000, "must be 1 .. 10000"),
        "batch_wait_ms": (5.0, float, lambda v: 0 <= v <= 1000, "must be 0 .. 1000"),
        "high_water": (500_000, int, lambda v: v >= 1, "must be >= 1"),
        "low_water": (0, int, lambda v: v >= 0, "must be >= 0 (0: 90 % of high_water)"),
        "codec_timeout_s": (1.0, float, lambda v: 0 < v <= 60, "must be > 0 and <= 60"),
    },
    "http": {
        "enabled": (True, bool, None, ""),
        "host": ("127.0.0.1", str, lambda v: bool(v), "must not be empty"),
        "port": (9110, int, lambda v: 0 <= v <= 65535, "must be 0 .. 65535 (0: any free port)"),
    },
    "log": {
        "level": (
            "INFO",
            str,
            lambda v: v.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"),
            "must be DEBUG, INFO, WARNING or ERROR",
        ),
        "timestamps": (False, bool, None, "true: prefix ts=<unix time> (journald adds its own)"),
    },
}


def _is_usb_id(text: Any) -> bool:
    if not isinstance(text, str) or text.count(":") != 1:
        return False
    try:
        return all(len(p) == 4 and int(p, 16) >= 0 for p in text.split(":"))
    except ValueError:
        return False


@dataclass(frozen=True)
class EdgeSection:
    db: str
    site: str
    expire_interval_s: float
    disk_reserve_mb: float
    services: bool


@dataclass(frozen=True)
class LinkSection:
    ports: list[str]
    discover: bool
    usb_ids: list[str]
    baudrate: int
    window: int
    reconnect_min_s: float
    reconnect_max_s: float
    scan_interval_s: float


@dataclass(frozen=True)
class IngestSection:
    batch_max: int
    batch_wait_ms: float
    high_water: int
    low_water: int
    codec_timeout_s: float

    @property
    def resume_below(self) -> int:
        return max(1, self.low_water or int(self.high_water * 0.9))


@dataclass(frozen=True)
class HttpSection:
    enabled: bool
    host: str
    port: int


@dataclass(frozen=True)
class LogSection:
    level: str
    timestamps: bool


@dataclass(frozen=True)
class Config:
    edge: EdgeSection
    link: LinkSection
    ingest: IngestSection
    http: HttpSection
    log: LogSection
    path: Path | None = None  # the file it came from, if any
    extra: dict[str, Any] = field(default_factory=dict)  # other areas' sections, unvalidated

    def section(self, name: str) -> dict[str, Any]:
        """Another area's raw section (empty when absent)."""
        return dict(self.extra.get(name, {}))


_SECTIONS = {
    "edge": EdgeSection,
    "link": LinkSection,
    "ingest": IngestSection,
    "http": HttpSection,
    "log": LogSection,
}


def load(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Read the configuration. ``path`` None: FIELDPOST_CONFIG, else the default file if present."""
    env = os.environ if env is None else env
    explicit = path is not None or ENV_PREFIX + "CONFIG" in env
    file = Path(path if path is not None else env.get(ENV_PREFIX + "CONFIG", DEFAULT_PATH))
    data: dict[str, Any] = {}
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{file}: no such configuration file") from None
        return from_dict(data, env=env, path=None)  # no default file: every key at its default
    except PermissionError as exc:
        # e.g. a config readable by root only, or a folder the user may not enter: never fall back to
        # the defaults then, and say how the service's user gets to read it
        raise ConfigError(
            f"{file}: cannot read: {exc.strerror}; fix: make it readable by the user running fieldpost "
            f"(sudo chgrp fieldpost {file} && sudo chmod 0640 {file}, and its folder 0750 root:fieldpost), "
            "or run `sudo fieldpost init`"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    return from_dict(data, env=env, path=file)


def from_dict(
    data: Mapping[str, Any], *, env: Mapping[str, str] | None = None, path: Path | None = None
) -> Config:
    env = {} if env is None else env
    values: dict[str, dict[str, Any]] = {}
    for section, keys in _SCHEMA.items():
        given = data.get(section, {})
        if not isinstance(given, Mapping):
            raise ConfigError(f"[{section}]: must be a table")
        unknown = set(given) - set(keys)
        if unknown:
            key = min(unknown)
            raise ConfigError(f"{section}.{key}: unknown key (known: {', '.join(sorted(keys))})")
        out = {}
        for key, (default, kind, check, why) in keys.items():
            env_name = f"{ENV_PREFIX}{section}_{key}".upper()
            if env_name in env:
                value = _from_env(f"{section}.{key} (from {env_name})", env[env_name], kind)
                where = f"{section}.{key} (from {env_name})"
            else:
                value = given.get(key, default)
                where = f"{section}.{key}"
            value = _typed(where, value, kind)
            if check is not None and not check(value):
                raise ConfigError(f"{where}: {value!r} {why}")
            out[key] = value
        values[section] = out
    if values["link"]["reconnect_max_s"] < values["link"]["reconnect_min_s"]:
        raise ConfigError("link.reconnect_max_s: must be >= link.reconnect_min_s")
    if values["ingest"]["low_water"] > values["ingest"]["high_water"]:
        raise ConfigError("ingest.low_water: must be <= ingest.high_water")
    extra = {k: v for k, v in data.items() if k not in _SCHEMA}
    return Config(**{name: cls(**values[name]) for name, cls in _SECTIONS.items()}, path=path, extra=extra)


def replace_db(config: Config, db: str) -> Config:
    """The same configuration with another database file (``fieldpost --db``)."""
    return dataclasses.replace(config, edge=dataclasses.replace(config.edge, db=db))


def _typed(where: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is not bool and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}: {value!r} is {type(value).__name__}, expected {kind.__name__}")
    return value


def _from_env(where: str, text: str, kind: type) -> Any:
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is list:
            return [p.strip() for p in text.split(",") if p.strip()]
        return kind(text)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a valid {kind.__name__}") from None


def example() -> str:
    """A commented configuration file with every edge key at its default."""
    lines = ["# Fieldpost configuration (edge core sections). Every key is optional.", ""]
    for section, keys in _SCHEMA.items():
        lines.append(f"[{section}]")
        for key, (default, _kind, _check, why) in keys.items():
            lines.append(f"# {key} = {toml_value(default)}" + (f"  # {why}" if why else ""))
        lines.append("")
    return "\n".join(lines)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)
