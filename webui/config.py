"""The [webui] section of fieldpost.toml (declared on edge.config.schema) -> the panel's Flask config.

No Flask import here: `fieldpost config` checks this section without loading the panel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.config.schema import build, setting


def _rate(value: str) -> str | None:
    return None if (" per " in value or "/" in value) else "must be like '20 per minute'"


@dataclass(frozen=True)
class WebuiSection:
    """The panel (docs/panel.md)."""

    enabled: bool = setting(True, doc="Serve the panel inside `fieldpost run`")
    host: str = setting(
        "0.0.0.0",
        doc="Address the panel listens on (the site LAN)",
        check=lambda v: None if v else "must not be empty",
    )
    port: int = setting(8080, doc="Panel port (0: any free port)", lo=0, hi=65535)
    threads: int = setting(16, doc="Request threads", lo=2, hi=256)
    tls: bool = setting(False, doc="true: HTTPS with tls_cert/tls_key (made by `fieldpost webui make-cert`)")
    tls_cert: str = setting("", doc="Certificate (PEM); empty: <db>.panel-cert.pem")
    tls_key: str = setting("", doc="Certificate's key (PEM); empty: <db>.panel-key.pem")
    http_redirect_port: int | None = setting(
        None,
        doc="With tls: also listen for plain HTTP here and redirect it to HTTPS (unset: no)",
        lo=0,
        hi=65535,
    )
    login_max_failures: int = setting(
        5, doc="Wrong passwords per address and name before each next one doubles a wait", lo=1, hi=100
    )
    login_lockout_s: float = setting(
        900.0, doc="The longest such wait (accounts are never locked)", unit="s", lo=0, hi=86400 * 7
    )
    login_rate_limit: str = setting("20 per minute", doc="Login attempts per client address", check=_rate)
    online_intervals: int = setting(
        3, doc="A device is online while heard within this many report intervals", lo=1, hi=1000
    )
    radio_sf: int = setting(12, doc="Spreading factor for airtime estimates", lo=7, hi=12)
    radio_bw_hz: int = setting(
        125000, doc="Bandwidth for airtime estimates", unit="Hz", choices=(125000, 250000, 500000)
    )
    duty_cycle_limit: float = setting(0.01, doc="Duty-cycle limit shown against airtime", lo=0.000001, hi=1)


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
    redirect_port: int | None = None


def settings(section: WebuiSection, *, db_path: str) -> PanelSettings:
    cert = key = None
    if section.tls:
        cert = section.tls_cert or db_path + ".panel-cert.pem"
        key = section.tls_key or db_path + ".panel-key.pem"
    flask = {
        "DATABASE": db_path,
        "TLS_CERT": cert,
        "TLS_KEY": key,
        "LOGIN_MAX_FAILURES": section.login_max_failures,
        "LOGIN_LOCKOUT_S": section.login_lockout_s,
        "LOGIN_RATE_LIMIT": section.login_rate_limit,
        "ONLINE_INTERVALS": section.online_intervals,
        "RADIO_SF": section.radio_sf,
        "RADIO_BW_HZ": section.radio_bw_hz,
        "DUTY_CYCLE_LIMIT": section.duty_cycle_limit,
    }
    redirect = section.http_redirect_port if section.tls else None
    return PanelSettings(
        section.enabled, section.host, section.port, section.threads, cert, key, flask, redirect
    )


def parse(section: Mapping[str, Any], *, db_path: str) -> PanelSettings:
    """A raw ``[webui]`` table -> PanelSettings (ConfigError naming the key)."""
    return settings(build(WebuiSection, section, "webui"), db_path=db_path)


def from_edge_config(config: Any) -> PanelSettings:
    """From an edge.config.Config: its [edge] db, its [webui] section, and the [updates] energy
    allowance an update started on the panel keeps, as one started by the CLI does."""
    panel = settings(config.webui, db_path=str(config.edge.db))
    panel.flask["UPDATES_ENERGY_MAH_DAY"] = config.updates.energy_mah_day
    return panel
