"""Putting readings into a store directly, for tests that need a store in a given state.

The real path (link -> ingest) is what most tests use; these helpers write the same rows the
ingest writer writes (edge.store.readings), for tests about what reads the store (sync,
retention, panel, rules, CLI).
"""

from __future__ import annotations

from collections.abc import Iterable

from edge.codecs import lpp
from edge.store import cursor, numbers, readings, transaction

STANDARD = [(1, "temperature", 21.5), (2, "humidity", 55.0), (3, "voltage", 3.7)]


def put_readings(
    conn,
    device_id: str,
    fcnts: Iterable[int],
    *,
    received_at: float | Iterable[float] = 1_700_000_000.0,
    port: int = 1,
    raw: bytes | None = None,
    rssi: int = -80,
    snr: float = 7.25,
    bridge_id: str | None = None,
    age_s: int | None = None,
) -> list[int]:
    """Store readings of one device; returns their ids. ``received_at`` may give one time per reading;
    ``age_s``: how long each waited on its module (measured = received - age)."""
    fcnts = list(fcnts)
    times = [received_at] * len(fcnts) if isinstance(received_at, (int, float)) else list(received_at)
    payload = lpp.encode(STANDARD) if raw is None else raw
    with transaction(conn):
        n = numbers.ensure(conn, device_id)
        bridge = numbers.ensure(conn, bridge_id) if bridge_id else None
        rows = [
            (
                readings.reading_id(n, f),
                round(t * 1000),
                port,
                rssi,
                round(snr * 4),
                bridge,
                None,
                payload,
                age_s,
            )
            for f, t in zip(fcnts, times, strict=True)
        ]
        readings.insert_many(conn, rows)
    return [r[0] for r in rows]


def mark_synced(conn, device_id: str, through_fcnt: int, sink: str = cursor.CLOUD) -> None:
    """The cloud has every reading of the device up to ``through_fcnt``."""
    with transaction(conn):
        n = numbers.ensure(conn, device_id)
        cursor.advance(conn, {n: readings.reading_id(n, through_fcnt)}, sink)


def unsynced_ids(conn, sink: str = cursor.CLOUD) -> list[int]:
    """Ids of the readings past the sink's cursor, in id order."""
    out = []
    for pending in cursor.pending_devices(conn, sink):
        _, high = readings.device_bounds(pending.device)
        out += [
            r[0]
            for r in conn.execute(
                "SELECT id FROM readings WHERE id > ? AND id <= ? ORDER BY id", (pending.after, high)
            )
        ]
    return out


def put_backlog(
    conn, n: int, devices: list[str], *, received_at: float = 1_700_000_000.0, start_fcnt: int = 0
) -> list[str]:
    """``n`` readings round-robin over ``devices``, a millisecond apart, nothing of them synced
    (a backlog that built up while offline); returns their message ids in the order written."""
    per_device: dict[str, list[tuple[int, float]]] = {d: [] for d in devices}
    msg_ids = []
    for i in range(n):
        device = devices[i % len(devices)]
        fcnt = start_fcnt + i // len(devices)
        per_device[device].append((fcnt, received_at + i * 1e-3))
        msg_ids.append(f"{device}:{fcnt}")
    for device, items in per_device.items():
        if items:
            put_readings(conn, device, [f for f, _ in items], received_at=[t for _, t in items])
    return msg_ids
