"""The ``[sync]`` section of the TOML config, validated into frozen dataclasses.

Every key is documented in docs/sync.md. A bad value raises ConfigError naming the
full key (``sync.mqtt.port``) and why. TLS is on by default; the only way to talk
plaintext is ``tls.enabled = false`` towards a loopback broker (a local bridge or
the demo) — a TLS problem is never answered by falling back to plaintext.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge.errors import ConfigError

SINK_TYPES = ("mqtt", "https")
PROFILES = ("generic", "thingsboard")
ENCODINGS = ("json", "cbor")
COMPRESSIONS = ("none", "gzip")
MQTT_PROTOCOLS = ("3.1.1", "5")


@dataclass(frozen=True)
class TlsConfig:
    enabled: bool = True
    ca_file: str | None = None  # None: the system trust store (verification stays on)
    cert_file: str | None = None  # client certificate (mutual TLS), PEM
    key_file: str | None = None


@dataclass(frozen=True)
class MqttConfig:
    host: str = "localhost"
    port: int = 8883
    client_id: str = ""  # "" -> "fieldpost-<site>"
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 60
    qos: int = 1
    protocol: str = "3.1.1"
    profile: str = "generic"
    topic_prefix: str = "fieldpost"
    encoding: str = "json"
    connect_timeout_s: float = 10.0
    session_expiry_s: int = 7 * 86400  # MQTT 5 only: how long the broker keeps our session
    tls: TlsConfig = field(default_factory=TlsConfig)


@dataclass(frozen=True)
class HttpsConfig:
    url: str = ""
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None  # sent as "Authorization: Bearer <token>"
    timeout_s: float = 30.0
    max_attempts: int = 5  # per batch, retryable statuses only


@dataclass(frozen=True)
class BudgetConfig:
    bytes_per_day: int = 0  # 0: unlimited
    # Fraction of the daily budget each priority may use up to: alarms, readings, bulk history.
    shares: tuple[float, float, float] = (1.0, 0.9, 0.6)


@dataclass(frozen=True)
class SyncConfig:
    enabled: bool = True
    sink: str = "mqtt"
    site: str = "site"
    batch_max_messages: int = 200
    batch_max_bytes: int = 64 * 1024
    batch_max_wait_s: float = 2.0
    max_inflight: int = 8
    compression: str = "gzip"
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0
    ack_timeout_s: float = 30.0
    poll_interval_s: float = 0.5
    flush_on_stop_s: float = 3.0  # on stop, keep draining a healthy connection this long (0: stop at once)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    https: HttpsConfig = field(default_factory=HttpsConfig)

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"fieldpost-{self.site}"


def parse_sync_config(section: Mapping[str, Any] | None, *, site: str | None = None) -> SyncConfig:
    """Validate the ``[sync]`` table; ``site`` (from ``[edge] site``) is used when it has none."""
    raw = dict(section or {})
    r = SectionReader(raw, "sync")
    cfg_site = r.str("site", site or "site", nonempty=True)
    if "/" in cfg_site or "+" in cfg_site or "#" in cfg_site:
        raise ConfigError(f"sync.site: {cfg_site!r} must not contain '/', '+' or '#' (it is a topic level)")
    budget_raw = r.table("budget")
    b = SectionReader(budget_raw, "sync.budget")
    shares_raw = b.table("shares")
    s = SectionReader(shares_raw, "sync.budget.shares")
    budget = BudgetConfig(
        bytes_per_day=b.int("bytes_per_day", 0, lo=0),
        shares=(
            s.float("alarms", 1.0, lo=0.0, hi=1.0),
            s.float("readings", 0.9, lo=0.0, hi=1.0),
            s.float("bulk", 0.6, lo=0.0, hi=1.0),
        ),
    )
    s.done()
    b.done()
    cfg = SyncConfig(
        enabled=r.bool("enabled", True),
        sink=r.choice("sink", "mqtt", SINK_TYPES),
        site=cfg_site,
        batch_max_messages=r.int("batch_max_messages", 200, lo=1, hi=100_000),
        batch_max_bytes=r.int("batch_max_bytes", 64 * 1024, lo=256, hi=16 * 1024 * 1024),
        batch_max_wait_s=r.float("batch_max_wait_s", 2.0, lo=0.0, hi=3600.0),
        max_inflight=r.int("max_inflight", 8, lo=1, hi=1000),
        compression=r.choice("compression", "gzip", COMPRESSIONS),
        backoff_initial_s=r.float("backoff_initial_s", 1.0, lo=0.001, hi=3600.0),
        backoff_max_s=r.float("backoff_max_s", 300.0, lo=0.001, hi=86400.0),
        ack_timeout_s=r.float("ack_timeout_s", 30.0, lo=0.1, hi=3600.0),
        poll_interval_s=r.float("poll_interval_s", 0.5, lo=0.001, hi=60.0),
        # At most 20 s: with the other closers it must stay within systemd's TimeoutStopSec=30.
        flush_on_stop_s=r.float("flush_on_stop_s", 3.0, lo=0.0, hi=20.0),
        budget=budget,
        mqtt=_parse_mqtt(r.table("mqtt")),
        https=_parse_https(r.table("https")),
    )
    r.done()
    if cfg.backoff_max_s < cfg.backoff_initial_s:
        raise ConfigError("sync.backoff_max_s: must be >= sync.backoff_initial_s")
    if cfg.enabled and cfg.sink == "https" and not cfg.https.url:
        raise ConfigError("sync.https.url: required when sync.sink = 'https'")
    return cfg


def _parse_mqtt(raw: dict[str, Any]) -> MqttConfig:
    r = SectionReader(raw, "sync.mqtt")
    tls_raw = r.table("tls")
    t = SectionReader(tls_raw, "sync.mqtt.tls")
    tls = TlsConfig(
        enabled=t.bool("enabled", True),
        ca_file=t.path("ca_file"),
        cert_file=t.path("cert_file"),
        key_file=t.path("key_file"),
    )
    t.done()
    if tls.key_file and not tls.cert_file:
        raise ConfigError("sync.mqtt.tls.key_file: given without sync.mqtt.tls.cert_file")
    host = r.str("host", "localhost", nonempty=True)
    cfg = MqttConfig(
        host=host,
        port=r.int("port", 8883 if tls.enabled else 1883, lo=1, hi=65535),
        client_id=r.str("client_id", ""),
        username=r.str("username", None),
        password=r.str("password", None),
        keepalive_s=r.int("keepalive_s", 60, lo=5, hi=65535),
        qos=r.int("qos", 1, lo=0, hi=1),
        protocol=r.choice("protocol", "3.1.1", MQTT_PROTOCOLS),
        profile=r.choice("profile", "generic", PROFILES),
        topic_prefix=r.str("topic_prefix", "fieldpost", nonempty=True),
        encoding=r.choice("encoding", "json", ENCODINGS),
        connect_timeout_s=r.float("connect_timeout_s", 10.0, lo=0.1, hi=600.0),
        session_expiry_s=r.int("session_expiry_s", 7 * 86400, lo=0, hi=0xFFFFFFFF),
        tls=tls,
    )
    r.done()
    if cfg.password is not None and cfg.username is None:
        raise ConfigError("sync.mqtt.password: given without sync.mqtt.username")
    if not tls.enabled and not _is_loopback(host):
        raise ConfigError(
            f"sync.mqtt.tls.enabled: false is only allowed towards a loopback broker, not {host!r};"
            " the cloud link is always TLS with certificate verification"
        )
    if any(c in cfg.topic_prefix for c in "+#"):
        raise ConfigError("sync.mqtt.topic_prefix: must not contain '+' or '#'")
    return cfg


def _parse_https(raw: dict[str, Any]) -> HttpsConfig:
    r = SectionReader(raw, "sync.https")
    url = r.str("url", "")
    if url:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https":
            raise ConfigError(f"sync.https.url: {url!r} must start with https:// (never plaintext)")
        if not parts.hostname:
            raise ConfigError(f"sync.https.url: {url!r} has no host")
    cfg = HttpsConfig(
        url=url,
        ca_file=r.path("ca_file"),
        cert_file=r.path("cert_file"),
        key_file=r.path("key_file"),
        token=r.str("token", None),
        timeout_s=r.float("timeout_s", 30.0, lo=0.1, hi=600.0),
        max_attempts=r.int("max_attempts", 5, lo=1, hi=100),
    )
    r.done()
    if cfg.key_file and not cfg.cert_file:
        raise ConfigError("sync.https.key_file: given without sync.https.cert_file")
    return cfg


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SectionReader:
    """Typed access to one TOML table that remembers which keys were read (unknown keys are errors)."""

    def __init__(self, raw: Any, prefix: str):
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{prefix}: must be a table, not {type(raw).__name__}")
        self.raw = dict(raw)
        self.prefix = prefix
        self.seen: set[str] = set()

    def _get(self, key: str, default: Any) -> Any:
        self.seen.add(key)
        return self.raw.get(key, default)

    def _fail(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"{self.prefix}.{key}: {why}")

    def table(self, key: str) -> dict[str, Any]:
        value = self._get(key, {})
        if not isinstance(value, Mapping):
            raise self._fail(key, "must be a table")
        return dict(value)

    def str(self, key: str, default: str | None, *, nonempty: bool = False) -> Any:
        value = self._get(key, default)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._fail(key, f"must be a string, not {value!r}")
        if nonempty and not value:
            raise self._fail(key, "must not be empty")
        return value

    def path(self, key: str) -> str | None:
        value = self.str(key, None)
        if value is None or value == "":
            return None
        # A missing certificate file is a configuration error now, not a handshake error later.
        if not os.path.isfile(value):
            raise self._fail(key, f"file {value!r} does not exist")
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self._fail(key, f"must be true or false, not {value!r}")
        return value

    def int(self, key: str, default: int, *, lo: int | None = None, hi: int | None = None) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, f"must be an integer, not {value!r}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self._fail(key, f"{value} is outside {lo} .. {hi}")
        return value

    def float(
        self,
        key: str,
        default: float,
        *,
        lo: float | None = None,
        hi: float | None = None,
    ) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(key, f"must be a number, not {value!r}")
        value = float(value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self._fail(key, f"{value} is outside {lo} .. {hi}")
        return value

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self._get(key, default)
        if value not in allowed:
            raise self._fail(key, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.raw) - self.seen)
        if unknown:
            raise self._fail(unknown[0], "unknown key (see docs/sync.md)")
