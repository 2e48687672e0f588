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
from dataclasses import dataclass
from typing import Any

from edge.config.core import is_loopback
from edge.config.schema import SettingError, build, setting

TOPIC_PART = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


def _topic_levels(value: str) -> str | None:
    return None if TOPIC_PART.match(value) else "must be topic levels of letters, digits, _ and -"


@dataclass(frozen=True)
class HomeAssistantConfig:
    """Home Assistant MQTT discovery (docs/services.md)."""

    enabled: bool = setting(False, doc="Publish discovery and states for Home Assistant")
    host: str = setting(
        "127.0.0.1",
        doc="The broker Home Assistant's MQTT integration uses",
        check=lambda v: None if v else "must not be empty",
    )
    port: int = setting(1883, doc="Broker port", lo=1, hi=65535)
    username: str | None = setting(None, doc="User name at the broker")
    password: str | None = setting(None, doc="Password at the broker", secret=True)
    tls: bool = setting(False, doc="TLS with certificate verification")
    ca_file: str | None = setting(None, doc="Trust this CA (PEM)")
    discovery_prefix: str = setting(
        "homeassistant", doc="Home Assistant's discovery prefix", check=_topic_levels
    )
    topic_prefix: str = setting(
        "fieldpost", doc="States go to <topic_prefix>/<site>/<device>/state", check=_topic_levels
    )
    client_id: str = setting("", doc="MQTT client id (empty: fieldpost-<site>-ha)")
    keepalive_s: int = setting(30, doc="MQTT keep-alive", unit="s", lo=5, hi=3600)
    removal_check_s: float = setting(
        10.0, doc="How often removed devices are looked for", unit="s", lo=0.001, hi=86400
    )

    def validate(self) -> None:
        if self.password and not self.tls and not is_loopback(self.host):
            raise SettingError(
                "homeassistant.password",
                f"would be sent in clear to {self.host}: set homeassistant.tls = true",
            )


def parse_homeassistant(table: Any) -> HomeAssistantConfig:
    """The validated ``[homeassistant]`` table (ConfigError naming ``homeassistant.<key>``)."""
    return build(HomeAssistantConfig, table, "homeassistant")
