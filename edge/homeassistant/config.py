"""The ``[homeassistant]`` section: the broker Home Assistant listens to, and the topic prefixes.

    [homeassistant]
    enabled = true
    host = "127.0.0.1"                  # the broker Home Assistant's MQTT integration uses
    port = 1883
    username = "fieldpost"; password = "..."
    tls = false                         # true: TLS with certificate verification (ca_file: own CA)
    ca_file = "/etc/fieldpost/ha-ca.pem"
    discovery_prefix = "homeassistant"  # Home Assistant's default
    topic_prefix = "fieldpost"          # states: <topic_prefix>/<site>/<device>/state
    client_id = ""                      # default fieldpost-<site>-ha (never the sync client's id)

Errors are ConfigError naming ``homeassistant.<key>``. A password without TLS to a host that is not
this machine is refused, as for e-mail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from edge.errors import ConfigError
from edge.notify.config import is_loopback

TOPIC_PART = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


@dataclass(frozen=True)
class HomeAssistantConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    discovery_prefix: str = "homeassistant"
    topic_prefix: str = "fieldpost"
    client_id: str = ""
    keepalive_s: int = 30
    removal_check_s: float = 10.0


def parse_homeassistant(table: Any) -> HomeAssistantConfig:
    if table is None:
        return HomeAssistantConfig()
    if not isinstance(table, dict):
        raise ConfigError("[homeassistant]: must be a table")
    known = HomeAssistantConfig.__dataclass_fields__
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(f"homeassistant.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    defaults = HomeAssistantConfig()
    values: dict[str, Any] = {}
    for key in known:
        value = table.get(key, getattr(defaults, key))
        kind = {"port": int, "keepalive_s": int, "removal_check_s": float, "enabled": bool, "tls": bool}.get(
            key, str
        )
        if value is None and key in ("username", "password", "ca_file"):
            values[key] = None
            continue
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
            raise ConfigError(f"homeassistant.{key}: {value!r} must be {kind.__name__}")
        values[key] = value
    if not 0 < values["port"] < 65536:
        raise ConfigError(f"homeassistant.port: {values['port']} must be a port number")
    if not 5 <= values["keepalive_s"] <= 3600:
        raise ConfigError(f"homeassistant.keepalive_s: {values['keepalive_s']} must be 5 .. 3600")
    if not values["removal_check_s"] > 0:
        raise ConfigError("homeassistant.removal_check_s: must be above 0")
    for key in ("discovery_prefix", "topic_prefix"):
        if not TOPIC_PART.match(values[key]):
            raise ConfigError(
                f"homeassistant.{key}: {values[key]!r} must be topic levels of letters, digits, _ and -"
            )
    if not values["host"]:
        raise ConfigError("homeassistant.host: must not be empty")
    if values["password"] and not values["tls"] and not is_loopback(values["host"]):
        raise ConfigError(
            f"homeassistant.password: would be sent in clear to {values['host']}: set homeassistant.tls = true"
        )
    return HomeAssistantConfig(**values)
