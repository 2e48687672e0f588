"""The sync cursor: per sink and device, the reading id up to which the sink has everything.

The cloud copy of a reading is not a row of its own: a sink has received a reading when
the reading's id is at or below the sink's cursor for that device (readings of a device
are one id range in fcnt order, and sync sends them in that order). Advancing the cursor
is one small row write per device per batch instead of one write per reading.

Fieldpost has one cloud target; its cursor is named :data:`CLOUD`, whatever the transport
(MQTT or HTTPS, whichever endpoint): switching endpoint carries on from where the last one
stopped, as the outbox's "synced" mark did before. Other names are for further sinks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass

from edge.store.readings import FCNT_BITS, FCNT_MASK, SYNCED_PORTS

CLOUD = "cloud"

# Per device: the id after which its unsynced readings start (the cursor, or just below the
# device's first possible id when the sink never had any of them).
_AFTER = f"coalesce(c.synced_to, (d.n << {FCNT_BITS}) - 1)"
_HIGH = f"((d.n << {FCNT_BITS}) | {FCNT_MASK})"
_PORTS = ",".join(str(p) for p in SYNCED_PORTS)


def load(conn: sqlite3.Connection, sink: str = CLOUD) -> dict[int, int]:
    """{device number: synced_to} for the sink's devices that have a cursor."""
    return {
        int(n): int(k)
        for n, k in conn.execute("SELECT device, synced_to FROM sync_cursor WHERE sink = ?", (sink,))
    }


def advance(conn: sqlite3.Connection, marks: Mapping[int, int], sink: str = CLOUD) -> None:
    """Move the cursors forward to ``marks`` ({device number: reading id}); never backwards.

    Call inside a transaction.
    """
    conn.executemany(
        "INSERT INTO sync_cursor (sink, device, synced_to) VALUES (?, ?, ?)"
        " ON CONFLICT (sink, device) DO UPDATE SET synced_to = max(synced_to, excluded.synced_to)",
        [(sink, n, k) for n, k in sorted(marks.items())],
    )


def rewind(conn: sqlite3.Connection, first_new: Mapping[int, int]) -> None:
    """New readings were stored ({device number: lowest new id}): every sink's cursor that is past one
    goes back to just below it. Call inside the transaction that stores them."""
    conn.executemany(
        "UPDATE sync_cursor SET synced_to = ?1 - 1 WHERE device = ?2 AND synced_to >= ?1",
        [(rid, n) for n, rid in first_new.items()],
    )


@dataclass(frozen=True)
class Pending:
    device: int  # device number
    after: int  # readings with an id above this (up to the device's range end) are unsynced


def pending_devices(conn: sqlite3.Connection, sink: str = CLOUD) -> list[Pending]:
    """Every device with readings past its cursor: one index seek per device."""
    rows = conn.execute(
        f"SELECT d.n, {_AFTER} FROM device_numbers AS d"
        " LEFT JOIN sync_cursor AS c ON c.sink = ? AND c.device = d.n"
        f" WHERE EXISTS (SELECT 1 FROM readings AS r WHERE r.id > {_AFTER} AND r.id <= {_HIGH})",
        (sink,),
    ).fetchall()
    return [Pending(int(n), int(after)) for n, after in rows]


@dataclass(frozen=True)
class Backlog:
    readings: int  # unsynced readings the cloud receives (ports 1 and 3)
    oldest_ms: int | None  # receive time of the oldest of them


def backlog(conn: sqlite3.Connection, sink: str = CLOUD, *, limit: int | None = None) -> Backlog:
    """Unsynced readings for the sink. With ``limit``, counting stops at about that many
    (what backpressure needs to know is whether the backlog is over its mark)."""
    total, oldest = 0, None
    for pending in pending_devices(conn, sink):
        high = (pending.device << FCNT_BITS) | FCNT_MASK
        cap = "" if limit is None else f" LIMIT {max(0, int(limit) - total)}"
        count, first = conn.execute(
            f"SELECT count(*), min(received_ms) FROM (SELECT received_ms FROM readings"
            f" WHERE id > ? AND id <= ? AND port IN ({_PORTS}){cap})",
            (pending.after, high),
        ).fetchone()
        total += count
        if first is not None and (oldest is None or first < oldest):
            oldest = first
        if limit is not None and total >= limit:
            break
    return Backlog(total, oldest)


def synced_through(conn: sqlite3.Connection) -> dict[int, int]:
    """{device number: id} up to which EVERY sink with a cursor has the device's readings.

    What retention may treat as synced. A device missing from a sink's cursors has nothing
    synced there, so it is left out (nothing of it counts as synced).
    """
    sinks = [row[0] for row in conn.execute("SELECT DISTINCT sink FROM sync_cursor")]
    if not sinks:
        return {}
    out: dict[int, int] = {}
    for n, k, count in conn.execute(
        "SELECT device, min(synced_to), count(*) FROM sync_cursor GROUP BY device"
    ):
        if count == len(sinks):
            out[int(n)] = int(k)
    return out


def oldest_unsynced_ms(conn: sqlite3.Connection, sink: str = CLOUD) -> int | None:
    """Receive time of the oldest unsynced reading: the first one past each device's cursor."""
    oldest = None
    for pending in pending_devices(conn, sink):
        high = (pending.device << FCNT_BITS) | FCNT_MASK
        row = conn.execute(
            f"SELECT received_ms FROM readings WHERE id > ? AND id <= ? AND port IN ({_PORTS}) ORDER BY id LIMIT 1",
            (pending.after, high),
        ).fetchone()
        if row is not None and (oldest is None or row[0] < oldest):
            oldest = row[0]
    return oldest
