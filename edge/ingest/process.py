"""What happens to one UPLINK inside the ingest transaction. No threads, no I/O but SQL.

``handle_uplink`` classifies the frame (malformed, unknown device, bad MIC, replay,
duplicate, new), writes what a new reading needs (the reading, its outbox row, the
device's state, a downlink marked sent) and returns the ACK payload to send once
the transaction has committed. Each call runs inside a savepoint, so a failure on
one frame never loses the others of its batch.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from edge import downlinks, outbox, registry
from edge.codecs import CodecRunner
from edge.logs import kv
from edge.radio import (
    PORT_DOWNLINK_RESULT,
    PORT_READINGS,
    PORT_STATUS,
    AckResult,
    RadioFormatError,
    build_ack,
    build_downlink,
    parse_downlink_result,
    parse_frame,
    parse_serial_uplink,
)

log = logging.getLogger("fieldpost.ingest")

# Port-3 status keys are one letter on the air (firmware budget); their names and units.
STATUS_KEYS = {
    "b": ("battery", "V"),
    "u": ("uptime", "s"),
    "j": ("journal", ""),
    "a": ("airtime", "s"),
    "d": ("deferred", ""),
    "r": ("rejects", ""),
    "m": ("bad_mic", ""),
    "x": ("dropped", ""),
    "f": ("given_up", ""),  # own frames the module gave up after repeated refusals (fp/refusal.py)
}


@dataclass(frozen=True)
class CommittedReading:
    """A reading as the post-commit hooks (rules, panel live view) receive it."""

    id: int
    device_id: str
    fcnt: int
    port: int
    received_at: float
    values: list[dict[str, Any]]  # [{channel, name, value, unit}], empty if not decoded
    raw: bytes
    rssi: int
    snr: float
    bridge_id: str | None
    decode_error: str | None = None

    @property
    def msg_id(self) -> str:
        return f"{self.device_id}:{self.fcnt}"


@dataclass
class Outcome:
    result: AckResult
    ack: bytes  # the ACK payload
    device_id: str | None = None
    fcnt: int | None = None
    reading: CommittedReading | None = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def handle_uplink(
    conn: sqlite3.Connection,
    payload: bytes,
    *,
    bridge_id: str | None,
    codecs: CodecRunner,
    now: float,
) -> Outcome:
    """Process one UPLINK payload inside the caller's transaction."""
    conn.execute("SAVEPOINT uplink")
    try:
        outcome = _handle(conn, payload, bridge_id=bridge_id, codecs=codecs, now=now)
    except BaseException:
        conn.execute("ROLLBACK TO uplink")
        conn.execute("RELEASE uplink")
        raise
    conn.execute("RELEASE uplink")
    return outcome


def _reject(result: AckResult, detail: str, device_id: str | None = None, fcnt: int | None = None) -> Outcome:
    return Outcome(result, build_ack(result), device_id, fcnt, detail=detail)


