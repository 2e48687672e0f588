"""The enqueue side of the outbox: the messages for the cloud that are not readings.

Alarms, downlink status changes and events are written here in the SAME transaction as the
change they carry, so the cloud copy can never be lost between the two. Readings are not
copied here: sync reads them from the readings table past its cursor (edge.store.cursor).
The sync side (edge/sync/) reads and marks rows; this module only adds them.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from edge.errors import ValidationError

KINDS = ("reading", "alarm", "event", "status", "downlink_status")
PRIORITY_ALARM = 0
PRIORITY_READING = 1
PRIORITY_BULK = 2


def enqueue(
    conn: sqlite3.Connection,
    *,
    msg_id: str,
    kind: str,
    body: dict[str, Any],
    device_id: str | None = None,
    ref_id: int | None = None,
    priority: int = PRIORITY_READING,
    now: float,
) -> int:
    """Add one message for the cloud; return its outbox row id.

    Call inside the caller's transaction. ``msg_id`` is the stable id the cloud
    deduplicates by: enqueuing the same id twice keeps the first row and returns
    its id (a retried write never produces a second message).
    """
    if kind not in KINDS:
        raise ValidationError("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    if priority not in (PRIORITY_ALARM, PRIORITY_READING, PRIORITY_BULK):
        raise ValidationError("priority", f"{priority!r} is not 0 (alarm), 1 (reading) or 2 (bulk)")
    if not msg_id:
        raise ValidationError("msg_id", "must not be empty")
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    cur = conn.execute(
        "INSERT INTO outbox (msg_id, kind, priority, device_id, ref_id, body, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (msg_id) DO NOTHING",
        (msg_id, kind, priority, device_id, ref_id, text, now),
    )
    if cur.rowcount == 1:
        assert cur.lastrowid is not None  # sqlite3 sets it after every INSERT
        return cur.lastrowid
    return int(conn.execute("SELECT id FROM outbox WHERE msg_id = ?", (msg_id,)).fetchone()[0])
