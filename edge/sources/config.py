"""The ``[sources]`` section of the configuration (docs/sources.md), declared on edge.config.schema.

Every key is listed in docs/config.md (generated). Every bad value raises ConfigError naming the
full key (``sources.udp.port``) and the fix. Nothing listens unless enabled:
``sources.chirpstack.enabled``, ``sources.udp.enabled``, ``sources.coap.enabled``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.config.schema import SettingError, build, setting, table

MAX_DATAGRAM = 1024  # bytes: anything larger is refused before it is parsed


def _installed_codec(name: str) -> str | None:
    from edge.codecs import available

    return None if name in available() else f"is not installed; available: {', '.join(available())}"


def _names(values: tuple[str, ...]) -> str | None:
    return None if all(values) else "must be a list of non-empty strings"


def _ip_address(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "is not an IP address"
    return None


@dataclass(frozen=True)
class ChirpstackConfig:
    enabled: bool = setting(False, doc="Subscribe to ChirpStack's MQTT integration")
    host: str = setting("127.0.0.1", doc="The broker ChirpStack publishes to")
    port: int = setting(1883, doc="Broker port", lo=1, hi=65535)
    username: str | None = setting(None, doc="User name at the broker")
    password: str | None = setting(None, doc="Password at the broker", secret=True)
    client_id: str = setting(
        "fieldpost-chirpstack",
        doc="MQTT client id: the broker keeps our session (and what waits for us) by it",
        check=lambda v: None if v else "must not be empty (the broker keeps our session by it)",
    )
    topic_prefix: str = setting("application", doc="ChirpStack's integration topic root")
    adopt_applications: tuple[str, ...] = setting(
        (),
        doc="Application ids whose unknown devices are registered on first uplink (others: quarantine)",
        check=_names,
    )
    codec: str = setting(
        "lpp",
        doc="The codec adopted devices get ('chirpstack': ChirpStack's codec decodes)",
        check=_installed_codec,
    )
    downlink_port: int = setting(10, doc="LoRaWAN FPort our commands go out on", lo=1, hi=223)
    json: bool = setting(
        True, doc="As ChirpStack's integration.mqtt.json: how commands are sent (events are read either way)"
    )
    downlink_poll_s: float = setting(
        1.0, doc="How often queued downlinks are looked for", unit="s", lo=0.001, hi=3600
    )
    keepalive_s: int = setting(30, doc="MQTT keep-alive", unit="s", lo=5, hi=3600)
    tls: bool = setting(False, doc="TLS to a broker on another machine (a gateway), its certificate verified")
    ca_file: str | None = setting(None, doc="CA bundle (PEM); unset: the system trust store")
    cert_file: str | None = setting(None, doc="Client certificate (mutual TLS), PEM")
    key_file: str | None = setting(None, doc="Client certificate's key, PEM")

    def validate(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise SettingError(
                "sources.chirpstack.key_file", "cert_file and key_file go together; fix: give both"
            )
        if not self.tls and (self.ca_file or self.cert_file):
            raise SettingError(
                "sources.chirpstack.tls", "ca_file / cert_file are set but tls is false; fix: set tls = true"
            )


@dataclass(frozen=True)
class DatagramConfig:
    enabled: bool = setting(False, doc="Listen for device datagrams")
    host: str = setting("0.0.0.0", doc="Address to listen on (an IP address)", check=_ip_address)
    port: int = setting(0, doc="Port (0: the source's default port)", lo=0, hi=65535)
    max_datagram: int = setting(256, doc="Largest datagram accepted", unit="B", lo=19, hi=MAX_DATAGRAM)
    rate_per_s: float = setting(20.0, doc="Datagrams a second from one address, sustained", lo=0.001, hi=1e6)
    burst: int = setting(40, doc="... and in one burst", lo=1, hi=1_000_000)


@dataclass(frozen=True)
class UdpConfig(DatagramConfig):
    port: int = setting(4750, doc="UDP port", lo=0, hi=65535)


@dataclass(frozen=True)
class CoapConfig(DatagramConfig):
    port: int = setting(5683, doc="CoAP port", lo=0, hi=65535)


@dataclass(frozen=True)
class SourcesConfig:
    """Devices that reach the edge another way than the serial bridge: ChirpStack, UDP, CoAP (docs/sources.md)."""

    chirpstack: ChirpstackConfig = table(ChirpstackConfig, doc="ChirpStack (LoRaWAN) by its MQTT integration")
    udp: DatagramConfig = table(UdpConfig, doc="Fieldpost radio frames over UDP")
    coap: DatagramConfig = table(CoapConfig, doc="Fieldpost radio frames over CoAP")


def parse(section: Mapping[str, Any] | None) -> SourcesConfig:
    """The validated ``[sources]`` section (an absent section: everything off)."""
    return build(SourcesConfig, section or {}, "sources")
