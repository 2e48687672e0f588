"""Downlinks: commands for a node, queued until they ride on the ACK of its next uplink.

Lifecycle: queued -> sent (on the ACK of uplink ``sent_fcnt``) -> acked | failed (from
the node's answer on uplink port 2), or expired (never sent in time). A sent downlink
the node never answers is marked failed when it expires. Every transition enqueues an
outbox 'downlink_status' message in the same transaction so the cloud sees it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from edge import outbox
from edge.errors import ValidationError
from edge.radio import COMMAND_NAMES, MAX_COMMAND, DownlinkResult, encode_command
from edge.store import transaction

SOURCES = ("panel", "cloud", "rule", "cli")
MAX_TTL_S = 30 * 86400


def validate(command: str, args: Any) -> dict[str, Any]:
    """Check a command and its arguments; return the normalised arguments.

    Raises ValidationError naming the offending field.
    """
    if command not in COMMAND_NAMES:
        raise ValidationError("command", f"{command!r} is not one of {', '.join(COMMAND_NAMES)}")
    if not isinstance(args, dict):
        raise ValidationError("args", "must be an object")
    if command == "set_interval":
        seconds = _int_arg(args, "seconds")
        if not 10 <= seconds <= 86400:
            raise ValidationError("seconds", f"{seconds} is outside 10 .. 86400")
        clean: dict[str, Any] = {"seconds": seconds}
    elif command == "set_output":
        output = _int_arg(args, "output")
        value = _int_arg(args, "value")
        if not 0 <= output <= 255:
            raise ValidationError("output", f"{output} is outside 0 .. 255")
        if value not in (0, 1):
            raise ValidationError("value", f"{value} is not 0 or 1")
        clean = {"output": output, "value": value}
    elif command == "config":
        values = args.get("values")
        if not isinstance(values, dict) or not values:
            raise ValidationError("values", "must be a non-empty object of config keys")
        for key in values:
            if not isinstance(key, str) or not key:
                raise ValidationError("values", f"key {key!r} is not a non-empty string")
        clean = {"values": values}
    else:
        clean = {}
    extra = set(args) - set(clean)
    if extra:
        raise ValidationError(min(extra), f"not an argument of {command}")
    size = len(encode_command(0, command, clean))
    if size > MAX_COMMAND:
        raise ValidationError(
            "values" if command == "config" else "args",
            f"encoded command is {size} bytes; a downlink carries at most {MAX_COMMAND}",
        )
    return clean


def _int_arg(args: dict[str, Any], name: str) -> int:
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ValidationError(name, "must be an integer")
    return value


def queue(
    conn: sqlite3.Connection,
    device_id: str,
    command: str,
    args: dict[str, Any],
    *,
    source: str,
    ttl_s: float = 86400,
    now: float,
) -> int:
    """Validate and queue a downlink for ``device_id``; return its id.

    Runs in its own transaction (or joins the caller's, if one is open).
    """
    clean = validate(command, args)
    if source not in SOURCES:
        raise ValidationError("source", f"{source!r} is not one of {', '.join(SOURCES)}")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValidationError("ttl_s", f"{ttl_s} is outside 0 .. {MAX_TTL_S} seconds")
    if conn.in_transaction:
        return _insert(conn, device_id, command, clean, source, ttl_s, now)
    with transaction(conn):
        return _insert(conn, device_id, command, clean, source, ttl_s, now)


def _insert(conn, device_id, command, args, source, ttl_s, now) -> int:
    if conn.execute("SELECT 1 FROM devices WHERE id = ?", (device_id,)).fetchone() is None:
        raise ValidationError("device_id", f"no registered device {device_id!r}")
    cur = conn.execute(
        "INSERT INTO downlinks (device_id, command, args, source, created_at, expires_at, status, status_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 'queued', ?)",
        (device_id, command, json.dumps(args, separators=(",", ":")), source, now, now + ttl_s, now),
    )
    dl_id = int(cur.lastrowid)
    _publish(conn, dl_id, now)
    return dl_id


@dataclass(frozen=True)
class Pending:
    """A downlink chosen to ride on an ACK."""

    id: int
    command: str
    args: dict[str, Any]

    def encode(self) -> bytes:
        return encode_command(self.id, self.command, self.args)


def take_for_uplink(conn: sqlite3.Connection, device_id: str, fcnt: int, *, now: float) -> Pending | None:
    """Pick the oldest live queued downlink for a device and mark it sent on uplink ``fcnt``.

    Call inside the ingest transaction that stores the uplink, so 'sent' is durable
    exactly when the ACK carrying it can go out.
    """
    row = conn.execute(
        "SELECT id, command, args FROM downlinks WHERE device_id = ? AND status = 'queued' AND expires_at > ?"
        " ORDER BY id LIMIT 1",
        (device_id, now),
    ).fetchone()
    if row is None:
        return None
    conn.execute(
        "UPDATE downlinks SET status = 'sent', status_at = ?, sent_fcnt = ? WHERE id = ?", (now, fcnt, row[0])
    )
    _publish(conn, row[0], now)
    return Pending(row[0], row[1], json.loads(row[2]))


def sent_on(conn: sqlite3.Connection, device_id: str, fcnt: int) -> Pending | None:
    """The downlink that rode on the ACK of uplink ``fcnt`` (to repeat it for a duplicate)."""
    row = conn.execute(
        "SELECT id, command, args FROM downlinks WHERE device_id = ? AND sent_fcnt = ? AND status = 'sent'",
        (device_id, fcnt),
    ).fetchone()
    return None if row is None else Pending(row[0], row[1], json.loads(row[2]))


def record_result(
    conn: sqlite3.Connection, device_id: str, result: DownlinkResult, *, now: float
) -> int | None:
    """Apply the node's answer (uplink port 2) to the matching sent downlink; return its id.

    The air carries ``id & 0xFFFF``; the newest sent downlink of the device whose low
    16 bits match is the one answered.
    """
    row = conn.execute(
        "SELECT id FROM downlinks WHERE device_id = ? AND status = 'sent' AND (id & 65535) = ?"
        " ORDER BY id DESC LIMIT 1",
        (device_id, result.dl_id),
    ).fetchone()
    if row is None:
        return None
    status = "acked" if result.ok else "failed"
    conn.execute(
        "UPDATE downlinks SET status = ?, status_at = ?, result = ? WHERE id = ?",
        (status, now, result.describe(), row[0]),
    )
    _publish(conn, row[0], now)
    return int(row[0])


def mark(conn: sqlite3.Connection, dl_id: int, status: str, *, result: str | None = None, now: float) -> bool:
    """Set a downlink's status from outside the uplink path (a network server's ack/txack event).

    Only forward moves: queued -> sent -> acked | failed; an event that arrives twice changes nothing.
    Returns whether the status changed (then the outbox has its status message).
    """
    forward = {"sent": ("queued",), "acked": ("queued", "sent"), "failed": ("queued", "sent")}
    if status not in forward:
        raise ValidationError("status", f"{status!r} is not one of {', '.join(forward)}")
    marks = ",".join("?" * len(forward[status]))
    cur = conn.execute(
        f"UPDATE downlinks SET status = ?, status_at = ?, result = COALESCE(?, result) WHERE id = ? AND status IN ({marks})",
        (status, now, result, dl_id, *forward[status]),
    )
    if cur.rowcount:
        _publish(conn, dl_id, now)
    return bool(cur.rowcount)


def expire(conn: sqlite3.Connection, *, now: float) -> int:
    """Expire queued downlinks past their time, fail sent ones never answered; return how many."""
    rows = conn.execute(
        "SELECT id, status FROM downlinks WHERE status IN ('queued', 'sent') AND expires_at <= ?", (now,)
    ).fetchall()
    for dl_id, status in rows:
        if status == "queued":
            conn.execute("UPDATE downlinks SET status = 'expired', status_at = ? WHERE id = ?", (now, dl_id))
        else:
            conn.execute(
                "UPDATE downlinks SET status = 'failed', status_at = ?, result = 'no answer from the node'"
                " WHERE id = ?",
                (now, dl_id),
            )
        _publish(conn, dl_id, now)
    return len(rows)


def get(conn: sqlite3.Connection, dl_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM downlinks WHERE id = ?", (dl_id,)).fetchone()
    if row is None:
        return None
    out = dict(row)
    out["args"] = json.loads(out["args"])
    return out


def _publish(conn: sqlite3.Connection, dl_id: int, now: float) -> None:
    d = get(conn, dl_id)
    assert d is not None
    body = {
        "id": f"downlink:{dl_id}:{d['status']}",
        "downlink": dl_id,
        "device": d["device_id"],
        "command": d["command"],
        "args": d["args"],
        "source": d["source"],
        "status": d["status"],
        "result": d["result"],
        "ts": now,
    }
    outbox.enqueue(
        conn,
        msg_id=body["id"],
        kind="downlink_status",
        body=body,
        device_id=d["device_id"],
        ref_id=dl_id,
        priority=outbox.PRIORITY_READING,
        now=now,
    )
