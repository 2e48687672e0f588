"""MQTT sink: paho-mqtt 2.x, QoS 1, persistent session, TLS with verification, pipelined batches.

The sink is driven from ONE thread (the sync service's): ``poll`` runs paho's
``loop`` there, so callbacks, acks and downlinks all happen on that thread and no
lock is needed. A fresh paho client is made for every connection: what was in
flight on a dropped connection is forgotten here and resent by the service from
the outbox (only rows the broker never acknowledged are still unsynced there).
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.errors import ConfigError, SinkRejected, SinkUnavailable
from edge.sync import encoding
from edge.sync.batching import Batch, Message
from edge.sync.config import SyncConfig, TlsConfig

log = logging.getLogger("fieldpost.sync")

# (topic, payload) -> replies to publish, each (topic, payload). Must not raise.
DownlinkHandler = Callable[[str, bytes], list[tuple[str, bytes]]]


def make_tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """A client context that always verifies the server (chain and host name).

    Any problem with the files is a ConfigError now; there is no code path that
    connects without this context when TLS is enabled.
    """
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
        if tls.cert_file:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"sync.mqtt.tls: cannot load certificates: {exc}") from exc
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    return ctx


def tcp_reachable(host: str, port: int, timeout: float) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


@dataclass
class _InFlight:
    batch: Batch
    sent_at: float


class MqttSink:
    name = "mqtt"

    def __init__(self, config: SyncConfig, *, on_downlink: DownlinkHandler | None = None):
        self.config = config
        self.mqtt = config.mqtt
        self._on_downlink = on_downlink
        self._tls = make_tls_context(self.mqtt.tls) if self.mqtt.tls.enabled else None
        self._mqtt5 = self.mqtt.protocol == "5"
        self._client: mqtt.Client | None = None
        self._connected = False
        self._lost_reason: str | None = None
        self._connack: tuple[bool, str] | None = None
        self._inflight: dict[int, _InFlight] = {}
        self._acked: list[Batch] = []
        self._rejected: list[tuple[Batch, str]] = []
        self._announced: set[str] = set()  # ThingsBoard devices connected in this session
        # The last batch encoded: the budget check (wire_size) and submit encode the same batch.
        self._encoded: tuple[Batch, tuple[str, bytes]] | None = None

    # ------------------------------------------------------------------ connection

    @property
    def connected(self) -> bool:
        return self._connected

    def open(self) -> None:
        """Connect and wait for CONNACK; raises SinkUnavailable (never falls back to plaintext)."""
        self.close()
        cfg = self.mqtt
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.config.client_id,
            protocol=mqtt.MQTTv5 if self._mqtt5 else mqtt.MQTTv311,
            # Persistent session: the broker keeps our downlink subscriptions and queues
            # downlinks while the site is offline.
            clean_session=None if self._mqtt5 else False,
        )
        client.connect_timeout = cfg.connect_timeout_s
        if self._tls is not None:
            client.tls_set_context(self._tls)
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        client.max_inflight_messages_set(self.config.max_inflight + 64)
        client.max_queued_messages_set(0)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_publish = self._handle_publish
        client.on_message = self._handle_message
        self._client = client
        self._connack = None
        self._lost_reason = None
        self._inflight.clear()
        self._announced.clear()
        properties = None
        if self._mqtt5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = cfg.session_expiry_s
        try:
            if self._mqtt5:
                client.connect(
                    cfg.host,
                    cfg.port,
                    cfg.keepalive_s,
                    clean_start=False,
                    properties=properties,
                )
            else:
                client.connect(cfg.host, cfg.port, cfg.keepalive_s)
        except (
            OSError,
            ValueError,
        ) as exc:  # ssl.SSLError (bad certificate) is an OSError
            self._client = None
            raise SinkUnavailable(f"mqtt connect {cfg.host}:{cfg.port}: {exc}") from exc
        deadline = time.monotonic() + cfg.connect_timeout_s
        while self._connack is None:
            rc = client.loop(0.05)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._drop()
                raise SinkUnavailable(f"mqtt connect {cfg.host}:{cfg.port}: {mqtt.error_string(rc)}")
            if time.monotonic() > deadline:
                self._drop()
                raise SinkUnavailable(
                    f"mqtt connect {cfg.host}:{cfg.port}: no CONNACK in {cfg.connect_timeout_s}s"
                )
        ok, reason = self._connack
        if not ok:
            self._drop()
            raise SinkUnavailable(f"mqtt broker refused the connection: {reason}", answered=True)
        self._connected = True
        self._subscribe_downlinks()
        log.info(
            "sync=mqtt event=connected host=%s port=%d tls=%s",
            cfg.host,
            cfg.port,
            self._tls is not None,
        )

    def _subscribe_downlinks(self) -> None:
        assert self._client is not None
        if self._on_downlink is None:
            return
        if self.mqtt.profile == "thingsboard":
            topic = encoding.TB_RPC
        else:
            topic = encoding.down_topic_filter(self.mqtt.topic_prefix, self.config.site)
        self._client.subscribe(topic, qos=1)

    def close(self) -> None:
        self._drop()
        self._inflight.clear()

    def reachable(self, timeout: float) -> bool:
        """Whether the broker's port accepts a TCP connection now (nothing is sent on it)."""
        return tcp_reachable(self.mqtt.host, self.mqtt.port, timeout)

    def _drop(self) -> None:
        client, self._client = self._client, None
        self._connected = False
        if client is not None:
            try:
                client.disconnect()
            except OSError as exc:  # closing a broken socket must not hide the original error
                log.debug("sync=mqtt event=close_failed error=%r", exc)

    # ------------------------------------------------------------------ paho callbacks (service thread)

    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connack = (not reason_code.is_failure, str(reason_code))

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if client is self._client:
            self._connected = False
            self._lost_reason = f"mqtt connection lost: {reason_code}"

    def _handle_publish(self, client, userdata, mid, reason_code, properties) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return  # a ThingsBoard connect, an RPC reply, or a publish from a dropped session
        if reason_code.is_failure:
            self._rejected.append((entry.batch, f"broker refused the publish: {reason_code}"))
        else:
            self._acked.append(entry.batch)

    def _handle_message(self, client, userdata, message) -> None:
        if self._on_downlink is None:
            return
        # The handler commits the downlink before we return; paho sends the PUBACK after that.
        for topic, payload in self._on_downlink(message.topic, message.payload):
            client.publish(topic, payload, qos=1)

    # ------------------------------------------------------------------ sending

    def free_slots(self) -> int:
        return max(0, self.config.max_inflight - len(self._inflight))

    def oldest_unacked_since(self) -> float | None:
        """time.monotonic() when the oldest unacknowledged batch went out."""
        return min((e.sent_at for e in self._inflight.values()), default=None)

    def topic_and_payload(self, batch: Batch) -> tuple[str, bytes]:
        if self._encoded is None or self._encoded[0] is not batch:
            self._encoded = (batch, self._encode(batch))
        return self._encoded[1]

    def _encode(self, batch: Batch) -> tuple[str, bytes]:
        cfg = self.mqtt
        if cfg.profile == "thingsboard":
            topic = (
                encoding.TB_GATEWAY_TELEMETRY if batch.route == encoding.EDGE_ROUTE else encoding.TB_TELEMETRY
            )
            return topic, encoding.thingsboard_telemetry(batch)
        topic = encoding.up_topic(cfg.topic_prefix, self.config.site, batch.route)
        raw = (
            encoding.envelope_cbor(batch, self.config.site)
            if cfg.encoding == "cbor"
            else encoding.envelope_json(batch, self.config.site)
        )
        return topic, encoding.compress(raw, self.config.compression)

    def wire_size(self, batch: Batch) -> int:
        topic, payload = self.topic_and_payload(batch)
        return encoding.mqtt_publish_size(topic, len(payload), self.mqtt.qos, self._mqtt5)

    def submit(self, batch: Batch, now: float) -> int:
        """Publish one batch without waiting; returns the bytes put on the wire."""
        if not self._connected or self._client is None:
            raise SinkUnavailable("mqtt not connected")
        sent = 0
        if self.mqtt.profile == "thingsboard" and batch.route != encoding.EDGE_ROUTE:
            sent += self._announce(batch.messages)
        topic, payload = self.topic_and_payload(batch)
        info = self._client.publish(topic, payload, qos=self.mqtt.qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise SinkUnavailable(f"mqtt publish: {mqtt.error_string(info.rc)}")
        # on_publish may already have fired inside publish() (QoS 0 is "acked" when written).
        if self.mqtt.qos == 0:
            self._inflight.pop(info.mid, None)
            self._acked.append(batch)
        else:
            # Real elapsed time for the ack timeout, whatever the injected clock does.
            self._inflight[info.mid] = _InFlight(batch, time.monotonic())
        return sent + encoding.mqtt_publish_size(topic, len(payload), self.mqtt.qos, self._mqtt5)

    def _announce(self, messages: list[Message]) -> int:
        # The gateway API wants a device "connected" before its telemetry is routed to it.
        assert self._client is not None
        sent = 0
        for device in dict.fromkeys(m.device_id for m in messages if m.device_id):
            if device in self._announced:
                continue
            payload = encoding.thingsboard_connect(device)
            info = self._client.publish(encoding.TB_CONNECT, payload, qos=self.mqtt.qos)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise SinkUnavailable(f"mqtt publish: {mqtt.error_string(info.rc)}")
            self._announced.add(device)
            sent += encoding.mqtt_publish_size(encoding.TB_CONNECT, len(payload), self.mqtt.qos, self._mqtt5)
        return sent

    def poll(self, timeout: float) -> list[Batch]:
        """Run the network for up to ``timeout`` s; return the batches acknowledged since last time.

        Raises SinkUnavailable once the connection is gone (after handing out the acks
        that arrived before it went) and SinkRejected for a publish the broker refused.
        """
        client = self._client
        if client is not None and self._connected:
            rc = client.loop(timeout)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._connected = False
                self._lost_reason = self._lost_reason or f"mqtt connection lost: {mqtt.error_string(rc)}"
        acked, self._acked = self._acked, []
        if acked:
            return acked
        if self._rejected:
            _batch, why = self._rejected.pop(0)
            raise SinkRejected(why)
        if not self._connected:
            reason = self._lost_reason or "mqtt not connected"
            self._drop()
            raise SinkUnavailable(reason)
        return []
