"""What goes on the wire: topics, batch envelopes, compression (pure, no I/O).

Generic profile, one message per batch on ``<prefix>/<site>/<device>/up``::

    {"v": 1, "site": s, "device": d, "batch": key,
     "messages": [{"kind": "reading", "id": "<dev>:<fcnt>", "body": {...}}, ...]}

as JSON or CBOR; with ``compression = "gzip"`` the whole payload is gzip (it starts
with the gzip magic 1f 8b, which neither JSON nor a CBOR map ever does, so a
consumer can tell). ThingsBoard gets its own gateway API shapes (uncompressed JSON:
ThingsBoard does not inflate payloads). HTTPS posts the same envelope as JSON with
``Content-Encoding: gzip``.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import cbor2

from edge.sync.batching import READING, Batch, Message

EDGE_ROUTE = "_edge"  # messages about the site itself (no device); device ids are 16 hex chars
TB_TELEMETRY = "v1/gateway/telemetry"
TB_CONNECT = "v1/gateway/connect"
TB_RPC = "v1/gateway/rpc"
TB_GATEWAY_TELEMETRY = "v1/devices/me/telemetry"
GZIP_MAGIC = b"\x1f\x8b"


# ---------------------------------------------------------------- routes and topics


def device_route(msg: Message) -> str:
    return msg.device_id or EDGE_ROUTE


def thingsboard_route(msg: Message) -> str:
    # Device messages share the gateway telemetry topic; site messages go to the gateway's own.
    return "gateway" if msg.device_id else EDGE_ROUTE


def single_route(msg: Message) -> str:
    return "all"


def up_topic(prefix: str, site: str, route: str) -> str:
    return f"{prefix}/{site}/{route}/up"


def down_topic_filter(prefix: str, site: str) -> str:
    return f"{prefix}/{site}/+/down"


def device_of_down_topic(prefix: str, site: str, topic: str) -> str | None:
    head = f"{prefix}/{site}/"
    if not topic.startswith(head) or not topic.endswith("/down"):
        return None
    device = topic[len(head) : -len("/down")]
    return device if device and "/" not in device else None


# ---------------------------------------------------------------- generic envelope


def envelope_json(batch: Batch, site: str) -> bytes:
    # Bodies are already JSON text in the outbox: splice them in rather than parse and re-dump.
    device = None if batch.route in (EDGE_ROUTE, "all") else batch.route
    items = ",".join(
        # A reading's kind and id are known to need no escaping ("reading", "<16 hex>:<digits>").
        f'{{"kind":"{m.kind}","id":"{m.msg_id}","body":{m.body}}}'
        if m.source == READING
        else f'{{"kind":{json.dumps(m.kind)},"id":{json.dumps(m.msg_id)},"body":{m.body}}}'
        for m in batch.messages
    )
    head = (
        f'{{"v":1,"site":{json.dumps(site)},"device":{json.dumps(device)},"batch":"{batch.key}","messages":['
    )

    return (head + items + "]}").encode()


def envelope_cbor(batch: Batch, site: str) -> bytes:
    device = None if batch.route in (EDGE_ROUTE, "all") else batch.route
    doc = {
        "v": 1,
        "site": site,
        "device": device,
        "batch": batch.key,
        "messages": [{"kind": m.kind, "id": m.msg_id, "body": json.loads(m.body)} for m in batch.messages],
    }
    return cbor2.dumps(doc)


def compress(payload: bytes, compression: str) -> bytes:
    if compression == "gzip":
        # mtime=0: the same batch compresses to the same bytes on every resend.
        return gzip.compress(payload, compresslevel=6, mtime=0)
    return payload


def decode_envelope(payload: bytes) -> dict[str, Any]:
    """The cloud side of the generic profile (used by tests and as a reference for consumers)."""
    if payload[:2] == GZIP_MAGIC:
        payload = gzip.decompress(payload)
    if payload[:1] == b"{":
        return json.loads(payload)
    return cbor2.loads(payload)


# ---------------------------------------------------------------- ThingsBoard gateway API


def thingsboard_values(msg: Message, body: Any = None) -> dict[str, Any]:
    """Flatten one outbox body into ThingsBoard telemetry key/values (msg_id kept for dedupe).

    ``body`` is ``msg.body`` already decoded, when the caller has it.
    """
    if body is None:
        body = json.loads(msg.body)
    values: dict[str, Any] = {"msg_id": msg.msg_id}
    if msg.kind == "reading":
        names_seen: set[str] = set()
        for v in body.get("values") or []:
            name = str(v.get("name") or f"ch{v.get('channel')}")
            if name in names_seen:  # two channels with one name: keep both
                name = f"{name}_{v.get('channel')}"
            names_seen.add(name)
            values[name] = v.get("value")
        for key in ("fcnt", "rssi", "snr", "port"):
            if body.get(key) is not None:
                values[key] = body[key]
    elif msg.kind == "alarm":
        for key in ("alarm", "rule", "state", "severity", "message", "value"):
            values[f"alarm_{key}"] = body.get(key)
    elif msg.kind == "downlink_status":
        for key in ("downlink", "command", "status", "result"):
            values[f"downlink_{key}"] = body.get(key)
    else:
        for key, value in body.items():
            if isinstance(value, (str, int, float, bool)) or value is None:
                values[f"{msg.kind}_{key}"] = value
    return values


def _point(msg: Message) -> dict[str, Any]:
    """One telemetry point ``{"ts": ms, "values": {...}}``, decoding the body once."""
    body = json.loads(msg.body)
    ts = body.get("ts") if isinstance(body, dict) else None
    ts_ms = round(float(ts if isinstance(ts, (int, float)) else msg.created_at) * 1000)
    return {"ts": ts_ms, "values": thingsboard_values(msg, body)}


def thingsboard_telemetry(batch: Batch) -> bytes:
    """``{"<device>": [{"ts": ms, "values": {...}}, ...]}`` for v1/gateway/telemetry,
    or ``[{"ts": ms, "values": {...}}]`` for the gateway's own v1/devices/me/telemetry."""
    if batch.route == EDGE_ROUTE:
        doc: Any = [_point(m) for m in batch.messages]
    else:
        doc = {}
        for m in batch.messages:
            doc.setdefault(m.device_id, []).append(_point(m))
    return json.dumps(doc, separators=(",", ":")).encode()


def thingsboard_connect(device_id: str) -> bytes:
    return json.dumps({"device": device_id}).encode()


# ---------------------------------------------------------------- MQTT packet size


def mqtt_publish_size(topic: str, payload_len: int, qos: int, mqtt5: bool) -> int:
    """Exact size of a PUBLISH packet on the wire (what the budget and the benchmark count)."""
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + (1 if mqtt5 else 0) + payload_len
    length_bytes = 1
    n = remaining
    while n >= 128:
        n //= 128
        length_bytes += 1
    return 1 + length_bytes + remaining
