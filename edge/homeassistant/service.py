"""Home Assistant discovery in the daemon (its ``edge.homeassistant.service:attach`` point).

On connect (and whenever Home Assistant itself comes online, ``<discovery_prefix>/status``), every
registered node is announced from its newest stored reading: one retained config per numeric
measure, then its state. After that each committed reading (the daemon's post-commit hook) updates
its node's state, announcing a measure the first time it appears. Every ``removal_check_s`` the
configs this edge has retained on the broker are compared with the registry: those of a device
that was removed are replaced by empty retained messages, which removes the entities. The work
runs on a thread of its own: the ingest writer only hands readings over.
"""

from __future__ import annotations

import importlib.metadata
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from edge import registry
from edge.homeassistant import discovery
from edge.homeassistant.config import HomeAssistantConfig
from edge.homeassistant.discovery import Node
from edge.homeassistant.publisher import Publisher
from edge.store import connect
from edge.store import numbers as device_numbers
from edge.store import readings as stored_readings

log = logging.getLogger("fieldpost.homeassistant")

Decoder = Callable[[str, int, bytes], tuple[list[dict[str, Any]] | None, str | None]]


def _version() -> str:
    try:
        return importlib.metadata.version("fieldpost")
    except importlib.metadata.PackageNotFoundError:
        return ""


