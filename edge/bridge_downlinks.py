"""A bridge module's own commands: sent as serial DOWNLINK frames while its link is up.

A node's downlink rides on the ACK of its next uplink. A bridge sends uplinks of its own only
when ``own_readings`` is on (or to answer a command), so its commands go the other way: the
link manager hands them to the bridge in a serial ``DOWNLINK`` frame (docs/radio.md section 4).
The bridge applies the command and confirms it on uplink port 2, which the ordinary ingest
path turns into acked/failed (edge.downlinks.record_result).

This module decides what to send and builds the frames (``take``, run inside the ingest
writer's transaction so 'sent' is durable before the frame leaves), turns a bridge's NACK
into 'failed' (``refused``), and keeps the frames handed to a link but not yet ACKed by the
bridge (``InFlight``), so that a frame whose port went away is sent again when the bridge
is back. Sending twice is safe: the firmware remembers the last dl_ids and confirms a repeat
without applying it again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge import downlinks
from edge.radio import DownlinkResult, build_downlink
from edge.store.connection import LazyReader

RESULT_FAILED = 3  # docs/radio.md section 2, port-2 result "failed"
TAKE_MAX = 4  # downlinks marked sent per look; more follow on the next look


@dataclass(frozen=True)
class BridgeDownlink:
    """A downlink marked sent and the serial DOWNLINK payload that carries it."""

    id: int
    device_id: str
    frame: bytes  # the downlink radio frame (docs/radio.md section 3), signed with the bridge's key
    expires_at: float


def downlink_fcnt(last_fcnt: int) -> int:
    """The ``fcnt`` field of a bridge's own downlink: its last stored uplink fcnt, 0 if none.

    The bridge does not bind its own downlinks to an uplink (fp/roles/bridge.py opens them with
    fcnt None: any value is accepted). Freshness comes from the serial session instead, and a
    repeated dl_id is confirmed, not applied again. The last fcnt is filled in so the field says
    which uplink the edge had seen last; it is never checked.
    """
    return max(0, int(last_fcnt))


def take(
    conn: sqlite3.Connection, device_id: str, *, limit: int = TAKE_MAX, now: float
) -> list[BridgeDownlink]:
    """Mark up to ``limit`` live queued downlinks of bridge ``device_id`` sent; return their frames.

    Nothing for a device that is not registered with role bridge, and nothing past its expiry
    (edge.downlinks.take_for_uplink skips those; the daemon's expiry job marks them expired).
    Call inside the writer's transaction: the frames may go out only after its commit.
    """
    if limit <= 0:
        return []
    device = conn.execute("SELECT key, role, last_fcnt FROM devices WHERE id = ?", (device_id,)).fetchone()
    if device is None or device["role"] != "bridge":
        return []
    key = bytes(device["key"])
    fcnt = downlink_fcnt(device["last_fcnt"])
    out: list[BridgeDownlink] = []
    while len(out) < limit:
        pending = downlinks.take_for_uplink(conn, device_id, fcnt, now=now)
        if pending is None:
            break
        (expires_at,) = conn.execute(
            "SELECT expires_at FROM downlinks WHERE id = ?", (pending.id,)
        ).fetchone()
        frame = build_downlink(key, device_id, fcnt, pending.encode())
        out.append(BridgeDownlink(pending.id, device_id, frame, float(expires_at)))
    return out


def bridges_with_queued(conn: sqlite3.Connection, device_ids: list[str], *, now: float) -> set[str]:
    """Which of ``device_ids`` are registered bridges with a live queued downlink."""
    if not device_ids:
        return set()
    marks = ",".join("?" * len(device_ids))
    rows = conn.execute(
        "SELECT DISTINCT d.device_id FROM downlinks d JOIN devices v ON v.id = d.device_id"
        f" WHERE d.status = 'queued' AND d.expires_at > ? AND v.role = 'bridge' AND d.device_id IN ({marks})",
        (now, *device_ids),
    )
    return {r[0] for r in rows}


class QueuedProbe:
    """``probe(device_ids)``: ``bridges_with_queued`` through a read-only connection of its own.

    The link manager looks several times a second; through the ingest writer every look would
    be a batch, and a writer that is never idle stops re-reading its backlog (backpressure would
    not notice a drained outbox). A WAL reader costs the writer nothing. The connection is
    opened on first use; ``close`` after the manager has stopped.
    """

    def __init__(self, db_path: str | Path, *, clock: Callable[[], float]):
        self._reader = LazyReader(db_path)
        self._clock = clock

    def __call__(self, device_ids: list[str]) -> set[str]:
        return bridges_with_queued(self._reader.conn, device_ids, now=self._clock())

    def close(self) -> None:
        self._reader.close()


def refused(
    conn: sqlite3.Connection, device_id: str, dl_id: int, reason: str, text: str, *, now: float
) -> int | None:
    """The bridge NACKed the DOWNLINK frame (INVALID: bad MIC or form; UNSUPPORTED): mark it failed."""
    why = f"refused by the bridge: {reason}" + (f" ({text})" if text else "")
    return downlinks.record_result(
        conn, device_id, DownlinkResult(dl_id & 0xFFFF, RESULT_FAILED, why), now=now
    )


@dataclass
class _Entry:
    downlink: BridgeDownlink
    port: Any = None  # the LinkPort it was handed to; None: waiting for one


class InFlight:
    """DOWNLINK frames marked sent but not yet ACKed by the bridge on the serial link.

    A frame waits (``port`` None) until a link to its bridge has room in its window; it is
    handed to that port (``handed``) and forgotten when the bridge ACKs or NACKs it (``done``).
    When its port closes before that (unplug, reconnect), it waits again (``port_closed``) and
    goes to the bridge's next link. Past its expiry it is dropped: the expiry job marks it failed.
    Not thread-safe: the link manager holds its lock around every call.
    """

    def __init__(self) -> None:
        self._by_device: dict[str, dict[int, _Entry]] = {}

    def add(self, items: list[BridgeDownlink]) -> None:
        for item in items:
            self._by_device.setdefault(item.device_id, {})[item.id] = _Entry(item)

    def waiting(self, device_id: str, *, now: float) -> list[BridgeDownlink]:
        """The frames of ``device_id`` still to hand to a port, oldest first (expired ones dropped)."""
        entries = self._by_device.get(device_id, {})
        for dl_id in [i for i, e in entries.items() if e.port is None and e.downlink.expires_at <= now]:
            del entries[dl_id]
        return [e.downlink for _, e in sorted(entries.items()) if e.port is None]

    def handed(self, device_id: str, dl_id: int, port: Any) -> None:
        entry = self._by_device.get(device_id, {}).get(dl_id)
        if entry is not None:
            entry.port = port

    def done(self, device_id: str, dl_id: int) -> None:
        self._by_device.get(device_id, {}).pop(dl_id, None)

    def port_closed(self, port: Any) -> int:
        """Frames handed to ``port`` wait for the next link again; return how many."""
        count = 0
        for entries in self._by_device.values():
            for entry in entries.values():
                if entry.port is port:
                    entry.port = None
                    count += 1
        return count

    def count(self, device_id: str) -> int:
        return len(self._by_device.get(device_id, {}))
