"""The ``[sync]`` section of the TOML config, declared on the configuration schema (edge.config.schema).

Every key is listed in docs/config.md (generated). A bad value raises ConfigError naming the
full key (``sync.mqtt.port``) and the fix. TLS is on by default; the only way to talk
plaintext is ``tls.enabled = false`` towards a loopback broker (a local bridge or
the demo) — a TLS problem is never answered by falling back to plaintext.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.config.core import is_loopback
from edge.config.schema import SettingError, build, setting, table

SINK_TYPES = ("mqtt", "https")
PROFILES = ("generic", "thingsboard")
ENCODINGS = ("json", "cbor")
COMPRESSIONS = ("none", "gzip")
MQTT_PROTOCOLS = ("3.1.1", "5")


def existing_file(value: str | None) -> str | None:
    # A missing certificate file is a configuration error now, not a handshake error later.
    if value and not os.path.isfile(value):
        return "does not exist; fix: give the path of an existing PEM file"
    return None


def _no_topic_wildcards(value: str) -> str | None:
    if not value:
        return "must not be empty"
    return "must not contain '+' or '#'" if any(c in value for c in "+#") else None


def _topic_level(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if any(c in value for c in "/+#"):
        return "must not contain '/', '+' or '#' (it is a topic level)"
    return None


def _https_url(value: str) -> str | None:
    if not value:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme != "https":
        return "must start with https:// (never plaintext)"
    if not parts.hostname:
        return "has no host"
    return None


@dataclass(frozen=True)
class TlsConfig:
    enabled: bool = setting(
        True, doc="TLS with certificate verification; false only towards a loopback broker"
    )
    ca_file: str | None = setting(
        None, doc="CA bundle (PEM); empty: the system trust store", check=existing_file
    )
    cert_file: str | None = setting(None, doc="Client certificate (mutual TLS), PEM", check=existing_file)
    key_file: str | None = setting(None, doc="Client certificate's key, PEM", check=existing_file)

    def validate(self) -> None:
        if self.key_file and not self.cert_file:
            raise SettingError("sync.mqtt.tls.key_file", "given without sync.mqtt.tls.cert_file; fix: add it")


@dataclass(frozen=True)
class MqttConfig:
    host: str = setting(
        "localhost", doc="Broker host name", check=lambda v: None if v else "must not be empty"
    )
    port: int = setting(0, doc="Broker port (0: 8883 with TLS, 1883 without)", lo=0, hi=65535)
    client_id: str = setting("", doc='MQTT client id ("": fieldpost-<site>)')
    username: str | None = setting(None, doc="User name at the broker")
    password: str | None = setting(None, doc="Password at the broker", secret=True)
    keepalive_s: int = setting(60, doc="MQTT keep-alive", unit="s", lo=5, hi=65535)
    qos: int = setting(
        1, doc="1: at least once; 0: fire and forget (rows marked synced when written)", lo=0, hi=1
    )
    protocol: str = setting(
        "3.1.1",
        doc="3.1.1 (clean_session = false) or 5 (clean_start = false + session expiry)",
        choices=MQTT_PROTOCOLS,
    )
    profile: str = setting(
        "generic", doc="Topic and payload layout (docs/sync.md#on-the-wire)", choices=PROFILES
    )
    topic_prefix: str = setting("fieldpost", doc="First topic level", check=_no_topic_wildcards)
    encoding: str = setting("json", doc="Payload encoding", choices=ENCODINGS)
    connect_timeout_s: float = setting(10.0, doc="TCP + TLS + CONNACK", unit="s", lo=0.1, hi=600)
    session_expiry_s: int = setting(
        7 * 86400, doc="MQTT 5 only: how long the broker keeps our session", unit="s", lo=0, hi=0xFFFFFFFF
    )
    tls: TlsConfig = table(TlsConfig, doc="TLS towards the broker")

    def __post_init__(self) -> None:
        if self.port == 0:
            object.__setattr__(self, "port", 8883 if self.tls.enabled else 1883)

    def validate(self) -> None:
        if self.password is not None and self.username is None:
            raise SettingError(
                "sync.mqtt.password", "given without sync.mqtt.username; fix: add the user name"
            )
        if not self.tls.enabled and not is_loopback(self.host):
            raise SettingError(
                "sync.mqtt.tls.enabled",
                f"false is only allowed towards a loopback broker, not {self.host!r};"
                " the cloud link is always TLS with certificate verification; fix: remove it",
            )


@dataclass(frozen=True)
class HttpsConfig:
    url: str = setting(
        "", doc="Endpoint URL (https:// only)", check=_https_url, example="https://ingest.example.org/v1"
    )
    ca_file: str | None = setting(
        None, doc="CA bundle (PEM); empty: the system trust store", check=existing_file
    )
    cert_file: str | None = setting(None, doc="Client certificate (mutual TLS), PEM", check=existing_file)
    key_file: str | None = setting(None, doc="Client certificate's key, PEM", check=existing_file)
    token: str | None = setting(None, doc='Sent as "Authorization: Bearer <token>"', secret=True)
    timeout_s: float = setting(30.0, doc="Longest wait for an answer", unit="s", lo=0.1, hi=600)
    max_attempts: int = setting(5, doc="Attempts per batch (retryable statuses only)", lo=1, hi=100)

    def validate(self) -> None:
        if self.key_file and not self.cert_file:
            raise SettingError("sync.https.key_file", "given without sync.https.cert_file; fix: add it")


@dataclass(frozen=True)
class Shares:
    """Fraction of the daily budget each priority may use up to; indexable like (alarms, readings, bulk)."""

    alarms: float = setting(1.0, doc="Share of the daily budget alarms may use", lo=0, hi=1)
    readings: float = setting(0.9, doc="Share of the daily budget readings may use", lo=0, hi=1)
    bulk: float = setting(0.6, doc="Share of the daily budget bulk history may use", lo=0, hi=1)

    def __getitem__(self, index: int) -> float:
        return (self.alarms, self.readings, self.bulk)[index]

    def __len__(self) -> int:
        return 3


@dataclass(frozen=True)
class BudgetConfig:
    bytes_per_day: int = setting(0, doc="Bytes sent per day at most (0: unlimited)", unit="B", lo=0, hi=2**62)
    shares: Shares = table(Shares, doc="How the daily budget is shared by priority")


@dataclass(frozen=True)
class SyncConfig:
    """Cloud sync (docs/sync.md): without a [sync] section (and no endpoint set in the panel) nothing is synced."""

    enabled: bool = setting(True, doc="false: no cloud sync even with a [sync] section")
    sink: str = setting("mqtt", doc="Where batches go", choices=SINK_TYPES)
    site: str = setting(
        "site", doc="Site id in topics and documents (default: [edge] site)", check=_topic_level
    )
    batch_max_messages: int = setting(200, doc="Messages per batch at most", lo=1, hi=100_000)
    batch_max_bytes: int = setting(
        64 * 1024,
        doc="Uncompressed bytes per batch (a single larger message still goes, alone)",
        unit="B",
        lo=256,
        hi=16 * 1024 * 1024,
    )
    batch_max_wait_s: float = setting(2.0, doc="How long a batch waits to fill", unit="s", lo=0, hi=3600)
    max_inflight: int = setting(8, doc="Batches awaiting an ACK at most", lo=1, hi=1000)
    compression: str = setting(
        "gzip", doc="Batch compression (generic MQTT profile; HTTPS always gzips)", choices=COMPRESSIONS
    )
    backoff_initial_s: float = setting(1.0, doc="First retry delay", unit="s", lo=0.001, hi=3600)
    backoff_max_s: float = setting(
        300.0,
        doc="Largest retry delay; also the wait after a permanent refusal (HTTP 400)",
        unit="s",
        lo=0.001,
        hi=86400,
    )
    ack_timeout_s: float = setting(
        30.0, doc="No PUBACK for this long: drop the connection and resend", unit="s", lo=0.1, hi=3600
    )
    poll_interval_s: float = setting(
        0.5, doc="How often the outbox is polled when idle", unit="s", lo=0.001, hi=60
    )
    # At most 20 s: with the other closers it must stay within systemd's TimeoutStopSec=30.
    flush_on_stop_s: float = setting(
        3.0,
        doc="On stop, keep draining a healthy connection this long (0: stop at once)",
        unit="s",
        lo=0,
        hi=20,
    )
    budget: BudgetConfig = table(BudgetConfig, doc="Daily data budget")
    mqtt: MqttConfig = table(MqttConfig, doc="The MQTT sink")
    https: HttpsConfig = table(HttpsConfig, doc="The HTTPS sink")

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"fieldpost-{self.site}"

    def validate(self) -> None:
        if self.backoff_max_s < self.backoff_initial_s:
            raise SettingError("sync.backoff_max_s", "must be >= sync.backoff_initial_s; fix: raise it")
        if self.enabled and self.sink == "https" and not self.https.url:
            raise SettingError(
                "sync.https.url", "required when sync.sink = 'https'; fix: add [sync.https] url"
            )


def parse_sync_config(section: Mapping[str, Any] | None, *, site: str | None = None) -> SyncConfig:
    """Validate the ``[sync]`` table; ``site`` (from ``[edge] site``) is used when it has none."""
    raw = dict(section or {})
    if "site" not in raw and site is not None:
        raw["site"] = site
    return build(SyncConfig, raw, "sync")
