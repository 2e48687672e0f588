"""Module firmware updates as rows (table module_updates, migration 0014): what was asked for, how
far the transfer got, how it ended. Plain SQL on a connection the caller owns (the daemon's
writer, or the CLI's)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edge.errors import UpdateError

ACTIVE = ("queued", "sending", "staged")
ENDED = ("done", "rolled_back", "failed", "cancelled")
_COLUMNS = (
    "id, device_id, board, version, from_version, package, package_sha256, size, sent, state, error,"
    " transport, max_in_flight, air_gap_s, air_burst"
)


@dataclass(frozen=True)
class Job:
    id: int
    device_id: str
    board: str
    version: str
    from_version: str | None
    package: str
    sha256: str
    size: int
    sent: int
    state: str
    error: str | None
    transport: str = "serial"  # "air": a node, in fragment sessions (edge/fuota/air.py)
    max_in_flight: int | None = None  # air updates under way at once, at most, for this one to start
    # the node's energy pace (edge/fuota/energy.py): a burst of requests, then one per gap; None: none
    air_gap_s: int | None = None
    air_burst: int | None = None


def queue(
    conn: sqlite3.Connection,
    device_id: str,
    *,
    board: str,
    version: str,
    from_version: str | None,
    package: str,
    sha256: str,
    size: int,
    now: float,
    transport: str = "serial",
    max_in_flight: int | None = None,
    pace: tuple[int, int] | None = None,
) -> int:
    """Ask for an update of ``device_id``; one active update per module (refused otherwise)."""
    try:
        cur = conn.execute(
            "INSERT INTO module_updates (device_id, board, version, from_version, package, package_sha256,"
            " size, created_at, updated_at, transport, max_in_flight, air_gap_s, air_burst)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                device_id,
                board,
                version,
                from_version,
                package,
                sha256,
                size,
                now,
                now,
                transport,
                max_in_flight,
                *(pace or (None, None)),
            ),
        )
    except sqlite3.IntegrityError as exc:
        if "module_updates.device_id" in str(exc) or "UNIQUE" in str(exc):
            raise UpdateError(
                f"module {device_id} already has an update under way (cancel it first)"
            ) from None
        raise UpdateError(f"module {device_id}: {exc}") from None
    assert cur.lastrowid is not None  # sqlite3 sets it after every INSERT
    return cur.lastrowid


def active(conn: sqlite3.Connection, transport: str = "serial") -> list[Job]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM module_updates WHERE state IN {ACTIVE} AND transport = ? ORDER BY id",
        (transport,),
    ).fetchall()
    return [Job(*row) for row in rows]


def listing(conn: sqlite3.Connection, *, limit: int = 100) -> list[dict]:
    rows = conn.execute(
        f"SELECT {_COLUMNS}, created_at, updated_at FROM module_updates ORDER BY id DESC LIMIT ?", (limit,)
    ).fetchall()
    keys = [*_COLUMNS.split(", "), "created_at", "updated_at"]
    return [dict(zip(keys, row, strict=True)) for row in rows]


def get(conn: sqlite3.Connection, job_id: int) -> Job | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM module_updates WHERE id = ?", (job_id,)).fetchone()
    return Job(*row) if row else None


def progress(conn: sqlite3.Connection, job_id: int, sent: int, *, now: float) -> None:
    conn.execute(
        "UPDATE module_updates SET state = 'sending', sent = max(?, 0), updated_at = ?"
        " WHERE id = ? AND state IN ('queued', 'sending')",
        (sent, now, job_id),
    )


def staged(conn: sqlite3.Connection, job_id: int, *, now: float) -> None:
    conn.execute(
        "UPDATE module_updates SET state = 'staged', sent = size, updated_at = ? WHERE id = ? AND state = 'sending'",
        (now, job_id),
    )


def finish(
    conn: sqlite3.Connection, job_id: int, state: str, *, error: str | None = None, now: float
) -> None:
    if state not in ENDED:
        raise ValueError(f"{state!r} is not an end state")
    conn.execute(
        f"UPDATE module_updates SET state = ?, error = ?, updated_at = ? WHERE id = ? AND state IN {ACTIVE}",
        (state, error, now, job_id),
    )


def cancel(conn: sqlite3.Connection, device_id: str, *, now: float) -> int:
    """Cancel the module's queued or sending update (a staged one is on the module already)."""
    cur = conn.execute(
        "UPDATE module_updates SET state = 'cancelled', updated_at = ?"
        " WHERE device_id = ? AND state IN ('queued', 'sending')",
        (now, device_id),
    )
    return cur.rowcount


def cancel_job(conn: sqlite3.Connection, job_id: int, *, now: float) -> bool:
    """Cancel one update if it is queued or sending (the panel's cancel, per job)."""
    cur = conn.execute(
        "UPDATE module_updates SET state = 'cancelled', updated_at = ? WHERE id = ? AND state IN ('queued', 'sending')",
        (now, job_id),
    )
    return cur.rowcount == 1


IN_FLIGHT = ("sending", "staged")  # what holds a place in --max-in-flight


def stall_reason(timeout_h: float) -> str:
    return f"no progress for {timeout_h:g} h"


def expire_stalled(conn: sqlite3.Connection, *, timeout_h: float, now: float) -> list[Job]:
    """Mark failed, and audit, every update under way whose module has shown no progress (its row
    untouched: no fragment request, chunk acknowledged, result) for ``timeout_h`` hours; 0: never.
    A queued update is not under way yet (its module has not been reached, or it waits for a place
    in flight), so it waits; `modules cancel` ends it."""
    from edge.registry import audit  # edge.registry imports the store, which must not import us

    if timeout_h <= 0:
        return []
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM module_updates WHERE state IN {IN_FLIGHT} AND updated_at <= ? ORDER BY id",
        (now - timeout_h * 3600,),
    ).fetchall()
    reason = stall_reason(timeout_h)
    stalled = [Job(*row) for row in rows]
    for job in stalled:
        finish(conn, job.id, "failed", error=reason, now=now)
        audit(
            conn,
            actor="edge",
            action="module.update.failed",
            target=job.device_id,
            detail={"job": job.id, "state": job.state, "sent": job.sent, "error": reason},
            now=now,
        )
    return stalled
