"""The [webui] section of fieldpost.toml -> the panel's Flask config. Bad values name their key.

[webui]
enabled = true
host = "0.0.0.0"          # the site LAN
port = 8080
threads = 16
tls = false               # true: HTTPS with tls_cert/tls_key, made by `fieldpost webui make-cert`
tls_cert = ""             # default: <db>.panel-cert.pem
tls_key = ""              # default: <db>.panel-key.pem
login_max_failures = 5    # wrong passwords per address and name before each next one doubles a wait
login_lockout_s = 900     # the longest such wait, s (accounts are never locked)
login_rate_limit = "20 per minute"
online_intervals = 3
radio_sf = 12
radio_bw_hz = 125000
duty_cycle_limit = 0.01
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.errors import ConfigError

# key -> (default, type, check, why)
SCHEMA: dict[str, tuple[Any, type, Any, str]] = {
    "enabled": (True, bool, None, ""),
    "host": ("0.0.0.0", str, lambda v: bool(v), "must not be empty"),
    "port": (8080, int, lambda v: 0 <= v <= 65535, "must be 0 .. 65535"),
    "threads": (16, int, lambda v: 2 <= v <= 256, "must be 2 .. 256"),
    "tls": (False, bool, None, ""),
    "tls_cert": ("", str, None, ""),
    "tls_key": ("", str, None, ""),
    "login_max_failures": (5, int, lambda v: 1 <= v <= 100, "must be 1 .. 100"),
    "login_lockout_s": (
        900.0,
        float,
        lambda v: 0 <= v <= 86400 * 7,
        "must be 0 .. 604800",
    ),
    "login_rate_limit": (
        "20 per minute",
        str,
        lambda v: " per " in v or "/" in v,
        "must be like '20 per minute'",
    ),
    "online_intervals": (3, int, lambda v: 1 <= v <= 1000, "must be 1 .. 1000"),
    "radio_sf": (12, int, lambda v: 7 <= v <= 12, "must be 7 .. 12"),
    "radio_bw_hz": (
        125000,
        int,
        lambda v: v in (125000, 250000, 500000),
        "must be 125000, 250000 or 500000",
    ),
    "duty_cycle_limit": (0.01, float, lambda v: 0 < v <= 1, "must be > 0 and <= 1"),
}


@dataclass(frozen=True)
class PanelSettings:
    """How to serve the panel, and the Flask config to build it with."""

    enabled: bool
    host: str
    port: int
    threads: int
    tls_cert: str | None
    tls_key: str | None
    flask: dict[str, Any]


def _typed(key: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"webui.{key}: must be {kind.__name__}, not {type(value).__name__} {value!r}")
    return value


def parse(section: Mapping[str, Any], *, db_path: str) -> PanelSettings:
    unknown = sorted(set(section) - set(SCHEMA))
    if unknown:
        raise ConfigError(f"webui.{unknown[0]}: unknown key (known: {', '.join(SCHEMA)})")
    values = {}
    for key, (default, kind, check, why) in SCHEMA.items():
        value = _typed(key, section.get(key, default), kind)
        if check is not None and not check(value):
            raise ConfigError(f"webui.{key}: {why} (got {value!r})")
        values[key] = value
    cert = key = None
    if values["tls"]:
        cert = values["tls_cert"] or db_path + ".panel-cert.pem"
        key = values["tls_key"] or db_path + ".panel-key.pem"
    flask = {
        "DATABASE": db_path,
        "TLS_CERT": cert,
        "TLS_KEY": key,
        "LOGIN_MAX_FAILURES": values["login_max_failures"],
        "LOGIN_LOCKOUT_S": values["login_lockout_s"],
        "LOGIN_RATE_LIMIT": values["login_rate_limit"],
        "ONLINE_INTERVALS": values["online_intervals"],
        "RADIO_SF": values["radio_sf"],
        "RADIO_BW_HZ": values["radio_bw_hz"],
        "DUTY_CYCLE_LIMIT": values["duty_cycle_limit"],
    }
    return PanelSettings(
        values["enabled"],
        values["host"],
        values["port"],
        values["threads"],
        cert,
        key,
        flask,
    )


def from_edge_config(config: Any) -> PanelSettings:
    """From an edge.config.Config: its [edge] db and its raw [webui] section."""
    return parse(config.section("webui"), db_path=str(config.edge.db))
