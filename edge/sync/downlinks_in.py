"""Downlink requests arriving from the cloud: parse, validate, queue, answer.

Generic profile: ``<prefix>/<site>/<device>/down`` carries
``{"id": "<request id>", "command": "set_interval", "args": {"seconds": 60}, "ttl_s": 3600}``.
ThingsBoard: ``v1/gateway/rpc`` carries ``{"device": d, "data": {"id": n, "method": m, "params": {...}}}``.

Accepted requests go through ``edge.downlinks.queue`` (validation, 'queued' row, its
'downlink_status' outbox message); the status changes after that (sent, acked,
failed, expired) reach the cloud through the outbox like everything else. A request
that fails validation is answered with a 'failed' downlink_status naming the field.
Everything is committed before the handler returns, i.e. before the broker gets
its PUBACK, so a request the broker considers delivered is never lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge import downlinks, outbox
from edge.errors import ValidationError
from edge.store import transaction
from edge.sync import encoding

log = logging.getLogger("fieldpost.sync")

DEFAULT_TTL_S = 86400


@dataclass(frozen=True)
class DownlinkRequest:
    device_id: str
    command: str
    args: dict[str, Any]
    ttl_s: float
    request_id: str | None  # the cloud's own id, echoed back in the status


def parse_generic(device_id: str, payload: bytes) -> DownlinkRequest:
    doc = _json_object(payload)
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, (str, int)):
        raise ValidationError("id", "must be a string or an integer")
    command = doc.get("command")
    if not isinstance(command, str) or not command:
        raise ValidationError("command", "missing")
    args = doc.get("args", {})
    ttl = doc.get("ttl_s", DEFAULT_TTL_S)
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise ValidationError("ttl_s", "must be a number of seconds")
    return DownlinkRequest(
        device_id,
        command,
        args,
        float(ttl),
        None if request_id is None else str(request_id),
    )


def parse_thingsboard_rpc(payload: bytes) -> DownlinkRequest:
    doc = _json_object(payload)
    device = doc.get("device")
    if not isinstance(device, str) or not device:
        raise ValidationError("device", "missing")
    data = doc.get("data")
    if not isinstance(data, dict):
        raise ValidationError("data", "must be an object")
    method = data.get("method")
    if not isinstance(method, str) or not method:
        raise ValidationError("method", "missing")
    params = data.get("params", {})
    if params is None:
        params = {}
    rpc_id = data.get("id")
    return DownlinkRequest(device, method, params, DEFAULT_TTL_S, None if rpc_id is None else str(rpc_id))


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError("payload", f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValidationError("payload", "must be a JSON object")
    return doc


def _request_msg_id(device_id: str, request_id: str | None, payload: bytes) -> str:
    ref = request_id if request_id is not None else hashlib.sha256(payload).hexdigest()[:16]
    return f"downlink-request:{device_id}:{ref}"


def accept(
    conn: sqlite3.Connection,
    req: DownlinkRequest,
    payload: bytes,
    *,
    now: float,
    dedupe: bool = True,
) -> tuple[int, bool]:
    """Queue the request; returns (downlink id, True if new).

    With ``dedupe`` a request id seen before (the broker redelivering after a crash
    between our commit and its PUBACK) is not queued twice. ThingsBoard RPC ids
    restart with the server, so they are not used for that.
    """
    msg_id = _request_msg_id(req.device_id, req.request_id, payload)
    if not dedupe or req.request_id is None:
        # Nothing to recognise a redelivery by: keep each request's answer distinct.
        msg_id += f":{int(now * 1000)}"
    with transaction(conn):
        if dedupe and req.request_id is not None:
            seen = conn.execute("SELECT ref_id FROM outbox WHERE msg_id = ?", (msg_id,)).fetchone()
            if seen is not None:
                return int(seen[0]), False
        dl_id = downlinks.queue(
            conn,
            req.device_id,
            req.command,
            req.args,
            source="cloud",
            ttl_s=req.ttl_s,
            now=now,
        )
        # Tells the cloud which edge downlink id its request became (later statuses carry that id).
        _answer(
            conn,
            msg_id,
            req.request_id,
            req.device_id,
            now,
            downlink=dl_id,
            command=req.command,
            status="queued",
            result=None,
        )
    return dl_id, True


def _answer(
    conn: sqlite3.Connection,
    msg_id: str,
    request_id: str | None,
    device: str | None,
    now: float,
    *,
    downlink: int | None,
    **fields: Any,
) -> None:
    """Enqueue the 'downlink_status' answer to a cloud request (inside the caller's transaction)."""
    body = {"id": msg_id, "request": request_id, "downlink": downlink, "device": device, **fields, "ts": now}
    outbox.enqueue(
        conn,
        msg_id=msg_id,
        kind="downlink_status",
        body=body,
        device_id=device,
        ref_id=downlink,
        priority=outbox.PRIORITY_READING,
        now=now,
    )


def reject(
    conn: sqlite3.Connection,
    device_id: str | None,
    request_id: str | None,
    payload: bytes,
    error: ValidationError,
    *,
    now: float,
) -> None:
    """Answer a request that failed validation with a 'failed' status naming the field."""
    device = device_id if device_id and len(device_id) <= 64 else None
    msg_id = _request_msg_id(device or "unknown", request_id, payload) + ":failed"
    if request_id is None:
        msg_id += f":{int(now * 1000)}"
    with transaction(conn):
        _answer(
            conn,
            msg_id,
            request_id,
            device,
            now,
            downlink=None,
            status="failed",
            result=f"{error.field}: {error.message}",
            field=error.field,
        )


def make_handler(
    conn: sqlite3.Connection,
    *,
    profile: str,
    prefix: str,
    site: str,
    clock: Callable[[], float],
) -> Callable[[str, bytes], list[tuple[str, bytes]]]:
    """The MQTT sink's on_downlink: returns the replies to publish right away (ThingsBoard RPC answers)."""

    def handle(topic: str, payload: bytes) -> list[tuple[str, bytes]]:
        now = clock()
        device_id: str | None = None
        request_id: str | None = None
        try:
            if profile == "thingsboard":
                if topic != encoding.TB_RPC or _is_rpc_reply(payload):
                    return []
                device_id, request_id = _tb_ids(payload)
                req = parse_thingsboard_rpc(payload)
            else:
                device_id = encoding.device_of_down_topic(prefix, site, topic)
                if device_id is None:
                    return []
                req = parse_generic(device_id, payload)
            request_id = req.request_id
            dl_id, new = accept(conn, req, payload, now=now, dedupe=profile != "thingsboard")
            log.info(
                "sync=downlink event=queued device=%s command=%s downlink=%d new=%s",
                req.device_id,
                req.command,
                dl_id,
                new,
            )
            return _tb_reply(
                profile,
                req.device_id,
                request_id,
                {"status": "queued", "downlink": dl_id},
            )
        except ValidationError as exc:
            log.warning(
                "sync=downlink event=rejected device=%s field=%s why=%r",
                device_id,
                exc.field,
                exc.message,
            )
            reject(
                conn,
                device_id if isinstance(device_id, str) else None,
                request_id,
                payload,
                exc,
                now=now,
            )
            return _tb_reply(
                profile,
                device_id,
                request_id,
                {"status": "failed", "error": str(exc), "field": exc.field},
            )
        except Exception:  # a broken request must never take the sync loop down
            log.exception("sync=downlink event=error topic=%s", topic)
            return []

    return handle


def _is_rpc_reply(payload: bytes) -> bool:
    # Our own answers come back on the same topic from brokers that echo to the publisher
    # (MQTT 3.1.1 has no "no local"): an answer has a top-level "id" and no method.
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(doc, dict) and "id" in doc and "method" not in (doc.get("data") or {})


def _tb_ids(payload: bytes) -> tuple[str | None, str | None]:
    # Best effort, so that even a request that fails validation can be answered.
    try:
        doc = json.loads(payload)
        device = doc.get("device")
        rpc_id = (doc.get("data") or {}).get("id")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None, None
    return (device if isinstance(device, str) else None), (None if rpc_id is None else str(rpc_id))


def _tb_reply(profile: str, device: Any, rpc_id: str | None, data: dict[str, Any]) -> list[tuple[str, bytes]]:
    if profile != "thingsboard" or not isinstance(device, str) or rpc_id is None:
        return []
    rid: Any = int(rpc_id) if rpc_id.isdigit() else rpc_id
    return [
        (
            encoding.TB_RPC,
            json.dumps({"device": device, "id": rid, "data": data}).encode(),
        )
    ]
