"""ChirpStack v4 MQTT integration messages, parsed and built. Pure: no I/O, no database.

Topics: ``<prefix>/<applicationId>/device/<devEui>/event/<up|join|ack|txack>`` in, and
``<prefix>/<applicationId>/device/<devEui>/command/down`` out. Payloads are JSON (protobuf's JSON
mapping, the field names ChirpStack publishes: ``deduplicationId``, ``deviceInfo.devEui``,
``fCnt`` ...) or binary protobuf, depending on the integration's ``json`` setting; both are read
with the message definitions of the ``chirpstack-api`` package. Every refusal is a
SourceInputError naming the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chirpstack_api import integration
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from edge.radio import is_device_id
from edge.sources.errors import SourceInputError

EVENTS = ("up", "join", "ack", "txack")
_MESSAGES = {
    "up": integration.UplinkEvent,
    "join": integration.JoinEvent,
    "ack": integration.AckEvent,
    "txack": integration.TxAckEvent,
}
MAX_FCNT = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    dev_eui: str  # 16 lower-case hex digits
    application_id: str
    name: str
    tags: dict[str, str]


@dataclass(frozen=True, slots=True)
class Uplink:
    device: DeviceInfo
    dedup_id: str
    fcnt: int
    fport: int
    data: bytes
    object_json: str | None  # ChirpStack's decoded object (its codec), compact JSON
    rssi: int | None  # the best gateway's
    snr: float | None
    gateway_id: str | None


@dataclass(frozen=True, slots=True)
class Join:
    device: DeviceInfo
    dedup_id: str
    dev_addr: str


@dataclass(frozen=True, slots=True)
class Ack:
    device: DeviceInfo
    queue_id: str
    acknowledged: bool


@dataclass(frozen=True, slots=True)
class TxAck:
    device: DeviceInfo
    queue_id: str


Event = Uplink | Join | Ack | TxAck


def subscriptions(prefix: str) -> list[str]:
    return [f"{prefix}/+/device/+/event/{name}" for name in EVENTS]


def parse_topic(topic: str, prefix: str) -> tuple[str, str, str]:
    """(application id, devEui, event) of an event topic."""
    parts = topic.split("/")
    head = prefix.split("/")
    n = len(head)
    if parts[:n] != head or len(parts) != n + 5 or parts[n + 1] != "device" or parts[n + 3] != "event":
        raise SourceInputError(
            "topic", f"{topic!r} is not {prefix}/<application>/device/<devEui>/event/<type>"
        )
    app, dev_eui, event = parts[n], parts[n + 2].lower(), parts[n + 4]
    if event not in EVENTS:
        raise SourceInputError("topic", f"event {event!r} is not one of {', '.join(EVENTS)}")
    if not is_device_id(dev_eui):
        raise SourceInputError("topic", f"devEui {parts[n + 2]!r} is not 16 hex digits")
    return app, dev_eui, event


def parse_event(topic: str, payload: bytes, *, prefix: str = "application") -> Event:
    """The event a message carries, JSON or protobuf (told apart by the first byte: JSON is an object)."""
    app, topic_eui, event = parse_topic(topic, prefix)
    msg = _MESSAGES[event]()
    payload = bytes(payload)
    if not payload:
        raise SourceInputError("payload", "empty")
    if payload[:1] == b"{":
        try:
            json_format.Parse(payload.decode("utf-8"), msg, ignore_unknown_fields=True)
        except UnicodeDecodeError as exc:
            raise SourceInputError("payload", f"JSON is not UTF-8: {exc}") from None
        except json_format.ParseError as exc:
            raise SourceInputError(_json_field(str(exc)), f"ChirpStack JSON: {exc}") from None
    else:
        try:
            msg.ParseFromString(payload)
        except DecodeError as exc:
            raise SourceInputError("payload", f"ChirpStack protobuf ({type(msg).__name__}): {exc}") from None
    device = _device(msg, topic_eui, app)
    if event == "up":
        return _uplink(msg, device)
    if event == "join":
        return Join(device, _required(msg.deduplication_id, "deduplicationId"), msg.dev_addr)
    if event == "ack":
        return Ack(device, _required(msg.queue_item_id, "queueItemId"), bool(msg.acknowledged))
    return TxAck(device, _required(msg.queue_item_id, "queueItemId"))


def _json_field(text: str) -> str:
    # protobuf names the field in its message: 'Failed to parse fCnt field: ...'
    marker = "Failed to parse "
    if marker in text:
        rest = text.split(marker, 1)[1]
        return rest.split(" field", 1)[0]
    return "payload"


def _required(value: str, name: str) -> str:
    if not value:
        raise SourceInputError(name, "missing")
    return value


def _device(msg: Any, topic_eui: str, topic_app: str) -> DeviceInfo:
    if not msg.HasField("device_info"):
        raise SourceInputError("deviceInfo", "missing")
    info = msg.device_info
    dev_eui = info.dev_eui.lower()
    if not dev_eui:
        raise SourceInputError("deviceInfo.devEui", "missing")
    if not is_device_id(dev_eui):
        raise SourceInputError("deviceInfo.devEui", f"{info.dev_eui!r} is not 16 hex digits")
    if dev_eui != topic_eui:
        raise SourceInputError("deviceInfo.devEui", f"{dev_eui} differs from the topic's {topic_eui}")
    app = info.application_id or topic_app
    if app != topic_app:
        raise SourceInputError("deviceInfo.applicationId", f"{app!r} differs from the topic's {topic_app!r}")
    return DeviceInfo(dev_eui, app, info.device_name, dict(info.tags))


def _uplink(msg: Any, device: DeviceInfo) -> Uplink:
    dedup = _required(msg.deduplication_id, "deduplicationId")
    if msg.f_port == 0:
        # FPort 0 carries MAC commands only; ChirpStack does not publish those, an application never sees one
        raise SourceInputError("fPort", "missing or 0 (an application uplink has FPort 1 .. 223)")
    if msg.f_port > 223:
        raise SourceInputError("fPort", f"{msg.f_port} is outside 1 .. 223")
    best = max(msg.rx_info, key=lambda r: r.rssi, default=None)
    obj = None
    if msg.HasField("object"):
        obj = json.dumps(json_format.MessageToDict(msg.object), separators=(",", ":"), sort_keys=True)
    gateway = best.gateway_id.lower() if best is not None and best.gateway_id else None
    return Uplink(
        device=device,
        dedup_id=dedup,
        fcnt=msg.f_cnt,
        fport=msg.f_port,
        data=bytes(msg.data),
        object_json=obj,
        rssi=best.rssi if best is not None else None,
        snr=best.snr if best is not None else None,
        gateway_id=gateway if gateway and is_device_id(gateway) else None,
    )


def command_topic(prefix: str, application_id: str, dev_eui: str) -> str:
    return f"{prefix}/{application_id}/device/{dev_eui}/command/down"


def build_command(
    *, queue_id: str, dev_eui: str, fport: int, data: bytes, confirmed: bool = True, encoding: str = "json"
) -> bytes:
    """A ``command/down`` payload: ChirpStack enqueues it under ``queue_id`` (its ack/txack name it)."""
    cmd = integration.DownlinkCommand(
        id=queue_id, dev_eui=dev_eui, confirmed=confirmed, f_port=fport, data=data
    )
    if encoding == "protobuf":
        return cmd.SerializeToString()
    return json_format.MessageToJson(cmd, indent=None).encode()
