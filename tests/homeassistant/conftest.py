"""A real Mosquitto on a free loopback port, and a client that keeps what the broker retained."""

from __future__ import annotations

import json
import shutil
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import wait_until
from tests.sync.sync_helpers import MOSQUITTO, Mosquitto


class Watcher:
    """Subscribes to ``topics``; ``latest[topic]`` is the last payload seen (retained or live)."""

    def __init__(self, port: int, topics: tuple[str, ...] = ("#",)):
        self.latest: dict[str, bytes] = {}
        self.history: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, *_: [c.subscribe(t, qos=1) for t in topics]
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, _client, _userdata, message):
        with self.lock:
            self.latest[message.topic] = message.payload
            self.history.append((message.topic, message.payload, bool(message.retain)))

    def json(self, topic):
        with self.lock:
            payload = self.latest.get(topic)
        return json.loads(payload) if payload else None

    def payload(self, topic):
        with self.lock:
            return self.latest.get(topic)

    def configs(self):
        with self.lock:
            return {t: json.loads(p) for t, p in self.latest.items() if t.endswith("/config") and p}

    def wait(self, predicate, what, timeout=15.0):
        return wait_until(predicate, timeout, 0.02, what)

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path):
    if not shutil.which(MOSQUITTO):
        pytest.skip("mosquitto is not installed (Debian package 'mosquitto')")
    server = Mosquitto(tmp_path / "broker").start()
    yield server
    server.stop()


@pytest.fixture
def watch(broker):
    made = []

    def make(*topics):
        watcher = Watcher(broker.port, topics or ("#",))
        made.append(watcher)
        return watcher

    yield make
    for watcher in made:
        watcher.stop()
