"""What a ChirpStack event changes in the store, inside the ingest writer's transaction. SQL only.

An uplink is one reading, keyed like every reading (device number << 32 | fcnt), so it is
deduplicated, synced and shown like a module's. Its stored fcnt is ``fcnt_base + fCnt``: a
LoRaWAN device's counter starts over at every join, so a join (or an fCnt that went back
without one) begins a new session whose base is past everything stored, and a new session's
fCnt 0 never collides with the last one's. The first session's base is 0, so the message id
is ``<devEui>:<fCnt>`` as ChirpStack counts. ChirpStack's ``deduplicationId`` is unique per
uplink: a message redelivered by the broker (its PUBACK lost in a crash) is known by it and
stored once. ChirpStack's decoded ``object``, the FPort and the fCnt as sent live beside the
reading in ``source_uplinks``.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import dataclass

from edge import downlinks, registry
from edge.ingest.process import CommittedReading
from edge.sources.chirpstack_events import MAX_FCNT, Ack, DeviceInfo, Event, Join, TxAck, Uplink
from edge.store import cursor, readings
from edge.store.numbers import Numbers

SOURCE = "chirpstack"
PORT = 1  # stored as sensor readings: the device's codec decodes them, sync sends them
CODEC = "chirpstack"  # a device whose readings are ChirpStack's decoded object


@dataclass(frozen=True, slots=True)
class Applied:
    result: str  # stored, duplicate, unknown_device, joined, downlink_acked, downlink_sent, ignored
    detail: str = ""
    reading_id: int | None = None
    reading: CommittedReading | None = None  # a stored uplink, for the post-commit hooks (rules, panel)


@dataclass(frozen=True)
class Policy:
    adopt_applications: tuple[str, ...]
    codec: str


def apply(conn: sqlite3.Connection, event: Event, *, numbers: Numbers, policy: Policy, now: float) -> Applied:
    if isinstance(event, Uplink):
        return _uplink(conn, event, numbers, policy, now)
    if isinstance(event, Join):
        return _join(conn, event, policy, now)
    if isinstance(event, Ack):
        return _downlink_event(conn, event.queue_id, "acked" if event.acknowledged else "failed", now)
    if isinstance(event, TxAck):
        return _downlink_event(conn, event.queue_id, "sent", now)
    raise TypeError(f"not a ChirpStack event: {event!r}")


def _known(
    conn: sqlite3.Connection, info: DeviceInfo, policy: Policy, now: float
) -> tuple[int, int, str] | None:
    """(fcnt_base, last_fcnt, codec) of a registered device, adopting it if its application is adopted;
    None: it is quarantined (recorded with its ChirpStack name and tags)."""
    row = conn.execute(
        "SELECT d.last_fcnt, s.fcnt_base, s.name, s.tags, d.codec FROM devices d LEFT JOIN source_devices s"
        " ON s.device_id = d.id WHERE d.id = ?",
        (info.dev_eui,),
    ).fetchone()
    tags = json.dumps(info.tags, separators=(",", ":"), sort_keys=True)
    if row is None and info.application_id not in policy.adopt_applications:
        _remember(conn, info, tags)
        return None
    if row is None:
        conn.execute(
            "INSERT INTO devices (id, name, key, codec, board, role, created_at, last_fcnt)"
            " VALUES (?, ?, ?, ?, 'chirpstack', 'node', ?, -1)",
            # the key is never used: ChirpStack checked the LoRaWAN MIC; devices.key may not be empty
            (info.dev_eui, info.name, secrets.token_bytes(registry.KEY_SIZE), policy.codec, now),
        )
        conn.execute("DELETE FROM quarantine WHERE device_id = ?", (info.dev_eui,))
        registry.audit(
            conn,
            actor="chirpstack",
            action="device.adopt",
            target=info.dev_eui,
            detail={"application": info.application_id, "name": info.name, "codec": policy.codec},
            now=now,
        )
        _remember(conn, info, tags)
        return 0, -1, policy.codec
    last_fcnt, base, name, stored_tags, codec = row
    if base is None or name != info.name or stored_tags != tags:
        _remember(conn, info, tags)
    return base or 0, last_fcnt, codec


def _remember(conn: sqlite3.Connection, info: DeviceInfo, tags: str) -> None:
    conn.execute(
        "INSERT INTO source_devices (device_id, source, application, name, tags) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (device_id) DO UPDATE SET application = excluded.application, name = excluded.name,"
        " tags = excluded.tags",
        (info.dev_eui, SOURCE, info.application_id, info.name, tags),
    )


def _uplink(conn: sqlite3.Connection, up: Uplink, numbers: Numbers, policy: Policy, now: float) -> Applied:
    seen = conn.execute("SELECT id FROM source_uplinks WHERE dedup_id = ?", (up.dedup_id,)).fetchone()
    if seen is not None:
        return Applied("duplicate", "deduplicationId stored before", seen[0])
    known = _known(conn, up.device, policy, now)
    if known is None:
        registry.note_unknown(
            conn, up.device.dev_eui, rssi=up.rssi, bridge=up.gateway_id, frame=up.data, now=now
        )
        return Applied(
            "unknown_device",
            f"deviceInfo.devEui: {up.device.dev_eui} (application {up.device.application_id}) is not registered:"
            " quarantined",
        )
    base, last_fcnt, codec = known
    number = numbers.number(conn, up.device.dev_eui, create=True)
    assert number is not None
    rid = readings.reading_id(number, base + up.fcnt) if base + up.fcnt <= MAX_FCNT else None
    if rid is None or conn.execute("SELECT 1 FROM readings WHERE id = ?", (rid,)).fetchone() is not None:
        # fCnt went back without a join we saw (an ABP device reset, a missed join): a new session
        base = last_fcnt + 1
        if base + up.fcnt > MAX_FCNT:
            return Applied("refused", f"fCnt: {up.fcnt} past the session base {base} overflows 32 bits")
        conn.execute("UPDATE source_devices SET fcnt_base = ? WHERE device_id = ?", (base, up.device.dev_eui))
        rid = readings.reading_id(number, base + up.fcnt)
    fcnt = base + up.fcnt
    bridge = numbers.number(conn, up.gateway_id, create=True) if up.gateway_id else None
    snr_q = None if up.snr is None else max(-128, min(127, round(up.snr * 4)))
    # codec "chirpstack": ChirpStack's codec decodes, so the reading is its object (decoded like any
    # reading when read: sync, panel, rules, export); the LoRaWAN bytes are kept beside it
    raw, data = up.data, None
    if codec == CODEC and up.object_json is not None:
        raw, data = up.object_json.encode(), up.data
    # no age: ChirpStack's uplink carries none, so measured = received
    readings.insert_many(conn, [(rid, round(now * 1000), PORT, up.rssi, snr_q, bridge, None, raw)])
    conn.execute(
        "INSERT INTO source_uplinks (id, dedup_id, fcnt, fport, object, data) VALUES (?, ?, ?, ?, ?, ?)",
        (rid, up.dedup_id, up.fcnt, up.fport, up.object_json, data),
    )
    cursor.rewind(conn, {number: rid})
    conn.execute(
        "UPDATE devices SET last_fcnt = max(last_fcnt, ?), last_seen = ?, last_rssi = ?, last_snr = ?,"
        " last_bridge = ? WHERE id = ?",
        (fcnt, now, up.rssi, up.snr, up.gateway_id, up.device.dev_eui),
    )
    reading = CommittedReading(
        rid,
        up.device.dev_eui,
        fcnt,
        PORT,
        round(now * 1000) / 1000,
        raw,
        up.rssi or 0,
        up.snr or 0.0,
        up.gateway_id,
        codec,
    )
    return Applied("stored", "", rid, reading)


def _join(conn: sqlite3.Connection, join: Join, policy: Policy, now: float) -> Applied:
    known = _known(conn, join.device, policy, now)
    if known is None:
        registry.note_unknown(conn, join.device.dev_eui, rssi=None, bridge=None, frame=b"", now=now)
        return Applied(
            "unknown_device", f"deviceInfo.devEui: {join.device.dev_eui} joined; not registered: quarantined"
        )
    _base, last_fcnt, _codec = known
    # the same join delivered again (its PUBACK lost) must not start yet another session
    cur = conn.execute(
        "UPDATE source_devices SET fcnt_base = ?, session = ? WHERE device_id = ? AND session != ?",
        (last_fcnt + 1, join.dedup_id, join.device.dev_eui, join.dedup_id),
    )
    return Applied("joined" if cur.rowcount else "duplicate", f"session from fcnt {last_fcnt + 1}")


def _downlink_event(conn: sqlite3.Connection, queue_id: str, status: str, now: float) -> Applied:
    row = conn.execute("SELECT downlink_id FROM source_downlinks WHERE queue_id = ?", (queue_id,)).fetchone()
    if row is None:
        return Applied("ignored", f"queueItemId: {queue_id} is not a downlink of ours")
    changed = downlinks.mark(
        conn, row[0], status, result="acknowledged by the device" if status == "acked" else None, now=now
    )
    return Applied(f"downlink_{status}" if changed else "duplicate", f"downlink {row[0]}")


def published(conn: sqlite3.Connection, downlink_id: int, queue_id: str, now: float) -> None:
    """Record that ChirpStack has a downlink (the broker acknowledged the command/down publish)."""
    conn.execute(
        "INSERT OR IGNORE INTO source_downlinks (downlink_id, queue_id, published_at) VALUES (?, ?, ?)",
        (downlink_id, queue_id, now),
    )


def queued_downlinks(conn: sqlite3.Connection, now: float, limit: int = 50) -> list[tuple]:
    """(downlink id, device id, application, command, args JSON, created_at) of queued downlinks to ChirpStack
    devices that have not been handed to ChirpStack yet."""
    return conn.execute(
        "SELECT d.id, d.device_id, s.application, d.command, d.args, d.created_at FROM downlinks d"
        " JOIN source_devices s ON s.device_id = d.device_id AND s.source = 'chirpstack'"
        " LEFT JOIN source_downlinks p ON p.downlink_id = d.id"
        " WHERE d.status = 'queued' AND d.expires_at > ? AND p.downlink_id IS NULL ORDER BY d.id LIMIT ?",
        (now, limit),
    ).fetchall()


def prune(conn: sqlite3.Connection, numbers: Numbers) -> int:
    """Drop the ``source_uplinks`` rows of readings retention deleted; return how many.

    Retention deletes a device's oldest readings, a prefix of its id range, so per ChirpStack device
    everything below its first stored reading goes: two range look-ups a device, no scan, and no
    trigger to slow every delete of every reading.
    """
    pruned = 0
    for (device_id,) in conn.execute(
        "SELECT device_id FROM source_devices WHERE source = ?", (SOURCE,)
    ).fetchall():
        number = numbers.number(conn, device_id)
        if number is None:
            continue
        low, high = readings.device_bounds(number)
        (first,) = conn.execute(
            "SELECT min(id) FROM readings WHERE id BETWEEN ? AND ?", (low, high)
        ).fetchone()
        cut = high if first is None else first - 1
        pruned += conn.execute("DELETE FROM source_uplinks WHERE id BETWEEN ? AND ?", (low, cut)).rowcount
    return pruned
