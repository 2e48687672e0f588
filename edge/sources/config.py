"""The ``[sources]`` section of the configuration (docs/sources.md), validated into frozen dataclasses.

Every bad value raises ConfigError naming the full key (``sources.udp.port``) and why. Nothing
listens unless enabled: ``sources.chirpstack.enabled``, ``sources.udp.enabled``, ``sources.coap.enabled``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from edge.errors import ConfigError

MAX_DATAGRAM = 1024  # bytes: anything larger is refused before it is parsed


@dataclass(frozen=True)
class ChirpstackConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str = "fieldpost-chirpstack"
    topic_prefix: str = "application"  # ChirpStack's integration topic root
    # applications whose unknown devices are registered on first uplink; others are quarantined
    adopt_applications: tuple[str, ...] = ()
    codec: str = "lpp"  # the codec adopted devices get (ChirpStack's own ``object`` is kept too)
    downlink_port: int = 10  # LoRaWAN FPort our commands go out on
    json: bool = True  # as ChirpStack's integration.mqtt.json: how commands are sent (events: either)
    downlink_poll_s: float = 1.0
    keepalive_s: int = 30
    tls: bool = False  # a broker on another machine (a gateway): TLS, its certificate verified
    ca_file: str | None = None  # None: the system trust store
    cert_file: str | None = None  # client certificate (mutual TLS), PEM
    key_file: str | None = None


@dataclass(frozen=True)
class DatagramConfig:
    enabled: bool = False
    host: str = "0.0.0.0"
    port: int = 0  # 0: the default port of the source
    max_datagram: int = 256
    rate_per_s: float = 20.0  # datagrams a second from one address, sustained
    burst: int = 40  # ... and in one burst


@dataclass(frozen=True)
class SourcesConfig:
    chirpstack: ChirpstackConfig = field(default_factory=ChirpstackConfig)
    udp: DatagramConfig = field(default_factory=lambda: DatagramConfig(port=4750))
    coap: DatagramConfig = field(default_factory=lambda: DatagramConfig(port=5683))


def parse(section: Mapping[str, Any]) -> SourcesConfig:
    """The validated ``[sources]`` section (an absent section: everything off)."""
    section = dict(section or {})
    unknown = set(section) - {"chirpstack", "udp", "coap"}
    if unknown:
        raise ConfigError(f"sources.{min(unknown)}: unknown key (chirpstack, udp, coap)")
    defaults = SourcesConfig()
    cs = _fill("sources.chirpstack", ChirpstackConfig, section.get("chirpstack", {}))
    udp = _fill("sources.udp", DatagramConfig, {"port": defaults.udp.port, **section.get("udp", {})})
    coap = _fill("sources.coap", DatagramConfig, {"port": defaults.coap.port, **section.get("coap", {})})
    _check_port("sources.chirpstack.port", cs.port, allow_zero=False)
    if not 1 <= cs.downlink_port <= 223:
        raise ConfigError(
            f"sources.chirpstack.downlink_port: {cs.downlink_port} is outside 1 .. 223 (LoRaWAN FPort)"
        )
    if cs.downlink_poll_s <= 0:
        raise ConfigError("sources.chirpstack.downlink_poll_s: must be > 0")
    if not 5 <= cs.keepalive_s <= 3600:
        raise ConfigError(f"sources.chirpstack.keepalive_s: {cs.keepalive_s} is outside 5 .. 3600")
    if not cs.client_id:
        raise ConfigError(
            "sources.chirpstack.client_id: must not be empty (the broker keeps our session by it)"
        )
    if (cs.cert_file is None) != (cs.key_file is None):
        raise ConfigError("sources.chirpstack.key_file: cert_file and key_file go together")
    if not cs.tls and (cs.ca_file or cs.cert_file):
        raise ConfigError("sources.chirpstack.tls: ca_file / cert_file are set but tls is false")
    from edge.codecs import available

    if cs.codec not in available():
        raise ConfigError(
            f"sources.chirpstack.codec: {cs.codec!r} is not installed; available: {', '.join(available())}"
        )
    for name, d in (("udp", udp), ("coap", coap)):
        _check_port(f"sources.{name}.port", d.port, allow_zero=True)
        try:
            ipaddress.ip_address(d.host)
        except ValueError:
            raise ConfigError(f"sources.{name}.host: {d.host!r} is not an IP address") from None
        if not 19 <= d.max_datagram <= MAX_DATAGRAM:
            raise ConfigError(
                f"sources.{name}.max_datagram: {d.max_datagram} is outside 19 .. {MAX_DATAGRAM}"
            )
        if d.rate_per_s <= 0:
            raise ConfigError(f"sources.{name}.rate_per_s: must be > 0")
        if d.burst < 1:
            raise ConfigError(f"sources.{name}.burst: must be >= 1")
    return SourcesConfig(chirpstack=cs, udp=udp, coap=coap)


def _fill(where: str, cls: type, values: Any):
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: must be a table")
    known = {f.name: f for f in fields(cls)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{where}.{key}: unknown key")
        default = getattr(cls(), key)
        out[key] = _typed(f"{where}.{key}", value, default)
    return cls(**out)


def _typed(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: {value!r} is not true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: {value!r} is not an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: {value!r} is not a number")
        return float(value)
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{key}: must be a list of non-empty strings")
        return tuple(value)
    if not isinstance(value, str):  # str or optional str
        raise ConfigError(f"{key}: {value!r} is not a string")
    return value


def _check_port(key: str, port: int, *, allow_zero: bool) -> None:
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise ConfigError(f"{key}: {port} is outside {0 if allow_zero else 1} .. 65535")
