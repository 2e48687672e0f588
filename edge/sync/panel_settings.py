"""Settings an admin changes in the panel, laid over the TOML config of sync and retention.

The panel (webui/settings_store.py) keeps them in the ``settings`` table as JSON, under the names of
the config keys they stand for:

  sync.endpoint            'mqtts://host[:port]', 'mqtt://host[:port]' or 'https://host/path';
                           '' or absent: the [sync] section's own endpoint
  retention.max_age_days   a number of days
  retention.max_db_bytes   bytes, or null for no size limit

The TOML file gives the defaults; a stored value replaces only its own key. Services read the table at
start and then watch it with one cheap query per cycle (:class:`SettingsWatch`). A stored value that
does not validate is logged with its key and ignored; it never stops a service.

The endpoint never weakens transport security: ``mqtts://`` and ``https://`` keep the [sync] section's
CA and client certificate (verification stays on), and plaintext ``mqtt://`` is accepted only when
the config file itself already talks plaintext (``tls.enabled = false``, allowed towards loopback
only) and the new host is loopback too.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from edge.config.core import is_loopback
from edge.errors import ConfigError
from edge.sync.config import SyncConfig

log = logging.getLogger("fieldpost.sync")

ENDPOINT_KEY = "sync.endpoint"
SCHEMES = ("mqtts", "mqtt", "https")


def read_settings(conn: sqlite3.Connection, keys: Iterable[str]) -> dict[str, Any]:
    """The stored values of ``keys`` that are present and decodable (an undecodable one is logged)."""
    keys = tuple(keys)
    marks = ",".join("?" * len(keys))
    try:
        rows = conn.execute(f"SELECT key, value FROM settings WHERE key IN ({marks})", keys).fetchall()
    except sqlite3.OperationalError as exc:  # a database not migrated yet: no panel settings
        log.debug("settings=unreadable error=%s", exc)
        return {}
    values = {}
    for key, text in rows:
        try:
            values[key] = json.loads(text)
        except (TypeError, ValueError):
            log.error("settings=ignored key=%s value=%r error='not JSON'", key, text)
    return values


class SettingsWatch:
    """Tells whether any of ``keys`` changed since the last look, with one small aggregate query."""

    def __init__(self, keys: Iterable[str]):
        self.keys = tuple(keys)
        self._version: tuple | None = None

    def _current(self, conn: sqlite3.Connection) -> tuple | None:
        marks = ",".join("?" * len(self.keys))
        try:
            # count catches a deleted key, total any row rewritten (even with an older clock).
            return tuple(
                conn.execute(
                    f"SELECT count(*), max(updated_at), total(updated_at) FROM settings WHERE key IN ({marks})",
                    self.keys,
                ).fetchone()
            )
        except sqlite3.OperationalError:
            return None

    def poll(self, conn: sqlite3.Connection) -> dict[str, Any] | None:
        """The stored values when they changed since the last call (always on the first), else None."""
        version = self._current(conn)
        if version == self._version:
            return None
        self._version = version
        return read_settings(conn, self.keys)


def parse_endpoint(endpoint: Any) -> urllib.parse.SplitResult:
    """Check the syntax of a panel endpoint; raise ConfigError saying what is wrong.

    Plaintext ``mqtt://`` is refused here for any host that is not loopback.
    """
    if not isinstance(endpoint, str):
        raise ConfigError(f"{ENDPOINT_KEY}: must be a string, not {endpoint!r}")
    text = endpoint.strip()
    if len(text) > 300 or any(c.isspace() for c in text):
        raise ConfigError(f"{ENDPOINT_KEY}: {endpoint!r} is not a URL")
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in SCHEMES:
        raise ConfigError(f"{ENDPOINT_KEY}: {endpoint!r} must start with mqtts://, https:// or mqtt://")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{ENDPOINT_KEY}: {endpoint!r} has a bad port") from None
    if not parts.hostname or port == 0 or parts.username is not None:
        raise ConfigError(f"{ENDPOINT_KEY}: {endpoint!r} needs a host name (and no user name)")
    if parts.scheme != "https" and (parts.path not in ("", "/") or parts.query or parts.fragment):
        raise ConfigError(f"{ENDPOINT_KEY}: an MQTT endpoint is mqtts://host[:port], without a path")
    if parts.scheme == "mqtt" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"{ENDPOINT_KEY}: plaintext mqtt:// only towards this machine, not {parts.hostname!r};"
            " use mqtts:// (TLS with certificate verification)"
        )
    return parts


def with_endpoint(base: SyncConfig, endpoint: str) -> SyncConfig:
    """``base`` with its endpoint replaced by ``endpoint``; ConfigError if it is bad or would downgrade."""
    parts = parse_endpoint(endpoint)
    if parts.scheme == "https":
        return dataclasses.replace(
            base, sink="https", https=dataclasses.replace(base.https, url=parts.geturl())
        )
    tls_on = parts.scheme == "mqtts"
    if not tls_on and base.mqtt.tls.enabled:
        raise ConfigError(
            f"{ENDPOINT_KEY}: {endpoint!r} is plaintext but the config file's [sync.mqtt] link is TLS;"
            " the panel never turns TLS off (use mqtts://)"
        )
    mqtt = dataclasses.replace(
        base.mqtt,
        host=parts.hostname or "",  # parse_endpoint refused a URL without one
        port=parts.port or (8883 if tls_on else 1883),
        tls=dataclasses.replace(base.mqtt.tls, enabled=tls_on),
    )
    return dataclasses.replace(base, sink="mqtt", mqtt=mqtt)


def sync_config_with(base: SyncConfig, values: Mapping[str, Any]) -> SyncConfig:
    """Lay the stored settings over ``base``; a bad value is logged with its key and ignored."""
    endpoint = values.get(ENDPOINT_KEY)
    if endpoint is None or endpoint == "":
        return base
    try:
        return with_endpoint(base, endpoint)
    except ConfigError as exc:
        log.error("settings=ignored key=%s value=%r error=%r", ENDPOINT_KEY, endpoint, str(exc))
        return base


def describe_endpoint(config: SyncConfig) -> str:
    """Where ``config`` sends data, as a URL (for logs and the panel)."""
    if config.sink == "https":
        return config.https.url
    scheme = "mqtts" if config.mqtt.tls.enabled else "mqtt"
    return f"{scheme}://{config.mqtt.host}:{config.mqtt.port}"
