"""The MQTT connection to Home Assistant's broker: birth and last will on the availability topic.

The will (``offline``, retained, QoS 1) is registered with the broker at CONNECT, so when the edge
dies (kill -9, power cut, network gone past the keep-alive) the broker itself publishes it and Home
Assistant shows every Fieldpost entity unavailable. On every (re)connect the birth (``online``,
retained) is published and ``on_connected`` runs (the service re-announces there). paho runs its
own network thread (loop_start) and reconnects by itself with back-off.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.errors import ConfigError
from edge.homeassistant.config import HomeAssistantConfig
from edge.homeassistant.discovery import OFFLINE, ONLINE

log = logging.getLogger("fieldpost.homeassistant")


class Publisher:
    def __init__(
        self,
        config: HomeAssistantConfig,
        *,
        client_id: str,
        availability_topic: str,
        subscriptions: tuple[str, ...] = (),
        on_connected: Callable[[], None] | None = None,
        on_message: Callable[[str, bytes, bool], None] | None = None,
    ):
        self.config = config
        self.availability_topic = availability_topic
        self._subscriptions = subscriptions
        self._on_connected = on_connected
        self._on_message = on_message
        self.connected = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        client.will_set(availability_topic, OFFLINE, qos=1, retain=True)
        if config.username is not None:
            client.username_pw_set(config.username, config.password)
        if config.tls:
            try:
                context = ssl.create_default_context(cafile=config.ca_file)
            except OSError as exc:
                raise ConfigError(f"homeassistant.ca_file: {config.ca_file}: {exc}") from None
            client.tls_set_context(context)
        client.reconnect_delay_set(1, 60)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        self._client = client

    def start(self) -> Publisher:
        # connect_async: a broker that is down at start-up is retried by paho's loop, not an error
        self._client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self._client.loop_start()
        return self

    def stop(self) -> None:
        """Say offline ourselves (a clean stop sends no will), then disconnect."""
        if self.connected.is_set():
            info = self._client.publish(self.availability_topic, OFFLINE, qos=1, retain=True)
            info.wait_for_publish(5)
        self._client.disconnect()
        self._client.loop_stop()

    def publish_json(self, topic: str, payload: dict[str, Any], *, retain: bool = True) -> None:
        self._client.publish(
            topic, json.dumps(payload, ensure_ascii=False, separators=(",", ":")), qos=1, retain=retain
        )

    def clear(self, topic: str) -> None:
        """An empty retained message: the broker forgets the topic; Home Assistant removes the entity."""
        self._client.publish(topic, b"", qos=1, retain=True)

    def _handle_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.warning("homeassistant=refused host=%s reason=%s", self.config.host, reason_code)
            return
        client.publish(self.availability_topic, ONLINE, qos=1, retain=True)  # the birth message
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        self.connected.set()
        log.info("homeassistant=connected host=%s port=%d", self.config.host, self.config.port)
        if self._on_connected is not None:
            self._on_connected()

    def _handle_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected.clear()
        log.info("homeassistant=disconnected reason=%s", reason_code)

    def _handle_message(self, _client, _userdata, message) -> None:
        if self._on_message is not None:
            self._on_message(message.topic, message.payload, bool(message.retain))