def _handle(conn, payload, *, bridge_id, codecs, now) -> Outcome:
    try:
        rx = parse_serial_uplink(payload)
        frame = parse_frame(rx.frame)
    except RadioFormatError as exc:
        return _reject(AckResult.MALFORMED, str(exc))
    dev, fcnt = frame.device_id, frame.fcnt
    device = conn.execute(
        "SELECT key, codec, last_fcnt, key_rotated_at FROM devices WHERE id = ?", (dev,)
    ).fetchone()
    if device is None:
        registry.note_unknown(conn, dev, rssi=rx.rssi, bridge=bridge_id, frame=rx.frame, now=now)
        return _reject(AckResult.UNKNOWN_DEVICE, "not registered: quarantined", dev, fcnt)
    key = bytes(device["key"])
    if not frame.mic_ok(key):
        return _reject(AckResult.BAD_MIC, "MIC does not match the registered key", dev, fcnt)

    stored = conn.execute(
        "SELECT id, received_at, port, raw FROM readings WHERE device_id = ? AND fcnt = ?", (dev, fcnt)
    ).fetchone()
    if stored is not None and _is_same_reading(stored, frame, device["key_rotated_at"]):
        # Stored before (a retransmission whose ACK was lost): ACK again, with the same downlink.
        pending = downlinks.sent_on(conn, dev, fcnt)
        down = build_downlink(key, dev, fcnt, pending.encode() if pending else None)
        return Outcome(
            AckResult.DUPLICATE, build_ack(AckResult.DUPLICATE, down), dev, fcnt, detail="stored before"
        )
    if fcnt <= device["last_fcnt"] or stored is not None:
        why = (
            f"fcnt {fcnt} <= last {device['last_fcnt']}"
            if stored is None
            else f"fcnt {fcnt} collides with a reading stored before re-provisioning"
        )
        return _reject(AckResult.REPLAYED, why, dev, fcnt)

    values, error = _decode(conn, codecs, dev, device["codec"], frame.port, frame.payload, now)
    cur = conn.execute(
        "INSERT INTO readings (device_id, fcnt, port, received_at, rx_time, rssi, snr, bridge_id, raw, decoded,"
        " decode_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            dev,
            fcnt,
            frame.port,
            now,
            rx.rx_time or None,
            rx.rssi,
            rx.snr,
            bridge_id,
            frame.payload,
            None if values is None else json.dumps(values, separators=(",", ":"), ensure_ascii=False),
            error,
        ),
    )
    reading = CommittedReading(
        id=int(cur.lastrowid),
        device_id=dev,
        fcnt=fcnt,
        port=frame.port,
        received_at=now,
        values=values or [],
        raw=frame.payload,
        rssi=rx.rssi,
        snr=rx.snr,
        bridge_id=bridge_id,
        decode_error=error,
    )
    battery = next(
        (v["value"] for v in reading.values if v["name"] in ("voltage", "battery") and v["unit"] == "V"), None
    )
    conn.execute(
        "UPDATE devices SET last_fcnt = ?, last_seen = ?, last_rssi = ?, last_snr = ?, last_bridge = ?,"
        " battery_v = coalesce(?, battery_v) WHERE id = ?",
        (fcnt, now, rx.rssi, rx.snr, bridge_id, battery, dev),
    )
    if frame.port in (PORT_READINGS, PORT_STATUS):
        outbox.enqueue(
            conn,
            msg_id=reading.msg_id,
            kind="reading" if frame.port == PORT_READINGS else "status",
            body=outbox_body(reading),
            device_id=dev,
            ref_id=reading.id,
            priority=outbox.PRIORITY_READING,
            now=now,
        )
    pending = downlinks.take_for_uplink(conn, dev, fcnt, now=now)
    down = build_downlink(key, dev, fcnt, pending.encode() if pending else None)
    extra = {"downlink": pending.id} if pending else {}
    return Outcome(AckResult.STORED, build_ack(AckResult.STORED, down), dev, fcnt, reading, extra=extra)


def _is_same_reading(stored: sqlite3.Row, frame, rotated_at: float | None) -> bool:
    """Whether a verified frame at a stored (device, fcnt) is that stored reading sent again.

    Under the key it was stored with, a valid MIC says so. A reading stored before a key
    rotation is the same one if port and payload match: the firmware signs journaled frames
    when it sends them, so a frame whose ACK was lost comes back under the new key, and
    answering it "replayed" would wedge the node's journal on it. A different payload at a
    stored fcnt is a reset counter colliding with an old reading: a replay.
    """
    if rotated_at is None or stored["received_at"] >= rotated_at:
        return True
    return stored["port"] == frame.port and bytes(stored["raw"]) == bytes(frame.payload)


def _decode(conn, codecs: CodecRunner, dev: str, codec: str, port: int, payload: bytes, now: float):
    """Values and error for a payload, by port; the raw payload is stored whatever happens."""
    if port == PORT_READINGS:
        values, error = codecs.decode(codec, port, payload)
        if error:
            log.warning("decode failed %s", kv(device=dev, codec=codec, error=error))
        return values, error
    if port == PORT_DOWNLINK_RESULT:
        try:
            result = parse_downlink_result(payload)
        except RadioFormatError as exc:
            return None, f"downlink result: {exc}"
        dl = downlinks.record_result(conn, dev, result, now=now)
        values = [
            {
                "channel": 0,
                "name": "downlink_id",
                "value": dl if dl is not None else result.dl_id,
                "unit": "",
            },
            {"channel": 0, "name": "downlink_result", "value": result.result, "unit": ""},
        ]
        return values, None if dl is not None else f"no sent downlink with dl_id {result.dl_id}"
    if port == PORT_STATUS:
        try:
            status = json.loads(bytes(payload).decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            return None, f"status: {exc}"
        if not isinstance(status, dict):
            return None, "status: not a JSON object"
        conn.execute("UPDATE devices SET status = ? WHERE id = ?", (json.dumps(status), dev))
        values = []
        for k, v in status.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                name, unit = STATUS_KEYS.get(k, (k, ""))
                values.append({"channel": 0, "name": name, "value": v, "unit": unit})
        return values, None
    return None, f"no decoder for port {port}"


def outbox_body(r: CommittedReading) -> dict[str, Any]:
    """The document the cloud receives for a reading (also what ``fieldpost db export --format json`` writes)."""
    return {
        "id": r.msg_id,
        "device": r.device_id,
        "fcnt": r.fcnt,
        "ts": r.received_at,
        "port": r.port,
        "values": r.values,
        "raw": r.raw.hex(),
        "rssi": r.rssi,
        "snr": r.snr,
        "bridge": r.bridge_id,
    }