class HomeAssistantService:
    def __init__(self, config: HomeAssistantConfig, db_path: Path, *, site: str, decode: Decoder):
        self.config = config
        self.db_path = Path(db_path)
        self.site = site
        self._decode = decode
        self._jobs: queue.Queue = queue.Queue()
        self._nodes: dict[str, Node] = {}
        self._announced: set[str] = set()  # config topics published in this session
        self._retained: set[str] = set()  # config topics the broker holds for this edge
        self._states: dict[str, dict[str, Any]] = {}
        self.stats = {"announced": 0, "states": 0, "removed": 0}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.availability_topic = discovery.availability_topic(config, site)
        self.publisher = Publisher(
            config,
            client_id=config.client_id or f"fieldpost-{discovery.slug(site)}-ha",
            availability_topic=self.availability_topic,
            subscriptions=(f"{config.discovery_prefix}/status", discovery.config_topics_filter(config, site)),
            on_connected=lambda: self._jobs.put(("announce_all",)),
            on_message=self._message,
        )

    # --- daemon side ---------------------------------------------------------------------------

    def start(self) -> HomeAssistantService:
        self._thread = threading.Thread(target=self._work, name="fieldpost-homeassistant", daemon=True)
        self._thread.start()
        self.publisher.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._jobs.put(("stop",))
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.publisher.stop()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def on_readings(self, committed: Iterable[Any]) -> None:
        """The ingest hook: hand the readings over, never wait."""
        self._jobs.put(("readings", list(committed)))

    def check_removed(self) -> None:
        self._jobs.put(("check_removed",))

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every job handed over so far is done (tests)."""
        done = threading.Event()
        self._jobs.put(("mark", done))
        return done.wait(timeout)

    # --- worker --------------------------------------------------------------------------------

    def _message(self, topic: str, payload: bytes, _retain: bool) -> None:
        if topic == f"{self.config.discovery_prefix}/status":
            if payload == b"online":  # Home Assistant (re)started: it wants the configs again
                self._jobs.put(("announce_all",))
            return
        if payload:
            self._retained.add(topic)
        else:
            self._retained.discard(topic)

    def _work(self) -> None:
        conn = connect(self.db_path)
        try:
            while not self._stop.is_set():
                job = self._jobs.get()
                try:
                    if job[0] == "stop":
                        return
                    if job[0] == "mark":
                        job[1].set()
                    elif job[0] == "announce_all":
                        self._announce_all(conn)
                    elif job[0] == "readings":
                        self._readings(conn, job[1])
                    elif job[0] == "check_removed":
                        self._remove_stale(conn)
                except Exception:  # the next job goes on
                    log.exception("homeassistant_job_failed job=%s", job[0])
        finally:
            conn.close()

    def _announce_all(self, conn) -> None:
        self._announced.clear()  # a new session (or Home Assistant restarted): say everything again
        for row in registry.list_devices(conn):
            node = self._nodes[row["id"]] = Node.from_row(row)
            number = device_numbers.number_of(conn, node.id)
            newest = stored_readings.newest(conn, number, limit=1) if number is not None else []
            if newest:
                rid, _ms, port, _rssi, _snr_q, _bridge, _skew, raw, _age = newest[0]
                self._publish_values(node, self._decoded(row.get("codec") or "lpp", port, raw))
        self._remove_stale(conn)

    def _readings(self, conn, committed: list[Any]) -> None:
        for reading in committed:
            node = self._nodes.get(reading.device_id)
            if node is None:
                row = registry.get_device(conn, reading.device_id)
                if row is None:
                    continue
                node = self._nodes[reading.device_id] = Node.from_row(row)
            self._publish_values(node, self._decoded(reading.codec, reading.port, reading.raw))

    def _decoded(self, codec: str, port: int, raw: bytes) -> list[dict[str, Any]]:
        values, _error = self._decode(codec, port, raw)
        return [v for v in values or [] if discovery.numeric(v)]

    def _publish_values(self, node: Node, values: list[dict[str, Any]]) -> None:
        if not values or not self.publisher.connected.is_set():
            return  # announce_all on the next connect sends the newest state
        for value in values:
            topic, payload = discovery.sensor_config(self.config, self.site, node, value, version=_version())
            if topic not in self._announced:
                self.publisher.publish_json(topic, payload)
                self._announced.add(topic)
                self._retained.add(topic)
                self.stats["announced"] += 1
        merged = self._states.setdefault(node.id, {})
        merged.update(discovery.state(values))
        self.publisher.publish_json(discovery.state_topic(self.config, self.site, node.id), merged)
        self.stats["states"] += 1

    def _remove_stale(self, conn) -> None:
        registered = {row["id"] for row in registry.list_devices(conn)}
        prefix = discovery.config_topic(self.config, self.site, "").rsplit("/", 2)[0] + "/"
        for topic in sorted(self._retained | self._announced):
            object_id = topic[len(prefix) :].split("/", 1)[0]
            device_id = object_id.split("_", 1)[0]
            if device_id in registered:
                continue
            self.publisher.clear(topic)
            self._retained.discard(topic)
            self._announced.discard(topic)
            self.stats["removed"] += 1
            if device_id in self._states or device_id in self._nodes:
                self.publisher.clear(discovery.state_topic(self.config, self.site, device_id))
                self._states.pop(device_id, None)
                self._nodes.pop(device_id, None)
            log.info("homeassistant=removed topic=%s", topic)


def attach(daemon: Any) -> HomeAssistantService | None:
    config = daemon.config.homeassistant
    if not config.enabled:
        return None
    service = HomeAssistantService(
        config, daemon.db_path, site=daemon.config.edge.site, decode=daemon.codecs.decode
    ).start()
    daemon.add_hook(service.on_readings)
    daemon.add_periodic(config.removal_check_s, service.check_removed)
    daemon.add_closer(service.stop)
    daemon.metrics_sources.extra.append(lambda: _metric_families(service))
    log.info("homeassistant=attached host=%s port=%d", config.host, config.port)
    return service


def _metric_families(service: HomeAssistantService):
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    sent = CounterMetricFamily(
        "fieldpost_homeassistant_messages", "Discovery messages published, by kind", labels=["kind"]
    )
    for kind, value in service.stats.items():
        sent.add_metric([kind], value)
    yield sent
    yield GaugeMetricFamily(
        "fieldpost_homeassistant_connected",
        "1 while connected to Home Assistant's broker",
        value=1 if service.publisher.connected.is_set() else 0,
    )
